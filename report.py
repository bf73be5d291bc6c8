"""Compares finished runs (teacher.py, small.py, bert_distill.py) in one markdown table and
one picture, from what the runs wrote, plus CPU throughput from bench/inference.py's --json
output when given.

    python report.py pretrained_models/sst-2 output/small/sst-2 output/bert_distill/sst-2 \
        --inference output/inference.json --out report/sst-2

writes report/sst-2/report.md and report/sst-2/report.png.
"""
from __future__ import annotations

import argparse
from typing import Sequence

from compare import report
from utils import run_cli


def main(argv: Sequence[str] | None = None) -> str:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="run directories (teacher, small, distilled)")
    p.add_argument("--inference", help="bench/inference.py --json output, for throughput")
    p.add_argument("--out", default="report", help="folder for report.md and report.png")
    args = p.parse_args(argv)
    md = report(args.runs, args.out, args.inference)
    print(md)
    return md


if __name__ == "__main__":
    run_cli(main)
