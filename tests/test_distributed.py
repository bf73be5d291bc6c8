"""Data-parallel runs: `python -m paddle.distributed.launch --nproc_per_node 2` on the CPU
(gloo) against one process with the same total batch. Without dropout the two must train
the same model: same dev metrics and train losses within float tolerance, and labelling
must write byte-identical logits to the same cache."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, sst2_dev

STUDENT = ["--emb_dim", "16", "--hidden_size", "16", "--fc_size", "16", "--dropout", "0",
           "--batch_size", "32", "--max_epoch", "2", "--device", "cpu"]


def run(script: str, args: list[str], tmp_path, nproc: int = 1) -> None:
    launch = [sys.executable]
    if nproc > 1:
        launch += ["-m", "paddle.distributed.launch", "--nproc_per_node", str(nproc),
                   "--log_dir", str(tmp_path / "launch-log")]
    r = subprocess.run([*launch, os.path.join(ROOT, script), *args], cwd=tmp_path,
                       capture_output=True, text=True, timeout=400)
    logs = "".join(p.read_text() for p in (tmp_path / "launch-log").glob("workerlog.*")) \
        if nproc > 1 else ""
    assert r.returncode == 0, (r.stderr + logs)[-3000:]


def curves(out) -> tuple[list[dict], list[dict]]:
    with open(out / "metrics.jsonl", encoding="utf-8") as f:
        records = [json.loads(line) for line in f]
    return ([r for r in records if r["split"] == "train"],
            [r for r in records if r["split"] == "dev"])


def assert_same_training(one, two) -> None:
    train1, dev1 = curves(one)
    train2, dev2 = curves(two)
    assert [r["step"] for r in train1] == [r["step"] for r in train2] and len(dev1) == len(dev2)
    np.testing.assert_allclose([r["loss"] for r in train2], [r["loss"] for r in train1],
                               rtol=1e-4)
    for a, b in zip(dev1, dev2):
        assert a["acc"] == b["acc"]
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)
    res1 = json.loads((one / "results.json").read_text())
    res2 = json.loads((two / "results.json").read_text())
    assert res1["best_step"] == res2["best_step"] and res1["dev"]["acc"] == res2["dev"]["acc"]


def test_small_two_processes_equal_one(sst2_dir, tmp_path):
    args = ["--task_name", "sst-2", "--data_dir", sst2_dir, "--logging_steps", "2", *STUDENT]
    run("small.py", [*args, "--output_dir", str(tmp_path / "one")], tmp_path)
    run("small.py", [*args, "--output_dir", str(tmp_path / "two")], tmp_path, nproc=2)
    assert_same_training(tmp_path / "one", tmp_path / "two")
    # Only the main process writes: one log, one checkpoint set, nothing from rank 1.
    assert (tmp_path / "two" / "model_state.pdparams").exists()
    assert "rank 1" not in (tmp_path / "two" / "train.log").read_text()


def test_distill_and_labelling_two_processes_equal_one(tiny_teacher, mrpc_dir, tmp_path):
    """A pair task, labelled in chunks shared by the ranks, then distilled."""
    args = ["--task_name", "mrpc", "--data_dir", mrpc_dir, "--teacher_path", str(tiny_teacher),
            "--n_iter", "2", "--p_pos", "0", "--label_chunk_size", "200", "--logging_steps", "5",
            *STUDENT]
    for name, nproc in (("one", 1), ("two", 2)):
        run("bert_distill.py", [*args, "--output_dir", str(tmp_path / name),
                                "--cache_dir", str(tmp_path / f"cache-{name}")], tmp_path, nproc)
    [one] = (tmp_path / "cache-one").glob("logits-*/logits.npy")
    [two] = (tmp_path / "cache-two").glob("logits-*/logits.npy")
    assert one.parent.name == two.parent.name  # the same cache key
    assert len(np.load(one)) > 400  # several chunks, so both ranks labelled some
    assert one.read_bytes() == two.read_bytes()
    assert not list(two.parent.glob("chunk-*"))
    assert_same_training(tmp_path / "one", tmp_path / "two")


def test_teacher_fine_tunes_data_parallel(tiny_en, sst2_dir, tmp_path):
    """teacher.py under the launcher: one run, written once, loadable as a teacher. (BERT's
    dropout draws different masks per process, so no equality with one process here.)"""
    from teachers import eager_runner, encode_for_teacher, load_teacher, teacher_logits

    out = tmp_path / "teacher"
    run("teacher.py", ["--task_name", "sst-2", "--data_dir", sst2_dir, "--model_name_or_path",
                       str(tiny_en[1]), "--output_dir", str(out), "--max_epoch", "1",
                       "--batch_size", "16", "--device", "cpu"], tmp_path, nproc=2)
    results = json.loads((out / "results.json").read_text())
    assert results["steps"] == -(-240 // 16)
    model, tokenizer = load_teacher(str(out), 2)
    assert model.num_labels == 2
    texts, labels = sst2_dev(sst2_dir)  # the reported accuracy is the saved teacher's
    logits = teacher_logits(eager_runner(model), encode_for_teacher(tokenizer, texts, 128),
                            pad_id=tokenizer.pad_token_id)
    assert results["dev"]["acc"] == pytest.approx(np.mean(logits.argmax(-1) == labels))
