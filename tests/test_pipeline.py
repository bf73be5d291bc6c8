"""pipeline.py on a fixture with tiny models: a failing stage stops with a message naming its
log, a cut-off stage resumes (the full run and its rerun are in test_readme.py)."""
import json
import os
import time

import pytest

import pipeline
from stages import PipelineError
from utils import UserError
from conftest import tiny_vectors

TINY_STUDENT = "--emb_dim 8 --hidden_size 8 --fc_size 8 --max_epoch 2 --num_threads 1"


def run_pipeline(tmp_path, sst2_dir, backbone, *extra):
    return pipeline.main([
        "--task_name", "sst-2", "--preset", "cpu", "--data_dir", sst2_dir,
        "--backbone", str(backbone), "--output_dir", str(tmp_path / "p"),
        "--embedding_path", tiny_vectors(tmp_path / "vectors.txt"), "--device", "cpu",
        "--teacher_args", "--max_epoch 1 --batch_size 16 --num_threads 1",
        "--student_args", TINY_STUDENT.replace("--emb_dim 8 ", ""),
        "--distill_args", "--n_iter 2 --p_pos 0",
        "--bench_args", "--no_bert_base --n 16 --min_seconds 0.01", *extra])


def test_pipeline_resumes_a_cut_off_stage_and_reports_failures(tiny_en, sst2_dir, tmp_path):
    out = tmp_path / "p"
    (tmp_path / "words.txt").write_text("zzz\n")  # no training word: the stage fails when it runs
    with pytest.raises(PipelineError, match=r"stage distill failed \(exit 1\): --vocab_path "
                                            r".*; see .*/distill\.log"):
        run_pipeline(tmp_path, sst2_dir, tiny_en[1], "--distill_args",
                     f"--n_iter 2 --vocab_path {tmp_path / 'words.txt'}")
    assert (out / "small" / "results.json").exists()  # earlier stages are kept
    assert "none of its 1 words occurs" in (out / "distill.log").read_text()
    # A stage cut off after a checkpoint resumes instead of starting over.
    os.remove(out / "small" / "results.json")
    state = run_pipeline(tmp_path, sst2_dir, tiny_en[1])
    assert state["stages"]["baseline"]["command"][-1] == "--resume"


def test_pipeline_flag_errors(tmp_path, capsys):
    with pytest.raises(SystemExit):
        pipeline.main(["--data_dir", str(tmp_path / "missing")])
    assert "--data_dir" in capsys.readouterr().err
    with pytest.raises(PipelineError, match="--backbone: preset cpu has no zh backbone"):
        pipeline.main(["--task_name", "chnsenticorp", "--preset", "cpu", "--output_dir",
                       str(tmp_path / "zh")])


def test_inference_bench_on_a_pair_task(tiny_teacher, mrpc_dir, tmp_path):
    """Both student kinds in one run, each with an int8 path and every path's dev
    accuracy."""
    import subprocess
    import sys

    import small
    from conftest import ROOT

    for kind in ("bilstm", "cnn"):
        small.main(["--task_name", "mrpc", "--data_dir", mrpc_dir, "--output_dir",
                    str(tmp_path / kind), *TINY_STUDENT.split(), "--max_steps", "2", "--device",
                    "cpu", "--student", kind, "--num_filters", "4"])
    out = tmp_path / "inference.json"
    t0 = time.perf_counter()
    run = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "inference.py"), "--task_name",
                          "mrpc", "--student", str(tmp_path / "bilstm"), str(tmp_path / "cnn"),
                          "--teacher", str(tiny_teacher), "--data_dir", mrpc_dir, "--json",
                          str(out), "--no_bert_base", "--min_seconds", "0.01"],
                         check=True, capture_output=True, text=True, timeout=300)
    wall_ms = 1000 * (time.perf_counter() - t0)
    bench = json.loads(out.read_text())
    models = {"BiLSTM student", "CNN student", "fine-tuned teacher"}
    assert {r["model"] for r in bench["rows"]} == models
    for student in ("BiLSTM student", "CNN student"):
        paths = {r["path"]: r for r in bench["rows"] if r["model"] == student}
        assert {"eager", "exported", "onnxruntime", "onnxruntime int8"} <= set(paths)
        # fp32 paths agree on every pair; dev has 60 pairs, so accuracy is k/60
        assert len({paths[p]["dev_acc"] for p in ("eager", "exported", "onnxruntime")}) == 1
        assert round(paths["onnxruntime int8"]["dev_acc"] * 60, 6).is_integer()
        assert f"{student}: " in run.stdout.split("int8 against fp32")[1]
    # the BiLSTM's time per batch of 32, by part, in milliseconds: 20 repeats of its 2 dev
    # batches fit in the bench's own run time (a unit error would not)
    parts = bench["student_ms"]
    assert set(parts) == {"embedding", "BiLSTM", "FC + classifier", "recurrent matmuls"}
    assert 20 * 2 * sum(parts.values()) <= wall_ms
    # Like for like: every model's batch-1 latency over all 60 dev pairs, in data order.
    assert {r["latency_texts"] for r in bench["rows"]} == {60}
    assert "(60;" in bench["setting"] and "every text in data order" in bench["setting"]


def test_pipeline_seeds_share_one_teacher_and_one_transfer_set(tiny_en, sst2_dir, tmp_path):
    state = run_pipeline(tmp_path, sst2_dir, tiny_en[1], "--seeds", "1", "2")
    out = tmp_path / "p"
    assert [s for s in state["stages"] if s.startswith(("baseline", "distill"))] == [
        "baseline-seed1", "distill-seed1", "baseline-seed2", "distill-seed2"]
    for seed in (1, 2):
        cfg = json.loads((out / f"seed-{seed}" / "bert_distill" / "config.json").read_text())
        assert cfg["train"]["seed"] == seed and cfg["augment"]["augment_seed"] == 1
    # One transfer set, labelled once, for both seeds.
    assert len(list((out / "cache").glob("transfer-*"))) == 1
    assert "teacher logits: cached" in (out / "distill-seed2.log").read_text()
    assert "labelled chunk" not in (out / "distill-seed2.log").read_text()
    report = (out / "report.md").read_text()
    assert "dev scores over 2 seeds" in report
    # GLUE's test-set files, for the teacher (through its export) and seed 1's students.
    for model in ("teacher", "baseline", "distilled"):
        lines = (out / "submission" / model / "SST-2.tsv").read_text().splitlines()
        assert lines[0] == "index\tprediction" and len(lines) == 11
        assert all(l.split("\t")[1] in ("0", "1") for l in lines[1:])


@pytest.mark.parametrize("flag, bad, message", [
    ("--student_args", "--hiden_size 8", r"small\.py: unrecognized arguments: --hiden_size 8"),
    ("--distill_args", "--alpha 7", r"bert_distill\.py: --alpha: must be in \[0, 1\]"),
    ("--teacher_args", "--lr x", r"teacher\.py: argument --lr: invalid float value: 'x'"),
])
def test_a_bad_stage_flag_fails_before_any_stage_starts(flag, bad, message, tiny_en, sst2_dir,
                                                        tmp_path):
    with pytest.raises(UserError, match=message):
        run_pipeline(tmp_path, sst2_dir, tiny_en[1], flag, bad)
    assert not (tmp_path / "p" / "pipeline.json").exists()  # no stage ran
    assert not [f for f in os.listdir(tmp_path / "p") if f.endswith(".log") and
                f != "pipeline.log"]


def test_every_preset_is_valid_for_its_scripts():
    from args import check_flags
    from stages import PRESETS, as_flags

    for preset in PRESETS.values():
        check_flags("teacher", as_flags(preset.teacher))
        check_flags("teacher", as_flags(preset.teacher_small_set or {}))
        check_flags("small", as_flags(preset.student))
        check_flags("bert_distill", as_flags(preset.student) + as_flags(preset.distill))
    assert as_flags({"lr": 1e-4, "freeze_embedding": True, "filter_sizes": [3, 4]}) == \
        ["--lr", "0.0001", "--freeze_embedding", "--filter_sizes", "3", "4"]
