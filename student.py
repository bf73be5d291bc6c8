"""The student's training: built (with pretrained word vectors) or rebuilt from the
checkpoint of the run it resumes, then trained by the shared loop on the training split
(small.py) or the labelled transfer set (bert_distill.py).

The networks (BiLSTM, CNN) are in model.py; saving, exporting and loading a trained student
are in model_io.py.
"""
from __future__ import annotations

import logging
import os
from typing import Callable

import numpy as np
import paddle

from args import Config
from data import Encoded, TaskData, Vocab, collate, encode, iterate, make_batches
from losses import LossFn
from model import Student, StudentConfig, make_student, student_inputs
from model_io import load_checkpoint, student_from_checkpoint
from runs import BEST, LAST, MODEL_STATE, VOCAB, RunError
from tasks import Task
from trainer import build_optimizer, fit, total_steps
from utils import atomic_save, count_parameters, is_main, set_seed
from vectors import load_embedding_matrix

logger = logging.getLogger(__name__)


def student_forward(model: Student, batch: dict) -> paddle.Tensor:
    return model(*[batch.get(name) for name in student_inputs(True)])


# ----------------------------------------------------------------------- building


def build_student(cfg: Config, task: Task, vocab: Vocab) -> Student:
    """A new student with pretrained word vectors when given."""
    s, d = cfg.student, cfg.data
    has_vectors = bool(d.embedding_path or d.embedding_name)
    matrix = load_embedding_matrix(vocab, np.random.default_rng(cfg.train.seed), d.embedding_path,
                                   d.embedding_name, s.emb_dim if has_vectors else s.emb_dim or 300)
    config = StudentConfig(vocab_size=len(vocab), num_labels=task.num_labels,
                           emb_dim=matrix.shape[1], hidden_size=s.hidden_size, fc_size=s.fc_size,
                           num_layers=s.num_layers, dropout=s.dropout, pair=task.is_pair,
                           kind=s.student, filter_sizes=s.filter_sizes,
                           num_filters=s.num_filters)
    model = make_student(config, matrix, s.freeze_embedding)
    n_emb = config.vocab_size * config.emb_dim
    logger.info("student (%s): %s parameters (embedding %s, other %s)", config.kind,
                f"{count_parameters(model):,}",
                f"{n_emb:,}", f"{count_parameters(model) - n_emb:,}")
    return model


def save_vocab(out: str, vocab: Vocab, resume: bool) -> None:
    """The vocabulary is saved with the run; a resumed run must rebuild the same one."""
    path = os.path.join(out, VOCAB)
    if resume and os.path.exists(path) and Vocab.load(path).tokens != vocab.tokens:
        raise RunError(f"--resume: the vocabulary built now differs from {path}; the training "
                       f"data changed since the run started")
    if is_main():
        vocab.save(path)


def prepare_student(cfg: Config, data: TaskData, vocab: Vocab, resume: bool) -> Student:
    """The student a run trains: new, or rebuilt from last.ckpt when it resumes; its
    vocabulary saved beside it. Seeded here, so its initial weights depend on --seed alone,
    not on what ran before (loading a teacher draws random numbers)."""
    out = cfg.train.output_dir
    set_seed(cfg.train.seed)
    model = student_from_checkpoint(os.path.join(out, LAST))[0] if resume else \
        build_student(cfg, data.task, vocab)
    save_vocab(out, vocab, resume)
    return model


# ----------------------------------------------------------------------- training


def train_student(cfg: Config, data: TaskData, vocab: Vocab, model: Student,
                  train_set: Encoded, loss_fn: LossFn, resume: bool,
                  extra: dict[str, np.ndarray] | None = None,
                  results_extra: dict | None = None,
                  finish: Callable[[dict], None] | None = None) -> dict:
    """The shared loop over `train_set` (the training split, or a transfer set whose
    per-example arrays such as teacher logits come in `extra`: anything indexed by a
    batch's example indices, logits.OnlineLogits included)."""
    t = cfg.train
    dev = encode(data.dev_words, vocab, [e.label for e in data.dev])
    dev_batches = list(iterate(dev, make_batches(dev.lengths(), t.eval_batch_size, None)))
    lengths = train_set.lengths()

    def epoch_batches(epoch: int) -> list[np.ndarray]:
        rng = np.random.default_rng([t.seed, epoch])
        return make_batches(lengths, t.batch_size, rng, bucket=not t.no_bucketing)

    optimizer, scheduler = build_optimizer(t, model, total_steps(t, len(epoch_batches(0))))
    task = data.task  # what a loaded model needs without the training files
    checkpoint_extra = {"model_config": model.config.to_dict(), "vocab": vocab.tokens,
                        "config": cfg.to_dict(), "task": {"name": task.name,
                                                          "language": task.language,
                                                          "labels": list(task.names)}}
    results_extra = {"task": task.name, "labels": list(task.names),
                     "num_params": count_parameters(model),
                     "vocab_size": len(vocab), "train_examples": len(train_set),
                     "dev_examples": len(dev), **(results_extra or {})}

    def save_best(results: dict) -> None:
        # The best weights alone, as PaddleNLP saves models (checkpoints also hold the
        # optimizer), then whatever the caller adds.
        atomic_save(load_checkpoint(os.path.join(t.output_dir, BEST))["model"],
                    os.path.join(t.output_dir, MODEL_STATE))
        if finish is not None:
            finish(results)

    return fit(model, optimizer, t, epoch_batches=epoch_batches,
               collate=lambda idx: collate(train_set, idx, extra),
               dev_batches=dev_batches, forward=student_forward, loss_fn=loss_fn,
               metric_names=data.task.metrics, resume=resume, scheduler=scheduler,
               checkpoint_extra=checkpoint_extra, results_extra=results_extra,
               finish=save_best)
