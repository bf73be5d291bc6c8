"""The task table: everything that differs between the built-in tasks (file layouts,
languages, labels, metrics, submission files), as data, so no code branches on a task's
name. Plain data, no imports of our own: every module may read it."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Layout:
    """Columns of one split's TSV file: the expected header, text column(s), label column."""

    header: tuple[str, ...]
    text_cols: tuple[int, ...]
    label_col: int | None
    id_col: int | None = None  # test files: the example's id, echoed in submissions


@dataclass(frozen=True)
class Task:
    """Everything that differs between tasks, so no code branches on the task name."""

    name: str
    language: str  # "en" (word-level regex tokenizer) or "zh" (jieba)
    num_labels: int
    metrics: tuple[str, ...]  # the first one selects the best checkpoint
    files: dict[str, tuple[str, Layout]]  # split -> (file name under --data_dir, layout)
    paddlenlp_name: tuple[str, ...]  # load_dataset(*paddlenlp_name) for the online path
    paddlenlp_fields: tuple[str, ...]  # text keys of paddlenlp's examples
    paddlenlp_label: str
    submission: tuple[str, str, str]  # prediction file name and its two columns' headers

    @property
    def is_pair(self) -> bool:
        return len(self.paddlenlp_fields) == 2

    @property
    def folder(self) -> str:
        """The usual name of the task's data folder (GLUE's SST-2, QQP, MRPC), for messages."""
        return self.name.upper() if self.paddlenlp_name[0] == "glue" else self.name

    @property
    def n_iter(self) -> int:
        """Augmented copies per training example in Tang et al.: 20, and 10 for pairs."""
        return 10 if self.is_pair else 20


_SST2 = Layout(("sentence", "label"), (0,), 1)
_QQP = Layout(("id", "qid1", "qid2", "question1", "question2", "is_duplicate"), (3, 4), 5)
_MRPC = Layout(("Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"), (3, 4), 0)

TASKS: dict[str, Task] = {
    t.name: t
    for t in [
        Task("sst-2", "en", 2, ("acc",),
             {"train": ("train.tsv", _SST2), "dev": ("dev.tsv", _SST2),
              "test": ("test.tsv", Layout(("index", "sentence"), (1,), None, 0))},
             ("glue", "sst-2"), ("sentence",), "labels", ("SST-2.tsv", "index", "prediction")),
        Task("qqp", "en", 2, ("acc", "f1"),
             {"train": ("train.tsv", _QQP), "dev": ("dev.tsv", _QQP),
              "test": ("test.tsv", Layout(("id", "question1", "question2"), (1, 2), None, 0))},
             ("glue", "qqp"), ("sentence1", "sentence2"), "labels",
             ("QQP.tsv", "id", "prediction")),
        Task("mrpc", "en", 2, ("acc", "f1"),
             {"train": ("train.tsv", _MRPC), "dev": ("dev.tsv", _MRPC),
              "test": ("test.tsv", Layout(("index",) + _MRPC.header[1:], (3, 4), None, 0))},
             ("glue", "mrpc"), ("sentence1", "sentence2"), "labels",
             ("MRPC.tsv", "index", "prediction")),
        Task("chnsenticorp", "zh", 2, ("acc",),
             {"train": ("train.tsv", Layout(("label", "text_a"), (1,), 0)),
              "dev": ("dev.tsv", Layout(("qid", "label", "text_a"), (2,), 1)),
              "test": ("test.tsv", Layout(("qid", "text_a"), (1,), None, 0))},
             ("chnsenticorp",), ("text",), "label", ("chnsenticorp.tsv", "qid", "label")),
    ]
}
