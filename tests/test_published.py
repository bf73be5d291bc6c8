"""published.py: every table and figure of README.md and docs/ is what the committed run
summaries give, a hand edit of one is caught, and `add` summarises a finished run folder."""
from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT

import published
from compare import seeds_table

RESULTS = os.path.join(ROOT, "results")


def test_pages_are_what_the_summaries_give():
    assert published.check() == []
    r = subprocess.run([sys.executable, os.path.join(ROOT, "published.py"), "--check"],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def test_every_summary_says_where_it_comes_from():
    for path in glob.glob(os.path.join(RESULTS, "**", "*.json"), recursive=True):
        s = json.load(open(path, encoding="utf-8"))
        assert s["kind"] in ("run", "aggregate", "bench", "experiment"), path
        assert s["source"] and "machine" in s and "commit" in s, path
        if s.get("transcribed"):
            assert "were not kept" in s["source"] and s["commit"] is None, path


@pytest.fixture
def pages(tmp_path):
    """A copy of the pages; the summaries stay the repo's."""
    shutil.copy(os.path.join(ROOT, "README.md"), tmp_path / "README.md")
    (tmp_path / "docs").mkdir()
    for p in glob.glob(os.path.join(ROOT, "docs", "*.md")):
        shutil.copy(p, tmp_path / "docs")
    return tmp_path


def edit(path, old: str, new: str) -> str:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) >= 1, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return text


def test_a_hand_edited_figure_is_caught_and_rewritten(pages):
    readme = pages / "README.md"
    original = edit(readme, "<!-- g:sst2-gain-best -->+6.12<!-- /g -->",
                    "<!-- g:sst2-gain-best -->+6.21<!-- /g -->")
    assert published.check(str(pages), RESULTS) == [
        "README.md: figure sst2-gain-best is '+6.21', results/ gives '+6.12'"]
    published.publish(str(pages), RESULTS)
    assert readme.read_text(encoding="utf-8") == original


def test_a_hand_edited_table_cell_is_caught(pages):
    edit(pages / "docs" / "results.md", "0.8658 0.8681 **0.8773** 0.8727",
         "0.8658 0.8681 **0.8783** 0.8727")
    assert published.check(str(pages), RESULTS) == [
        "docs/results.md: block sst2-epochs differs from what results/ gives"]


def test_a_number_typed_over_its_marker_is_caught(pages):
    edit(pages / "docs" / "benchmarks.md", "<!-- g:cnn-int8-x -->1.79x<!-- /g -->", "1.97x")
    assert published.check(str(pages), RESULTS) == [
        "cnn-int8-x: generated but shown on no page (its marker was removed)"]


def test_a_transcribed_run_that_contradicts_its_curve_is_refused(tmp_path):
    run = json.load(open(os.path.join(RESULTS, "sst2-cpu", "distill-seed1.json"), encoding="utf-8"))
    run["results"]["dev"]["acc"] = 0.8727  # the curve's best is 0.8773
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "run.json").write_text(json.dumps(run))
    with pytest.raises(published.PublishedError, match="not what its curve says"):
        published.Store(str(tmp_path)).run("x/run")
    run["results"]["dev"]["acc"] = 0.8774  # no count over 872 dev sentences rounds to it
    (tmp_path / "x" / "run.json").write_text(json.dumps(run))
    with pytest.raises(published.PublishedError, match="no count over 872"):
        published.Store(str(tmp_path)).run("x/run")


LOG = """23:59:50 INFO trainer: small --task_name sst-2 --seed 7
23:59:50 INFO trainer: CPU Test Xeon (GenuineIntel); MKL_DEBUG_CPU_TYPE=unset (not needed)
23:59:58 INFO trainer: epoch 1
00:00:20 INFO trainer: checkpoint saved
00:10:00 INFO trainer: small --task_name sst-2 --seed 7
00:10:00 INFO trainer: CPU Test Xeon (GenuineIntel); MKL_DEBUG_CPU_TYPE=unset (not needed)
00:10:05 INFO trainer: best dev acc 0.7500 at step 10
"""


def fake_run(path) -> str:
    """A finished small.py run as trainer.py leaves it, resumed once (two log sessions)."""
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({
        "script": "small", "data": {"task_name": "sst-2"}, "student": {"student": "bilstm"},
        "train": {"seed": 7, "num_threads": 2}}))
    (path / "results.json").write_text(json.dumps({
        "task": "sst-2", "dev": {"acc": 0.75}, "best_epoch": 1.0, "best_step": 10,
        "last_dev": {"acc": 0.7, "epoch": 2.0, "step": 20}, "stopped_early": False,
        "num_params": 1234, "dev_examples": 4, "train_seconds": 12.5,
        "per_example": list(range(3000))}))
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [
        {"step": 10, "epoch": 1.0, "split": "train", "loss": 0.6},
        {"step": 10, "epoch": 1.0, "split": "dev", "acc": 0.75},
        {"step": 20, "epoch": 2.0, "split": "dev", "acc": 0.7}]))
    (path / "train.log").write_text(LOG)
    (path / "model_state.pdparams").write_bytes(b"\0" * 200_000)
    return str(path)


def test_add_summarises_a_finished_run(tmp_path):
    run = fake_run(tmp_path / "output" / "seed-7")
    [written] = published.add(run, "exp", results=str(tmp_path / "results"))
    assert written == str(tmp_path / "results" / "exp" / "seed-7.json")
    s = json.load(open(written, encoding="utf-8"))
    assert s["command"] == "python small.py --task_name sst-2 --seed 7"
    assert s["machine"].startswith("CPU Test Xeon")
    assert s["wall_seconds"] == 30 + 5  # across midnight, and the resumed session
    assert "per_example" not in s["results"] and s["results"]["dev"] == {"acc": 0.75}
    assert s["curve"] == [{"step": 10, "epoch": 1.0, "acc": 0.75},
                          {"step": 20, "epoch": 2.0, "acc": 0.7}]
    assert s["size_mb"] == 0.2 and s["config"]["train"]["seed"] == 7
    assert s["source"].endswith(os.path.abspath(run)) and "transcribed" not in s
    r = published.Store(str(tmp_path / "results")).run("exp/seed-7")
    table = seeds_table([("BiLSTM (small.py)", [r])], ["acc"])
    assert "| BiLSTM (small.py) | 7 | 0.7500 | 0.7000 | 2 | 1,234 |" in table


def test_add_summarises_a_pipeline_folder(tmp_path):
    pipe = tmp_path / "pipe"
    small = fake_run(pipe / "seed-7" / "small")
    (pipe / "cache").mkdir()
    (pipe / "pipeline.json").write_text(json.dumps({"preset": "quick", "task": "sst-2", "stages": {
        "baseline-seed7": {"command": ["python", "small.py", "--seed", "7"], "seconds": 5.5,
                           "peak_memory_gb": 0.3},
        "bench": {"command": ["python", "bench/inference.py", "--n", "16"], "seconds": 2.0}},
        "peak_memory_gb": 0.3}))
    (pipe / "pipeline.log").write_text("10:00:00 INFO stages: CPU Test Xeon (GenuineIntel); x\n")
    (pipe / "inference.json").write_text(json.dumps({
        "setting": "sst-2 dev texts (16)", "processes": 2,
        "rows": [{"source": os.path.abspath(small), "model": "BiLSTM student", "path": "eager",
                  "ex_per_s": {"1": 10, "32": 100, "256": 90}, "ex_per_s_processes": None,
                  "p50_ms": 1.0}]}))
    written = published.add(str(pipe), "exp", results=str(tmp_path / "results"))
    names = sorted(os.path.relpath(w, tmp_path / "results") for w in written)
    assert names == [os.path.join("exp", n) for n in
                     ("bench-inference.json", "experiment.json", "seed-7-small.json")]
    exp = json.load(open(tmp_path / "results" / "exp" / "experiment.json", encoding="utf-8"))
    assert exp["wall_seconds"] == 7.5 and exp["machine"].startswith("CPU Test Xeon")
    assert exp["stages"][0] == {"stage": "baseline-seed7", "command": "python small.py --seed 7",
                                "seconds": 5.5, "peak_memory_gb": 0.3}
    assert exp["peak_memory_gb"] == 0.3
    bench = json.load(open(tmp_path / "results" / "exp" / "bench-inference.json", encoding="utf-8"))
    assert bench["rows"][0]["run"] == "exp/seed-7-small"
    assert bench["command"] == "python bench/inference.py --n 16"
    assert published.bench_fastest(bench, "BiLSTM student") == 100
