"""Exports a trained model for Paddle Inference: a student run (small.py / bert_distill.py:
its best checkpoint) or a teacher (a save_pretrained directory), as a static graph
(`model.json` / `model.pdiparams`) plus what predict.py needs to turn text into inputs
(the vocabulary or tokenizer, and `export.json`). Students also get `model.onnx` for ONNX
Runtime, their fastest CPU path (predict.py --backend onnxruntime).

    python export.py output/bert_distill/sst-2 exported/sst-2-student
    python export.py pretrained_models/sst-2 exported/sst-2-teacher
"""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile

from data import TASKS, Vocab
from inference import ONNX_FILE, export_static, export_student_onnx
from model import BiLSTMStudent, StudentConfig
from teacher import INPUTS, TeacherError, load_teacher, save_pretrained
from trainer import BEST, RunError, load_checkpoint
from utils import atomic_write_json, run_cli

logger = logging.getLogger(__name__)

EXPORT_INFO = "export.json"


def student_inputs(pair: bool) -> dict[str, int]:
    names = {"input_ids": 2, "lengths": 1}
    return {**names, "input_ids_b": 2, "lengths_b": 1} if pair else names


def export_student(run_dir: str, out: str) -> dict:
    """The best checkpoint of a student run -> `out`. Returns export.json's content."""
    ckpt = load_checkpoint(os.path.join(run_dir, BEST))
    config = StudentConfig(**ckpt["model_config"])
    model = BiLSTMStudent(config)
    model.set_state_dict(ckpt["model"])
    data = ckpt["config"]["data"]
    model.eval()
    export_static(model, student_inputs(config.pair), os.path.join(out, "model"))
    export_student_onnx(model, os.path.join(out, ONNX_FILE))
    Vocab(ckpt["vocab"]).save(os.path.join(out, "vocab.txt"))
    info = {"kind": "student", "task": data["task_name"],
            "language": TASKS[data["task_name"]].language,
            "max_seq_length": data["max_seq_length"], "num_labels": config.num_labels,
            "pair": config.pair, "source": os.path.abspath(run_dir)}
    atomic_write_json(os.path.join(out, EXPORT_INFO), info)  # last: marks a whole export
    return info


def export_teacher(teacher_dir: str, out: str, max_seq_length: int = 128) -> dict:
    model, tokenizer = load_teacher(teacher_dir, None)
    export_static(model, INPUTS, os.path.join(out, "model"))
    save_pretrained(model, tokenizer, out)  # tokenizer files (and the eager model) beside it
    info = {"kind": "teacher", "max_seq_length": max_seq_length,
            "num_labels": model.num_labels, "source": os.path.abspath(teacher_dir)}
    atomic_write_json(os.path.join(out, EXPORT_INFO), info)
    return info


def export_atomically(src: str, dst: str, max_seq_length: int = 128) -> dict:
    """Exports into a scratch folder beside `dst`, then swaps it in: an interrupted export
    never leaves a half-written model under `dst`, and an earlier export stays whole."""
    parent, name = os.path.split(os.path.abspath(dst))
    os.makedirs(parent, exist_ok=True)
    for f in os.listdir(parent):  # what a killed export left behind
        if f.startswith(f".{name}.") and os.path.isdir(os.path.join(parent, f)):
            shutil.rmtree(os.path.join(parent, f))
    tmp = tempfile.mkdtemp(dir=parent, prefix=f".{name}.")
    try:
        if os.path.exists(os.path.join(src, BEST)):
            info = export_student(src, tmp)
        else:
            info = export_teacher(src, tmp, max_seq_length)
        if os.path.exists(dst):
            old = tmp + ".old"
            os.rename(dst, old)
            os.rename(tmp, dst)
            shutil.rmtree(old)
        else:
            os.rename(tmp, dst)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return info


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", help="a student run directory (with best.ckpt) or a teacher "
                               "save_pretrained directory")
    p.add_argument("dst", help="output directory")
    p.add_argument("--max_seq_length", type=int, default=128,
                   help="teacher only: word pieces kept per input")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    info = export_atomically(args.src, args.dst, args.max_seq_length)
    logger.info("exported %s %s -> %s", info["kind"], args.src, args.dst)


if __name__ == "__main__":
    run_cli(main, (RunError, TeacherError))
