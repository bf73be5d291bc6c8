"""The student's life cycle: built (with pretrained word vectors), trained by the shared
loop, saved, loaded back from a run or an export, exported, and fed text as ids.

The networks (BiLSTM, CNN) are in model.py. `load_student` is the one place a student is
rebuilt from a run directory (its best checkpoint) or an export (Paddle Inference or ONNX
Runtime); training, export, prediction and the benchmarks all go through it.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import paddle

from args import Config
from augment import TransferSet, student_view
from data import (TASKS, TOKENIZERS, UNK, Encoded, LineError, Task, TaskData, Vocab, collate, encode,
                  iterate, make_batches, pad)
from engines import OnnxPredictor, Predictor, eager_runner, export_static
from losses import LossFn
from model import Student, StudentConfig, make_student
from onnx_graph import student_graph
from runs import BEST, EXPORT_INFO, LAST, MODEL_STATE, VOCAB, RunError, model_kind, read_json
from teachers import read_cached_logits, write_cached_logits
from trainer import build_optimizer, fit, load_checkpoint, total_steps
from utils import (atomic_save, atomic_write, atomic_write_json, content_hash, count_parameters,
                   is_main, set_seed, sha256_file)
from vectors import load_embedding_matrix

logger = logging.getLogger(__name__)

Runner = Callable[[dict], np.ndarray]  # a named batch of int64 arrays -> logits


def student_inputs(pair: bool) -> dict[str, int]:
    """The student's named inputs and their ranks, in the order forward() takes them."""
    names = {"input_ids": 2, "lengths": 1}
    return {**names, "input_ids_b": 2, "lengths_b": 1} if pair else names


def student_forward(model: Student, batch: dict) -> paddle.Tensor:
    return model(*[batch.get(name) for name in student_inputs(True)])


# ----------------------------------------------------------------------- building


def build_student(cfg: Config, task: Task, vocab: Vocab) -> Student:
    """A new student with pretrained word vectors when given."""
    s, d = cfg.student, cfg.data
    has_vectors = bool(d.embedding_path or d.embedding_name)
    matrix = load_embedding_matrix(vocab, np.random.default_rng(cfg.train.seed), d.embedding_path,
                                   d.embedding_name, s.emb_dim if has_vectors else s.emb_dim or 300)
    config = StudentConfig(vocab_size=len(vocab), num_labels=task.num_labels,
                           emb_dim=matrix.shape[1], hidden_size=s.hidden_size, fc_size=s.fc_size,
                           num_layers=s.num_layers, dropout=s.dropout, pair=task.is_pair,
                           kind=s.student, filter_sizes=s.filter_sizes,
                           num_filters=s.num_filters)
    model = make_student(config, matrix, s.freeze_embedding)
    n_emb = config.vocab_size * config.emb_dim
    logger.info("student (%s): %s parameters (embedding %s, other %s)", config.kind,
                f"{count_parameters(model):,}",
                f"{n_emb:,}", f"{count_parameters(model) - n_emb:,}")
    return model


def student_from_checkpoint(path: str) -> tuple[Student, dict]:
    """(the student with the weights of checkpoint `path`, in eval mode; the checkpoint)."""
    ckpt = load_checkpoint(path)
    model = make_student(StudentConfig(**ckpt["model_config"]))
    model.set_state_dict(ckpt["model"])
    model.eval()
    return model, ckpt


def save_vocab(out: str, vocab: Vocab, resume: bool) -> None:
    """The vocabulary is saved with the run; a resumed run must rebuild the same one."""
    path = os.path.join(out, VOCAB)
    if resume and os.path.exists(path) and Vocab.load(path).tokens != vocab.tokens:
        raise RunError(f"--resume: the vocabulary built now differs from {path}; the training "
                       f"data changed since the run started")
    if is_main():
        vocab.save(path)


def prepare_student(cfg: Config, data: TaskData, vocab: Vocab, resume: bool) -> Student:
    """The student a run trains: new, or rebuilt from last.ckpt when it resumes; its
    vocabulary saved beside it. Seeded here, so its initial weights depend on --seed alone,
    not on what ran before (loading a teacher draws random numbers)."""
    out = cfg.train.output_dir
    set_seed(cfg.train.seed)
    model = student_from_checkpoint(os.path.join(out, LAST))[0] if resume else \
        build_student(cfg, data.task, vocab)
    save_vocab(out, vocab, resume)
    return model


# ----------------------------------------------------------------------- training


def train_student(cfg: Config, data: TaskData, vocab: Vocab, model: Student,
                  train_set: Encoded, loss_fn: LossFn, resume: bool,
                  extra: dict[str, np.ndarray] | None = None,
                  batch_extra: Callable[[np.ndarray], dict] | None = None,
                  results_extra: dict | None = None,
                  finish: Callable[[dict], None] | None = None) -> dict:
    """The shared loop over `train_set` (the training split, or a transfer set whose
    per-example arrays such as teacher logits come in `extra`, or are computed per batch
    of indices by `batch_extra`)."""
    t = cfg.train
    dev = encode(data.dev_words, vocab, [e.label for e in data.dev])
    dev_batches = list(iterate(dev, make_batches(dev.lengths(), t.eval_batch_size, None)))
    lengths = train_set.lengths()

    def epoch_batches(epoch: int) -> list[np.ndarray]:
        rng = np.random.default_rng([t.seed, epoch])
        return make_batches(lengths, t.batch_size, rng, bucket=not t.no_bucketing)

    optimizer, scheduler = build_optimizer(t, model, total_steps(t, len(epoch_batches(0))))
    checkpoint_extra = {"model_config": model.config.to_dict(), "vocab": vocab.tokens,
                        "config": cfg.to_dict()}
    results_extra = {"task": data.task.name, "num_params": count_parameters(model),
                     "vocab_size": len(vocab), "train_examples": len(train_set),
                     "dev_examples": len(dev), **(results_extra or {})}

    def collate_batch(idx: np.ndarray) -> dict:
        batch = collate(train_set, idx, extra)
        return {**batch, **batch_extra(idx)} if batch_extra else batch

    def save_best(results: dict) -> None:
        # The best weights alone, as PaddleNLP saves models (checkpoints also hold the
        # optimizer), then whatever the caller adds.
        atomic_save(load_checkpoint(os.path.join(t.output_dir, BEST))["model"],
                    os.path.join(t.output_dir, MODEL_STATE))
        if finish is not None:
            finish(results)

    return fit(model, optimizer, t, epoch_batches=epoch_batches, collate=collate_batch,
               dev_batches=dev_batches, forward=student_forward, loss_fn=loss_fn,
               metric_names=data.task.metrics, resume=resume, scheduler=scheduler,
               checkpoint_extra=checkpoint_extra, results_extra=results_extra,
               finish=save_best)


# ------------------------------------------------------------------- text -> ids


def text_encoder(vocab: Vocab, language: str, max_len: int) -> Callable[[tuple[str, ...]], dict]:
    """One example's texts -> {"ids": [ids per text]}: the tokenization and truncation of
    training."""
    tok = TOKENIZERS[language]

    def encode_texts(texts: tuple[str, ...]) -> dict:
        words = [tok(t)[:max_len] for t in texts]
        if any(not w for w in words):
            raise LineError("no words after tokenization")
        return {"ids": [vocab.encode(w) for w in words]}

    return encode_texts


def collate_ids(items: list[dict]) -> dict:
    """Encoded examples -> the student's named, padded inputs (both texts of a pair padded
    to one width, as in training)."""
    k = len(items[0]["ids"])
    width = max(len(x) for it in items for x in it["ids"])
    out = {}
    for j, suffix in enumerate(("", "_b")[:k]):
        out["input_ids" + suffix], out["lengths" + suffix] = pad([it["ids"][j] for it in items], width)
    return out


# ------------------------------------------------------------------------ ONNX graph

ONNX_FILE = "model.onnx"
INT8_ONNX_FILE = "model.int8.onnx"
ONNX_FILES = {"onnxruntime": ONNX_FILE, "onnxruntime-int8": INT8_ONNX_FILE}


def export_student_onnx(model: Student, path: str) -> None:
    """The student's ONNX graph (onnx_graph.student_graph), written atomically."""
    import onnx  # here: training never needs it

    graph = student_graph(model)
    atomic_write(path, lambda tmp: onnx.save(graph, tmp))


def quantize_student_onnx(src: str, dst: str) -> None:
    """The fp32 ONNX graph with int8 weights in the LSTM and the matmuls (ONNX Runtime's
    dynamic quantization: weights quantized once, activations per call). The embedding
    lookup stays fp32: quantizing it adds a dequantization per call and was slower here."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    atomic_write(dst, lambda tmp: quantize_dynamic(src, tmp, weight_type=QuantType.QInt8,
                                                   op_types_to_quantize=["LSTM", "MatMul"]))


# -------------------------------------------------------------- export and loading


def export_student(run_dir: str, out: str, int8: bool = False) -> dict:
    """The best checkpoint of a student run -> `out`: static graph, ONNX graph (and its int8
    version with `int8`), vocabulary and export.json (written last: it marks a whole
    export). Returns export.json's content."""
    model, ckpt = student_from_checkpoint(os.path.join(run_dir, BEST))
    config, data = model.config, ckpt["config"]["data"]
    export_static(model, student_inputs(config.pair), os.path.join(out, "model"))
    export_student_onnx(model, os.path.join(out, ONNX_FILE))
    if int8:
        quantize_student_onnx(os.path.join(out, ONNX_FILE), os.path.join(out, INT8_ONNX_FILE))
    Vocab(ckpt["vocab"]).save(os.path.join(out, VOCAB))
    info = {"kind": "student", "task": data["task_name"],
            "language": TASKS[data["task_name"]].language,
            "max_seq_length": data["max_seq_length"], "num_labels": config.num_labels,
            "pair": config.pair, "int8": int8,
            "source": os.path.abspath(run_dir)}
    atomic_write_json(os.path.join(out, EXPORT_INFO), info)
    return info


@dataclass
class LoadedStudent:
    """A student ready to predict: `encode` turns one example's texts into ids, `collate`
    a list of them into a batch, `run` a batch into logits. `model` is the eager network
    (None for an export)."""

    info: dict  # task, language, max_seq_length, num_labels, pair
    encode: Callable[[tuple[str, ...]], dict]
    collate: Callable[[list[dict]], dict]
    run: Runner
    model: Student | None = None


def read_export_info(path: str) -> dict:
    """export.json of an export folder; a damaged one is an error naming it."""
    file = os.path.join(path, EXPORT_INFO)
    try:
        info = read_json(file)
    except RunError:
        info = {}
    if info.get("kind") not in ("student", "teacher"):
        raise RunError(f"{file}: not an export.json written by export.py; run export.py again")
    return info


def check_export(path: str, files: list[str]) -> None:
    missing = [f for f in files if not os.path.exists(os.path.join(path, f))]
    if missing:
        raise RunError(f"{path}: incomplete export, {', '.join(missing)} missing; run "
                       f"export.py again")


def load_student(path: str, device: str = "cpu", num_threads: int | None = None,
                 backend: str = "paddle") -> LoadedStudent:
    """A student run directory (its best checkpoint, eager) or a student export (Paddle
    Inference, or ONNX Runtime with backend 'onnxruntime' or 'onnxruntime-int8', on the
    CPU)."""
    if model_kind(path) == "export":
        info = read_export_info(path)
        if info["kind"] != "student":
            raise RunError(f"{path}: a {info['kind']} export, not a student")
        if backend in ONNX_FILES:
            if device != "cpu":
                raise RunError(f"{path}: --backend {backend} runs students on the CPU; use "
                               f"--backend paddle on {device}")
            if backend == "onnxruntime-int8" and not info.get("int8"):
                raise RunError(f"{path}: no int8 model in this export; export it with "
                               f"export.py --int8")
            check_export(path, [ONNX_FILES[backend]])
            run: Runner = OnnxPredictor(os.path.join(path, ONNX_FILES[backend]), num_threads)
        else:
            check_export(path, ["model.json", "model.pdiparams"])
            run = Predictor(os.path.join(path, "model"), device, num_threads)
        vocab, model = Vocab.load(os.path.join(path, VOCAB)), None
    else:
        model, ckpt = student_from_checkpoint(os.path.join(path, BEST))
        data = ckpt["config"]["data"]
        info = {"kind": "student", "task": data["task_name"], "pair": model.config.pair,
                "language": TASKS[data["task_name"]].language,
                "max_seq_length": data["max_seq_length"], "num_labels": model.config.num_labels}
        vocab = Vocab(ckpt["vocab"])
        run = eager_runner(model, list(student_inputs(model.config.pair)))
    return LoadedStudent(info, text_encoder(vocab, info["language"], info["max_seq_length"]),
                         collate_ids, run, model)


# ------------------------------------------------------------ students as teachers


def label_with_student(ts: TransferSet, ts_key: str, run_dir: str, num_labels: int,
                       cache_dir: str, num_threads: int | None = None,
                       batch_size: int = 512) -> np.ndarray:
    """[len(ts), num_labels] logits of a trained student run as a teacher (e.g. several,
    ensembled, where no BERT is at hand), [MASK] read as [UNK]; through ONNX Runtime, and
    cached like a BERT teacher's, keyed by the run's best checkpoint and the transfer set."""
    ckpt = os.path.join(run_dir, BEST)
    w_hash = sha256_file(ckpt)[:16]
    folder = os.path.join(cache_dir, f"logits-{content_hash({'student': w_hash, 'transfer': ts_key})[:16]}")
    logits = read_cached_logits(folder, (len(ts), num_labels))
    if logits is not None:
        return logits
    model, state = student_from_checkpoint(ckpt)
    if model.config.num_labels != num_labels or model.config.pair != (len(ts.ids) == 2):
        raise RunError(f"--teacher_path {run_dir}: a student of another task ("
                       f"{state['config']['data']['task_name']})")
    onnx_file = os.path.join(folder, ONNX_FILE)
    export_student_onnx(model, onnx_file)
    run = OnnxPredictor(onnx_file, num_threads)
    data = student_view(ts, Vocab(state["vocab"]), UNK, None)
    logits = np.zeros((len(ts), num_labels), dtype=np.float32)
    t0 = time.perf_counter()
    for idx in make_batches(data.lengths(), batch_size, None):
        logits[idx] = run(collate(data, idx))
    logger.info("student teacher %s labelled %d examples in %.1fs", run_dir, len(ts),
                time.perf_counter() - t0)
    write_cached_logits(folder, logits, {"student_run": os.path.abspath(run_dir),
                                         "student_sha256": w_hash, "transfer_set": ts_key})
    return logits
