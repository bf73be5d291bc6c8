"""Trains the BiLSTM student alone with cross-entropy on the gold labels: the baseline every
distillation result is compared against.

    python small.py --task_name sst-2 --data_dir path/to/SST-2 \
        --embedding_path path/to/glove.6B.50d.txt
"""
from __future__ import annotations

import cpu  # noqa: F401  (first: sets MKL's CPU type before Paddle loads)

from typing import Sequence

import paddle

from args import parse_config
from data import encode, load_data, make_vocab
from losses import cross_entropy
from student import prepare_student, train_student
from trainer import prepare_run, start_run
from utils import run_cli


def main(argv: Sequence[str] | None = None) -> dict:
    cfg = parse_config("small", argv, __doc__)
    resume = prepare_run(cfg.to_dict(), cfg.train, cfg.script)
    data = load_data(cfg.data)
    vocab = make_vocab(cfg.data, data)
    # Optimizer state is keyed by parameter names, which count up per process: a fresh
    # name scope keeps them identical across the runs of a process and a resumed run.
    with paddle.utils.unique_name.guard():
        model = prepare_student(cfg, data, vocab, resume)
        start_run(cfg.to_dict(), cfg.train)
        train_set = encode(data.train_words, vocab, [e.label for e in data.train])
        return train_student(cfg, data, vocab, model, train_set, cross_entropy, resume)


if __name__ == "__main__":
    run_cli(main)
