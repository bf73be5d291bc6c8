"""All command-line flags, declared once as typed dataclass fields, and their validation.

Each entry point picks the groups it needs; `parse_config` turns argv into one validated
`Config`, which the run saves to output_dir/config.json. A bad or contradictory value stops
the run with one message that names the flag.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import typing
from dataclasses import dataclass, field
from typing import Any, Sequence

from data import TASKS


class ArgError(ValueError):
    def __init__(self, flag: str, message: str):
        super().__init__(f"--{flag}: {message}")


def flag(default: Any, help: str, runtime: bool = False, **kw) -> Any:
    """A dataclass field that is also a command-line flag. `runtime` flags may change when a
    run is resumed (they do not change what is trained)."""
    return field(default=default, metadata={"help": help, "runtime": runtime, **kw})


def _check(cond: bool, name: str, message: str) -> None:
    if not cond:
        raise ArgError(name, message)


@dataclass
class DataArgs:
    task_name: str = flag("sst-2", "task", choices=sorted(TASKS))
    data_dir: str | None = flag(None, "folder with the task's official train.tsv / dev.tsv "
                                "(default: download with paddlenlp.datasets)")
    max_seq_length: int = flag(128, "words kept per text (longer texts are truncated)")
    max_train_samples: int | None = flag(None, "use only the first N training examples")
    max_eval_samples: int | None = flag(None, "use only the first N dev examples")
    vocab_path: str | None = flag(None, "word-dict file, one word per line: the vocabulary "
                                  "keeps only training words listed there")
    min_freq: int = flag(1, "minimum count of a training word to enter the vocabulary")
    max_vocab_size: int | None = flag(None, "at most N vocabulary entries (most frequent first)")
    embedding_path: str | None = flag(None, "word vectors: word2vec text (.txt[.gz]) or binary "
                                      "(.bin[.gz], e.g. GoogleNews-vectors-negative300.bin.gz)")
    embedding_name: str | None = flag(None, "paddlenlp TokenEmbedding name (downloaded), e.g. "
                                      "w2v.google_news.target.word-word.dim300.en")

    def __post_init__(self):
        _check(self.data_dir is None or os.path.isdir(self.data_dir), "data_dir",
               f"{self.data_dir} is not a directory")
        _check(self.max_seq_length >= 1, "max_seq_length", "must be >= 1")
        for name in ("max_train_samples", "max_eval_samples"):
            v = getattr(self, name)
            _check(v is None or v >= 1, name, "must be >= 1")
        _check(self.min_freq >= 1, "min_freq", "must be >= 1")
        _check(self.max_vocab_size is None or self.max_vocab_size > 3, "max_vocab_size",
               "must be > 3 (the vocabulary starts with [PAD], [UNK], [MASK])")
        _check(self.vocab_path is None or os.path.isfile(self.vocab_path), "vocab_path",
               f"{self.vocab_path}: file not found")
        _check(not (self.embedding_path and self.embedding_name), "embedding_path",
               "give --embedding_path or --embedding_name, not both")
        _check(self.embedding_path is None or os.path.isfile(self.embedding_path),
               "embedding_path", f"{self.embedding_path}: file not found")


@dataclass
class StudentArgs:
    emb_dim: int | None = flag(None, "embedding size (default: the word vectors' size, else 300)")
    hidden_size: int = flag(150, "BiLSTM hidden units per direction (Tang et al.: 150)")
    fc_size: int = flag(200, "ReLU layer size (Tang et al.: 200)")
    num_layers: int = flag(1, "BiLSTM layers")
    dropout: float = flag(0.1, "dropout before the output layer")
    freeze_embedding: bool = flag(False, "keep the word vectors fixed")

    def __post_init__(self):
        for name in ("emb_dim", "hidden_size", "fc_size", "num_layers"):
            v = getattr(self, name)
            _check(v is None or v >= 1, name, "must be >= 1")
        _check(0.0 <= self.dropout < 1.0, "dropout", "must be in [0, 1)")


OPTIMIZER_LR = {"adadelta": 1.0, "adam": 1e-3}  # Tang et al. use AdaDelta, lr 1.0, rho 0.95


@dataclass
class TrainArgs:
    output_dir: str | None = flag(None, "where checkpoints, metrics and results go "
                                  "(default: output/<script>/<task_name>)")
    optimizer: str = flag("adadelta", "optimizer", choices=sorted(OPTIMIZER_LR))
    lr: float | None = flag(None, "learning rate (default: 1.0 for adadelta, 1e-3 for adam)")
    rho: float = flag(0.95, "AdaDelta decay rate")
    max_grad_norm: float = flag(0.0, "clip gradients to this global norm (0: no clipping)")
    batch_size: int = flag(64, "training batch size")
    eval_batch_size: int = flag(256, "evaluation batch size", runtime=True)
    max_epoch: int = flag(10, "training epochs")
    max_steps: int | None = flag(None, "stop after N steps (overrides --max_epoch)")
    eval_steps: int | None = flag(None, "evaluate on dev every N steps (default: every epoch)")
    save_steps: int | None = flag(None, "also save the last checkpoint every N steps",
                                  runtime=True)
    logging_steps: int = flag(100, "log training loss and speed every N steps", runtime=True)
    no_bucketing: bool = flag(False, "do not group examples of similar length into batches")
    seed: int = flag(2021, "random seed (initialisation, data order, dropout)")
    device: str | None = flag(None, "cpu or gpu (default: gpu when Paddle sees one)",
                              runtime=True, choices=["cpu", "gpu"])
    num_threads: int | None = flag(None, "CPU math threads (default: all usable cores)",
                                   runtime=True)
    resume: bool = flag(False, "continue the interrupted run in --output_dir", runtime=True)
    overwrite_output_dir: bool = flag(False, "delete an earlier run in --output_dir first",
                                      runtime=True)

    def __post_init__(self):
        if self.lr is None:
            self.lr = OPTIMIZER_LR[self.optimizer]
        _check(self.lr > 0, "lr", "must be > 0")
        _check(0.0 < self.rho < 1.0, "rho", "must be in (0, 1)")
        _check(self.max_grad_norm >= 0, "max_grad_norm", "must be >= 0")
        for name in ("batch_size", "eval_batch_size", "max_epoch", "logging_steps"):
            _check(getattr(self, name) >= 1, name, "must be >= 1")
        for name in ("max_steps", "eval_steps", "save_steps", "num_threads"):
            v = getattr(self, name)
            _check(v is None or v >= 1, name, "must be >= 1")
        _check(not (self.resume and self.overwrite_output_dir), "resume",
               "contradicts --overwrite_output_dir: resume the run or start over, not both")
        if self.device is None:
            from utils import default_device

            self.device = default_device()
        elif self.device == "gpu":
            import paddle

            _check(paddle.device.is_compiled_with_cuda(), "device",
                   "gpu requested but this Paddle is a CPU build (install paddlepaddle-gpu)")


@dataclass
class Config:
    """One run's settings, grouped; saved as output_dir/config.json."""

    script: str
    data: DataArgs
    train: TrainArgs
    student: StudentArgs | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


GROUPS = {"data": DataArgs, "student": StudentArgs, "train": TrainArgs}


def _flag_type(tp) -> type:
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    return args[0] if args else tp


def build_parser(groups: Sequence[str], description: str = "") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    for g in groups:
        cls = GROUPS[g]
        hints = typing.get_type_hints(cls)
        group = parser.add_argument_group(g)
        for f in dataclasses.fields(cls):
            tp = _flag_type(hints[f.name])
            if tp is bool:
                group.add_argument(f"--{f.name}", action="store_true", help=f.metadata["help"])
            else:
                group.add_argument(f"--{f.name}", type=tp, default=f.default,
                                   choices=f.metadata.get("choices"),
                                   help=f"{f.metadata['help']} (default: {f.default})")
    return parser


def parse_config(script: str, groups: Sequence[str], argv: Sequence[str] | None = None,
                 description: str = "") -> Config:
    """argv -> validated Config; exits with a usage message naming the flag on bad input."""
    parser = build_parser(groups, description)
    ns = vars(parser.parse_args(argv))
    try:
        parts = {g: GROUPS[g](**{f.name: ns[f.name] for f in dataclasses.fields(GROUPS[g])})
                 for g in groups}
        cfg = Config(script=script, **parts)
    except ArgError as e:
        parser.error(str(e))
    if cfg.train.output_dir is None:
        cfg.train.output_dir = os.path.join("output", script, cfg.data.task_name)
    return cfg


def runtime_fields() -> set[str]:
    """Flags that may differ between an interrupted run and its resumption."""
    return {f.name for cls in GROUPS.values() for f in dataclasses.fields(cls)
            if f.metadata.get("runtime")}
