"""Distils the fine-tuned BERT teacher into the BiLSTM student (Tang et al. 2019).

Three steps with files between them, each reused when its output exists:
  1. transfer set: the training set plus n_iter augmented copies of every example
     (masking, POS-guided replacement, n-gram and sentence sampling), hashed and cached;
  2. teacher logits for every transfer example, computed once by the exported teacher
     (Paddle Inference) and cached in chunks, so interrupted labelling resumes;
  3. the student (the same model and loop as small.py) trained to match the logits.

    python bert_distill.py --task_name sst-2 --data_dir ../shared/data/sst2 \
        --teacher_path ../shared/models/minilm-sst2 \
        --embedding_path ../shared/data/embeddings/glove.6B.50d.sst2.txt
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from typing import Callable, Sequence

import numpy as np
import paddle
import paddle.nn.functional as F

from args import Config, parse_config
from data import (MASK, TASKS, AugmentConfig, DataError, TransferSet, build_transfer_set,
                  encode, pos_tags)
from inference import Predictor, export_static, is_exported
from small import build_student, load_data, make_vocab, save_vocab, train_student
from teacher import (INPUTS, TEACHER_ROOT, TeacherEncoded, TeacherError, collate_teacher,
                     eager_runner, encode_words_for_teacher, load_teacher, teacher_logits)
from trainer import CONFIG, RESULTS, LossFn, RunError, prepare_run, start_run
from utils import (atomic_save_npy, atomic_write_json, barrier, format_seconds, is_main,
                   main_first, rank, run_cli, world_size)

logger = logging.getLogger(__name__)


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def content_hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, ensure_ascii=False).encode("utf-8")).hexdigest()


def _read_verified_json(path: str) -> dict | None:
    """A cache file {"sha256": ..., "payload": ...} whose payload matches its hash, else None
    (a corrupt or foreign file is reported and rebuilt, never used)."""
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            obj = json.load(f)
        if obj["sha256"] == content_hash(obj["payload"]):
            return obj["payload"]
    except (ValueError, KeyError, TypeError):
        pass
    logger.warning("%s: corrupt cache file (content hash mismatch); rebuilding it", path)
    return None


def _write_verified_json(path: str, payload) -> None:
    atomic_write_json(path, {"sha256": content_hash(payload), "payload": payload})


# ------------------------------------------------------------------- step 1: transfer set


def cached_pos_tags(words: list[tuple[list[str], ...]], language: str, cache_dir: str
                    ) -> list[tuple[list[str], ...]]:
    """Tags of every training text, computed once per training set and cached."""
    path = os.path.join(cache_dir, f"pos-{language}-{content_hash(words)[:16]}.json")
    tags = _read_verified_json(path)
    if tags is None:
        t0 = time.perf_counter()
        flat = pos_tags([w for ex in words for w in ex], language)
        k = len(words[0])
        tags = [flat[i:i + k] for i in range(0, len(flat), k)]
        _write_verified_json(path, tags)
        logger.info("part-of-speech tags of %d texts in %.1fs -> %s", len(flat),
                    time.perf_counter() - t0, path)
    return [tuple(t) for t in tags]


def cached_transfer_set(words: list[tuple[list[str], ...]], language: str, aug: AugmentConfig,
                        seed: int, cache_dir: str) -> tuple[TransferSet, str]:
    """(transfer set, its content hash): built once, then read back from cache_dir."""
    key = content_hash({"words": content_hash(words), "aug": aug.__dict__, "seed": seed})[:16]
    path = os.path.join(cache_dir, f"transfer-{key}.json")
    payload = _read_verified_json(path)
    if payload is None:
        t0 = time.perf_counter()
        tags = cached_pos_tags(words, language, cache_dir) if aug.p_pos > 0 else None
        ts = build_transfer_set(words, tags, aug, seed)
        payload = {"words": ts.words, "source": ts.source.tolist(),
                   "original": ts.original.tolist()}
        _write_verified_json(path, payload)
        logger.info("transfer set built in %.1fs -> %s", time.perf_counter() - t0, path)
    ts = TransferSet([tuple(w) for w in payload["words"]], np.asarray(payload["source"]),
                     np.asarray(payload["original"], dtype=bool))
    logger.info("transfer set: %d examples from %d training examples (n_iter %d; %d "
                "duplicates dropped)", len(ts), len(words), aug.n_iter,
                len(words) * (aug.n_iter + 1) - len(ts))
    return ts, key


# ------------------------------------------------------------------ step 2: teacher logits


def label_transfer_set(ts: TransferSet, ts_key: str, teacher_path: str,
                       model_name: str | None, num_labels: int, max_seq_length: int,
                       batch_size: int, cache_dir: str, device: str,
                       num_threads: int | None, precision: str = "fp32",
                       chunk_size: int = 16384) -> np.ndarray:
    """[len(ts), num_labels] teacher logits, from cache when the key (teacher weights,
    transfer set, teacher max length, precision) matches; otherwise computed in length-sorted chunks
    by the exported teacher, each chunk saved atomically so a rerun resumes.

    The teacher reads the transfer set's words with its own tokenizer, [MASK] as its own
    mask token: never our ids, and never word pieces fed back as words."""
    model, tokenizer = load_teacher(teacher_path, num_labels, model_name)
    weights = teacher_path if os.path.isfile(teacher_path) else \
        os.path.join(teacher_path, "model_state.pdparams")
    w_hash = sha256_file(weights)[:16]
    key = content_hash({"teacher": w_hash, "transfer": ts_key, "max_len": max_seq_length,
                        **({"precision": precision} if precision != "fp32" else {})})[:16]
    folder = os.path.join(cache_dir, f"logits-{key}")
    final = os.path.join(folder, "logits.npy")
    meta_path = os.path.join(folder, "meta.json")
    meta = _read_verified_json(meta_path)
    if meta is not None and os.path.exists(final):
        logits = np.load(final)
        if logits.shape == (len(ts), num_labels) and hashlib.sha256(logits.tobytes()).hexdigest() == meta["logits_sha256"]:
            logger.info("teacher logits: cached %s", final)
            return logits
        logger.warning("%s: does not match %s; labelling again", final, meta_path)

    t0 = time.perf_counter()
    data = encode_words_for_teacher(tokenizer, ts.words, max_seq_length, MASK)
    logger.info("teacher inputs: %d examples tokenized in %.1fs (mean %.1f tokens)", len(data),
                time.perf_counter() - t0, data.lengths().mean())
    prefix = os.path.join(cache_dir, f"teacher-{w_hash}", "model")

    def export() -> None:
        if not is_exported(prefix):
            os.makedirs(os.path.dirname(prefix), exist_ok=True)
            export_static(model, INPUTS, prefix)
    main_first(export)
    run = Predictor(prefix, device, num_threads, precision)
    order = np.argsort(data.lengths(), kind="stable")
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
            atomic_save_npy(paths[c], teacher_logits(run, _subset(data, idx), batch_size,
                                                     tokenizer.pad_token_id))
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
        atomic_save_npy(final, logits)
        _write_verified_json(meta_path, {
            "teacher_weights": weights, "teacher_sha256": w_hash, "transfer_set": ts_key,
            "max_seq_length": max_seq_length, "precision": precision, "examples": len(ts),
            "logits_sha256": hashlib.sha256(logits.tobytes()).hexdigest()})
        for path in paths:
            os.remove(path)
    return logits


def _subset(data: TeacherEncoded, idx: np.ndarray) -> TeacherEncoded:
    return TeacherEncoded([data.input_ids[i] for i in idx], [data.token_type_ids[i] for i in idx],
                          None)


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


# ------------------------------------------------------------------------ step 3: losses


def mse(student: paddle.Tensor, teacher: paddle.Tensor, temperature: float) -> paddle.Tensor:
    """Tang et al.: mean squared error between logits (temperature unused)."""
    return F.mse_loss(student, teacher)


def soft_ce(student: paddle.Tensor, teacher: paddle.Tensor, temperature: float) -> paddle.Tensor:
    """Hinton et al.: T^2 * cross-entropy between softmax(teacher/T) and softmax(student/T)."""
    p = F.softmax(teacher / temperature, axis=-1)
    return -(p * F.log_softmax(student / temperature, axis=-1)).sum(axis=-1).mean() * temperature ** 2


KD_LOSSES: dict[str, Callable] = {"mse": mse, "soft_ce": soft_ce}


def distill_loss(kind: str, alpha: float, temperature: float) -> LossFn:
    """alpha * CE(gold labels, originals only) + (1 - alpha) * KD(teacher logits)."""
    kd_fn = KD_LOSSES[kind]

    def loss(logits: paddle.Tensor, batch: dict) -> paddle.Tensor:
        kd = kd_fn(logits, batch["teacher_logits"], temperature)
        if alpha == 0:
            return kd
        ce = F.cross_entropy(logits, batch["labels"], reduction="none").reshape([-1])
        mask = batch["original"].astype("float32")
        ce = (ce * mask).sum() / paddle.clip(mask.sum(), min=1.0)
        return alpha * ce + (1 - alpha) * kd

    return loss


# --------------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> dict:
    cfg = parse_config("bert_distill", ["data", "student", "distill", "train"], argv, __doc__)
    k, t = cfg.distill, cfg.train
    task = TASKS[cfg.data.task_name]
    if k.teacher_path is None:
        k.teacher_path = os.path.join(TEACHER_ROOT, task.name)
    if k.n_iter is None:
        k.n_iter = 10 if task.is_pair else 20  # the paper's choices
    resume = prepare_run(cfg.to_dict(), t, cfg.script)
    data = load_data(cfg)
    cache_dir = k.cache_dir or os.path.join(t.output_dir, "cache")
    aug = AugmentConfig(k.n_iter, k.p_mask, k.p_pos, k.p_ng, k.max_ng, k.p_sent)
    t0 = time.perf_counter()
    ts, ts_key = main_first(lambda: cached_transfer_set(data.train_words, task.language, aug,
                                                        t.seed, cache_dir))
    # Wall time this invocation spent on each step (near 0 when read from the cache).
    seconds = {"transfer_set": round(time.perf_counter() - t0, 1)}
    labels = np.asarray([data.train[i].label for i in ts.source], dtype=np.int64)
    extra = {"original": ts.original}
    batch_extra: Callable[[np.ndarray], dict] | None = None
    if k.online_teacher:  # PaddleNLP's way, kept only to measure what caching saves
        model_t, tok = load_teacher(k.teacher_path, task.num_labels, k.model_name)
        inputs = encode_words_for_teacher(tok, ts.words, k.teacher_max_seq_length, MASK)
        run = eager_runner(model_t)

        def online_logits(idx: np.ndarray) -> dict:
            return {"teacher_logits": run(collate_teacher(inputs, idx, tok.pad_token_id))}
        batch_extra = online_logits
    else:
        t0 = time.perf_counter()
        extra["teacher_logits"] = label_transfer_set(
            ts, ts_key, k.teacher_path, k.model_name, task.num_labels,
            k.teacher_max_seq_length, k.teacher_batch_size, cache_dir, t.device, t.num_threads,
            k.label_precision, k.label_chunk_size)
        seconds["labelling"] = round(time.perf_counter() - t0, 1)
        logger.info("teacher logits ready in %.1fs", seconds["labelling"])
    vocab = make_vocab(cfg, data)
    results_extra = {"teacher_path": k.teacher_path, "transfer_examples": len(ts),
                     "n_iter": k.n_iter, "online_teacher": k.online_teacher,
                     "seconds": seconds}
    if k.baseline_dir:
        results_extra["baseline"] = baseline_gain(k.baseline_dir, cfg)

    def report_gain(results: dict) -> None:
        base, metric = results["baseline"], task.metrics[0]
        base["gain"] = results["dev"][metric] - base["dev"][metric]
        logger.info("distilled %s %.4f vs baseline %.4f (%s): %+.2f points", metric,
                    results["dev"][metric], base["dev"][metric], k.baseline_dir,
                    100 * base["gain"])

    with paddle.utils.unique_name.guard():
        model = build_student(cfg, task, vocab, resume)
        start_run(cfg.to_dict(), t)
        save_vocab(cfg, vocab, resume)
        train_set = encode(ts.words, vocab, labels)
        return train_student(cfg, data, vocab, model, train_set,
                             distill_loss(k.kd_loss, k.alpha, k.temperature), resume,
                             extra=extra, batch_extra=batch_extra, results_extra=results_extra,
                             finish=report_gain if k.baseline_dir else None)


def baseline_gain(baseline_dir: str, cfg: Config) -> dict:
    """The small.py run to compare against; warns when it differs in what should match."""
    files = {f: os.path.join(baseline_dir, f) for f in (RESULTS, CONFIG)}
    for f, path in files.items():
        if not os.path.exists(path):
            raise RunError(f"--baseline_dir {baseline_dir}: no {f} (not a finished small.py "
                           f"run)")
    with open(files[RESULTS], encoding="utf-8") as f:
        base = json.load(f)
    with open(files[CONFIG], encoding="utf-8") as f:
        base_cfg = json.load(f)
    ours = cfg.to_dict()
    diffs = [f"{g}.{name}" for g in ("student", "data") for name, v in ours[g].items()
             if name not in ("max_train_samples",) and base_cfg.get(g, {}).get(name) != v]
    if base_cfg["train"]["seed"] != ours["train"]["seed"]:
        diffs.append("train.seed")
    if diffs:
        logger.warning("--baseline_dir %s differs from this run in %s", baseline_dir,
                       ", ".join(diffs))
    return {"dir": baseline_dir, "dev": base["dev"], "differs_in": diffs}


if __name__ == "__main__":
    run_cli(main, (DataError, RunError, TeacherError))
