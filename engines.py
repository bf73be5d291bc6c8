"""Inference engines for exported models: the Paddle Inference predictor (oneDNN on CPU,
CUDA on GPU), ONNX Runtime and the eager reference: the fast paths for every model that only
runs forward (teacher labelling, benchmarks, prediction). model_io.py writes the files they
read.

On CPU, a predictor over the layers saved with `paddle.jit.save` runs BERT's matmuls several
times faster than Paddle's eager kernels (bench/teacher_speed.py, docs/benchmarks.md).
Inputs are named int64 arrays [batch, length] with dynamic shapes.
"""
from __future__ import annotations

import os
from typing import Callable

import numpy as np
import paddle

from utils import cpu_threads

Runner = Callable[[dict], np.ndarray]  # a named batch of int64 arrays -> [B, num_labels] logits


def is_exported(prefix: str) -> bool:
    """Whether a static graph (model_io.export_static) is at `prefix`."""
    return all(os.path.exists(prefix + ext) for ext in (".json", ".pdiparams"))


def eager_runner(model: paddle.nn.Layer, names: list[str]) -> Runner:
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
    (faster, with logits slightly off fp32's: docs/benchmarks.md), 'fp16' runs the GPU in
    half precision."""

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
    model_io.export_student_onnx, or a teacher converted with paddle2onnx)."""

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
