"""Data: readers, tokenizers, vocabulary and batching (the task table is tasks.py).

Everything here is a plain function of its inputs (and an explicit random generator where
randomness is needed), so each step can be unit-tested and reused by every entry point.
Word vectors are in vectors.py, augmentation (the transfer set) in augment.py.
"""
from __future__ import annotations

import collections
import csv
import io
import json
import logging
import os
import re
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Iterator, Sequence

import numpy as np

from tasks import FORMATS, TASKS, Column, Layout, Task, metrics_for, own_task_name
from utils import UserError, atomic_write_text, fetch_failed

if TYPE_CHECKING:
    from args import DataArgs

logger = logging.getLogger(__name__)

PAD, UNK, MASK = "[PAD]", "[UNK]", "[MASK]"
SPECIAL_TOKENS = (PAD, UNK, MASK)


class DataError(UserError):
    """Bad input data: the message names the file (and line) and what was expected."""


class LineError(DataError):
    """One input line that cannot be predicted; predict.py reports it on that line."""


@dataclass
class Example:
    """One raw example: one text (or two for pair tasks) and its label id (None on test)."""

    texts: tuple[str, ...]
    label: int | None
    id: str | None = None  # the file's id column, kept in predictions and submissions


def decoded_lines(f, path: str, hint: str = "") -> Iterator[tuple[int, str]]:
    """(line number, text) of a binary file object, decoding line by line so that an
    encoding error names its exact line."""
    for lineno, raw in enumerate(f, start=1):
        try:
            yield lineno, raw.decode("utf-8-sig" if lineno == 1 else "utf-8").rstrip("\r\n")
        except UnicodeDecodeError as e:
            raise DataError(f"{path}:{lineno}: not UTF-8 text ({e.reason}){hint}") from None


def _csv_rows(f, path: str) -> Iterator[tuple[int, list[str]]]:
    """(first line, fields) of each CSV record; quoted fields may span lines."""
    text = io.TextIOWrapper(f, encoding="utf-8-sig", newline="")
    reader = csv.reader(text, strict=True)
    start = 1
    try:
        for row in reader:
            yield start, row
            start = reader.line_num + 1
    except csv.Error as e:
        raise DataError(f"{path}:{start}: not valid CSV ({e}); is a quoted field never "
                        f"closed?") from None
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: near line {start}: not UTF-8 text ({e.reason})") from None


def _rows(f, path: str, fmt: str) -> Iterator[tuple[int, list[str] | dict]]:
    """(line number, row) of a file: a list of fields (csv, tsv) or an object (jsonl);
    blank lines skipped."""
    if fmt == "csv":
        yield from ((n, row) for n, row in _csv_rows(f, path) if any(c.strip() for c in row))
        return
    for lineno, line in decoded_lines(f, path):
        if not line.strip():
            continue
        if fmt == "tsv":
            yield lineno, line.split("\t")
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{lineno}: not a JSON object ({e.msg})") from None
        if not isinstance(row, dict):
            raise DataError(f"{path}:{lineno}: a JSON {type(row).__name__}, expected an object "
                            f"with the text and label keys")
        yield lineno, row


def read_table(path: str, layout: Layout) -> Iterator[tuple[int, tuple[str, ...], str | None,
                                                             str | None]]:
    """(line, texts, raw label, id) of each row of one split's file, as `layout` says.
    Every problem names the file and line (and the column, and the flag that chose it)."""
    if not os.path.isfile(path):
        raise DataError(f"{path}: file not found")
    with open(path, "rb") as f:
        rows = _rows(f, path, layout.format)
        index = None  # column -> position in a row (csv, tsv)
        if layout.format != "jsonl":
            if layout.header is not None or not layout.by_number:
                first = next(rows, None)
                header = tuple(first[1]) if first else ()
                if layout.header is not None and header != layout.header:
                    raise DataError(f"{path}:1: header is {list(header)}, expected "
                                    f"{list(layout.header)}")
                index = {name: i for i, name in enumerate(header)}
            width = len(layout.header) if layout.header else None
        columns = [c for c in (*layout.text, layout.label, layout.id) if c is not None]
        for lineno, row in rows:
            where = f"{path}:{lineno}"
            if layout.format == "jsonl":
                missing = [c for c in columns if c not in row]
                if missing:
                    raise DataError(f"{where}: no key {missing[0]!r} (keys: "
                                    f"{', '.join(map(repr, row))}); --text_column / "
                                    f"--label_column name the keys")
                get = row.get
            else:
                if width is not None and len(row) != width:
                    raise DataError(f"{where}: {len(row)} tab-separated columns, expected "
                                    f"{width} ({', '.join(layout.header)})")
                pos = [c if isinstance(c, int) else _position(index, c, path) for c in columns]
                if max(pos) >= len(row):
                    raise DataError(f"{where}: {len(row)} field(s), expected at least "
                                    f"{max(pos) + 1} (columns {columns})")
                get = dict(zip(columns, (row[i] for i in pos))).get
            texts = tuple(str(get(c)).strip() if get(c) is not None else "" for c in layout.text)
            for c, t in zip(layout.text, texts):
                if not t:
                    raise DataError(f"{where}: empty text in column {_column_name(layout, c)}")
            label = None if layout.label is None else str(get(layout.label)).strip()
            yield lineno, texts, label, None if layout.id is None else str(get(layout.id)).strip()


def _column_name(layout: Layout, c: Column) -> str:
    if layout.header:  # a built-in layout: counted from 1, as a spreadsheet shows it
        return f"{c + 1} ({layout.header[c]!r})"
    return f"{c} (numbered from 0)" if isinstance(c, int) else repr(c)


def _position(index: dict[str, int] | None, name: str, path: str) -> int:
    if name not in index:
        raise DataError(f"{path}:1: no column {name!r} in the header ({', '.join(index)}); "
                        f"--text_column / --label_column / --id_column name its columns, or "
                        f"number them from 0 for a file without a header")
    return index[name]


def label_order(labels: Iterable[str]) -> tuple[str, ...]:
    """A label set in class-id order: by value when every label is an integer, else sorted."""
    labels = set(labels)
    if all(re.fullmatch(r"-?\d+", v) for v in labels):
        return tuple(sorted(labels, key=int))
    return tuple(sorted(labels))


def read_split(path: str, layout: Layout, labels: Sequence[str] | None
               ) -> tuple[list[Example], tuple[str, ...]]:
    """(examples, label set) of one split's file. The label set is `labels` (an unknown
    label is an error naming its line), or, when None, the labels the file holds
    (a training file of the user's own task)."""
    # The texts are held once, in the examples; beside them only each row's line and label
    # (interned), until the label set is known.
    examples, raw_labels = [], []
    for lineno, texts, raw, id_ in read_table(path, layout):
        examples.append(Example(texts, None, id_))
        raw_labels.append((lineno, None if raw is None else sys.intern(raw)))
    if not examples:
        raise DataError(f"{path}: no examples"
                        f"{' after the header' if layout.header or not layout.by_number else ''}")
    if labels is None:
        labels = label_order(raw for _, raw in raw_labels)
    ids = {v: i for i, v in enumerate(labels)}
    for ex, (lineno, raw) in zip(examples, raw_labels):
        if raw is not None:
            if raw not in ids:
                raise DataError(label_error(raw, labels, f"{path}:{lineno}"))
            ex.label = ids[raw]
    return examples, tuple(labels)


def label_error(raw: str, labels: Sequence[str], where: str) -> str:
    """The message for a label outside the task's label set."""
    if labels == tuple(str(i) for i in range(len(labels))):  # integer labels 0..k-1
        if not re.fullmatch(r"-?\d+", raw):
            return f"{where}: label {raw!r} is not an integer (expected 0..{len(labels) - 1})"
        return f"{where}: label {raw} is out of range (expected 0..{len(labels) - 1})"
    return (f"{where}: label {raw!r} is not one of the {len(labels)} labels of the training "
            f"file ({', '.join(labels[:20])}{', ...' if len(labels) > 20 else ''})")


def load_split(task: Task, split: str, data_dir: str | None) -> list[Example]:
    """Reads a split: a user's task from its files, a built-in task from `data_dir` when
    given, otherwise downloaded with paddlenlp."""
    if data_dir is not None or not task.paddlenlp_name:
        if split not in task.files:
            raise DataError(f"{task.name}: no {split} file (--{split}_file)")
        name, layout = task.files[split]
        path = name if data_dir is None else os.path.join(data_dir, name)
        return read_split(path, layout, task.labels)[0]
    from paddlenlp.datasets import load_dataset  # online path: imported only when used

    # paddle's downloader raises RuntimeError once its retries fail; socket and requests
    # errors are OSErrors
    try:
        ds = load_dataset(*task.paddlenlp_name, splits=split)
    except (RuntimeError, OSError) as e:
        files = ", ".join(name for name, _ in task.files.values())
        raise fetch_failed(f"the {task.name} {split} split (paddlenlp dataset "
                           f"{'/'.join(task.paddlenlp_name)})", e,
                           f"without internet, give a local copy: --data_dir "
                           f"path/to/{task.folder} (the folder of {files})") from e
    examples, ids = [], {v: i for i, v in enumerate(task.labels)}
    for i, ex in enumerate(ds):
        texts = tuple(str(ex[k]).strip() for k in task.paddlenlp_fields)
        raw = ex.get(task.paddlenlp_label)
        raw = None if raw in (None, "") else str(raw).strip()
        if raw is not None and raw not in ids:
            raise DataError(label_error(raw, task.labels, f"paddlenlp "
                                        f"{'/'.join(task.paddlenlp_name)} {split} #{i}"))
        examples.append(Example(texts, None if raw is None else ids[raw],
                                str(ex.get("qid", ex.get("idx", i)))))
    return examples


# ---------------------------------------------------------------------- tokenizers

# Word-level English tokenizer: lowercase, punctuation split off, PTB clitics kept as in
# SST-2 and the word2vec / GloVe vocabularies ("do n't", "it 's").
_EN_TOKEN = re.compile(r"""
    \d+(?:[.,:/]\d+)+       # numbers with separators: 2.5 1,000 10:30 24/7
  | (?:[^\W\d_]\.){2,}      # acronyms: u.s. i.e.
  | \w+(?=n't\b)            # do|n't  ca|n't
  | n't\b
  | '\w+                    # clitics: 's 're 'll 've
  | \w+(?:-\w+)*            # words and hyphenated compounds
  | \.\.\.|--|``|''         # multi-character punctuation of PTB text
  | [^\w\s]                 # any other symbol on its own
""", re.X)


def tokenize_en(text: str) -> list[str]:
    return _EN_TOKEN.findall(text.lower())


def tokenize_zh(text: str) -> list[str]:
    """jieba words (accurate mode); Latin letters lowercased, whitespace dropped."""
    import jieba

    return [w for w in jieba.lcut(text.lower()) if w.strip()]


TOKENIZERS = {"en": tokenize_en, "zh": tokenize_zh}


def tokenize(examples: Sequence[Example], language: str, max_len: int | None = None,
             where: str = "") -> list[tuple[list[str], ...]]:
    """Words of each text, truncated to `max_len` words. An empty result is an error.

    Each distinct word is one string object (interned): QQP's 8M words would otherwise take
    ~0.5 GB as separate strings."""
    import jieba

    jieba.setLogLevel(logging.WARNING)
    tok = TOKENIZERS[language]
    out = []
    for i, ex in enumerate(examples):
        words = tuple([sys.intern(w) for w in tok(t)[:max_len]] for t in ex.texts)
        if any(not w for w in words):
            raise DataError(f"{where} example {i + 1}: text {ex.texts!r} has no words after "
                            f"tokenization")
        out.append(words)
    return out


def read_transfer_file(path: str, task: Task, max_len: int | None = None
                       ) -> list[tuple[list[str], ...]]:
    """Words of the unlabeled texts in `path` (--transfer_file): one text per line, pair
    tasks two tab-separated texts; blank lines are skipped."""
    n_fields = 2 if task.is_pair else 1
    tok = TOKENIZERS[task.language]
    out = []
    with open(path, "rb") as f:
        for lineno, line in decoded_lines(f, path):
            if not line.strip():
                continue
            texts = line.split("\t")
            if len(texts) != n_fields:
                raise DataError(f"{path}:{lineno}: {len(texts)} tab-separated field(s), expected "
                                f"{n_fields} ({task.name} {'pairs' if task.is_pair else 'texts'})")
            words = tuple(tok(t)[:max_len] for t in texts)
            if not all(words):
                raise DataError(f"{path}:{lineno}: a text with no words after tokenization")
            out.append(words)
    if not out:
        raise DataError(f"{path}: no texts")
    return out


# ---------------------------------------------------------------------- vocabulary


class Vocab:
    """Word <-> id. Ids 0, 1, 2 are [PAD], [UNK], [MASK]; words follow by frequency."""

    def __init__(self, tokens: Sequence[str], counts: dict[str, int] | None = None):
        if tuple(tokens[:3]) != SPECIAL_TOKENS:
            raise ValueError(f"vocabulary must start with {SPECIAL_TOKENS}, got {tokens[:3]}")
        self.tokens = list(tokens)
        self.index = {t: i for i, t in enumerate(self.tokens)}
        if len(self.index) != len(self.tokens):
            dup = collections.Counter(self.tokens).most_common(1)[0][0]
            raise ValueError(f"vocabulary lists {dup!r} twice")
        self.counts = counts or {}

    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, word: str) -> bool:
        return word in self.index

    def encode(self, words: Iterable[str]) -> np.ndarray:
        unk = self.index[UNK]
        return np.array([self.index.get(w, unk) for w in words], dtype=np.int64)

    def save(self, path: str) -> None:
        atomic_write_text(path, "".join(t + "\n" for t in self.tokens))

    @classmethod
    def load(cls, path: str) -> "Vocab":
        """A saved vocab.txt; a missing, non-UTF-8 or malformed file is a DataError naming it."""
        if not os.path.isfile(path):
            raise DataError(f"{path}: vocabulary file not found")
        try:
            with open(path, encoding="utf-8") as f:
                return cls([line.rstrip("\n") for line in f])
        except UnicodeDecodeError as e:
            raise DataError(f"{path}: not UTF-8 text ({e.reason})") from None
        except ValueError as e:
            raise DataError(f"{path}: {e}") from None


def read_word_list(path: str) -> set[str]:
    """A word-dict file as PaddleNLP's examples have them (senta_word_dict.txt): one word per
    line, optionally followed by its id after a tab or a space. The ids are not used: the
    vocabulary's ids come from the training words, which the file only filters."""
    if not os.path.isfile(path):
        raise DataError(f"--vocab_path {path}: file not found")
    words = set()
    with open(path, encoding="utf-8-sig") as f:
        try:
            for line in f:
                w = line.rstrip("\r\n").split("\t")[0].strip()
                word, _, last = w.rpartition(" ")
                if word and last.isdigit():  # "word id"
                    w = word.strip()
                if w:
                    words.add(w)
        except UnicodeDecodeError as e:
            raise DataError(f"--vocab_path {path}: not UTF-8 text ({e.reason})") from None
    if not words:
        raise DataError(f"--vocab_path {path}: no words in file")
    return words


def build_vocab(token_lists: Iterable[Sequence[str]], min_freq: int = 1,
                max_size: int | None = None, allowed: set[str] | None = None) -> Vocab:
    """Vocabulary of the training words: frequency >= min_freq, optionally only words in
    `allowed` (a word-dict file), at most `max_size` entries including the specials.

    Ties in frequency are broken alphabetically so the ids do not depend on data order.
    """
    counts = collections.Counter(w for words in token_lists for w in words)
    words = [w for w, c in counts.items()
             if c >= min_freq and w not in SPECIAL_TOKENS and (allowed is None or w in allowed)]
    words.sort(key=lambda w: (-counts[w], w))
    if max_size is not None:
        words = words[: max(0, max_size - len(SPECIAL_TOKENS))]
    return Vocab(list(SPECIAL_TOKENS) + words, dict(counts))


# --------------------------------------------------------------- a task's training data


@dataclass
class TaskData:
    """A task's train and dev splits, raw and tokenized into words."""

    task: Task
    train: list[Example]
    dev: list[Example]
    train_words: list[tuple[list[str], ...]]
    dev_words: list[tuple[list[str], ...]]


EXTENSIONS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl"}
_own_tasks: dict[tuple, Task] = {}  # a user's task per process: its training file read once


def task_of(d: "DataArgs") -> Task:
    """The task the data flags describe: a built-in one, or the user's own files (--train_file
    ...), with the training file's label set unless --labels gives it."""
    if d.train_file is None:
        return TASKS[d.task_name]
    key = (repr(sorted(vars(d).items())), os.path.getmtime(d.train_file))
    if key not in _own_tasks:
        _own_tasks[key] = own_task(d)
    return _own_tasks[key]


def file_layout(path: str, file_format: str | None, text_column: Sequence[str],
                label_column: str | None, id_column: str | None) -> Layout:
    """How to read one of the user's files, from the flags: the format by extension unless
    --file_format, columns by name or by 0-based number."""
    def column(c: str) -> Column:
        return int(c) if c.isdigit() else c

    fmt = file_format or EXTENSIONS.get(os.path.splitext(path)[1].lower())
    if fmt is None:
        raise DataError(f"{path}: unknown extension; give --file_format ({', '.join(FORMATS)})")
    return Layout(fmt, tuple(map(column, text_column)),
                  None if label_column is None else column(label_column),
                  None if id_column is None else column(id_column))


def own_task(d: "DataArgs") -> Task:
    def layout(path: str, labelled: bool) -> Layout:
        return file_layout(path, d.file_format, d.text_column,
                           d.label_column if labelled else None, d.id_column)

    files = {"train": (d.train_file, layout(d.train_file, True)),
             "dev": (d.dev_file, layout(d.dev_file, True))}
    if d.test_file:
        files["test"] = (d.test_file, layout(d.test_file, False))
    found = label_order(raw for _, _, raw, _ in read_table(*files["train"]))
    if d.labels:
        missing = [v for v in found if v not in d.labels]
        if missing:
            raise DataError(f"--labels {' '.join(d.labels)}: misses {missing[0]!r}, a label of "
                            f"{d.train_file}")
    elif len(found) < 2:
        raise DataError(f"{d.train_file}: only one label ({found[0]!r}) in the training file; "
                        f"a classifier needs at least two classes")
    labels = tuple(d.labels or found)
    names = d.label_names
    if names and len(names) == 1 and os.path.isfile(names[0]):
        with open(names[0], encoding="utf-8") as f:
            names = [line.strip() for line in f if line.strip()]
    if names and len(names) != len(labels):
        raise DataError(f"--label_names: {len(names)} names for the {len(labels)} labels "
                        f"({', '.join(labels)})")
    return Task(own_task_name(d.train_file), d.language or "en", labels,
                metrics_for(len(labels)), files, tuple(names) if names else None)


def load_data(d: "DataArgs") -> TaskData:
    """The train and dev splits of the task, tokenized for the student."""
    task = task_of(d)
    where = d.data_dir or ("paddlenlp" if task.paddlenlp_name else task.name)
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


def make_vocab(d: "DataArgs", data: TaskData,
               unlabeled: Sequence[tuple[list[str], ...]] = ()) -> Vocab:
    """The student's vocabulary of training words (and of unlabeled texts it will read),
    as --vocab_path, --min_freq and --max_vocab_size ask."""
    allowed = read_word_list(d.vocab_path) if d.vocab_path else None
    vocab = build_vocab((w for ws in (*data.train_words, *unlabeled) for w in ws), d.min_freq,
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


# ------------------------------------------------------------------------ batching


@dataclass
class Encoded:
    """A split as ids, flat: per text field, the ids of every example end to end (`ids[k]`)
    and where each example starts (`offsets[k]`, one entry more than examples). With
    `lookup`, the ids index a word table (a transfer set's) and lookup[id] is the student's id,
    applied per batch, so a set of millions of examples is never copied (it may be
    memory-mapped)."""

    ids: tuple[np.ndarray, ...]
    offsets: tuple[np.ndarray, ...]
    labels: np.ndarray | None
    lookup: np.ndarray | None = None

    @classmethod
    def of(cls, fields: Sequence[Sequence[np.ndarray]], labels: np.ndarray | None = None
           ) -> "Encoded":
        """From one id array per example, per text field."""
        flat = [(np.concatenate(f).astype(np.int64),
                 np.concatenate([[0], np.cumsum([len(x) for x in f])]).astype(np.int64))
                for f in fields]
        return cls(tuple(ids for ids, _ in flat), tuple(o for _, o in flat), labels)

    def __len__(self) -> int:
        return len(self.offsets[0]) - 1

    def lengths(self) -> np.ndarray:
        """Per example, the longest of its texts: what sets its padded width."""
        return np.max([np.diff(o) for o in self.offsets], axis=0)


def gather(ids: np.ndarray, offsets: np.ndarray, idx: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray]:
    """(the ids of examples `idx` end to end, [len(idx)] their lengths) of one flat field,
    with one fancy index rather than one slice per example."""
    starts, lengths = offsets[idx], offsets[idx + 1] - offsets[idx]
    shift = starts - (np.cumsum(lengths) - lengths)  # where each example is minus where it goes
    return ids[np.repeat(shift, lengths) + np.arange(lengths.sum())], lengths


def encode(token_lists: Sequence[tuple[list[str], ...]], vocab: Vocab,
           labels: Sequence[int | None] | None = None) -> Encoded:
    has_labels = labels is not None and all(l is not None for l in labels)
    return Encoded.of([[vocab.encode(words[k]) for words in token_lists]
                       for k in range(len(token_lists[0]))],
                      np.asarray(labels, dtype=np.int64) if has_labels else None)


def make_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator | None,
                 bucket: bool = True, pool_batches: int = 100) -> list[np.ndarray]:
    """Example indices per batch.

    Training (`rng` given): shuffle, then with `bucket`, sort pools of `pool_batches`
    batches by length so each batch holds similar lengths (little padding), and shuffle the
    batch order. Evaluation (`rng` None): one pass sorted by length, which changes no metric.
    """
    n = len(lengths)
    if rng is None:
        order = np.argsort(lengths, kind="stable") if bucket else np.arange(n)
        return [order[i:i + batch_size] for i in range(0, n, batch_size)]
    order = rng.permutation(n)
    if bucket:
        pool = batch_size * pool_batches
        order = np.concatenate([chunk[np.argsort(lengths[chunk], kind="stable")]
                                for chunk in np.split(order, range(pool, n, pool))])
    batches = [order[i:i + batch_size] for i in range(0, n, batch_size)]
    if bucket:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def pad(seqs: Sequence[np.ndarray], width: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """[B, L] ids padded with [PAD] (id 0) and [B] lengths."""
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    out = np.zeros((len(seqs), width or int(lengths.max())), dtype=np.int64)
    for row, s in zip(out, seqs):
        row[: len(s)] = s
    return out, lengths


def collate(data: Encoded, idx: np.ndarray, extra: dict[str, np.ndarray] | None = None
            ) -> dict[str, np.ndarray]:
    """A named batch: input_ids / lengths (and input_ids_b / lengths_b for pairs), labels,
    plus any per-example arrays in `extra` (such as teacher logits)."""
    batch: dict[str, np.ndarray] = {}
    fields = [gather(ids, offsets, idx) for ids, offsets in zip(data.ids, data.offsets)]
    # both sentences of a pair share one width so the encoder runs once on both
    width = int(max(lengths.max() for _, lengths in fields))
    for (ids, lengths), suffix in zip(fields, ("", "_b")):
        out = np.zeros((len(idx), width), dtype=np.int64)  # [PAD] is id 0
        out[np.arange(width) < lengths[:, None]] = ids if data.lookup is None else data.lookup[ids]
        batch["input_ids" + suffix], batch["lengths" + suffix] = out, lengths.astype(np.int64)
    if data.labels is not None:
        batch["labels"] = data.labels[idx]
    for key, arr in (extra or {}).items():
        batch[key] = arr[idx]
    return batch


def iterate(data: Encoded, batches: Sequence[np.ndarray],
            extra: dict[str, np.ndarray] | None = None) -> Iterator[dict[str, np.ndarray]]:
    for idx in batches:
        yield collate(data, idx, extra)
