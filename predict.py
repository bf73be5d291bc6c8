"""Predicts labels for texts with an exported model (Paddle Inference: oneDNN on CPU, the
GPU when there is one; or ONNX Runtime for students on CPU, --backend onnxruntime) or
straight from a student run's checkpoint (eager).

    python predict.py exported/sst-2-student --input texts.txt --output preds.jsonl
    echo "a gripping , funny film" | python predict.py exported/sst-2-student
    python predict.py exported/sst-2-student --format glue --task_name sst-2 \
        --data_dir path/to/SST-2 --output submission/     # writes submission/SST-2.tsv

Your own CSV, TSV or JSONL file is read as the training scripts read theirs, with their
flags, and each output line keeps the row's id (or its line number):

    python predict.py exported/agnews-student --test_file path/to/test.csv --text_column 0 \
        --id_column 2 --output preds.jsonl    # {"id": "...", "label": "sports", "probs": ...}

Otherwise one text per line (pair tasks: the two texts separated by a tab). Each output line carries
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
from typing import Sequence, TextIO

from data import file_layout
from inference import predict, predict_table, write_submission
from tasks import FORMATS, TASKS
from model_io import BACKENDS
from utils import atomic_write, default_device, run_cli


def main(argv: Sequence[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="export directory (export.py) or a student run directory")
    p.add_argument("--input", help="text file, one text per line (default: stdin)")
    own = p.add_argument_group("your own file, read as small.py reads --train_file")
    own.add_argument("--test_file", help="a CSV, TSV or JSONL file to predict (labels not "
                     "needed); a bad row stops with its line, before --output is replaced")
    own.add_argument("--file_format", choices=FORMATS, help="default: by the extension")
    own.add_argument("--text_column", nargs="+", default=["text"],
                     help="column name(s), or 0-based number(s) in a file without a header")
    own.add_argument("--id_column", help="kept in every output line (default: the line number)")
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
    if args.test_file:
        if args.input or args.format == "glue":
            p.error("--test_file: give --test_file or --input (or --format glue), not both")
        layout = file_layout(args.test_file, args.file_format, args.text_column, None,
                             args.id_column)
        counts: dict = {}

        def write(out: TextIO) -> None:
            counts.update(predict_table(args.model, args.test_file, layout, out, args.format,
                                        args.batch_size, device, args.num_threads, args.backend))

        def write_file(tmp: str) -> None:
            with open(tmp, "w", encoding="utf-8") as f:
                write(f)
        if args.output:  # whole or not at all
            atomic_write(args.output, write_file)
        else:
            write(sys.stdout)
        print(f"{counts['lines']} rows predicted", file=sys.stderr)
        return counts
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
