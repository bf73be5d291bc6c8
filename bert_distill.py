"""Distils the fine-tuned BERT teacher into the BiLSTM student (Tang et al. 2019).

Three steps with files between them, each reused when its output exists:
  1. transfer set: the training set plus n_iter augmented copies of every example
     (masking, POS-guided replacement, n-gram and sentence sampling), hashed and cached;
  2. teacher logits for every transfer example, computed once by the exported teacher
     (Paddle Inference; several teachers: the mean of their logits) and cached in chunks,
     so interrupted labelling resumes; or computed by any model outside this project for
     the texts --export_transfer_set writes, and read with --teacher_logits;
  3. the student (the same model and loop as small.py) trained to match the logits.

    python bert_distill.py --task_name sst-2 --data_dir path/to/SST-2 \
        --teacher_path pretrained_models/sst-2 --embedding_path path/to/glove.6B.50d.txt
"""
from __future__ import annotations

import cpu  # noqa: F401  (first: sets MKL's CPU type before Paddle loads)

import logging
import os
import time
from typing import Sequence

import numpy as np
import paddle

from args import Config, parse_config
from augment import TransferSet, cached_transfer_set, student_view, write_transfer_texts
from data import MASK, UNK, TaskData, load_data, make_vocab, read_transfer_file, task_of
from losses import balance_weights, distill_loss
from logits import copies_keep_label, label_transfer_set, teacher_dev_scores, teacher_sources
from runs import baseline_summary
from student import prepare_student, train_student
from trainer import prepare_run, start_run
from utils import is_main, main_first, run_cli, setup_logging

logger = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> dict:
    cfg = parse_config("bert_distill", argv, __doc__)
    k, t, aug = cfg.distill, cfg.train, cfg.augment
    task = task_of(cfg.data)
    aug.n_iter = task.n_iter if aug.n_iter is None else aug.n_iter
    aug.augment_seed = t.seed if aug.augment_seed is None else aug.augment_seed
    cache_dir = k.cache_dir or os.path.join(t.output_dir, "cache")
    sources = teacher_sources(k, t, task.name, cache_dir)  # sets the default --teacher_path
    unlabeled = read_transfer_file(k.transfer_file, task, cfg.data.max_seq_length) \
        if k.transfer_file else []
    if k.export_transfer_set:
        setup_logging()
        ts, _ = transfer_set(cfg, load_data(cfg.data), unlabeled, cache_dir)
        if is_main():
            write_transfer_texts(ts, k.export_transfer_set)
        logger.info("wrote the %d transfer examples to %s: label them, then distil with the "
                    "same flags and --teacher_logits FILE", len(ts), k.export_transfer_set)
        return {"transfer_set": k.export_transfer_set, "examples": len(ts)}
    resume = prepare_run(cfg.to_dict(), t, cfg.script)
    data = load_data(cfg.data)

    t0 = time.perf_counter()
    ts, ts_key = transfer_set(cfg, data, unlabeled, cache_dir)
    # Wall time this invocation spent on each step (near 0 when read from the cache).
    seconds = {"transfer_set": round(time.perf_counter() - t0, 1)}
    gold = ts.original & (ts.source < len(data.train))  # originals with a gold label
    t0 = time.perf_counter()
    logits = label_transfer_set(sources, ts, ts_key, task.num_labels, cache_dir)
    extra = {"original": gold, "teacher_logits": logits}
    seconds["labelling"] = round(time.perf_counter() - t0, 1)
    logger.info("teacher logits ready in %.1fs", seconds["labelling"])
    teacher_dev = teacher_dev_scores(sources, data.dev_words, [e.label for e in data.dev],
                                     task.metrics, task.num_labels, cache_dir)
    if teacher_dev:
        logger.info("the teacher on dev, as it labels: %s",
                    ", ".join(f"{m} {v:.4f}" for m, v in teacher_dev.items()))
    keep = None
    if isinstance(logits, np.ndarray):
        keep = {c: round(v, 4) for c, v in zip(
            task.names, copies_keep_label(logits, ts.source, ts.original).tolist()) if not np.isnan(v)}
        logger.info("the teacher keeps its label of the original on its augmented copies: %s",
                    ", ".join(f"{c} {v:.2f}" for c, v in keep.items()))
    if k.balance_labels:
        extra["weight"] = balance_weights(logits, gold)
        labels, first = np.unique(logits.argmax(axis=1), return_index=True)
        logger.info("--balance_labels: %s", ", ".join(
            f"weight {extra['weight'][i]:.2f} where the teacher says {c}"
            for c, i in zip(labels, first)))
    vocab = make_vocab(cfg.data, data, unlabeled)
    results_extra = {"teacher_path": k.teacher_path, "teacher_logits": k.teacher_logits,
                     "teacher_dev": teacher_dev, "copies_keep_label": keep,
                     "transfer_examples": len(ts),
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
        # unlabeled texts (--transfer_file) get label 0, never used: `original` is False
        gold_labels = np.asarray([e.label for e in data.train] + [0], dtype=np.int64)
        labels = gold_labels[np.minimum(ts.source, len(data.train))]
        train_set = student_view(ts, vocab, UNK if k.student_mask == "unk" else MASK, labels)
        return train_student(cfg, data, vocab, model, train_set,
                             distill_loss(k.kd_loss, k.alpha, k.temperature), resume,
                             extra=extra, results_extra=results_extra,
                             finish=report_gain if k.baseline_dir else None)


def transfer_set(cfg: Config, data: TaskData, unlabeled: list[tuple[list[str], ...]],
                 cache_dir: str) -> tuple[TransferSet, str]:
    """The training examples plus the unlabeled --transfer_file texts (sources numbered
    after the training examples), augmented; built once and cached (main process first)."""
    if unlabeled:
        logger.info("--transfer_file %s: %d unlabeled texts join the %d training examples",
                    cfg.distill.transfer_file, len(unlabeled), len(data.train_words))
    return main_first(lambda: cached_transfer_set(data.train_words + unlabeled,
                                                  data.task.language, cfg.augment, cache_dir))


if __name__ == "__main__":
    run_cli(main)
