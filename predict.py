"""Predicts labels for texts with an exported model (Paddle Inference: oneDNN on CPU, the
GPU when there is one; or ONNX Runtime for students on CPU, --backend onnxruntime) or
straight from a student run's checkpoint (eager).

    python predict.py exported/sst-2-student --input texts.txt --output preds.jsonl
    echo "a gripping , funny film" | python predict.py exported/sst-2-student
    python predict.py exported/sst-2-student --format glue --task_name sst-2 \
        --data_dir path/to/SST-2 --output submission/     # writes submission/SST-2.tsv

One text per line (pair tasks: the two texts separated by a tab). Each output line carries
the input line number and either the label and class probabilities or an error; a bad line
(empty, not UTF-8, wrong number of fields) does not stop the file unless --strict.
--format glue predicts the task's test split instead and writes the file the GLUE server
expects (SST-2.tsv, MRPC.tsv, QQP.tsv: index<TAB>prediction; ChnSentiCorp: qid<TAB>label)
into the --output folder.
"""
from __future__ import annotations

import cpu  # noqa: F401  (first: sets MKL's CPU type before Paddle loads)

import argparse
import os
import sys
from typing import Sequence

from tasks import TASKS
from inference import predict, write_submission
from model_io import BACKENDS
from utils import default_device, run_cli


def main(argv: Sequence[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="export directory (export.py) or a student run directory")
    p.add_argument("--input", help="text file (default: stdin)")
    p.add_argument("--output", help="output file (default: stdout)")
    p.add_argument("--format", choices=["jsonl", "tsv", "glue"], default="jsonl")
    p.add_argument("--task_name", choices=sorted(TASKS), help="--format glue: the task whose "
                   "test split to predict")
    p.add_argument("--data_dir", help="--format glue: the task's folder with test.tsv "
                   "(default: paddlenlp download)")
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--device", choices=["cpu", "gpu"], default=None,
                   help="default: gpu when Paddle sees one")
    p.add_argument("--num_threads", type=int, default=None)
    p.add_argument("--backend", choices=BACKENDS, default="paddle",
                   help="engine for an export: Paddle Inference, or ONNX Runtime (students, "
                        "CPU; the fastest there), fp32 or int8 (an export.py --int8 export)")
    p.add_argument("--strict", action="store_true", help="stop at the first bad line")
    args = p.parse_args(argv)
    device = args.device or default_device()
    if args.format == "glue":
        if not args.task_name or not args.output or args.input:
            p.error("--format glue: give --task_name and an --output folder (the test split "
                    "is read from --data_dir), not --input")
        out = write_submission(args.model, args.task_name, args.data_dir, args.output,
                               args.batch_size, device, args.num_threads, args.backend)
        print(f"wrote {out}", file=sys.stderr)
        return {"submission": out}
    if args.input and not os.path.isfile(args.input):
        p.error(f"--input {args.input}: file not found")
    inp = open(args.input, "rb") if args.input else sys.stdin.buffer
    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
    try:
        counts = predict(args.model, inp, out, args.input or "<stdin>", args.format,
                         args.batch_size, device, args.num_threads,
                         args.strict, args.backend)
    finally:
        if args.output:
            out.close()
    print(f"{counts['lines']} lines, {counts['errors']} errors", file=sys.stderr)
    return counts


if __name__ == "__main__":
    run_cli(main)
