"""kill -9 at named points of every stage where state is saved (transfer set, teacher export,
labelling, cache meta files, checkpoints, training steps, export), then the same command again
(no --resume needed): the run resumes and ends exactly as an uninterrupted one, and no file a
reader would use is ever half-written.

The kills are not timed: the process kills itself when it reaches a fault point the n-th time
(utils.fault_point, FAULT_POINT="name@n"), so they land on any CPU. The seeded rng only
chooses which chunk, checkpoint and step."""
from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, write_sst2
from utils import FAULT_ENV

SAVE_STEPS = 5
CHUNK = 100


def distill_command(tmp_path, teacher, data_dir) -> list[str]:
    return [sys.executable, os.path.join(ROOT, "bert_distill.py"), "--task_name", "sst-2",
            "--data_dir", data_dir, "--teacher_path", str(teacher), "--output_dir",
            str(tmp_path / "run"), "--cache_dir", str(tmp_path / "cache"), "--n_iter", "3",
            "--p_pos", "0", "--label_chunk_size", str(CHUNK), "--emb_dim", "16",
            "--hidden_size", "16", "--fc_size", "16", "--batch_size", "8", "--max_epoch", "3",
            "--save_steps", str(SAVE_STEPS), "--logging_steps", "5", "--device", "cpu",
            "--num_threads", "1"]


def run_ok(cmd: list[str]) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                       env={k: v for k, v in os.environ.items() if k != FAULT_ENV})
    assert r.returncode == 0, r.stderr[-3000:]


def kill_at(cmd: list[str], point: str, n: int = 1) -> None:
    """Runs cmd until it reaches fault point `point` the n-th time and kills itself there;
    fails when that planned kill did not happen."""
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                       env={**os.environ, FAULT_ENV: f"{point}@{n}"})
    assert r.returncode == -signal.SIGKILL, \
        f"planned kill at {point!r}@{n} did not happen (exit {r.returncode}):\n{r.stderr[-3000:]}"


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


def checkpoint_step(run) -> int | None:
    import paddle

    path = run / "last.ckpt"
    return paddle.load(str(path))["state"]["step"] if path.exists() else None


def one(pattern: str) -> str:
    found = glob.glob(pattern)
    assert len(found) == 1, (pattern, found)
    return found[0]


@pytest.fixture(scope="module")
def reference(tiny_teacher, tmp_path_factory):
    """The uninterrupted run: its final state, its number of label chunks and the steps at
    which it writes last.ckpt (every SAVE_STEPS steps and after every evaluation)."""
    import shutil

    root = tmp_path_factory.mktemp("interrupt")
    data = write_sst2(root / "sst2")
    run_ok(distill_command(root / "ref", tiny_teacher, data))
    state = final_state(root / "ref" / "run")
    meta = json.load(open(one(str(root / "ref" / "cache" / "logits-*" / "meta.json"))))
    n_chunks = -(-meta["payload"]["examples"] // CHUNK)
    evals = {r["step"] for r in state["metrics"] if r["split"] == "dev"}
    ckpts = sorted({s for s in range(1, state["steps"] + 1) if s % SAVE_STEPS == 0} | evals)
    yield {"data": data, "state": state, "chunks": n_chunks, "ckpts": ckpts,
           "run": root / "ref" / "run"}
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize("seed", [0, 1])
def test_kill_every_stage_then_resume_gives_identical_results(seed, reference, tiny_teacher,
                                                             tmp_path):
    ref = reference
    assert ref["chunks"] >= 3 and len(ref["ckpts"]) >= 4  # room for the kills below
    cmd = distill_command(tmp_path, tiny_teacher, ref["data"])
    run, cache = tmp_path / "run", tmp_path / "cache"
    rng = np.random.default_rng(seed)

    def check_whole() -> None:
        assert_nothing_half_written(run, cache)
        assert not (run / "results.json").exists()

    kill_at(cmd, "transfer set built")
    check_whole()
    assert os.path.exists(one(str(cache / "transfer-*" / "meta.json")))
    assert not glob.glob(str(cache / "logits-*"))

    kill_at(cmd, "teacher exported")
    check_whole()
    assert os.path.exists(one(str(cache / "teacher-*" / "model.json")))
    assert not glob.glob(str(cache / "logits-*" / "*.npy"))

    c = int(rng.integers(1, ref["chunks"]))  # chunks 1..c saved, the rest not yet labelled
    kill_at(cmd, "chunk labelled", c)
    check_whole()
    logits = one(str(cache / "logits-*"))
    assert len(glob.glob(os.path.join(logits, "chunk-*.npy"))) == c
    assert not os.path.exists(os.path.join(logits, "logits.npy"))

    kill_at(cmd, "before meta")  # the rest labelled and merged; its meta.json not yet written
    check_whole()
    assert len(glob.glob(os.path.join(logits, "chunk-*.npy"))) == ref["chunks"]
    assert os.path.exists(os.path.join(logits, "logits.npy"))
    assert not os.path.exists(os.path.join(logits, "meta.json"))

    k = int(rng.integers(1, len(ref["ckpts"]) - 1))  # the k-th last.ckpt written, not renamed
    kill_at(cmd, "rename last.ckpt", k)
    check_whole()
    assert os.path.exists(os.path.join(logits, "meta.json"))
    assert not glob.glob(os.path.join(logits, "chunk-*.npy"))  # merged, then removed
    assert glob.glob(str(run / ".last.ckpt.*.tmp"))  # the new one, whole, but never renamed
    start = ref["ckpts"][k - 2] if k > 1 else None
    assert checkpoint_step(run) == start

    s = int(rng.integers((start or 0) + 1, ref["state"]["steps"] + 1))  # an absolute step
    kill_at(cmd, "step", s - (start or 0))
    check_whole()
    assert checkpoint_step(run) == max(x for x in ref["ckpts"] if x <= s)

    run_ok(cmd)
    assert not glob.glob(str(run / ".*.tmp"))
    assert (run / "model_state.pdparams").exists()
    assert final_state(run) == ref["state"]


@pytest.mark.parametrize("point", ["rename model.onnx", "rename export.json", "exported written"])
def test_killed_export_leaves_a_whole_export(point, reference, tmp_path):
    """An export killed while it writes (a file written but not renamed, or the scratch
    folder complete but not swapped in) leaves the earlier export whole and usable; the rerun
    finishes it and leaves no scratch folder behind."""
    from predict import main as predict

    dst = tmp_path / "exported"
    cmd = [sys.executable, os.path.join(ROOT, "export.py"), str(reference["run"]), str(dst)]
    run_ok(cmd)
    files = {f: os.path.getmtime(dst / f) for f in os.listdir(dst)}
    kill_at(cmd, point)
    assert [p for p in os.listdir(tmp_path) if p.startswith(".exported.")]  # killed mid-write
    assert {f: os.path.getmtime(dst / f) for f in os.listdir(dst)} == files  # untouched
    (tmp_path / "in.txt").write_text("a great movie\n")
    predict([str(dst), "--input", str(tmp_path / "in.txt"), "--output",
             str(tmp_path / "preds.jsonl")])
    assert json.loads((tmp_path / "preds.jsonl").read_text())["label"] in (0, 1)
    run_ok(cmd)
    assert sorted(os.listdir(dst)) == sorted(files)
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]


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
