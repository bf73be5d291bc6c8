"""Trains the BiLSTM student alone with cross-entropy on the gold labels: the baseline every
distillation result is compared against.

    python small.py --task_name sst-2 --data_dir ../shared/data/sst2 \
        --embedding_path ../shared/data/embeddings/glove.6B.50d.sst2.txt
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import paddle

from args import Config, parse_config
from data import (SPECIAL_TOKENS, DataError, Encoded, Example, Task, TASKS, Vocab, build_vocab,
                  collate, encode, iterate, load_embedding_matrix, load_split, make_batches,
                  read_word_list, tokenize)
from model import BiLSTMStudent, StudentConfig
from trainer import (BEST, LAST, MODEL_STATE, LossFn, RunError, build_optimizer, cross_entropy,
                     fit, load_checkpoint, prepare_run, start_run, total_steps)
from utils import atomic_save, count_parameters, is_main, run_cli

logger = logging.getLogger(__name__)


@dataclass
class TaskData:
    """A task's train and dev splits, raw and tokenized into words."""

    task: Task
    train: list[Example]
    dev: list[Example]
    train_words: list[tuple[list[str], ...]]
    dev_words: list[tuple[list[str], ...]]


def load_data(cfg: Config) -> TaskData:
    d = cfg.data
    task = TASKS[d.task_name]
    where = d.data_dir or "paddlenlp"
    train = load_split(task, "train", d.data_dir)[: d.max_train_samples]
    dev = load_split(task, "dev", d.data_dir)[: d.max_eval_samples]
    if dev[0].label is None:
        raise DataError(f"{where}: the dev split has no labels")
    t0 = time.perf_counter()
    train_words = tokenize(train, task.language, d.max_seq_length, f"{where} train")
    dev_words = tokenize(dev, task.language, d.max_seq_length, f"{where} dev")
    n = [len(w) for ws in train_words for w in ws]
    logger.info("%s: %d train / %d dev examples; train texts average %.1f words (max %d, "
                "truncated at %d); tokenized in %.1fs", task.name, len(train), len(dev),
                np.mean(n), max(n), d.max_seq_length, time.perf_counter() - t0)
    return TaskData(task, train, dev, train_words, dev_words)


def make_vocab(cfg: Config, data: TaskData) -> Vocab:
    d = cfg.data
    allowed = read_word_list(d.vocab_path) if d.vocab_path else None
    vocab = build_vocab((w for ws in data.train_words for w in ws), d.min_freq,
                        d.max_vocab_size, allowed)
    if len(vocab) == len(SPECIAL_TOKENS):
        raise DataError(f"--vocab_path {d.vocab_path}: none of its {len(allowed):,} words occurs "
                        f"in the training data" if allowed else
                        f"--min_freq {d.min_freq} / --max_vocab_size {d.max_vocab_size}: no "
                        f"training word is left in the vocabulary")
    logger.info("vocabulary: %d entries (min_freq %d%s%s)", len(vocab), d.min_freq,
                f", max {d.max_vocab_size}" if d.max_vocab_size else "",
                f", restricted to {len(allowed):,} words of {d.vocab_path}" if allowed else "")
    return vocab


def build_student(cfg: Config, task: Task, vocab: Vocab, resume: bool) -> BiLSTMStudent:
    """The student with pretrained word vectors when given (skipped on resume: the weights
    come from the checkpoint)."""
    s, d = cfg.student, cfg.data
    if resume:
        config = StudentConfig(**load_checkpoint(os.path.join(cfg.train.output_dir, LAST))["model_config"])
        return BiLSTMStudent(config)
    has_vectors = bool(d.embedding_path or d.embedding_name)
    matrix = load_embedding_matrix(vocab, np.random.default_rng(cfg.train.seed), d.embedding_path,
                                   d.embedding_name, s.emb_dim if has_vectors else s.emb_dim or 300)
    config = StudentConfig(vocab_size=len(vocab), num_labels=task.num_labels,
                           emb_dim=matrix.shape[1], hidden_size=s.hidden_size, fc_size=s.fc_size,
                           num_layers=s.num_layers, dropout=s.dropout, pair=task.is_pair)
    model = BiLSTMStudent(config, matrix, s.freeze_embedding)
    n_emb = config.vocab_size * config.emb_dim
    logger.info("student: %s parameters (embedding %s, other %s)", f"{count_parameters(model):,}",
                f"{n_emb:,}", f"{count_parameters(model) - n_emb:,}")
    return model


def student_forward(model: BiLSTMStudent, batch: dict) -> paddle.Tensor:
    return model(batch["input_ids"], batch["lengths"], batch.get("input_ids_b"),
                 batch.get("lengths_b"))


def train_student(cfg: Config, data: TaskData, vocab: Vocab, model: BiLSTMStudent,
                  train_set: Encoded, loss_fn: LossFn, resume: bool,
                  extra: dict[str, np.ndarray] | None = None,
                  batch_extra: Callable[[np.ndarray], dict] | None = None,
                  results_extra: dict | None = None,
                  finish: Callable[[dict], None] | None = None) -> dict:
    """The shared loop over `train_set` (the training split, or a transfer set whose
    per-example arrays such as teacher logits come in `extra`, or are computed per batch
    of indices by `batch_extra`)."""
    t = cfg.train
    dev = encode(data.dev_words, vocab, [e.label for e in data.dev])
    dev_batches = list(iterate(dev, make_batches(dev.lengths(), t.eval_batch_size, None)))
    lengths = train_set.lengths()

    def epoch_batches(epoch: int) -> list[np.ndarray]:
        rng = np.random.default_rng([t.seed, epoch])
        return make_batches(lengths, t.batch_size, rng, bucket=not t.no_bucketing)

    optimizer, scheduler = build_optimizer(t, model, total_steps(t, len(epoch_batches(0))))
    checkpoint_extra = {"model_config": model.config.to_dict(), "vocab": vocab.tokens,
                        "config": cfg.to_dict()}
    results_extra = {"task": data.task.name, "num_params": count_parameters(model),
                     "vocab_size": len(vocab), "train_examples": len(train_set),
                     "dev_examples": len(dev), **(results_extra or {})}

    def collate_batch(idx: np.ndarray) -> dict:
        batch = collate(train_set, idx, extra)
        return {**batch, **batch_extra(idx)} if batch_extra else batch

    def save_best(results: dict) -> None:
        # The best weights alone, as PaddleNLP saves models (checkpoints also hold the
        # optimizer), then whatever the caller adds.
        atomic_save(load_checkpoint(os.path.join(t.output_dir, BEST))["model"],
                    os.path.join(t.output_dir, MODEL_STATE))
        if finish is not None:
            finish(results)

    return fit(model, optimizer, t, epoch_batches=epoch_batches, collate=collate_batch,
               dev_batches=dev_batches, forward=student_forward, loss_fn=loss_fn,
               metric_names=data.task.metrics, resume=resume, scheduler=scheduler,
               checkpoint_extra=checkpoint_extra, results_extra=results_extra,
               finish=save_best)


def save_vocab(cfg: Config, vocab: Vocab, resume: bool) -> None:
    """The vocabulary is saved with the run; a resumed run must rebuild the same one."""
    path = os.path.join(cfg.train.output_dir, "vocab.txt")
    if resume and os.path.exists(path) and Vocab.load(path).tokens != vocab.tokens:
        raise RunError(f"--resume: the vocabulary built now differs from {path}; the training "
                       f"data changed since the run started")
    if is_main():
        vocab.save(path)


def main(argv: Sequence[str] | None = None) -> dict:
    cfg = parse_config("small", ["data", "student", "train"], argv, __doc__)
    resume = prepare_run(cfg.to_dict(), cfg.train, cfg.script)
    data = load_data(cfg)
    vocab = make_vocab(cfg, data)
    # Optimizer state is keyed by parameter names, which count up per process: a fresh
    # name scope keeps them identical across the runs of a process and a resumed run.
    with paddle.utils.unique_name.guard():
        model = build_student(cfg, data.task, vocab, resume)
        start_run(cfg.to_dict(), cfg.train)
        save_vocab(cfg, vocab, resume)
        train_set = encode(data.train_words, vocab, [e.label for e in data.train])
        return train_student(cfg, data, vocab, model, train_set, cross_entropy, resume)


if __name__ == "__main__":
    run_cli(main, (DataError, RunError))
