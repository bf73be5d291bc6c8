"""Distils the fine-tuned BERT teacher into the BiLSTM student (Tang et al. 2019).

Three steps with files between them, each reused when its output exists:
  1. transfer set: the training set plus n_iter augmented copies of every example
     (masking, POS-guided replacement, n-gram and sentence sampling), hashed and cached;
  2. teacher logits for every transfer example, computed once by the exported teacher
     (Paddle Inference) and cached in chunks, so interrupted labelling resumes;
  3. the student (the same model and loop as small.py) trained to match the logits.

    python bert_distill.py --task_name sst-2 --data_dir path/to/SST-2 \
        --teacher_path pretrained_models/sst-2 --embedding_path path/to/glove.6B.50d.txt
"""
from __future__ import annotations

import logging
import os
import time
from typing import Sequence

import numpy as np
import paddle

from args import TEACHER_ROOT, parse_config
from augment import cached_transfer_set, masked_as
from data import MASK, TASKS, UNK, encode, load_data, make_vocab
from losses import balance_weights, distill_loss
from runs import baseline_summary
from student import prepare_student, train_student
from teachers import label_transfer_set, online_teacher
from trainer import prepare_run, start_run
from utils import main_first, run_cli

logger = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> dict:
    cfg = parse_config("bert_distill", ["data", "student", "augment", "distill", "train"], argv,
                       __doc__)
    k, t, aug = cfg.distill, cfg.train, cfg.augment
    task = TASKS[cfg.data.task_name]
    k.teacher_path = k.teacher_path or os.path.join(TEACHER_ROOT, task.name)
    aug.n_iter = task.n_iter if aug.n_iter is None else aug.n_iter
    aug.augment_seed = t.seed if aug.augment_seed is None else aug.augment_seed
    resume = prepare_run(cfg.to_dict(), t, cfg.script)
    data = load_data(cfg.data)
    cache_dir = k.cache_dir or os.path.join(t.output_dir, "cache")

    t0 = time.perf_counter()
    ts, ts_key = main_first(lambda: cached_transfer_set(data.train_words, task.language, aug,
                                                        cache_dir))
    # Wall time this invocation spent on each step (near 0 when read from the cache).
    seconds = {"transfer_set": round(time.perf_counter() - t0, 1)}
    extra = {"original": ts.original}
    batch_extra = None
    if k.online_teacher:  # PaddleNLP's way, kept only to measure what caching saves
        batch_extra = online_teacher(ts, k.teacher_path, task.num_labels, k.model_name,
                                     k.teacher_max_seq_length)
    else:
        t0 = time.perf_counter()
        extra["teacher_logits"] = label_transfer_set(
            ts, ts_key, k.teacher_path, k.model_name, task.num_labels,
            k.teacher_max_seq_length, k.teacher_batch_size, cache_dir, t.device, t.num_threads,
            k.label_precision, k.label_chunk_size)
        seconds["labelling"] = round(time.perf_counter() - t0, 1)
        logger.info("teacher logits ready in %.1fs", seconds["labelling"])
        if k.balance_labels:
            extra["weight"] = balance_weights(extra["teacher_logits"], ts.original)
            labels, first = np.unique(extra["teacher_logits"].argmax(axis=1), return_index=True)
            logger.info("--balance_labels: %s", ", ".join(
                f"weight {extra['weight'][i]:.2f} where the teacher says {c}"
                for c, i in zip(labels, first)))
    vocab = make_vocab(cfg.data, data)
    results_extra = {"teacher_path": k.teacher_path, "transfer_examples": len(ts),
                     "n_iter": aug.n_iter, "online_teacher": k.online_teacher,
                     "seconds": seconds}
    if k.baseline_dir:
        base = results_extra["baseline"] = baseline_summary(k.baseline_dir, cfg.to_dict())
        if base["differs_in"]:
            logger.warning("--baseline_dir %s differs from this run in %s", k.baseline_dir,
                           ", ".join(base["differs_in"]))

    def report_gain(results: dict) -> None:
        base, metric = results["baseline"], task.metrics[0]
        base["gain"] = results["dev"][metric] - base["dev"][metric]
        logger.info("distilled %s %.4f vs baseline %.4f (%s): %+.2f points", metric,
                    results["dev"][metric], base["dev"][metric], k.baseline_dir,
                    100 * base["gain"])

    with paddle.utils.unique_name.guard():
        model = prepare_student(cfg, data, vocab, resume)
        start_run(cfg.to_dict(), t)
        labels = np.asarray([data.train[i].label for i in ts.source], dtype=np.int64)
        words = masked_as(ts.words, UNK if k.student_mask == "unk" else MASK)
        train_set = encode(words, vocab, labels)
        return train_student(cfg, data, vocab, model, train_set,
                             distill_loss(k.kd_loss, k.alpha, k.temperature), resume,
                             extra=extra, batch_extra=batch_extra, results_extra=results_extra,
                             finish=report_gain if k.baseline_dir else None)


if __name__ == "__main__":
    run_cli(main)
