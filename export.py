"""Exports a trained model for deployment: a student run (small.py / bert_distill.py: its
best checkpoint) or a teacher (a save_pretrained directory such as a teacher.py run), as a
static graph for Paddle Inference (`model.json` / `model.pdiparams`) plus what predict.py
needs to turn text into inputs (the vocabulary or tokenizer, and `export.json`). Students
also get `model.onnx` for ONNX Runtime, their fastest CPU path, and with --int8
`model.int8.onnx`, the same graph with int8 weights (predict.py --backend onnxruntime-int8).

    python export.py output/bert_distill/sst-2 exported/sst-2-student
    python export.py output/bert_distill/sst-2 exported/sst-2-student --int8
    python export.py pretrained_models/sst-2 exported/sst-2-teacher
"""
from __future__ import annotations

import cpu  # noqa: F401  (first: sets MKL's CPU type before Paddle loads)

import argparse
import logging
from typing import Sequence

from model_io import export_model
from utils import run_cli

logger = logging.getLogger(__name__)


def main(argv: Sequence[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", help="a student run directory (with best.ckpt) or a teacher "
                               "save_pretrained directory")
    p.add_argument("dst", help="output directory")
    p.add_argument("--max_seq_length", type=int, default=128,
                   help="teacher only: word pieces kept per input")
    p.add_argument("--int8", action="store_true", help="student only: also write an int8 "
                   "ONNX graph (ONNX Runtime dynamic quantization)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    info = export_model(args.src, args.dst, args.max_seq_length, args.int8)
    logger.info("exported %s %s -> %s", info["kind"], args.src, args.dst)
    return info


if __name__ == "__main__":
    run_cli(main)
