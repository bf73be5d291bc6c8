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
