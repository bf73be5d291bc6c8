"""All command-line flags, declared once as typed dataclass fields, and their validation.

Each entry point picks the groups it needs; `parse_config` turns argv into one validated
`Config`, which the run saves to output_dir/config.json. A bad or contradictory value stops
the run with one message that names the flag.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Sequence

from tasks import FORMATS, TASKS, own_task_name
from utils import UserError


class ArgError(UserError):
    def __init__(self, flag: str, message: str):
        super().__init__(f"--{flag}: {message}")


def flag(default: Any, help: str, runtime: bool = False, path: bool = False, **kw) -> Any:
    """A dataclass field that is also a command-line flag. `runtime` flags may change when a
    run is resumed (they do not change what is trained); a `path` names a file or folder,
    the same one however it is spelled."""
    return field(default=default, metadata={"help": help, "runtime": runtime, "path": path,
                                            **kw})


def _check(cond: bool, name: str, message: str) -> None:
    if not cond:
        raise ArgError(name, message)


@dataclass
class DataArgs:
    task_name: str | None = flag(None, "a built-in task (default: sst-2, unless --train_file "
                                 "gives your own)", choices=sorted(TASKS))
    train_file: str | None = flag(None, "your own task: its training file, CSV, TSV or JSONL "
                                  "(by extension, or --file_format); the label set is its "
                                  "labels unless --labels gives it", path=True)
    dev_file: str | None = flag(None, "your own task's dev file, read like --train_file "
                                "(--validation_file names it too)", path=True,
                                aliases=["--validation_file"])
    test_file: str | None = flag(None, "your own task's test file (labels not needed): what "
                                 "predict.py --format submission predicts", path=True)
    file_format: str | None = flag(None, "format of your files (default: from the extension: "
                                   ".csv, .tsv, .jsonl)", choices=list(FORMATS))
    text_column: list[str] = flag(("text",), "your files' text column, two for sentence pairs: "
                                  "a header name or JSON key, or a number counted from 0 for "
                                  "a file without a header")
    label_column: str = flag("label", "your files' label column (a name, or a number from 0)")
    id_column: str | None = flag(None, "your files' id column, kept in predictions")
    labels: list[str] | None = flag(None, "the label set in class-id order, as your files write "
                                    "the labels (default: the training file's labels, numbers "
                                    "by value, others sorted)")
    label_names: list[str] | None = flag(None, "the labels' names in the same order, printed by "
                                         "predict.py; or one file with a name per line (e.g. "
                                         "AG News' classes.txt)")
    language: str | None = flag(None, "your task's language: en (word regex) or zh (jieba "
                                "words) (default: en)", choices=["en", "zh"])
    data_dir: str | None = flag(None, "folder with the task's official train.tsv / dev.tsv "
                                "(default: download with paddlenlp.datasets)", path=True)
    max_seq_length: int = flag(128, "longer texts are truncated to this many words (the student) or "
                               "word pieces in all (the teacher)")
    max_train_samples: int | None = flag(None, "use only the first N training examples")
    max_eval_samples: int | None = flag(None, "use only the first N dev examples")
    vocab_path: str | None = flag(None, "word-dict file, one word per line: the vocabulary "
                                  "keeps only training words listed there", path=True)
    min_freq: int = flag(1, "minimum count of a training word to enter the vocabulary")
    max_vocab_size: int | None = flag(None, "at most N vocabulary entries (most frequent first)")
    embedding_path: str | None = flag(None, "word vectors: word2vec text (.txt[.gz]) or binary "
                                      "(.bin[.gz], e.g. GoogleNews-vectors-negative300.bin.gz), "
                                      "or a paddlenlp TokenEmbedding .npz", path=True)
    embedding_name: str | None = flag(None, "paddlenlp TokenEmbedding name (downloaded), e.g. "
                                      "w2v.google_news.target.word-word.dim300.en")

    def __post_init__(self):
        own = ("dev_file", "test_file", "file_format", "id_column", "labels", "language")
        if self.train_file is None:
            for name in own:
                _check(getattr(self, name) is None, name, "describes your own files: give "
                       "--train_file too")
            self.task_name = self.task_name or "sst-2"
        else:
            _check(self.task_name is None, "task_name", "give a built-in --task_name or your "
                   "own --train_file, not both")
            _check(self.data_dir is None, "data_dir", "built-in tasks only; your own files "
                   "are named by --train_file and --dev_file")
            _check(self.dev_file is not None, "dev_file", "your own task needs a dev file too")
            for name in ("train_file", "dev_file", "test_file"):
                path = getattr(self, name)
                _check(path is None or os.path.isfile(path), name, f"{path}: file not found")
            _check(len(self.text_column) in (1, 2), "text_column",
                   "one text column, or two for sentence pairs")
            _check(not self.labels or len(set(self.labels)) == len(self.labels) >= 2,
                   "labels", "at least two labels, none repeated")
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
    dropout: float = flag(0.5, "dropout before the output layer")
    freeze_embedding: bool = flag(False, "keep the word vectors fixed")
    student: str = flag("bilstm", "the student network: bilstm (Tang et al.) or cnn (Kim 2014: "
                        "convolutions of several widths, max over time)",
                        choices=["bilstm", "cnn"])
    filter_sizes: list[int] = flag((3, 4, 5), "cnn: convolution widths in words")
    num_filters: int = flag(100, "cnn: feature maps per width")

    def __post_init__(self):
        self.filter_sizes = list(self.filter_sizes)
        for name in ("emb_dim", "hidden_size", "fc_size", "num_layers", "num_filters"):
            v = getattr(self, name)
            _check(v is None or v >= 1, name, "must be >= 1")
        _check(all(w >= 1 for w in self.filter_sizes), "filter_sizes", "widths must be >= 1")
        _check(0.0 <= self.dropout < 1.0, "dropout", "must be in [0, 1)")


# Tang et al. train the student with AdaDelta, lr 1.0, rho 0.95; BERT fine-tuning uses AdamW.
OPTIMIZER_LR = {"adadelta": 1.0, "adam": 1e-3, "adamw": 5e-5}


@dataclass
class TrainArgs:
    output_dir: str | None = flag(None, "where checkpoints, metrics and results go "
                                  "(default: output/<script>/<task_name>)")
    optimizer: str = flag("adam", "optimizer: adam, adadelta (Tang et al.: lr 1.0, rho 0.95) "
                          "or adamw (the teacher)", choices=sorted(OPTIMIZER_LR))
    lr: float | None = flag(None, "peak learning rate (default: 1.0 for adadelta, 1e-3 for adam, "
                            "5e-5 for adamw)")
    lr_schedule: str = flag("constant", "constant, or linear warm-up then linear decay to 0",
                            choices=["constant", "linear"])
    warmup_proportion: float = flag(0.1, "share of the steps spent warming up (linear schedule)")
    weight_decay: float = flag(0.0, "decoupled weight decay (adamw; not on biases and norms)")
    rho: float = flag(0.95, "AdaDelta decay rate")
    max_grad_norm: float = flag(0.0, "clip gradients to this global norm (0: no clipping)")
    batch_size: int = flag(64, "training batch size")
    eval_batch_size: int = flag(256, "evaluation batch size", runtime=True)
    max_epoch: int = flag(10, "training epochs")
    max_steps: int | None = flag(None, "stop after N steps (overrides --max_epoch)")
    eval_steps: int | None = flag(None, "evaluate on dev every N steps (default: every epoch)")
    early_stopping_patience: int | None = flag(
        None, "stop after N evaluations in a row without a better dev score (default: train "
        "all epochs)")
    save_steps: int | None = flag(None, "also save the last checkpoint every N steps",
                                  runtime=True)
    logging_steps: int = flag(100, "log training loss and speed every N steps", runtime=True)
    no_bucketing: bool = flag(False, "do not group examples of similar length into batches")
    seed: int = flag(2021, "random seed (initialisation, data order, dropout)")
    amp: str = flag("fp32", "mixed-precision training: bf16 or fp16 on a GPU (paddle.amp "
                    "auto-cast; fp16 with loss scaling); bf16 on CPU for teacher.py (its linear "
                    "layers in bf16 in a compiled graph)", choices=["fp32", "bf16", "fp16"])
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
        _check(0.0 <= self.warmup_proportion < 1.0, "warmup_proportion", "must be in [0, 1)")
        _check(self.weight_decay >= 0, "weight_decay", "must be >= 0")
        _check(self.weight_decay == 0 or self.optimizer == "adamw", "weight_decay",
               f"only --optimizer adamw decays weights (got --optimizer {self.optimizer})")
        for name in ("batch_size", "eval_batch_size", "max_epoch", "logging_steps"):
            _check(getattr(self, name) >= 1, name, "must be >= 1")
        for name in ("max_steps", "eval_steps", "save_steps", "num_threads",
                     "early_stopping_patience"):
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
        _check(self.amp != "fp16" or self.device == "gpu", "amp",
               "fp16 needs a GPU: Paddle has no fp16 training kernels on CPU (bf16 has a CPU "
               "path for teacher.py)")


# teacher.py saves to, and bert_distill.py looks in, <TEACHER_ROOT>/<task_name>.
TEACHER_ROOT = "pretrained_models"
# BERT fine-tuning as usual: AdamW with linear warm-up and decay, batch 32, 3 epochs.
TEACHER_DEFAULTS = {"optimizer": "adamw", "lr_schedule": "linear", "weight_decay": 0.01,
                    "batch_size": 32, "eval_batch_size": 128, "max_epoch": 3}


@dataclass
class TeacherArgs:
    model_name_or_path: str | None = flag(
        None, "backbone to fine-tune: a paddlenlp name (downloaded, e.g. bert-base-uncased) or a "
        "local save_pretrained / convert.py directory (default: bert-base-uncased for English, "
        "bert-base-chinese for Chinese)")
    to_static: bool = flag(False, "compile the model with paddle.jit.to_static for fine-tuning "
                           "(identical losses; no faster over an SST-2 epoch on our CPU)")

    def __post_init__(self):
        p = self.model_name_or_path
        _check(p is None or os.path.isdir(p) or os.path.sep not in p, "model_name_or_path",
               f"{p} is not a directory (give a local directory or a paddlenlp model name)")


@dataclass
class AugmentArgs:
    """The transfer set's knobs (Tang et al. 2019, Sec. 3.3), used as they are by augment.py.
    Their names and order are part of the transfer set's cache key."""

    n_iter: int | None = flag(None, "augmented samples per training example (default: 20, "
                              "10 for pair tasks, as Tang et al.)")
    p_mask: float = flag(0.1, "probability of replacing a word with [MASK] (Tang et al.: 0.1)")
    p_pos: float = flag(0.1, "probability of replacing a word with one of the same part of "
                        "speech (Tang et al.: 0.1; English needs spaCy, see requirements.txt)")
    pos_sampling: str = flag("unigram", "how the replacing word is drawn: unigram (by its "
                             "training count with that tag, as Tang et al.) or uniform over "
                             "the distinct words with the tag", choices=["unigram", "uniform"])
    p_ng: float = flag(0.25, "probability of keeping only a random n-gram (Tang et al.: 0.25)")
    max_ng: int = flag(5, "longest n-gram kept (n ~ U{1..max_ng}; Tang et al.: 5)")
    p_sent: float = flag(0.0, "probability of keeping one random sentence of a "
                         "multi-sentence text (useful for long reviews)")
    pair_augment: str = flag("both", "pair tasks: perturb both texts of each copy, or one "
                             "(drawn per copy, the other kept whole)", choices=["both", "one"])
    augment_seed: int | None = flag(None, "seed of the augmentation (default: --seed); fix it "
                                    "to train several seeds on one transfer set and its "
                                    "cached teacher logits")

    def __post_init__(self):
        _check(self.n_iter is None or self.n_iter >= 0, "n_iter", "must be >= 0")
        _check(self.max_ng >= 1, "max_ng", "must be >= 1")
        for name in ("p_mask", "p_pos", "p_ng", "p_sent"):
            _check(0.0 <= getattr(self, name) <= 1.0, name, "must be in [0, 1]")
        _check(self.p_mask + self.p_pos <= 1.0, "p_pos", "p_mask + p_pos must be <= 1")


@dataclass
class DistillArgs:
    teacher_path: list[str] | None = flag(
        None, "fine-tuned teacher: a save_pretrained directory, or PaddleNLP's "
        "model_state.pdparams with --model_name (default: pretrained_models/<task_name>, "
        "where teacher.py saves), or a small.py / bert_distill.py run (a student as "
        "teacher); several: their logits are averaged (an ensemble)")
    teacher_logits: str | None = flag(
        None, "distil from logits computed elsewhere for the texts --export_transfer_set "
        "wrote: JSONL ({\"id\": 0, \"logits\": [..]}) or TSV (id<TAB>logit<TAB>...), one "
        "row per transfer example")
    export_transfer_set: str | None = flag(
        None, "write the transfer set's texts to this TSV (id<TAB>text, pairs "
        "id<TAB>text_a<TAB>text_b; [MASK] marks a masked word) and stop", runtime=True)
    transfer_file: str | None = flag(
        None, "unlabeled in-domain texts (one per line; pairs: two tab-separated texts) that "
        "join the transfer set and are augmented like the training examples")
    model_name: str | None = flag(None, "backbone a bare --teacher_path .pdparams was "
                                  "fine-tuned from, e.g. bert-base-uncased")
    teacher_max_seq_length: int = flag(128, "word pieces the teacher sees per example")
    teacher_batch_size: int = flag(128, "labelling batch size", runtime=True)
    label_chunk_size: int = flag(16384, "transfer examples per cached logits file: the unit "
                                 "an interrupted labelling resumes from and data-parallel "
                                 "ranks share", runtime=True)
    label_precision: str = flag("fp32", "teacher labelling precision: fp32; bf16 on CPU "
                                "(faster on short inputs on CPUs with avx512_bf16 or AMX; "
                                "logits differ slightly: docs/benchmarks.md); fp16 on GPU",
                                choices=["fp32", "bf16", "fp16"])
    kd_loss: str = flag("mse", "distillation loss on the teacher's logits: mse (Tang et al.) "
                        "or soft_ce (Hinton et al., with --temperature)",
                        choices=["mse", "soft_ce"])
    alpha: float = flag(0.0, "weight of cross-entropy on gold labels of the original "
                        "examples: alpha * CE + (1 - alpha) * distillation loss")
    temperature: float = flag(1.0, "softmax temperature of --kd_loss soft_ce")
    student_mask: str = flag("unk", "what the student reads where augmentation masked a word: "
                             "unk, the unknown-word vector (Tang et al.), or mask, a [MASK] "
                             "vector of its own", choices=["unk", "mask"])
    teacher_mask: str = flag("mask", "what a BERT teacher reads where augmentation masked a "
                             "word: mask, its [MASK] token (Tang et al.), or unk, its [UNK] "
                             "token, for a teacher that takes [MASK] itself as evidence of a "
                             "class (student runs as teachers always read [UNK])",
                             choices=["mask", "unk"])
    balance_labels: bool = flag(False, "weight transfer examples so the teacher's labels are as "
                                "frequent as on the original training examples (see "
                                "losses.balance_weights; for pair tasks, whose augmented "
                                "copies drift to one label)")
    cache_dir: str | None = flag(None, "where the transfer set and teacher logits are cached "
                                 "(default: <output_dir>/cache)", runtime=True)
    online_teacher: bool = flag(False, "run the teacher on every batch instead of caching "
                                "its logits (PaddleNLP's way; slow, for comparison only)")
    baseline_dir: str | None = flag(None, "a small.py run to report the gain over",
                                    runtime=True)

    def __post_init__(self):
        for p in self.teacher_path or []:
            _check(os.path.exists(p) or os.path.sep not in p, "teacher_path",
                   f"{p}: no such directory or file")
        for name in ("teacher_logits", "transfer_file"):
            p = getattr(self, name)
            _check(p is None or os.path.isfile(p), name, f"{p}: file not found")
        _check(not (self.teacher_logits and self.teacher_path), "teacher_logits",
               "give --teacher_logits or --teacher_path, not both")
        _check(not (self.teacher_logits and self.export_transfer_set), "teacher_logits",
               "--export_transfer_set writes the texts and stops; distil with "
               "--teacher_logits in a second run")
        _check(not (self.online_teacher and (self.teacher_logits or
                                             len(self.teacher_path or []) > 1)),
               "online_teacher", "runs one teacher of ours; drop --teacher_logits or the "
               "extra --teacher_path")
        for name in ("teacher_max_seq_length", "teacher_batch_size", "label_chunk_size"):
            _check(getattr(self, name) >= 1, name, "must be >= 1")
        _check(0.0 <= self.alpha <= 1.0, "alpha", "must be in [0, 1]")
        _check(self.temperature > 0, "temperature", "must be > 0")
        _check(self.kd_loss == "soft_ce" or self.temperature == 1.0, "temperature",
               "only --kd_loss soft_ce uses a temperature")
        _check(self.teacher_mask == "mask" or not self.teacher_logits, "teacher_mask",
               "--teacher_logits come from a teacher outside this project, which read the "
               "transfer set's [MASK] itself; drop --teacher_mask")
        _check(not (self.balance_labels and self.online_teacher), "balance_labels",
               "needs the cached teacher logits; drop --online_teacher")
        _check(self.baseline_dir is None or os.path.isdir(self.baseline_dir), "baseline_dir",
               f"{self.baseline_dir} is not a directory")


@dataclass
class Config:
    """One run's settings, grouped; saved as output_dir/config.json (a teacher's
    output_dir/run_config.json, beside its model's config.json)."""

    script: str
    data: DataArgs
    train: TrainArgs
    student: StudentArgs | None = None
    teacher: TeacherArgs | None = None
    distill: DistillArgs | None = None
    augment: AugmentArgs | None = None

    def __post_init__(self):
        _check(self.train.amp != "bf16" or self.train.device == "gpu" or self.teacher is not None,
               "amp", "bf16 on CPU trains the teacher only (teacher.py): Paddle's auto-cast does "
               "nothing on CPU and its LSTM and convolution have no bf16 kernels there")
        if self.distill is not None:
            precision, device = self.distill.label_precision, self.train.device
            _check(precision == "fp32" or (precision == "fp16") == (device == "gpu"),
                   "label_precision", f"{precision} labels on "
                   f"{'a GPU' if precision == 'fp16' else 'the CPU'}, but --device is {device}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def with_defaults(group: str, values: dict) -> dict:
    """A saved config group with the settings it predates at their defaults (and a single
    value where the flag now takes several as a one-item list), so runs made before a flag
    existed compare equal to runs that leave it at its default."""
    fields = {f.name: f for f in dataclasses.fields(GROUPS[group])}
    out = {n: f.default for n, f in fields.items() if f.default is not dataclasses.MISSING}
    for name, v in values.items():
        f = fields.get(name)
        if f and isinstance(v, str) and str(f.type).startswith("list"):
            v = [v]
        out[name] = v
    for name in fields:  # defaults that are tuples, as JSON reads them back: lists
        if isinstance(out.get(name), tuple):
            out[name] = list(out[name])
    return out


GROUPS = {"data": DataArgs, "student": StudentArgs, "teacher": TeacherArgs,
          "distill": DistillArgs, "augment": AugmentArgs, "train": TrainArgs}


def _flag_type(tp) -> type:
    """The type of `X | None` is X; others are themselves."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return next(a for a in typing.get_args(tp) if a is not type(None))
    return tp


def _help(text: str, default: Any) -> str:
    return text if "(default" in text or default is None else f"{text} (default: {default})"


def build_parser(groups: Sequence[str], description: str = "",
                 defaults: dict[str, Any] | None = None,
                 parser_class: type[argparse.ArgumentParser] = argparse.ArgumentParser,
                 prog: str | None = None) -> argparse.ArgumentParser:
    """`defaults` overrides the dataclass defaults for one entry point (the teacher trains
    with AdamW, batch 32, 3 epochs)."""
    defaults = defaults or {}
    parser = parser_class(description=description, prog=prog,
                          formatter_class=argparse.RawDescriptionHelpFormatter)
    for g in groups:
        cls = GROUPS[g]
        hints = typing.get_type_hints(cls)
        group = parser.add_argument_group(g)
        for f in dataclasses.fields(cls):
            tp = _flag_type(hints[f.name])
            default = defaults.get(f.name, f.default)
            names = [f"--{f.name}", *f.metadata.get("aliases", [])]
            if tp is bool:
                group.add_argument(*names, action="store_true", help=f.metadata["help"])
            elif typing.get_origin(tp) is list:
                group.add_argument(*names, type=typing.get_args(tp)[0], nargs="+",
                                   default=default, help=_help(f.metadata["help"], default))
            else:
                group.add_argument(*names, type=tp, default=default,
                                   choices=f.metadata.get("choices"),
                                   help=_help(f.metadata["help"], default))
    return parser


def task_id(d: DataArgs) -> str:
    """A built-in task's name, or your own task's: its training file's folder."""
    return d.task_name or own_task_name(d.train_file)


# Each training script's flag groups, and the defaults it changes.
SCRIPT_GROUPS = {"small": ("data", "student", "train"),
                 "teacher": ("data", "teacher", "train"),
                 "bert_distill": ("data", "student", "augment", "distill", "train")}
SCRIPT_DEFAULTS = {"teacher": TEACHER_DEFAULTS}


def parse_config(script: str, argv: Sequence[str] | None = None, description: str = "",
                 output_root: str | None = None) -> Config:
    """argv -> validated Config of `script` (a key of SCRIPT_GROUPS); exits with a usage
    message naming the flag on bad input."""
    parser = build_parser(SCRIPT_GROUPS[script], description, script_defaults(script, argv))
    try:
        cfg = _config(script, parse_with_paddlenlp(parser, script, argv))
    except ArgError as e:
        parser.error(str(e))
    if cfg.train.output_dir is None:
        cfg.train.output_dir = os.path.join(output_root or os.path.join("output", script),
                                            task_id(cfg.data))
    return cfg


def _config(script: str, ns: dict) -> Config:
    parts = {g: GROUPS[g](**{f.name: ns[f.name] for f in dataclasses.fields(GROUPS[g])})
             for g in SCRIPT_GROUPS[script]}
    return Config(script=script, **parts)


class _RaisingParser(argparse.ArgumentParser):
    def error(self, message: str):
        raise UserError(f"{self.prog}: {message}")


def check_flags(script: str, argv: Sequence[str]) -> Config:
    """argv's Config for `script`, or a UserError naming the flag: how the pipeline checks
    every stage's flags before the first one starts."""
    parser = build_parser(SCRIPT_GROUPS[script], defaults=script_defaults(script, argv),
                          parser_class=_RaisingParser, prog=f"{script}.py")
    try:
        return _config(script, parse_with_paddlenlp(parser, script, argv, quiet=True))
    except ArgError as e:
        raise UserError(f"{script}.py: {e}") from None


def data_args(ns: dict) -> DataArgs:
    """The data flags of a parser built with the "data" group (bench scripts)."""
    try:
        return DataArgs(**{f.name: ns[f.name] for f in dataclasses.fields(DataArgs)})
    except ArgError as e:
        raise UserError(str(e)) from None


SEEDS = {("train", "seed"), ("augment", "augment_seed")}


def _compared(scope: str, group: str, f: dataclasses.Field) -> bool:
    if f.metadata.get("runtime") or f.name == "output_dir":
        return False
    if scope == "baseline":
        return (group in ("student", "data") and f.name != "max_train_samples") or \
            (group, f.name) == ("train", "seed")
    return scope == "resume" or (group, f.name) not in SEEDS


def settings_diff(a: dict, b: dict, scope: str) -> dict[str, tuple[Any, Any]]:
    """The settings in which two runs' configs (config.json's content) differ, as
    {"group.flag": (a's value, b's value)}; empty when they agree. `scope` is the question:
      "resume"    may b continue a's interrupted run? Every setting but runtime flags.
      "baseline"  is a's small.py run b's baseline? The student's network and data (not
                  --max_train_samples), and the seed.
      "model"     are a and b seeds of one model (one row of a report)? Every setting but
                  seeds and runtime flags.
    Settings a run predates count at their default; paths compare by the file they name."""
    out = {}
    for group, cls in GROUPS.items():
        va, vb = (with_defaults(group, c.get(group) or {}) for c in (a, b))
        for f in dataclasses.fields(cls):
            if not _compared(scope, group, f):
                continue
            x, y = va.get(f.name), vb.get(f.name)
            if f.metadata["path"] and x and y:
                x, y = os.path.realpath(x), os.path.realpath(y)
            if x != y:
                out[f"{group}.{f.name}"] = (va.get(f.name), vb.get(f.name))
    return out


# ------------------------------------------------------------ PaddleNLP's flags
# Every flag of PaddleNLP's examples/model_compression/distill_lstm/args.py (read at commit
# 0025c3d), so that its README's commands run unchanged: each means one flag of ours (an
# alias, or the same name), or, where nothing here has its meaning, is accepted with a
# one-line notice of what we do instead. docs/paddlenlp.md sets the two side by side.


@dataclass(frozen=True)
class TheirFlag:
    """One PaddleNLP flag: `ours` is the flag it means (None: none has its meaning);
    `notice` is printed when it is given (for a flag of ours, when small.py is given
    bert_distill.py's flag); `type` is theirs, for flags we do not have."""

    ours: str | None
    notice: str = ""
    type: Any = str  # bool: a switch


PADDLENLP_FLAGS: dict[str, TheirFlag] = {
    **{name: TheirFlag(name) for name in (
        "task_name", "optimizer", "lr", "num_layers", "emb_dim", "hidden_size", "batch_size",
        "max_epoch", "max_seq_length", "n_iter", "save_steps", "model_name", "vocab_path",
        "output_dir", "embedding_name", "alpha", "seed", "device",
        "teacher_path")},  # their README's name for --teacher_dir
    "model_name": TheirFlag("model_name", "small.py reads words with its own tokenizer, not "
                            "this model's word pieces (bert_distill.py: a bare .pdparams "
                            "teacher's backbone)"),
    "dropout_prob": TheirFlag("dropout", "dropout before the output layer (PaddleNLP gave it "
                              "to nn.LSTM, which drops only between stacked layers: with one "
                              "layer it did nothing)"),
    "vocab_size": TheirFlag("max_vocab_size", "the vocabulary is built from the training "
                            "words (and --vocab_path), so this only caps its size"),
    "teacher_dir": TheirFlag("teacher_path"),
    "log_freq": TheirFlag("logging_steps", "logs the training loss every N steps; dev is "
                          "evaluated once an epoch, not every N steps (--eval_steps N)"),
    "output_dim": TheirFlag(None, "the number of labels comes from the task", int),
    "init_scale": TheirFlag(None, "the student keeps Paddle's default initialisation (PaddleNLP "
                            "drew its linear layers from U(-s, s))", float),
    "padding_idx": TheirFlag(None, "[PAD] is id 0 of our vocabulary", int),
    "init_from_ckpt": TheirFlag(None, "not read: a run continues from its own checkpoint in "
                                "--output_dir with --resume"),
    "whole_word_mask": TheirFlag(None, "masking always replaces whole words (augmentation "
                                 "works on words, not word pieces)", bool),
}
# PaddleNLP's small.py took bert_distill.py's flags too; ours are bert_distill.py's alone.
DISTILL_ONLY = "bert_distill.py's flag: small.py trains on the gold labels alone"
# Their default optimizer, which a command of theirs relies on when it gives --lr 1.0 alone.
PADDLENLP_DEFAULTS = {"optimizer": "adadelta"}
_GIVEN = "paddlenlp_given"
STUDENT_SCRIPTS = ("small", "bert_distill")  # PaddleNLP's two scripts


def _flags_in(argv: Sequence[str] | None) -> list[str]:
    return [a.split("=", 1)[0] for a in (sys.argv[1:] if argv is None else argv)
            if a.startswith("--")]


def their_flags_in(argv: Sequence[str] | None) -> list[str]:
    """The flags in argv that only PaddleNLP's example has: they make it one of its commands."""
    theirs = {f"--{n}" for n, t in PADDLENLP_FLAGS.items() if t.ours != n}
    return [a for a in _flags_in(argv) if a in theirs]


def script_defaults(script: str, argv: Sequence[str] | None) -> dict[str, Any]:
    """The defaults `script` changes; for a PaddleNLP command, also PaddleNLP's optimizer
    (AdaDelta: their --lr 1.0 would make Adam diverge)."""
    return {**SCRIPT_DEFAULTS.get(script, {}),
            **(PADDLENLP_DEFAULTS if script in STUDENT_SCRIPTS and their_flags_in(argv) else {})}


def _notice(their: TheirFlag, fields: dict) -> str:
    """What a PaddleNLP flag given to a script with `fields` does here."""
    if their.ours in fields:
        return f"is --{their.ours} here: {their.notice}" if their.notice else ""
    return their.notice or DISTILL_ONLY


class _Theirs(argparse.Action):
    """Stores a PaddleNLP flag under the name of the flag it means, noting it was given."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, self.const if self.nargs == 0 else values)
        setattr(namespace, _GIVEN, getattr(namespace, _GIVEN, []) + [option_string[2:]])


def parse_with_paddlenlp(parser: argparse.ArgumentParser, script: str,
                         argv: Sequence[str] | None, quiet: bool = False) -> dict[str, Any]:
    """Parses argv with PaddleNLP's flags added to `script`'s own (small.py, bert_distill.py)
    -> the flags' values by our names. Prints one notice per PaddleNLP flag whose meaning
    differs here; raises ArgError on a value that contradicts ours."""
    if script not in STUDENT_SCRIPTS:
        return vars(parser.parse_args(argv))
    fields = {f.name: (GROUPS[g], f) for g in SCRIPT_GROUPS[script]
              for f in dataclasses.fields(GROUPS[g])}
    group = parser.add_argument_group("PaddleNLP's flags (docs/paddlenlp.md)")
    for name, their in PADDLENLP_FLAGS.items():
        if name in fields:
            continue  # the same flag
        kw: dict[str, Any] = {"type": their.type}
        dest = f"paddlenlp_{name}"
        if their.ours in fields:  # an alias: parsed as our flag is
            cls, f = fields[their.ours]
            tp, dest = _flag_type(typing.get_type_hints(cls)[f.name]), their.ours
            kw = {"type": typing.get_args(tp)[0], "nargs": "+"} if typing.get_origin(tp) is list \
                else {"type": tp, "choices": f.metadata.get("choices")}
        kw = {"nargs": 0, "const": True} if kw["type"] is bool else {**kw, "metavar": name.upper()}
        group.add_argument(f"--{name}", dest=dest, action=_Theirs, default=argparse.SUPPRESS,
                           help=_notice(their, fields) or f"is --{their.ours} here", **kw)
    ns = vars(parser.parse_args(argv))
    for name in dict.fromkeys(ns.pop(_GIVEN, [])):
        text = _notice(PADDLENLP_FLAGS[name], fields)
        value = ns.pop(f"paddlenlp_{name}", None)
        task = ns.get("task_name") or (None if ns.get("train_file") else "sst-2")
        if name == "output_dim" and task:  # (your own files' labels are known once read)
            n = TASKS[task].num_labels
            _check(value == n, name, f"{task} has {n} labels, not {value}")
        _check(name != "padding_idx" or value == 0, name, "[PAD] is id 0 of our vocabulary")
        if text and not quiet:
            print(f"notice: --{name}: {text}", file=sys.stderr)
    if their_flags_in(argv) and "--optimizer" not in _flags_in(argv) and not quiet:
        print(f"notice: --optimizer: {ns['optimizer']}, PaddleNLP's default, as this is its "
              f"command ({' '.join(their_flags_in(argv))}); --optimizer chooses another",
              file=sys.stderr)
    return ns
