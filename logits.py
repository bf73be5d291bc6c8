"""Teacher logits for the transfer set, from any source: a fine-tuned BERT teacher, a trained
student run, a file of logits computed outside this project, or PaddleNLP's online teacher.

A source says under which key its logits are cached and how it labels a transfer set;
`label_transfer_set` caches each source's logits once in cache_dir/logits-<key> (meta.json
written last, with their checksum) and averages several sources. A new kind of source is a
class here with `key` and `label`, and a line in `teacher_sources` for the flag naming it.

The teacher never runs inside the student's training loop (as in the authors' d-bert;
PaddleNLP's example runs it again on every batch of every epoch, kept as --online_teacher).
"""
from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from functools import cached_property
from typing import Callable, Protocol, Sequence

import numpy as np

from args import TEACHER_ROOT, DistillArgs, TrainArgs
from augment import TransferSet, student_view, texts_transfer_set
from data import MASK, UNK, DataError, Vocab, collate, decoded_lines, make_batches
from engines import OnnxPredictor, Predictor, is_exported
from model_io import ONNX_FILE, export_static, export_student_onnx, student_from_checkpoint
from runs import BEST, MODEL_STATE, RunError, is_student_run
from teachers import (INPUTS, collate_teacher, eager_runner, encode_pieces, load_teacher,
                      teacher_lengths, teacher_logits, word_pieces)
from utils import (atomic_save_npy, barrier, content_hash, fault_point, format_seconds, is_main,
                   classification_metrics, main_first, rank, read_verified_json, sha256_file,
                   world_size, write_verified_json)

logger = logging.getLogger(__name__)


class Source(Protocol):
    """Where teacher logits come from."""

    # True: every data-parallel process labels (its share); False: the main process labels
    # and caches first, and the others read its cache.
    parallel: bool

    def key(self, ts_key: str) -> str | None:
        """The cache key of its logits for transfer set `ts_key`; None: never cached."""

    def label(self, ts: TransferSet, ts_key: str, num_labels: int, folder: str | None
              ) -> tuple[np.ndarray | OnlineLogits, dict]:
        """([len(ts), num_labels] logits, what the cache's meta.json records about them);
        `folder` is the cache folder, for the files of an unfinished labelling (None when
        never cached)."""


# ------------------------------------------------------------------------- sources


@dataclass
class BertTeacher:
    """A fine-tuned BERT teacher (a save_pretrained directory, or a .pdparams file with
    `model_name`), exported once to cache_dir/teacher-<weights hash> and run by Paddle
    Inference over the transfer set in length-sorted chunks, each saved so that an
    interrupted labelling resumes (`label_in_chunks`).

    The teacher reads the transfer set's words with its own tokenizer, [MASK] as its own
    mask token (`mask="unk"`: as its [UNK] token): never our ids, and never word pieces fed
    back as words. Its inputs are built per chunk, and it is loaded only when there is
    something to label."""

    path: str
    model_name: str | None
    max_seq_length: int
    batch_size: int
    cache_dir: str  # where its export goes, beside the logits
    device: str
    num_threads: int | None
    precision: str = "fp32"
    chunk_size: int = 16384
    mask: str = "mask"  # the token the teacher reads for a masked word: mask or unk
    parallel = True

    @property
    def weights(self) -> str:
        return self.path if os.path.isfile(self.path) else os.path.join(self.path, MODEL_STATE)

    @cached_property
    def weights_hash(self) -> str:
        if not os.path.isfile(self.weights):
            load_teacher(self.path, None, self.model_name)  # raises the error naming the fix
        return sha256_file(self.weights)[:16]

    def key(self, ts_key: str) -> str:
        return content_hash({"teacher": self.weights_hash, "transfer": ts_key,
                             "max_len": self.max_seq_length,
                             **({"precision": self.precision} if self.precision != "fp32"
                                else {}),
                             **({"mask": self.mask} if self.mask != "mask" else {})})[:16]

    def label(self, ts: TransferSet, ts_key: str, num_labels: int, folder: str
              ) -> tuple[np.ndarray, dict]:
        model, tokenizer = load_teacher(self.path, num_labels, self.model_name)
        t0 = time.perf_counter()
        pieces = word_pieces(tokenizer, ts.table, MASK, self.mask)
        lengths = teacher_lengths(ts, pieces, self.max_seq_length)
        logger.info("teacher inputs: %d distinct words tokenized in %.1fs; %d examples of mean "
                    "%.1f tokens", len(pieces), time.perf_counter() - t0, len(ts),
                    lengths.mean())
        prefix = os.path.join(self.cache_dir, f"teacher-{self.weights_hash}", "model")

        def export() -> None:
            if not is_exported(prefix):
                os.makedirs(os.path.dirname(prefix), exist_ok=True)
                export_static(model, INPUTS, prefix)
        main_first(export)
        fault_point("teacher exported")
        run = Predictor(prefix, self.device, self.num_threads, self.precision)

        def label_chunk(idx: np.ndarray) -> np.ndarray:
            data = encode_pieces(tokenizer, ts.examples(idx), pieces, self.max_seq_length)
            return teacher_logits(run, data, self.batch_size, tokenizer.pad_token_id)

        logits = label_in_chunks(folder, np.argsort(lengths, kind="stable"), self.chunk_size,
                                 num_labels, label_chunk)
        return logits, {"teacher_weights": self.weights, "teacher_sha256": self.weights_hash,
                        "transfer_set": ts_key, "max_seq_length": self.max_seq_length,
                        "precision": self.precision, "teacher_mask": self.mask}


@dataclass
class StudentRun:
    """A trained student run (small.py / bert_distill.py) as a teacher, e.g. several
    ensembled where no BERT is at hand: its best checkpoint as an ONNX graph (kept in the
    cache folder) run by ONNX Runtime over the transfer set, [MASK] read as [UNK]."""

    path: str
    num_threads: int | None = None
    batch_size: int = 512
    parallel = False

    @cached_property
    def weights_hash(self) -> str:
        return sha256_file(os.path.join(self.path, BEST))[:16]

    def key(self, ts_key: str) -> str:
        return content_hash({"student": self.weights_hash, "transfer": ts_key})[:16]

    def label(self, ts: TransferSet, ts_key: str, num_labels: int, folder: str
              ) -> tuple[np.ndarray, dict]:
        model, state = student_from_checkpoint(os.path.join(self.path, BEST))
        if model.config.num_labels != num_labels or model.config.pair != (len(ts.ids) == 2):
            raise RunError(f"--teacher_path {self.path}: a student of another task ("
                           f"{state['config']['data']['task_name']})")
        onnx_file = os.path.join(folder, ONNX_FILE)
        export_student_onnx(model, onnx_file)
        run = OnnxPredictor(onnx_file, self.num_threads)
        data = student_view(ts, Vocab(state["vocab"]), UNK, None)
        logits = np.zeros((len(ts), num_labels), dtype=np.float32)
        t0 = time.perf_counter()
        for idx in make_batches(data.lengths(), self.batch_size, None):
            logits[idx] = run(collate(data, idx))
        logger.info("student teacher %s labelled %d examples in %.1fs", self.path, len(ts),
                    time.perf_counter() - t0)
        return logits, {"student_run": os.path.abspath(self.path),
                        "student_sha256": self.weights_hash, "transfer_set": ts_key}


@dataclass
class LogitsFile:
    """--teacher_logits: logits computed by any model outside this project for the texts
    --export_transfer_set wrote, checked row by row (read_teacher_logits) and cached beside
    our own labelling, keyed by the file's content."""

    path: str
    parallel = True

    @cached_property
    def file_hash(self) -> str:
        return sha256_file(self.path)[:16]

    def key(self, ts_key: str) -> str:
        return content_hash({"logits_file": self.file_hash, "transfer": ts_key})[:16]

    def label(self, ts: TransferSet, ts_key: str, num_labels: int, folder: str
              ) -> tuple[np.ndarray, dict]:
        return read_teacher_logits(self.path, len(ts), num_labels), {
            "teacher_logits": os.path.abspath(self.path), "file_sha256": self.file_hash,
            "transfer_set": ts_key}


@dataclass
class OnlineTeacher:
    """--online_teacher, PaddleNLP's way: the eager teacher run again on every student
    batch, never cached. Slow; kept only to measure what caching saves."""

    path: str
    model_name: str | None
    max_seq_length: int
    mask: str = "mask"
    parallel = True

    def key(self, ts_key: str) -> None:
        return None

    def label(self, ts: TransferSet, ts_key: str, num_labels: int, folder: str | None
              ) -> tuple[OnlineLogits, dict]:
        model, tokenizer = load_teacher(self.path, num_labels, self.model_name)
        return OnlineLogits(ts, model, tokenizer, self.max_seq_length, self.mask), {}


class OnlineLogits:
    """Teacher logits computed when a batch asks for them: `logits[idx]` runs the eager
    teacher on transfer examples `idx` -> [len(idx), num_labels]."""

    def __init__(self, ts: TransferSet, model, tokenizer, max_seq_length: int,
                 mask: str = "mask"):
        self.ts, self.tokenizer, self.max_seq_length = ts, tokenizer, max_seq_length
        self.pieces = word_pieces(tokenizer, ts.table, MASK, mask)
        self.run = eager_runner(model)

    def __getitem__(self, idx: np.ndarray) -> np.ndarray:
        data = encode_pieces(self.tokenizer, self.ts.examples(idx), self.pieces,
                             self.max_seq_length)
        return self.run(collate_teacher(data, np.arange(len(idx)), self.tokenizer.pad_token_id))


def teacher_sources(k: DistillArgs, t: TrainArgs, task_name: str, cache_dir: str
                    ) -> list[Source]:
    """The sources the flags name: --teacher_logits, or --teacher_path's BERT teachers and
    student runs (its one teacher run on every batch with --online_teacher). Without either
    flag, the task's teacher where teacher.py saves it, set in k.teacher_path so that the
    run's config names it."""
    if k.teacher_logits:
        return [LogitsFile(k.teacher_logits)]
    k.teacher_path = k.teacher_path or [os.path.join(TEACHER_ROOT, task_name)]
    if k.online_teacher:
        return [OnlineTeacher(k.teacher_path[0], k.model_name, k.teacher_max_seq_length,
                              k.teacher_mask)]
    return [StudentRun(path, t.num_threads) if is_student_run(path) else
            BertTeacher(path, k.model_name, k.teacher_max_seq_length, k.teacher_batch_size,
                        cache_dir, t.device, t.num_threads, k.label_precision,
                        k.label_chunk_size, k.teacher_mask)
            for path in k.teacher_path]


# ------------------------------------------------------------------- the cache


def label_transfer_set(sources: Sequence[Source], ts: TransferSet, ts_key: str,
                       num_labels: int, cache_dir: str) -> np.ndarray | OnlineLogits:
    """[len(ts), num_labels] teacher logits: each source's, cached (`cached_logits`); several
    sources: Hinton et al.'s ensemble, the mean of their logits."""
    def one(source: Source) -> np.ndarray | OnlineLogits:
        return cached_logits(source, ts, ts_key, num_labels, cache_dir)

    logits = [one(s) if s.parallel else main_first(lambda: one(s)) for s in sources]
    return logits[0] if len(logits) == 1 else np.mean(logits, axis=0)


def copies_keep_label(logits: np.ndarray, source: np.ndarray, original: np.ndarray
                      ) -> np.ndarray:
    """Per class c, the share of the augmented copies of originals the teacher labels c that
    it labels c too (nan: no such copies). A class far under the others is one the
    augmentation talks the teacher out of (on AG News, [MASK] itself: --teacher_mask unk)."""
    pred = logits.argmax(axis=1)
    of_source = np.full(int(source.max()) + 1, -1)
    of_source[source[original]] = pred[original]
    base = of_source[source[~original]]
    kept = (pred[~original] == base)[base >= 0]
    base = base[base >= 0]
    k = logits.shape[1]
    with np.errstate(invalid="ignore"):
        return np.bincount(base, weights=kept, minlength=k) / np.bincount(base, minlength=k)


def teacher_dev_scores(sources: Sequence[Source], words: list[tuple[list[str], ...]],
                       labels: Sequence[int], metrics: Sequence[str], num_labels: int,
                       cache_dir: str) -> dict | None:
    """The teacher's dev scores as it labels the transfer set (the same words, path and, for
    several sources, mean logits): the ceiling the student is trained towards, also when the
    teacher is an ensemble with no run of its own. None for logits made outside this
    project (--teacher_logits) or online."""
    if any(isinstance(s, (LogitsFile, OnlineTeacher)) for s in sources):
        return None
    ts = texts_transfer_set(words)  # cached apart (cache_dir/dev) from the transfer set's
    logits = label_transfer_set(sources, ts, content_hash({"dev": content_hash(words)})[:16],
                                num_labels, os.path.join(cache_dir, "dev"))
    return classification_metrics(logits.argmax(axis=1), labels, metrics)


def logits_folder(cache_dir: str, key: str) -> str:
    """Where the logits of cache key `key` are kept: the one place the folder is named."""
    return os.path.join(cache_dir, f"logits-{key}")


def cached_logits(source: Source, ts: TransferSet, ts_key: str, num_labels: int,
                  cache_dir: str) -> np.ndarray | OnlineLogits:
    """The source's logits from its cache folder when its meta.json vouches for them;
    otherwise labelled, then cached (by the main process), then the chunk files of a
    resumable labelling removed."""
    key = source.key(ts_key)
    if key is None:
        return source.label(ts, ts_key, num_labels, None)[0]
    folder = logits_folder(cache_dir, key)
    logits = read_cached_logits(folder, (len(ts), num_labels))
    if logits is None:
        logits, meta = source.label(ts, ts_key, num_labels, folder)
        if is_main():
            write_cached_logits(folder, logits, meta)
            for chunk in glob.glob(os.path.join(folder, "chunk-*.npy")):
                os.remove(chunk)
    return logits


def label_in_chunks(folder: str, order: np.ndarray, chunk_size: int, num_labels: int,
                    label_chunk: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """[len(order), num_labels] logits, labelled by label_chunk(idx) `chunk_size` examples
    at a time in `order`, each chunk saved atomically in `folder` (chunk-00000.npy, ...)
    so that a rerun labels only the chunks not yet saved."""
    chunks = [order[i:i + chunk_size] for i in range(0, len(order), chunk_size)]
    paths = [os.path.join(folder, f"chunk-{c:05d}.npy") for c in range(len(chunks))]
    os.makedirs(folder, exist_ok=True)
    # Data-parallel ranks label every world_size-th chunk; a chunk's logits do not depend on
    # which rank computed it, so the merged cache is the one a single process writes.
    mine = range(rank(), len(chunks), world_size())
    t0, done = time.perf_counter(), 0
    left = sum(len(chunks[c]) for c in mine)
    for c in mine:
        if _load_chunk(paths[c], (len(chunks[c]), num_labels)) is None:
            atomic_save_npy(paths[c], label_chunk(chunks[c]))
            fault_point("chunk labelled")
            done += len(chunks[c])
            elapsed = time.perf_counter() - t0
            logger.info("labelled chunk %d/%d | %.0f ex/s | ETA %s", c + 1, len(chunks),
                        done / elapsed, format_seconds((left - done) * elapsed / done))
        else:
            left -= len(chunks[c])
    barrier()
    logits = np.zeros((len(order), num_labels), dtype=np.float32)
    for c, idx in enumerate(chunks):
        part = _load_chunk(paths[c], (len(idx), num_labels))
        if part is None:
            raise RunError(f"{paths[c]}: missing after labelling (was the cache folder removed "
                           f"while labelling?)")
        logits[idx] = part
    barrier()  # every rank has its logits before the main process removes the chunks
    return logits


def read_cached_logits(folder: str, shape: tuple[int, int]) -> np.ndarray | None:
    """A logits cache folder's logits.npy, if its meta.json vouches for it (same bytes)."""
    final, meta_path = os.path.join(folder, "logits.npy"), os.path.join(folder, "meta.json")
    meta = read_verified_json(meta_path)
    if meta is None or not os.path.exists(final):
        return None
    logits = np.load(final)
    if logits.shape == shape and \
            hashlib.sha256(logits.tobytes()).hexdigest() == meta["logits_sha256"]:
        logger.info("teacher logits: cached %s", final)
        return logits
    logger.warning("%s: does not match %s; labelling again", final, meta_path)
    return None


def write_cached_logits(folder: str, logits: np.ndarray, meta: dict) -> None:
    """logits.npy, then meta.json (with its checksum) last: its presence marks a whole cache."""
    os.makedirs(folder, exist_ok=True)
    atomic_save_npy(os.path.join(folder, "logits.npy"), logits)
    write_verified_json(os.path.join(folder, "meta.json"), {
        **meta, "examples": len(logits),
        "logits_sha256": hashlib.sha256(logits.tobytes()).hexdigest()})


def read_teacher_logits(path: str, n: int, num_labels: int) -> np.ndarray:
    """[n, num_labels] logits from a file computed outside this project for the texts
    --export_transfer_set wrote: JSONL (`{"id": 7, "logits": [0.1, -0.2]}` per line) or
    TSV (`7<TAB>0.1<TAB>-0.2`, an `id` header line allowed), one row per transfer example.
    Every problem names the file and line."""
    logits = np.zeros((n, num_labels), dtype=np.float32)
    line_of = np.zeros(n, dtype=np.int64)  # where each id was given (0: not yet)
    jsonl = None
    with open(path, "rb") as f:
        for lineno, line in decoded_lines(f, path):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            if jsonl is None:
                jsonl = line.lstrip().startswith("{")
                if not jsonl and line.split("\t")[0].strip() == "id":
                    continue  # TSV header
            if jsonl:
                try:
                    row = json.loads(line)
                    i, values = row["id"], row["logits"]
                except (json.JSONDecodeError, TypeError, KeyError):
                    raise DataError(f'{where}: expected {{"id": <int>, "logits": [<float>, ...]}}, '
                                    f"got {line[:80]!r}") from None
            else:
                i, *values = line.split("\t")
            try:
                i = int(i)
                values = np.asarray(values, dtype=np.float32)
            except (ValueError, TypeError):
                raise DataError(f"{where}: expected an integer id and numbers, "
                                f"got {line[:80]!r}") from None
            if values.shape != (num_labels,):
                raise DataError(f"{where}: {values.size} logits, expected {num_labels} (one per "
                                f"label of the task)")
            if not np.isfinite(values).all():
                raise DataError(f"{where}: logits must be finite numbers, got {values.tolist()}")
            if not 0 <= i < n:
                raise DataError(f"{where}: id {i} is not a transfer example (ids 0..{n - 1}); "
                                f"was the file made for another transfer set?")
            if line_of[i]:
                raise DataError(f"{where}: id {i} again (first on line {line_of[i]})")
            logits[i], line_of[i] = values, lineno
    missing = np.flatnonzero(line_of == 0)
    if len(missing):
        raise DataError(f"{path}: no logits for {len(missing)} of {n} transfer examples (ids "
                        f"{', '.join(map(str, missing[:5]))}{', ...' if len(missing) > 5 else ''})")
    return logits


def _load_chunk(path: str, shape: tuple[int, int]) -> np.ndarray | None:
    if not os.path.exists(path):
        return None
    try:
        part = np.load(path)
        if part.shape == shape and np.isfinite(part).all():
            return part
    except ValueError:
        pass
    logger.warning("%s: corrupt chunk; labelling it again", path)
    return None
