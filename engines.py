"""Inference engines for exported models: static-graph export, the Paddle Inference
predictor (oneDNN on CPU, CUDA on GPU) and ONNX Runtime: the fast paths for every model
that only runs forward (teacher labelling, benchmarks, prediction).

On this project's CPU, Paddle's eager kernels reach ~21 GFLOP/s on BERT's matmuls, while
the same layers saved with `paddle.jit.save` and run by a predictor reach ~130: measured in
bench/teacher_speed.py. Inputs are named int64 arrays [batch, length] with dynamic shapes.
"""
from __future__ import annotations

import os
from typing import Callable

import numpy as np
import paddle
from paddle.static import InputSpec

from utils import cpu_threads, write_files_into


def export_static(layer: paddle.nn.Layer, inputs: dict[str, int], prefix: str) -> None:
    """Saves `layer` (called with the named int64 inputs, in order; name -> rank, e.g. 2 for
    [batch, length] ids, 1 for [batch] lengths) as a static graph at `prefix`.json /
    `prefix`.pdiparams, written in a scratch folder and moved into place, so a reader never
    sees half an export."""
    spec = [InputSpec([None] * rank, "int64", name) for name, rank in inputs.items()]
    layer.eval()
    folder, name = os.path.split(os.path.abspath(prefix))
    # the graph last: its presence marks a whole export
    write_files_into(folder, lambda tmp: paddle.jit.save(layer, os.path.join(tmp, name),
                                                         input_spec=spec), last=name + ".json")


def is_exported(prefix: str) -> bool:
    return all(os.path.exists(prefix + ext) for ext in (".json", ".pdiparams"))


def eager_runner(model: paddle.nn.Layer, names: list[str]) -> Callable[[dict], np.ndarray]:
    """A layer in eager mode, no grad, called with the named inputs in order: the slow
    reference path."""
    def run(batch: dict) -> np.ndarray:
        with paddle.no_grad():
            return model(*[paddle.to_tensor(batch[n]) for n in names]).numpy()
    return run


class Predictor:
    """A Paddle Inference predictor over an exported model: oneDNN and `num_threads` math
    threads on CPU, the GPU when `device` is 'gpu' (where TensorRT can be switched on in
    the same Config). `precision` 'bf16' runs oneDNN in bfloat16 on CPUs that have it
    (~1.7x faster for MiniLM here; logits then differ from fp32 by ~1e-2), 'fp16' runs the
    GPU in half precision."""

    def __init__(self, prefix: str, device: str = "cpu", num_threads: int | None = None,
                 precision: str = "fp32"):
        import paddle.inference as pi

        if not is_exported(prefix):
            raise FileNotFoundError(f"{prefix}.json / {prefix}.pdiparams: no exported model "
                                    f"there")
        config = pi.Config(prefix + ".json", prefix + ".pdiparams")
        if device == "gpu":
            config.enable_use_gpu(256, 0, pi.PrecisionType.Half if precision == "fp16"
                                  else pi.PrecisionType.Float32)
        else:
            config.disable_gpu()
            config.enable_mkldnn()
            if precision == "bf16":
                config.enable_mkldnn_bfloat16()
            config.set_cpu_math_library_num_threads(num_threads or cpu_threads())
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


class OnnxPredictor:
    """ONNX Runtime on the CPU over an ONNX graph (a student's, from
    student.export_student_onnx, or a teacher converted with paddle2onnx)."""

    def __init__(self, path: str, num_threads: int | None = None):
        import onnxruntime as ort

        if not os.path.exists(path):
            raise FileNotFoundError(f"{path}: no ONNX export there (export.py writes one "
                                    f"for students)")
        options = ort.SessionOptions()
        options.intra_op_num_threads = num_threads or cpu_threads()
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]

    def __call__(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        feed = {n: np.ascontiguousarray(inputs[n], dtype=np.int64) for n in self.input_names}
        return self.session.run(None, feed)[0]
