"""The student's life cycle: built (with pretrained word vectors), trained by the shared
loop, saved, loaded back from a run or an export, exported, and fed text as ids.

The networks (BiLSTM, CNN) are in model.py. `load_student` is the one place a student is
rebuilt from a run directory (its best checkpoint) or an export (Paddle Inference or ONNX
Runtime); training, export, prediction and the benchmarks all go through it.
"""
from __future__ import annotations

import itertools
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
# The BiLSTM's time steps are small sequential matmuls: Paddle's CPU LSTM kernel spends
# most of each step outside the matmul, while ONNX Runtime's fused LSTM runs the same
# student about twice as fast per thread here (bench/inference.py).

ONNX_FILE = "model.onnx"
INT8_ONNX_FILE = "model.int8.onnx"
ONNX_FILES = {"onnxruntime": ONNX_FILE, "onnxruntime-int8": INT8_ONNX_FILE}
_GATES = (0, 3, 1, 2)  # Paddle's LSTM gate blocks are i, f, c, o; ONNX's are i, o, f, c


def export_student_onnx(model: Student, path: str) -> None:
    """Writes the student as an ONNX graph with the same inputs as its static export. Built
    directly from the weights rather than with paddle2onnx, which drops the LSTM's sequence
    lengths (padding would then change the output)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    cfg = model.config
    weights = {k: v.numpy() for k, v in model.state_dict().items()}
    inits, nodes = [], []

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(op: str, inputs: list[str], n_out: int = 1, **attrs) -> list[str]:
        outs = [f"{op.lower()}_{len(nodes)}_{i}" for i in range(n_out)]
        nodes.append(helper.make_node(op, inputs, outs, **attrs))
        return outs

    names = ["input_ids", "lengths"] + (["input_ids_b", "lengths_b"] if cfg.pair else [])
    graph_inputs = [helper.make_tensor_value_info(n, TensorProto.INT64,
                                                  ["batch", "length"] if "ids" in n else ["batch"])
                    for n in names]
    ids, lengths = "input_ids", "lengths"
    if cfg.pair:  # both sentences through the one encoder, as model.forward does
        ids = node("Concat", ["input_ids", "input_ids_b"], axis=0)[0]
        lengths = node("Concat", ["lengths", "lengths_b"], axis=0)[0]
    encoder = _onnx_cnn if cfg.kind == "cnn" else _onnx_bilstm
    h = encoder(cfg, weights, ids, lengths, node, const, TensorProto)
    if cfg.pair:
        h1, h2 = node("Split", [h], 2, axis=0)
        h = node("Concat", [h1, h2, node("Mul", [h1, h2])[0],
                            node("Abs", [node("Sub", [h1, h2])[0]])[0]], axis=-1)[0]
    for layer, act in (("fc", "Relu"), ("classifier", None)):
        h = node("Add", [node("MatMul", [h, const(f"{layer}.w", weights[f"{layer}.weight"])])[0],
                         const(f"{layer}.b", weights[f"{layer}.bias"])])[0]
        if act:
            h = node(act, [h])[0]
    nodes[-1].output[0] = "logits"
    graph = helper.make_graph(nodes, f"{cfg.kind}_student", graph_inputs,
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT,
                                                             ["batch", cfg.num_labels])], inits)
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(onnx_model)
    atomic_write(path, lambda tmp: onnx.save(onnx_model, tmp))


def quantize_student_onnx(src: str, dst: str) -> None:
    """The fp32 ONNX graph with int8 weights in the LSTM and the matmuls (ONNX Runtime's
    dynamic quantization: weights quantized once, activations per call). The embedding
    lookup stays fp32: quantizing it adds a dequantization per call and was slower here."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    atomic_write(dst, lambda tmp: quantize_dynamic(src, tmp, weight_type=QuantType.QInt8,
                                                   op_types_to_quantize=["LSTM", "MatMul"]))


def _onnx_bilstm(cfg, weights, ids, lengths, node, const, TensorProto) -> str:
    """[B, L] ids -> [B, 2H]: ONNX's LSTM, stopped at each length like Paddle's."""
    def gates(w: np.ndarray) -> np.ndarray:  # reorder the 4 gate blocks along axis 0
        return np.concatenate([w[k * cfg.hidden_size:(k + 1) * cfg.hidden_size] for k in _GATES])

    seq_lens = node("Cast", [lengths], to=TensorProto.INT32)[0]
    x = node("Gather", [const("embedding", weights["embedding.weight"]), ids])[0]  # [B, L, E]
    x = node("Transpose", [x], perm=[1, 0, 2])[0]  # [L, B, E]: ONNX LSTMs are time-major
    for layer in range(cfg.num_layers):
        p = [f"lstm.{kind}_l{layer}{sfx}" for sfx in ("", "_reverse")
             for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        w = np.stack([gates(weights[p[0]]), gates(weights[p[4]])])
        r = np.stack([gates(weights[p[1]]), gates(weights[p[5]])])
        b = np.stack([np.concatenate([gates(weights[p[2]]), gates(weights[p[3]])]),
                      np.concatenate([gates(weights[p[6]]), gates(weights[p[7]])])])
        y, y_h, _ = node("LSTM", [x, const(f"W{layer}", w), const(f"R{layer}", r),
                                  const(f"B{layer}", b), seq_lens], 3,
                         direction="bidirectional", hidden_size=cfg.hidden_size)
        # Y [L, 2, B, H] -> the next layer's input [L, B, 2H]
        y = node("Transpose", [y], perm=[0, 2, 1, 3])[0]
        x = node("Reshape", [y, const(f"shape{layer}", np.array([0, 0, -1]))])[0]
    h = node("Transpose", [y_h], perm=[1, 0, 2])[0]  # last layer's final states [B, 2, H]
    return node("Reshape", [h, const("flat", np.array([0, -1]))])[0]  # forward, backward


def _onnx_cnn(cfg, weights, ids, lengths, node, const, TensorProto) -> str:
    """[B, L] ids -> [B, maps x widths], as model.CNNStudent.encode computes it: every
    width in one MatMul over widest-width windows (narrower filters get zero taps). Ids past
    each length, and the (widest - 1) padding, read an extra all-zero embedding row, so no
    float mask is needed on the inputs; a width-w map is maxed over its first
    max(length - w + 1, 1) windows."""
    names = itertools.count()

    def c(value) -> str:  # an int64 constant
        return const(f"cnn_const{next(names)}", np.array(value, np.int64))

    table = weights["embedding.weight"]
    zero_row = len(table)
    steps = node("Gather", [node("Shape", [ids])[0], c(1)])[0]  # L
    pos = node("Unsqueeze", [node("Range", [c(0), steps, c(1)])[0], c([0])])[0]  # [1, L]
    inside = node("Less", [pos, node("Unsqueeze", [lengths, c([1])])[0]])[0]  # [B, L]
    ids = node("Where", [inside, ids, c(zero_row)])[0]
    widest = max(cfg.filter_sizes)
    if widest > 1:
        ids = node("Pad", [ids, c([0, 0, 0, widest - 1]), c(zero_row)])[0]
    # window t, tap k reads word t + k: the windows' ids [B, L, widest], then their vectors
    taps = node("Add", [node("Unsqueeze", [node("Range", [c(0), steps, c(1)])[0], c([1])])[0],
                        c(np.arange(widest)[None, :])])[0]  # [L, widest]
    windows = node("Gather", [const("embedding", np.concatenate(
        [table, np.zeros((1, table.shape[1]), table.dtype)])),
        node("Gather", [ids, taps], axis=1)[0]])[0]  # [B, L, widest, E]
    windows = node("Reshape", [windows, c([0, 0, -1])])[0]  # [B, L, widest x E]
    # Paddle's [maps, E, 1, w] kernels -> one [widest x E, maps x widths] matrix, tap-major
    kernel = np.concatenate([np.pad(weights[f"convs.{k}.weight"][:, :, 0],
                                    ((0, 0), (0, 0), (0, widest - w)))
                             for k, w in enumerate(cfg.filter_sizes)])
    kernel = kernel.transpose(2, 1, 0).reshape(widest * table.shape[1], -1)
    maps = node("MatMul", [windows, const("conv.w", kernel)])[0]  # [B, L, maps], no bias
    # windows past max(length - w + 1, 1) get -1e30 (per width, broadcast over its maps);
    # bias and ReLU come after the max, on [B, maps] only: max(relu(v + b)) = relu(max(v) + b)
    n = len(cfg.filter_sizes)
    limit = node("Max", [node("Sub", [node("Unsqueeze", [lengths, c([1])])[0],
                                      c([w - 1 for w in cfg.filter_sizes])])[0], c(1)])[0]
    valid = node("Less", [node("Unsqueeze", [pos, c([2])])[0],
                          node("Unsqueeze", [limit, c([1])])[0]])[0]  # [B, L, widths]
    penalty = node("Where", [valid, const("cnn_inside", np.array(0, np.float32)),
                             const("cnn_beyond", np.array(-1e30, np.float32))])[0]
    maps = node("Add", [node("Reshape", [maps, c([0, 0, n, cfg.num_filters])])[0],
                        node("Unsqueeze", [penalty, c([3])])[0]])[0]
    pooled = node("Reshape", [node("ReduceMax", [maps], axes=[1], keepdims=0)[0], c([0, -1])])[0]
    bias = np.concatenate([weights[f"convs.{k}.bias"] for k in range(n)])
    return node("Relu", [node("Add", [pooled, const("conv.b", bias)])[0]])[0]  # [B, widths x maps]


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
