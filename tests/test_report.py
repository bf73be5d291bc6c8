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
                                **dev, "acc": acc}) + "\n")
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
    # (0.86 - 0.82) / (0.90 - 0.82): half the gap between the student alone and the teacher
    assert ("best acc +4.00, final acc +5.00; closes 0.50 of the gap to the teacher (0.9000) "
            "on best dev acc") in md
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


def test_runs_of_one_model_over_seeds_are_summarised(tmp_path):
    """Mean, sample sd and range of best and final dev over seeds, against numpy; a setting
    other than the seed splits a model in two, a missing one is its default."""
    import numpy as np

    best, final = {"small": [0.82, 0.80, 0.81], "bert_distill": [0.88, 0.87, 0.89]}, \
        {"small": [0.80, 0.79, 0.805], "bert_distill": [0.875, 0.87, 0.885]}
    dirs = []
    for kind in ("small", "bert_distill"):
        for seed, b, f in zip((1, 2, 3), best[kind], final[kind]):
            d = write_run(tmp_path / f"{kind}{seed}", kind, {"acc": b}, 100, [(1, b), (2, f)],
                          train={"seed": seed, "output_dir": f"x{seed}", "num_threads": seed},
                          # a setting a run predates reads as its default (unk)
                          distill={"student_mask": "unk"} if seed < 3 else {})
            with open(os.path.join(d, "results.json")) as fh:
                res = json.load(fh)
            res.update(last_dev={"epoch": 2, "acc": f}, stopped_early=seed == 2)
            with open(os.path.join(d, "results.json"), "w") as fh:
                json.dump(res, fh)
            dirs.append(d)
    other = write_run(tmp_path / "mask", "bert_distill", {"acc": 0.5}, 100, [(1, 0.5)],
                      train={"seed": 1}, distill={"student_mask": "mask"})
    md = report(dirs + [other], str(tmp_path / "out"))
    seeds_part = md.split("size and speed")[0]
    rows = {l.split(" | ")[0][2:]: l for l in seeds_part.splitlines() if l.startswith("| ")}
    for kind, name in (("small", "BiLSTM (small.py)"),
                       ("bert_distill", "distilled BiLSTM (bert_distill.py) student_mask=unk")):
        for values in (best[kind], final[kind]):
            v = np.array(values)
            want = f"{v.mean():.4f} ± {v.std(ddof=1):.4f} ({v.min():.4f}–{v.max():.4f})"
            assert want in rows[name], (want, rows[name])
        assert "| 1, 2, 3 |" in rows[name] and "| 2, 2 (early), 2 |" in rows[name]
    assert "| 0.5000 | 0.5000 |" in rows["distilled BiLSTM (bert_distill.py) student_mask=mask"]
    gain_best = 100 * (np.mean(best["bert_distill"]) - np.mean(best["small"]))
    gain_final = 100 * (np.mean(final["bert_distill"]) - np.mean(final["small"]))
    assert f"best acc {gain_best:+.2f}, final acc {gain_final:+.2f}" in md


def test_each_network_is_named_and_compared_with_its_own_baseline(tmp_path):
    """BiLSTM and CNN runs in one report: rows named by network, each distilled model's gain
    taken over the baseline of its own network."""
    dirs, acc = [], {("small", "bilstm"): 0.80, ("bert_distill", "bilstm"): 0.85,
                     ("small", "cnn"): 0.70, ("bert_distill", "cnn"): 0.80}
    for (kind, net), a in acc.items():
        for seed in (1, 2):
            dirs.append(write_run(tmp_path / f"{kind}-{net}-{seed}", kind, {"acc": a}, 100,
                                  [(1, a)], train={"seed": seed},
                                  student={} if net == "bilstm" else {"student": "cnn"}))
    md = report(dirs, str(tmp_path / "out"))
    names = [l.split(" | ")[0][2:] for l in md.split("size and speed")[0].splitlines()
             if l.startswith("| ") and not l.startswith("| model")]
    assert names == ["BiLSTM (small.py)", "distilled BiLSTM (bert_distill.py)", "CNN (small.py)",
                     "distilled CNN (bert_distill.py)"]
    assert "- distilled BiLSTM (bert_distill.py) minus the baseline (points of mean dev score): best acc +5.00" in md
    assert "- distilled CNN (bert_distill.py) minus the baseline (points of mean dev score): best acc +10.00" in md
