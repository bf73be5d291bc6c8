"""kill -9 at random points of every stage (transfer set, labelling, training, export), then
the same command again (no --resume needed): the run resumes and ends exactly as an uninterrupted one, and no
file a reader would use is ever half-written."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import ROOT, write_sst2

# Where to kill, as the log announces it: data read (transfer set next), labelling started,
# labelling under way, training started, training under way (checkpoints every 5 steps).
STAGES = ["tokenized in", "teacher inputs:", "labelled chunk 2/", "training:", "step 100/"]


def distill_command(tmp_path, teacher, data_dir) -> list[str]:
    return [sys.executable, os.path.join(ROOT, "bert_distill.py"), "--task_name", "sst-2",
            "--data_dir", data_dir, "--teacher_path", str(teacher), "--output_dir",
            str(tmp_path / "run"), "--cache_dir", str(tmp_path / "cache"), "--n_iter", "3",
            "--p_pos", "0", "--label_chunk_size", "100", "--emb_dim", "16", "--hidden_size",
            "16", "--fc_size", "16", "--batch_size", "8", "--max_epoch", "3", "--save_steps",
            "5", "--logging_steps", "5", "--device", "cpu", "--num_threads", "1"]


def run_ok(cmd: list[str]) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]


def kill_when(cmd: list[str], marker: str, delay: float) -> bool:
    """Runs cmd; `delay` seconds after a log line containing `marker`, kill -9. Returns
    whether it was killed (False: it finished first)."""
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    for line in proc.stderr:
        if marker in line:
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
            break
    proc.stderr.close()
    return proc.wait(timeout=300) == -signal.SIGKILL


def assert_nothing_half_written(*folders) -> None:
    """Every file a later run reads parses whole (temporary files are hidden dot-files)."""
    import paddle

    for folder in folders:
        for root, _, files in os.walk(folder):
            for name in files:
                path = os.path.join(root, name)
                if name.startswith("."):
                    continue
                if name.endswith(".json"):
                    json.load(open(path, encoding="utf-8"))
                elif name.endswith(".npy"):
                    np.load(path)
                elif name.endswith((".ckpt", ".pdparams")):
                    paddle.load(path)


def final_state(out) -> dict:
    results = json.loads((out / "results.json").read_text())
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    for r in records:
        r.pop("examples_per_s", None)
    return {"dev": results["dev"], "best_step": results["best_step"], "steps": results["steps"],
            "metrics": records}


@pytest.fixture(scope="module")
def reference(tiny_teacher, tmp_path_factory):
    import shutil

    root = tmp_path_factory.mktemp("interrupt")
    data = write_sst2(root / "sst2")
    run_ok(distill_command(root / "ref", tiny_teacher, data))
    yield data, final_state(root / "ref" / "run")
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize("seed", [0, 1])
def test_kill_every_stage_then_resume_gives_identical_results(seed, reference, tiny_teacher,
                                                             tmp_path):
    data_dir, expected = reference
    cmd = distill_command(tmp_path, tiny_teacher, data_dir)
    rng = np.random.default_rng(seed)
    killed = 0
    for marker in STAGES:
        killed += kill_when(cmd, marker, float(rng.uniform(0, 0.3)))
        assert_nothing_half_written(tmp_path / "run", tmp_path / "cache")
        if (tmp_path / "run" / "results.json").exists():  # finished before the kill
            break
    assert killed >= 3  # most kills land before the run ends
    if not (tmp_path / "run" / "results.json").exists():  # results.json is written last
        run_ok(cmd)
    assert (tmp_path / "run" / "model_state.pdparams").exists()
    assert final_state(tmp_path / "run") == expected


@pytest.mark.parametrize("seed", [0, 1])
def test_killed_export_leaves_a_whole_export(seed, reference, tiny_teacher, tmp_path):
    """An export killed while it writes (after it announces its scratch folder, before the
    swap) leaves the earlier export whole and usable; the rerun finishes it and leaves no
    scratch folder behind."""
    from predict import main as predict

    data_dir, _ = reference
    subprocess.run(distill_command(tmp_path, tiny_teacher, data_dir), check=True,
                   capture_output=True, timeout=300)
    dst = tmp_path / "exported"
    cmd = [sys.executable, os.path.join(ROOT, "export.py"), str(tmp_path / "run"), str(dst)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    files = sorted(os.listdir(dst))
    (tmp_path / "in.txt").write_text("a great movie\n")
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    started = None
    for line in proc.stderr:  # how long the write takes, from its announcement to the swap
        if "swapped in when complete" in line:
            started = time.perf_counter()
        elif "swapping" in line:
            write_seconds = time.perf_counter() - started
    proc.wait()
    rng = np.random.default_rng(seed)
    inside = 0
    for _ in range(4):
        inside += kill_when(cmd, "swapped in when complete",
                            float(rng.uniform(0.1, 0.8) * write_seconds)) and any(
            p.startswith(".exported.") for p in os.listdir(tmp_path))  # killed mid-write
        assert sorted(os.listdir(dst)) == files
        predict([str(dst), "--input", str(tmp_path / "in.txt"), "--output",
                 str(tmp_path / "preds.jsonl")])
        assert json.loads((tmp_path / "preds.jsonl").read_text())["label"] in (0, 1)
    assert inside >= 3, f"only {inside} of 4 kills landed inside the write ({write_seconds:.2f}s)"
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    assert sorted(os.listdir(dst)) == files
    assert sorted(os.listdir(tmp_path)) == sorted(p for p in os.listdir(tmp_path)
                                                  if not p.startswith("."))


def test_a_swap_cut_between_its_renames_puts_the_earlier_folder_back(tmp_path):
    from utils import replace_folder

    dst = tmp_path / "exported"
    replace_folder(str(dst), lambda tmp: open(os.path.join(tmp, "a"), "w").write("earlier"))
    os.rename(dst, tmp_path / ".exported.x1y2.old")  # killed right after the first rename

    def fail(tmp):
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        replace_folder(str(dst), fail)
    assert (dst / "a").read_text() == "earlier"
    assert os.listdir(tmp_path) == ["exported"]
