"""The whole job as stages with files between them: backbone -> teacher -> baseline ->
distilled student -> export -> inference benchmark -> report, and the presets that set
their flags. pipeline.py is its command line.

Each stage runs the project's own script in a subprocess, with the command logged so it can
be rerun by hand, and is skipped when its finished output exists; a stage that was cut off
resumes from its last checkpoint (and labelling from its last saved chunk).
"""
from __future__ import annotations

import argparse
import functools
import logging
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import cpu
from args import check_flags
from data import load_split, task_of
from tasks import Task
from runs import EXPORT_INFO, LAST, MODEL_STATE, RESULTS, exists, is_student_run, read_json
from utils import UserError, atomic_write_json, fault_point, format_seconds, setup_logging

logger = logging.getLogger("pipeline")
HERE = os.path.dirname(os.path.abspath(__file__))

GOOGLE_NEWS = "w2v.google_news.target.word-word.dim300.en"
GLOVE_50D = "glove.wiki2014-gigaword.target.word-word.dim50.en"  # GloVe 6B 50d


@dataclass(frozen=True)
class Preset:
    """A preset's settings: each a {flag: value} override of a script's defaults, checked
    with the script's own flag rules before the first stage starts."""

    backbone: dict[str, str]  # language -> backbone name (or "minilm": convert from PyPI)
    embedding_name: dict[str, str]  # language -> paddlenlp TokenEmbedding name
    teacher: dict[str, Any]  # teacher.py
    teacher_small_set: dict[str, Any] | None = None  # teacher.py on <= SMALL_SET examples
    student: dict[str, Any] = field(default_factory=dict)  # small.py and bert_distill.py
    distill: dict[str, Any] = field(default_factory=dict)  # bert_distill.py only
    student_pairs: dict[str, Any] = field(default_factory=dict)  # over student, pair tasks

    def teacher_for(self, n_train: int) -> dict[str, Any]:
        return self.teacher_small_set if self.teacher_small_set and n_train <= SMALL_SET \
            else self.teacher

    def student_for(self, task: Task) -> dict[str, Any]:
        return {**self.student, **(self.student_pairs if task.is_pair else {})}


SMALL_SET = 20000  # training examples: one teacher epoch is not enough below this


def as_flags(settings: dict[str, Any]) -> list[str]:
    """{flag: value} -> argv: True is a bare switch, a list several values."""
    out: list[str] = []
    for name, v in settings.items():
        out += [f"--{name}"] if v is True else \
            [f"--{name}", *map(str, v)] if isinstance(v, list) else [f"--{name}", str(v)]
    return out


# The student as Tang et al. 2019 (arXiv 1903.12136) train it, each choice with its section.
# Where the paper names none, the authors' code (castorini/d-bert, confs/birnn_sst2.json).
PAPER_STUDENT = {
    "optimizer": "adadelta",  # Sec. 4.2: AdaDelta (Zeiler 2012) ...
    "lr": 1.0,  # ... with its default learning rate, 1.0 ...
    "rho": 0.95,  # ... and rho = 0.95, its decay rate (Sec. 4.2)
    "lr_schedule": "constant",  # Sec. 4.2 names no schedule: AdaDelta scales its own steps
    "hidden_size": 150,  # Sec. 4.2: 150 or 300 BiLSTM units, chosen on dev; the smaller
    "fc_size": 200,  # Sec. 4.2: 200 or 400 units in the ReLU layer, likewise
    "batch_size": 50,  # Sec. 4.2: 50 for SST-2 (256 for the larger pair sets: PAPER_PAIRS)
    "dropout": 0.1,  # not in the paper (Sec. 3.1 adds no tricks); the authors' code: 0.1
    "max_epoch": 30,  # not in the paper; the authors' code: 30 (the best dev epoch is kept)
}
PAPER_PAIRS = {"batch_size": 256}  # Sec. 4.2: for MNLI and QQP, the larger sets

PRESETS = {
    # Tang et al.: 300-d word2vec trained on Google News (Sec. 4.2); n_iter 20, 10 for pairs
    # (Sec. 4.2); only the distillation loss, alpha = 0 (Sec. 4), MSE on logits (Sec. 3.2).
    # The teacher is bert-base, as PaddleNLP's (the paper's is BERT-large, Sec. 4).
    "paper": Preset({"en": "bert-base-uncased", "zh": "bert-base-chinese"},
                    {"en": GOOGLE_NEWS}, teacher={"max_epoch": 3, "lr": 2e-5},
                    student=PAPER_STUDENT, student_pairs=PAPER_PAIRS,
                    distill={"alpha": 0.0, "kd_loss": "mse"}),
    # A 2-core CPU in a few hours: MiniLM-L6 (PyPI), 50-d GloVe. One epoch of MiniLM at lr
    # 1e-4 reaches 0.89 on SST-2 (67k sentences), evaluated every 300 steps; small training
    # sets such as MRPC (3.7k pairs) need a few epochs. The distilled student trains at most
    # 4 epochs (on SST-2, 4 x 0.9M transfer examples) and stops after 2 without a better dev
    # score, so 3 seeds fit in a few hours. The baseline is cheap and keeps all 10 epochs:
    # stopped after 2, its seed 2 on SST-2 ended at epoch 3, under-trained.
    "cpu": Preset({"en": "minilm"}, {"en": GLOVE_50D},
                  teacher={"lr": 1e-4, "max_epoch": 1, "eval_steps": 300},
                  teacher_small_set={"lr": 1e-4, "max_epoch": 5},
                  distill={"max_epoch": 4, "early_stopping_patience": 2}),
    # The cpu preset cut to about 15 minutes on 2 cores: 600 teacher steps, a transfer set of
    # n_iter 4 with half the loss on the gold labels of the originals (on so small a set it
    # measured better than MSE alone: docs/results.md), students stopped after 2 epochs
    # without a better dev score.
    "quick": Preset({"en": "minilm"}, {"en": GLOVE_50D},
                    teacher={"lr": 1e-4, "max_steps": 600, "eval_steps": 300},
                    teacher_small_set={"lr": 1e-4, "max_epoch": 3},
                    distill={"n_iter": 4, "alpha": 0.5},
                    student={"max_epoch": 4, "early_stopping_patience": 2}),
}


# The pipeline benches what it trained: every path of the student, and its own teacher on
# the paths it is deployed on (Paddle Inference, fp32 and bf16), on 300 dev texts. The
# bert-base-shaped comparison (110M parameters: most of a job's memory and a quarter of its
# time) and the teacher's eager and ONNX paths are bench/inference.py's, run by hand.
PIPELINE_BENCH = ["--no_bert_base", "--min_seconds", "0.5", "--n", "300",
                  "--teacher_paths", "exported", "exported bf16"]


class PipelineError(UserError):
    pass


def run_stage(name: str, cmd: list[str], log_dir: str) -> tuple[float, float]:
    """Runs one stage's command (output shown and kept in log_dir/<name>.log); returns its
    wall time and peak memory in GB (the largest resident size of the stage's process and
    the processes it ran). A failing stage stops the pipeline with the stage's own error
    (its `error: ...` line, as run_cli prints it)."""
    logger.info("stage %s: %s", name, " ".join(shlex.quote(c) for c in cmd))
    t0 = time.perf_counter()
    cause = ""
    with open(os.path.join(log_dir, f"{name}.log"), "a", encoding="utf-8") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                cwd=HERE, bufsize=1)
        for line in proc.stdout:
            log.write(line)
            sys.stderr.write(line)
            if line.startswith("error: "):
                cause = ": " + line[len("error: "):].strip()
        _, status, usage = os.wait4(proc.pid, 0)  # wait() with the process's own rusage
        code = proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - t0
    peak_gb = round(usage.ru_maxrss / 2**20, 3)  # kB on Linux
    if code != 0:
        logger.error("stage %s failed (exit %d); see %s/%s.log", name, code, log_dir, name)
        raise PipelineError(f"stage {name} failed (exit {code}){cause}; see "
                            f"{log_dir}/{name}.log. Fix the cause and rerun: finished stages "
                            "are skipped")
    logger.info("stage %s done in %s (peak %.2f GB)", name, format_seconds(seconds), peak_gb)
    return seconds, peak_gb


def script(name: str, *args: str) -> list[str]:
    return [sys.executable, os.path.join(HERE, name), *args]


def training_stage(name: str, out: str, args: list[str]) -> list[str] | None:
    """The command of a training stage, None when it already finished (results and the
    saved best weights); --resume when an earlier attempt left a checkpoint."""
    if exists(out, RESULTS, MODEL_STATE):
        return None
    return script(name, *args, "--output_dir", out, *(["--resume"] if exists(out, LAST) else []))


def unless_exists(path: str, cmd: list[str]) -> list[str] | None:
    """A stage's command, None when the file it ends by writing exists."""
    return None if os.path.exists(path) else cmd


def abs_or_name(path: str | None) -> str | None:
    """A local path made absolute (stages run in the project folder); a model name as is."""
    return os.path.abspath(path) if path and os.path.exists(path) else path


OWN_FILES = ("train_file", "dev_file", "test_file")
OWN_FLAGS = ("file_format", "text_column", "label_column", "id_column", "labels", "label_names",
             "language")


def pipeline_data(args: argparse.Namespace) -> tuple[list[str], Task]:
    """The stages' data flags (a built-in task, or your own files made absolute: stages run
    in the project folder) and the task they describe, checked before any stage starts."""
    if args.train_file:
        data = [x for f in OWN_FILES if getattr(args, f)
                for x in (f"--{f}", os.path.abspath(getattr(args, f)))]
        for f in OWN_FLAGS:
            v = getattr(args, f)
            if v is not None:
                data += [f"--{f}", *([v] if isinstance(v, str) else v)]
    else:
        data = ["--task_name", args.task_name or "sst-2"]
        if args.data_dir:
            data += ["--data_dir", os.path.abspath(args.data_dir)]
    return data, task_of(check_flags("small", data).data)


def plan(args: argparse.Namespace, out: str) -> list[tuple[str, Callable[[], list[str] | None]]]:
    """(stage, its command when it must run, None when its finished output exists); each
    command is built when its stage is reached, since it may depend on what ran before."""
    preset = PRESETS[args.preset]
    task_flags, task = pipeline_data(args)
    data = list(task_flags)
    for flag in ("max_train_samples", "max_eval_samples", "device", "num_threads"):
        if getattr(args, flag) is not None:
            data += [f"--{flag}", str(getattr(args, flag))]
    vectors = []
    if args.embedding_path:
        vectors = ["--embedding_path", os.path.abspath(args.embedding_path)]
    elif args.embedding_name or task.language in preset.embedding_name:
        vectors = ["--embedding_name", args.embedding_name or preset.embedding_name[task.language]]
    student = vectors + ["--student", args.student] + as_flags(preset.student_for(task)) + \
        shlex.split(args.student_args)

    stages: list[tuple[str, Callable[[], list[str] | None]]] = []
    # --teacher_path: one teacher or several (their mean logits), BERT teachers or student runs;
    # a single BERT teacher is also benchmarked, exported and reported beside the students
    teachers = [abs_or_name(p) for p in args.teacher_path or [os.path.join(out, "teacher")]]
    teacher_dir = teachers[0] if len(teachers) == 1 and not is_student_run(teachers[0]) else None
    if not args.teacher_path:
        backbone = abs_or_name(args.backbone) or preset.backbone.get(task.language)
        if backbone is None:
            raise PipelineError(f"--backbone: preset {args.preset} has no {task.language} "
                                f"backbone; give one (e.g. bert-base-chinese)")
        if backbone == "minilm":  # converted once from the PyPI package, shared by tasks
            backbone = os.path.abspath(os.path.join("pretrained_models", "minilm"))
            stages.append(("backbone", lambda: None if exists(backbone, "config.json", MODEL_STATE)
                           else script("convert.py", "minilm", backbone)))
        n_train = len(load_split(task, "train", args.data_dir))
        n_train = min(n_train, args.max_train_samples or n_train)
        teacher_flags = as_flags(preset.teacher_for(n_train)) + shlex.split(args.teacher_args)
        check_flags("teacher", data + teacher_flags)  # before any stage starts
        teacher_args = data + ["--model_name_or_path", backbone, *teacher_flags]
        stages.append(("teacher", lambda: training_stage("teacher.py", teacher_dir, teacher_args)))
    # One baseline and one distilled student per seed, all on one transfer set (so the
    # teacher labels it once): the seeds vary initialisation, data order and dropout.
    runs = [(s, os.path.join(out, f"seed-{s}")) for s in args.seeds] if args.seeds else \
        [(None, out)]
    small_dirs, distill_dirs = [], []
    for seed, run_dir in runs:
        suffix, seed_args = ("", []) if seed is None else (f"-seed{seed}", ["--seed", str(seed)])
        small_dir, distill_dir = os.path.join(run_dir, "small"), os.path.join(run_dir, "bert_distill")
        small_args = data + student + seed_args
        distill_flags = as_flags(preset.distill) + shlex.split(args.distill_args)
        check_flags("small", small_args)  # before any stage starts
        check_flags("bert_distill", small_args + distill_flags)
        distill_args = data + student + seed_args + [
            "--teacher_path", *teachers, "--baseline_dir", small_dir,
            "--cache_dir", os.path.join(out, "cache"),
            *(["--augment_seed", str(args.seeds[0])] if args.seeds else []), *distill_flags]
        stages.append((f"baseline{suffix}", functools.partial(
            training_stage, "small.py", small_dir, small_args)))
        stages.append((f"distill{suffix}", functools.partial(
            training_stage, "bert_distill.py", distill_dir, distill_args)))
        small_dirs.append(small_dir)
        distill_dirs.append(distill_dir)
    distill_dir = distill_dirs[0]  # exported and benchmarked
    exported = os.path.join(out, "exported", "student")
    stages.append(("export", functools.partial(unless_exists, os.path.join(exported, EXPORT_INFO),
                                                script("export.py", distill_dir, exported))))
    inference = os.path.join(out, "inference.json")
    bench = script(os.path.join("bench", "inference.py"), *task_flags,
                   "--student", distill_dir, *(["--teacher", teacher_dir] if teacher_dir else []),
                   "--json", inference,
                   *(["--num_threads", str(args.num_threads)] if args.num_threads else []),
                   *PIPELINE_BENCH, *shlex.split(args.bench_args))
    stages.append(("bench", functools.partial(unless_exists, inference, bench)))
    stages += submission_stages(args, task, out, teacher_dir, small_dirs[0], distill_dir)
    stages.append(("report", lambda: script(
        "report.py", *([teacher_dir] if teacher_dir and exists(teacher_dir, RESULTS) else []),
        *small_dirs,
        *distill_dirs, "--inference", inference, "--out", out)))
    return stages


def submission_stages(args: argparse.Namespace, task: Task, out: str, teacher_dir: str | None,
                      small_dir: str, distill_dir: str
                      ) -> list[tuple[str, Callable[[], list[str] | None]]]:
    """Test-set predictions in the files GLUE's server expects, under out/submission/<model>/
    (the first seed's students; a single teacher through its export, exported/teacher)."""
    if task.submission is None:  # your own task: predict.py on your test file instead
        return []
    if args.data_dir and not os.path.isfile(os.path.join(args.data_dir, task.files["test"][0])):
        logger.warning("no %s in --data_dir %s: test-set predictions (submission/) skipped",
                       task.files["test"][0], args.data_dir)
        return []
    stages: list[tuple[str, Callable[[], list[str] | None]]] = []
    models = [("baseline", small_dir), ("distilled", distill_dir)]
    if teacher_dir and (os.path.isdir(teacher_dir) or not args.teacher_path):
        exported = os.path.join(out, "exported", "teacher")
        stages.append(("export-teacher", functools.partial(
            unless_exists, os.path.join(exported, EXPORT_INFO),
            script("export.py", teacher_dir, exported))))
        models.insert(0, ("teacher", exported))
    flags = ["--format", "glue", "--task_name", task.name,
             *(["--data_dir", os.path.abspath(args.data_dir)] if args.data_dir else []),
             *(["--device", args.device] if args.device else []),
             *(["--num_threads", str(args.num_threads)] if args.num_threads else [])]
    for name, model in models:
        folder = os.path.join(out, "submission", name)
        stages.append((f"submission-{name}", functools.partial(
            unless_exists, os.path.join(folder, task.submission[0]),
            script("predict.py", model, *flags, "--output", folder))))
    return stages


def run_pipeline(args: argparse.Namespace) -> dict:
    """Runs every stage that has not finished; returns pipeline.json's content (each stage
    run now, with its command and wall time)."""
    task = pipeline_data(args)[1]
    out = os.path.abspath(args.output_dir or
                          os.path.join("output", "pipeline", f"{task.name}-{args.preset}" +
                                       ("" if args.student == "bilstm" else f"-{args.student}")))
    os.makedirs(out, exist_ok=True)
    setup_logging(os.path.join(out, "pipeline.log"))
    logger.info("%s", cpu.describe())  # the stages inherit the setting through the environment
    state_path = os.path.join(out, "pipeline.json")
    state = {"preset": args.preset, "task": task.name, "stages": {}}
    if os.path.exists(state_path):
        state = read_json(state_path)
        if state["preset"] != args.preset or state["task"] != task.name:
            raise PipelineError(f"--output_dir {out} holds a {state['task']} pipeline with "
                                f"preset {state['preset']}; choose another --output_dir")
    t0 = time.perf_counter()
    for name, command in plan(args, out):
        cmd = command()
        if cmd is None:
            logger.info("stage %s: finished output exists, skipped", name)
            continue
        seconds, peak_gb = run_stage(name, cmd, out)
        state["stages"][name] = {"command": cmd, "seconds": seconds, "peak_memory_gb": peak_gb}
        atomic_write_json(state_path, state)
        fault_point("stage done")
    state["peak_memory_gb"] = max((s.get("peak_memory_gb", 0.0) for s in state["stages"].values()),
                                  default=0.0)
    atomic_write_json(state_path, state)
    logger.info("pipeline done in %s (peak memory of a stage %.2f GB); report in %s",
                format_seconds(time.perf_counter() - t0), state["peak_memory_gb"],
                os.path.join(out, "report.md"))
    return state
