"""The students as ONNX graphs, built by hand from their weights, for ONNX Runtime: the
fastest CPU path for the BiLSTM (docs/benchmarks.md). Paddle's CPU LSTM kernel spends most of
each small sequential time step outside its matmul; ONNX Runtime's fused LSTM does not.
export_student_onnx writes these graphs to files.
"""
from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import numpy as np

from model import Student

if TYPE_CHECKING:
    import onnx

_GATES = (0, 3, 1, 2)  # Paddle's LSTM gate blocks are i, f, c, o; ONNX's are i, o, f, c


def student_graph(model: Student) -> onnx.ModelProto:
    """The student as a checked onnx.ModelProto with the same inputs as its static export
    (input_ids [B, L], lengths [B], and the _b pair for pairs) and `logits` [B, num_labels].
    Built directly from the weights rather than with paddle2onnx, which drops the LSTM's
    sequence lengths (padding would then change the output)."""
    import onnx  # here: training never needs it
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
    encoder = _cnn if cfg.kind == "cnn" else _bilstm
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
    return onnx_model


def _bilstm(cfg, weights, ids, lengths, node, const, TensorProto) -> str:
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


def _cnn(cfg, weights, ids, lengths, node, const, TensorProto) -> str:
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
