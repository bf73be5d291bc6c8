"""Static-graph export and the Paddle Inference predictor: the fast path for every model
that only runs forward (teacher labelling, benchmarks, prediction).

On this project's CPU, Paddle's eager kernels reach ~21 GFLOP/s on BERT's matmuls, while
the same layers saved with `paddle.jit.save` and run by a predictor reach ~130: measured in
bench/teacher_speed.py. Inputs are named int64 arrays [batch, length] with dynamic shapes.
"""
from __future__ import annotations

import os
import numpy as np
import paddle
from paddle.static import InputSpec

MODEL_FILES = ("model.json", "model.pdiparams")  # what paddle.jit.save writes under PIR


def export_static(layer: paddle.nn.Layer, inputs: dict[str, int], prefix: str) -> None:
    """Saves `layer` (called with the named int64 inputs, in order; name -> rank, e.g. 2 for
    [batch, length] ids, 1 for [batch] lengths) as a static graph at `prefix`.json /
    `prefix`.pdiparams, written under a temporary prefix and then renamed, so a reader
    never sees half an export."""
    spec = [InputSpec([None] * rank, "int64", name) for name, rank in inputs.items()]
    layer.eval()
    tmp = f"{prefix}.tmp{os.getpid()}"
    paddle.jit.save(layer, tmp, input_spec=spec)
    for ext in (".pdiparams", ".json"):  # the graph last: its presence marks a whole export
        os.replace(tmp + ext, prefix + ext)


def is_exported(prefix: str) -> bool:
    return all(os.path.exists(prefix + ext) for ext in (".json", ".pdiparams"))


class Predictor:
    """A Paddle Inference predictor over an exported model: oneDNN and `num_threads` math
    threads on CPU, the GPU when `device` is 'gpu' (where TensorRT can be switched on in
    the same Config). `precision` 'bf16' runs oneDNN in bfloat16 on CPUs that have it
    (~1.7x faster for MiniLM here; logits then differ from fp32 by ~1e-2)."""

    def __init__(self, prefix: str, device: str = "cpu", num_threads: int | None = None,
                 precision: str = "fp32"):
        import paddle.inference as pi

        if not is_exported(prefix):
            raise FileNotFoundError(f"{prefix}.json / {prefix}.pdiparams: no exported model "
                                    f"there")
        config = pi.Config(prefix + ".json", prefix + ".pdiparams")
        if device == "gpu":
            config.enable_use_gpu(256, 0)
        else:
            config.disable_gpu()
            config.enable_mkldnn()
            if precision == "bf16":
                config.enable_mkldnn_bfloat16()
            config.set_cpu_math_library_num_threads(num_threads or len(os.sched_getaffinity(0)))
        config.disable_glog_info()
        self.predictor = pi.create_predictor(config)
        self.input_names = self.predictor.get_input_names()
        self.output_name = self.predictor.get_output_names()[0]

    def __call__(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        for name in self.input_names:
            x = np.ascontiguousarray(inputs[name], dtype=np.int64)
            handle = self.predictor.get_input_handle(name)
            handle.reshape(x.shape)
            handle.copy_from_cpu(x)
        self.predictor.run()
        return self.predictor.get_output_handle(self.output_name).copy_to_cpu()


# --------------------------------------------------------------- ONNX Runtime (student)
# The BiLSTM's time steps are small sequential matmuls: Paddle's CPU LSTM kernel spends
# most of each step outside the matmul, while ONNX Runtime's fused LSTM runs the same
# student about twice as fast per thread here (bench/inference.py).

ONNX_FILE = "model.onnx"
_GATES = (0, 3, 1, 2)  # Paddle's LSTM gate blocks are i, f, c, o; ONNX's are i, o, f, c


def export_student_onnx(model, path: str) -> None:
    """Writes the student (a model.BiLSTMStudent) as an ONNX graph with the same inputs as
    its static export. Built directly from the weights rather than with paddle2onnx, which
    drops the LSTM's sequence lengths (padding would then change the output)."""
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

    def gates(w: np.ndarray) -> np.ndarray:  # reorder the 4 gate blocks along axis 0
        return np.concatenate([w[k * cfg.hidden_size:(k + 1) * cfg.hidden_size] for k in _GATES])

    names = ["input_ids", "lengths"] + (["input_ids_b", "lengths_b"] if cfg.pair else [])
    graph_inputs = [helper.make_tensor_value_info(n, TensorProto.INT64,
                                                  ["batch", "length"] if "ids" in n else ["batch"])
                    for n in names]
    ids, lengths = "input_ids", "lengths"
    if cfg.pair:  # both sentences through the one encoder, as model.forward does
        ids = node("Concat", ["input_ids", "input_ids_b"], axis=0)[0]
        lengths = node("Concat", ["lengths", "lengths_b"], axis=0)[0]
    seq_lens = node("Cast", [lengths], to=TensorProto.INT32)[0]
    x = node("Gather", [const("embedding", weights["embedding.weight"]), ids])[0]
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
    h = node("Reshape", [h, const("flat", np.array([0, -1]))])[0]  # [B, 2H]: forward, backward
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
    graph = helper.make_graph(nodes, "bilstm_student", graph_inputs,
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT,
                                                             ["batch", cfg.num_labels])], inits)
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(onnx_model)
    tmp = f"{path}.tmp{os.getpid()}"
    onnx.save(onnx_model, tmp)
    os.replace(tmp, path)


class OnnxPredictor:
    """ONNX Runtime on the CPU over an exported student (export_student_onnx)."""

    def __init__(self, path: str, num_threads: int | None = None):
        import onnxruntime as ort

        if not os.path.exists(path):
            raise FileNotFoundError(f"{path}: no ONNX export there (export.py writes one "
                                    f"for students)")
        options = ort.SessionOptions()
        options.intra_op_num_threads = num_threads or len(os.sched_getaffinity(0))
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]

    def __call__(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        feed = {n: np.ascontiguousarray(inputs[n], dtype=np.int64) for n in self.input_names}
        return self.session.run(None, feed)[0]
