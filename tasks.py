"""Tasks as data: where each split's file is, how its columns are read, the language, the
label set and the metrics. The four built-in tasks are entries of TASKS; a user's own files
(--train_file ...) make a Task of the same kind (data.own_task), read by the same reader, so
no code branches on a task's name. Plain data, no imports of our own: every module may read
it."""
from __future__ import annotations

import os
from dataclasses import dataclass

FORMATS = ("csv", "tsv", "jsonl")
Column = str | int  # a header name or JSON key, or a 0-based column number (no header)


@dataclass(frozen=True)
class Layout:
    """How one split's file is read: its format ("tsv": tab-separated, no quoting, as GLUE's
    files; "csv": quoted fields that may span lines; "jsonl": one object per line), its text
    column(s), label column and id column. Columns given by number mean the file has no
    header row, unless `header` names the header it must have (the built-in tasks)."""

    format: str
    text: tuple[Column, ...]
    label: Column | None
    id: Column | None = None  # kept in predictions and submissions
    header: tuple[str, ...] | None = None

    @property
    def by_number(self) -> bool:
        return any(isinstance(c, int) for c in (*self.text, self.label, self.id))


@dataclass(frozen=True)
class Task:
    """Everything that differs between tasks."""

    name: str
    language: str  # "en" (word-level regex tokenizer) or "zh" (jieba)
    labels: tuple[str, ...]  # the labels as the files write them, in class-id order
    metrics: tuple[str, ...]  # the first one selects the best checkpoint
    files: dict[str, tuple[str, Layout]]  # split -> (file: a path, or a name under --data_dir)
    label_names: tuple[str, ...] | None = None  # what predictions print, when labels are codes
    paddlenlp_name: tuple[str, ...] = ()  # load_dataset(*paddlenlp_name) for the online path
    paddlenlp_fields: tuple[str, ...] = ()  # text keys of paddlenlp's examples
    paddlenlp_label: str = ""
    submission: tuple[str, str, str] | None = None  # file name and its two columns' headers

    @property
    def num_labels(self) -> int:
        return len(self.labels)

    @property
    def names(self) -> tuple[str, ...]:
        """The labels by name: label_names when given, else the labels themselves."""
        return self.label_names or self.labels

    @property
    def is_pair(self) -> bool:
        return len(self.files["train"][1].text) == 2

    @property
    def folder(self) -> str:
        """The usual name of the task's data folder (GLUE's SST-2, QQP, MRPC), for messages."""
        return self.name.upper() if self.paddlenlp_name[:1] == ("glue",) else self.name

    @property
    def n_iter(self) -> int:
        """Augmented copies per training example in Tang et al.: 20, and 10 for pairs."""
        return 10 if self.is_pair else 20


def own_task_name(train_file: str) -> str:
    """Your own task is named after its training file's folder (sst5/train.jsonl: sst5)."""
    path = os.path.abspath(train_file)
    return os.path.basename(os.path.dirname(path)) or os.path.splitext(os.path.basename(path))[0]


def metrics_for(num_labels: int) -> tuple[str, ...]:
    """A user's task reports accuracy and macro-F1, and a binary one the positive class's F1
    as well (the built-in tasks keep GLUE's metrics)."""
    return ("acc", "macro_f1") + (("f1",) if num_labels == 2 else ())


_SST2 = Layout("tsv", (0,), 1, header=("sentence", "label"))
_QQP = Layout("tsv", (3, 4), 5, header=("id", "qid1", "qid2", "question1", "question2",
                                        "is_duplicate"))
_MRPC = Layout("tsv", (3, 4), 0, header=("Quality", "#1 ID", "#2 ID", "#1 String",
                                         "#2 String"))
_BINARY = ("0", "1")

TASKS: dict[str, Task] = {
    t.name: t
    for t in [
        Task("sst-2", "en", _BINARY, ("acc",),
             {"train": ("train.tsv", _SST2), "dev": ("dev.tsv", _SST2),
              "test": ("test.tsv", Layout("tsv", (1,), None, 0, ("index", "sentence")))},
             paddlenlp_name=("glue", "sst-2"), paddlenlp_fields=("sentence",),
             paddlenlp_label="labels", submission=("SST-2.tsv", "index", "prediction")),
        Task("qqp", "en", _BINARY, ("acc", "f1"),
             {"train": ("train.tsv", _QQP), "dev": ("dev.tsv", _QQP),
              "test": ("test.tsv", Layout("tsv", (1, 2), None, 0,
                                          ("id", "question1", "question2")))},
             paddlenlp_name=("glue", "qqp"), paddlenlp_fields=("sentence1", "sentence2"),
             paddlenlp_label="labels", submission=("QQP.tsv", "id", "prediction")),
        Task("mrpc", "en", _BINARY, ("acc", "f1"),
             {"train": ("train.tsv", _MRPC), "dev": ("dev.tsv", _MRPC),
              "test": ("test.tsv", Layout("tsv", (3, 4), None, 0,
                                          ("index",) + _MRPC.header[1:]))},
             paddlenlp_name=("glue", "mrpc"), paddlenlp_fields=("sentence1", "sentence2"),
             paddlenlp_label="labels", submission=("MRPC.tsv", "index", "prediction")),
        Task("chnsenticorp", "zh", _BINARY, ("acc",),
             {"train": ("train.tsv", Layout("tsv", (1,), 0, header=("label", "text_a"))),
              "dev": ("dev.tsv", Layout("tsv", (2,), 1, header=("qid", "label", "text_a"))),
              "test": ("test.tsv", Layout("tsv", (1,), None, 0, ("qid", "text_a")))},
             paddlenlp_name=("chnsenticorp",), paddlenlp_fields=("text",),
             paddlenlp_label="label", submission=("chnsenticorp.tsv", "qid", "label")),
    ]
}
