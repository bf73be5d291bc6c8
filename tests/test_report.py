"""report.py on fixture run directories: the table holds what the runs wrote, the plot is a
real PNG, and bad inputs name the directory."""
import json
import os

import pytest

from compare import report
from runs import RunError as ReportError


def write_run(path, script, dev, params, curve, weights_bytes=1000, config_name="config.json",
              task="sst-2", **config_extra):
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "results.json"), "w") as f:
        json.dump({"task": task, "dev": dev, "num_params": params}, f)
    with open(os.path.join(path, config_name), "w") as f:
        json.dump({"script": script, **config_extra}, f)
    with open(os.path.join(path, "metrics.jsonl"), "w") as f:
        for epoch, acc in curve:
            f.write(json.dumps({"step": int(epoch * 10), "epoch": epoch, "split": "train",
                                "loss": 0.5}) + "\n")
            f.write(json.dumps({"step": int(epoch * 10), "epoch": epoch, "split": "dev",
                                "acc": acc}) + "\n")
    with open(os.path.join(path, "model_state.pdparams"), "wb") as f:
        f.write(b"\0" * weights_bytes)
    return str(path)


@pytest.fixture
def runs(tmp_path):
    teacher = write_run(tmp_path / "teacher", "teacher", {"acc": 0.9}, 22_000_000,
                        [(0.5, 0.85), (1.0, 0.9)], weights_bytes=3_000_000,
                        config_name="run_config.json",
                        teacher={"model_name_or_path": "pretrained_models/minilm"})
    small = write_run(tmp_path / "small", "small", {"acc": 0.82}, 1_000_000,
                      [(1, 0.8), (2, 0.82), (3, 0.81)])
    distill = write_run(tmp_path / "distill", "bert_distill", {"acc": 0.86}, 1_000_000,
                        [(1, 0.84), (2, 0.86)])
    return teacher, small, distill


def test_report_table_and_plot(runs, tmp_path):
    teacher, small, distill = runs
    inference = {"setting": "SST-2 dev, 2 threads", "processes": 2,
                 "rows": [{"source": os.path.abspath(distill), "path": "exported",
                           "ex_per_s": {"1": 900, "32": 5000, "256": 9000},
                           "ex_per_s_processes": 9500, "p50_ms": 1.1},
                          {"source": os.path.abspath(distill), "path": "eager",
                           "ex_per_s": {"1": 300, "32": 2000, "256": 3000},
                           "ex_per_s_processes": None, "p50_ms": 0.9},
                          {"source": os.path.abspath(teacher), "path": "exported",
                           "ex_per_s": {"1": 50, "32": 250, "256": 300},
                           "ex_per_s_processes": 240, "p50_ms": 20.0},
                          {"source": None, "path": "exported",
                           "ex_per_s": {"1": 5, "32": 25, "256": 30}, "p50_ms": 90.0}]}
    with open(tmp_path / "inference.json", "w") as f:
        json.dump(inference, f)
    md = report([teacher, small, distill], str(tmp_path / "out"), str(tmp_path / "inference.json"))
    lines = [l for l in md.splitlines() if l.startswith("| ")]
    assert lines[0].startswith("| model | dev acc | parameters | MB on disk | CPU ex/s")
    assert lines[1].startswith("| teacher (minilm) | 0.9000 | 22,000,000 | 3.0 | 250 (exported)")
    assert lines[2].startswith("| BiLSTM (small.py) | 0.8200 | 1,000,000 | 0.0 | - |")
    # The fastest batch-32 path (here two processes) and the best batch-1 latency.
    assert "| 0.8600 |" in lines[3] and "9,500 (exported, 2 processes) | 0.90 |" in lines[3]
    png = (tmp_path / "out" / "report.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert (tmp_path / "out" / "report.md").read_text() == md


def test_pair_task_reports_f1(tmp_path):
    a = write_run(tmp_path / "a", "small", {"acc": 0.7, "f1": 0.8}, 10, [(1, 0.7)], task="mrpc")
    b = write_run(tmp_path / "b", "bert_distill", {"acc": 0.75, "f1": 0.83}, 10, [(1, 0.75)],
                  task="mrpc")
    md = report([a, b], str(tmp_path / "out"))
    assert "| model | dev acc | dev f1 | parameters | MB on disk |" in md
    assert "| 0.7500 | 0.8300 |" in md


def test_report_errors(runs, tmp_path):
    teacher, small, _ = runs
    with pytest.raises(ReportError, match=r"nowhere: no results.json"):
        report([str(tmp_path / "nowhere")], str(tmp_path / "out"))
    other = write_run(tmp_path / "other", "small", {"acc": 0.5}, 1, [(1, 0.5)], task="mrpc")
    with pytest.raises(ReportError, match=r"runs of different tasks"):
        report([small, other], str(tmp_path / "out"))
    with pytest.raises(ReportError, match=r"--inference .*missing.json: file not found"):
        report([small], str(tmp_path / "out"), str(tmp_path / "missing.json"))
    os.remove(os.path.join(small, "config.json"))
    with pytest.raises(ReportError, match=r"small: no run settings"):
        report([small], str(tmp_path / "out"))
