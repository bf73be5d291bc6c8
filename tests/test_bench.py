"""The benchmarks measure like with like: the emulation of PaddleNLP's small.py writes no
checkpoint (PaddleNLP's SST-2 command saves every 10,000 steps, beyond any timed window)."""
import importlib.util
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import ROOT


def load_bench(name: str):
    # not under its own name: bench/vectors.py would shadow the library's vectors.py
    spec = importlib.util.spec_from_file_location(f"bench_{name}",
                                                  os.path.join(ROOT, "bench", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_paddlenlp_emulation_writes_no_checkpoint(monkeypatch):
    import trainer
    from data import Encoded

    def no_save(*args, **kwargs):
        raise AssertionError("a benchmark row wrote a checkpoint")

    monkeypatch.setattr(trainer, "save_checkpoint", no_save)
    bench = load_bench("train_speed")
    rng = np.random.default_rng(0)
    enc = Encoded.of([[rng.integers(3, 50, rng.integers(2, 9)) for _ in range(96)]],
                     rng.integers(0, 2, 96))
    row = bench.Row("PaddleNLP small.py", False, 8, 8, 8, False, 1, eval_every=2)
    t0 = time.perf_counter()
    speed, padded = bench.measure(row, enc, enc, 50, steps=4, seed=0)
    # 4 steps of 64 examples: at `speed` they took no longer than the call itself
    assert 4 * 64 / speed <= time.perf_counter() - t0
    lengths = enc.lengths()  # the mean longest text of the 4 batches, drawn as measure draws
    batches = bench.make_batches(lengths, 64, np.random.default_rng(0), bucket=False)
    assert padded == pytest.approx(np.mean([lengths[b].max() for b in batches[:4]]))


def test_vectors_bench_files_hold_what_the_readers_find(sst2_dir, tmp_path):
    """Every format the vectors bench writes reads back the same vectors for every
    vocabulary word (half of them capitalized in the file), in a process of its own."""

    out = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "vectors.py"), "--data_dir",
                          sst2_dir, "--words", "3000", "--dim", "8", "--json",
                          str(tmp_path / "v.json")], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    rows = {r["format"]: r for r in json.load(open(tmp_path / "v.json"))}
    assert set(rows) == {"bin", "bin.gz", "txt", "npz"}
    assert all(r["found"] == r["vocab_words"] > 0 and r["peak_above_before"] >= 0 for r in rows.values())

    bench = load_bench("vectors")
    from data import build_vocab
    from vectors import read_vectors

    words = bench.file_words(["good", "film"], 50, np.random.default_rng(0))
    vocab = build_vocab([["good", "film"]])
    got = {}
    for fmt, name in bench.FORMATS.items():
        path = str(tmp_path / name)
        bench.WRITERS[fmt](path, words, 8)
        got[fmt] = read_vectors(vocab, path)[0]
    for i in (vocab.index["good"], vocab.index["film"]):
        np.testing.assert_array_equal(got["bin"][i], got["npz"][i])
        np.testing.assert_array_equal(got["bin"][i], got["bin.gz"][i])
        np.testing.assert_allclose(got["txt"][i], got["bin"][i], atol=6e-5)  # 4 decimals


def test_scale_bench_runs_tiny(tmp_path):
    """bench/scale.py end to end at a tiny size: a QQP-layout task from our real words, its
    transfer set, labelling and a few student steps, each stage timed and measured."""
    from conftest import shared

    out = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "scale.py"), "--pairs", "200",
                          "--dev_pairs", "50", "--n_iter", "2", "--max_steps", "3",
                          "--data_root", os.path.dirname(shared("sst2")), "--out",
                          str(tmp_path / "run"), "--json", str(tmp_path / "scale.json")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.load(open(tmp_path / "scale.json"))
    assert 200 < report["transfer_examples"] <= 600 and report["transfer_set_bytes"] > 0
    assert set(report["seconds"]) == set(report["peak_rss"]) == {"transfer set", "labelling",
                                                                  "training"}
    # every stage sampled at least once (at its end): a process that has loaded Paddle holds
    # well over 100 MB; the run's peak is at least every stage's
    assert all(v > 100 * 2**20 for v in report["peak_rss"].values())
    assert report["maxrss"] >= max(report["peak_rss"].values())
    assert json.load(open(tmp_path / "run" / "run" / "results.json"))["steps"] == 3
    header = (tmp_path / "run" / "task" / "train.tsv").read_text().splitlines()[0]
    assert header == "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate"
    assert "peak of the whole run" in out.stdout


def test_read_file_bench_reads_what_it_wrote(tmp_path):
    """bench/read_file.py at a tiny size: every row read, labels counted, ids made."""
    from conftest import shared

    out = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "read_file.py"),
                          "--rows", "1000", "--data_root", os.path.dirname(shared("sst5")),
                          "--out", str(tmp_path), "--json", str(tmp_path / "read.json")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.load(open(tmp_path / "read.json"))
    assert report["counts"] == [200] * 5 and report["rows"] == 1000
    assert [s["step"].split(" ")[0] for s in report["steps"]] == ["label", "rows", "tokenized",
                                                                   "vocabulary", "word"]
    assert report["peak_rss_gb"] >= max(s["rss_gb_after"] for s in report["steps"])
