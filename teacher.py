"""Fine-tunes the BERT teacher on a task of the task table.

    python teacher.py --task_name sst-2 --data_dir path/to/SST-2 \
        --model_name_or_path pretrained_models/minilm --output_dir pretrained_models/sst-2

The best checkpoint is saved with `save_pretrained` (config.json, model_state.pdparams,
tokenizer files) to --output_dir, where bert_distill.py looks for it by default.
"""
from __future__ import annotations

import cpu  # noqa: F401  (first: sets MKL's CPU type before Paddle loads)

from typing import Sequence

from args import TEACHER_ROOT, parse_config
from finetune import finetune
from utils import run_cli


def main(argv: Sequence[str] | None = None) -> dict:
    cfg = parse_config("teacher", argv, __doc__, output_root=TEACHER_ROOT)
    return finetune(cfg)


if __name__ == "__main__":
    run_cli(main)
