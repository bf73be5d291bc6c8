"""Run directories: the files every run writes, what kind of model a folder holds, and
reading finished runs back. No Paddle here: the pipeline and the report only read files.

A student run (small.py, bert_distill.py) holds config.json (its settings), vocab.txt,
best.ckpt / last.ckpt, model_state.pdparams, metrics.jsonl, results.json. A teacher run
(teacher.py) is also a `save_pretrained` model, so its own config.json is the model's and
its settings are in run_config.json. An export (export.py) holds export.json.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

from args import settings_diff
from utils import UserError, read_jsonl

LAST, BEST = "last.ckpt", "best.ckpt"
CONFIG, METRICS, RESULTS = "config.json", "metrics.jsonl", "results.json"
# A teacher folder's configuration: save_pretrained's config.json, or model_config.json as
# PaddleNLP 2.0's run_glue.py wrote it (the teacher folders of PaddleNLP's distill_lstm README:
# model_config.json, model_state.pdparams, tokenizer_config.json, vocab.txt).
CONFIG_FILES = (CONFIG, "model_config.json")
TEACHER_CONFIG = "run_config.json"
MODEL_STATE = "model_state.pdparams"  # the best weights alone, as every run leaves them
VOCAB = "vocab.txt"
EXPORT_INFO = "export.json"
VISUALDL_DIR = "visualdl"  # VisualDL scalars, beside metrics.jsonl
RUN_FILES = (LAST, BEST, METRICS, RESULTS, MODEL_STATE)
STUDENT_SCRIPTS = ("small", "bert_distill")


class RunError(UserError):
    """A run directory that cannot be used as asked; the message says why and what to do."""


def read_json(path: str) -> dict:
    """A JSON file written by a run; a damaged one is an error naming it."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (ValueError, UnicodeDecodeError) as e:
        raise RunError(f"{path}: not a readable JSON file ({e})") from None


def exists(path: str, *files: str) -> bool:
    return all(os.path.exists(os.path.join(path, f)) for f in files)


def is_student_run(path: str) -> bool:
    """A small.py / bert_distill.py run with a best checkpoint."""
    return exists(path, CONFIG, BEST) and \
        read_json(os.path.join(path, CONFIG)).get("script") in STUDENT_SCRIPTS


def model_kind(path: str) -> str:
    """What `path` holds: 'export' (export.py), 'student' (a small.py / bert_distill.py run
    with a best checkpoint) or 'teacher' (a save_pretrained directory, e.g. a teacher.py
    run, whose best.ckpt must not be taken for a student's)."""
    if exists(path, EXPORT_INFO):
        return "export"
    if is_student_run(path):
        return "student"
    if any(exists(path, c, MODEL_STATE) for c in CONFIG_FILES):
        return "teacher"
    raise RunError(f"{path}: neither an export ({EXPORT_INFO}), a student run ({CONFIG} and "
                   f"{BEST}) nor a teacher ({CONFIG} and {MODEL_STATE})")


def run_settings(path: str) -> dict:
    """A run's saved settings (a teacher's run_config.json, a student's config.json)."""
    for name in (TEACHER_CONFIG, CONFIG):
        p = os.path.join(path, name)
        if os.path.isfile(p):
            cfg = read_json(p)
            if "script" in cfg:
                return cfg
    return {}


@dataclass
class Run:
    """A finished run: its results, settings, dev curve and size on disk."""

    path: str
    kind: str  # teacher, small or bert_distill
    results: dict
    config: dict
    curve: list[dict]  # the dev records of metrics.jsonl
    size_mb: float | None


def load_run(path: str) -> Run:
    results_path = os.path.join(path, RESULTS)
    if not os.path.isfile(results_path):
        raise RunError(f"{path}: no {RESULTS} (not a finished run)")
    config = run_settings(path)
    kind = config.get("script")
    if kind not in ("teacher", *STUDENT_SCRIPTS):
        raise RunError(f"{path}: no run settings ({CONFIG} or {TEACHER_CONFIG} naming "
                       f"teacher, small or bert_distill)")
    weights = os.path.join(path, MODEL_STATE)
    size = os.path.getsize(weights) / 1e6 if os.path.isfile(weights) else None
    curve = [r for r in read_jsonl(os.path.join(path, METRICS)) if r.get("split") == "dev"]
    return Run(path, kind, read_json(results_path), config, curve, size)


def baseline_summary(baseline_dir: str, ours: dict) -> dict:
    """The small.py run to compare against: its folder, dev scores and `differs_in`, the
    settings in which it differs from `ours` (a run's config dict) where they should match."""
    if not exists(baseline_dir, RESULTS, CONFIG):
        raise RunError(f"--baseline_dir {baseline_dir}: no {RESULTS} or {CONFIG} (not a "
                       f"finished small.py run)")
    base = read_json(os.path.join(baseline_dir, RESULTS))
    diffs = settings_diff(read_json(os.path.join(baseline_dir, CONFIG)), ours, "baseline")
    return {"dir": baseline_dir, "dev": base["dev"], "differs_in": list(diffs)}
