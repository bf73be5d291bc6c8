"""The benchmarks measure like with like: the emulation of PaddleNLP's small.py writes no
checkpoint (PaddleNLP's SST-2 command saves every 10,000 steps, beyond any timed window)."""
import importlib.util
import os
import sys

import numpy as np

from conftest import ROOT


def load_bench(name: str):
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "bench", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_paddlenlp_emulation_writes_no_checkpoint(monkeypatch):
    import trainer
    from data import Encoded

    def no_save(*args, **kwargs):
        raise AssertionError("a benchmark row wrote a checkpoint")

    monkeypatch.setattr(trainer, "_save", no_save)
    bench = load_bench("train_speed")
    rng = np.random.default_rng(0)
    enc = Encoded(([rng.integers(3, 50, rng.integers(2, 9)) for _ in range(96)],),
                  rng.integers(0, 2, 96))
    row = bench.Row("PaddleNLP small.py", False, 8, 8, 8, False, 1, eval_every=2)
    speed, padded = bench.measure(row, enc, enc, 50, steps=4, seed=0)
    assert speed > 0 and padded >= 2
