"""Distillation wall time with cached teacher logits against PaddleNLP's online teacher,
side by side in one run, with the same teacher, transfer set and student.

Both runs are the real bert_distill.py on the same SST-2 training subset:
  cached   builds the transfer set, labels it once with the exported teacher (Paddle
           Inference), then trains the student for one epoch on the cached logits;
  online   (--online_teacher, PaddleNLP's way) runs the eager teacher on every student
           batch; timed over --online_steps steps, its epoch time is extrapolated.
It prints the time per epoch and for `--epochs` epochs end to end (transfer set +
labelling + training), and the speed-up.

    python bench/distill_speed.py --data_dir ../shared/data/sst2 \
        --teacher ../shared/models/minilm-sst2 \
        --embedding_path ../shared/data/embeddings/glove.6B.50d.sst2.txt
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import cpu  # noqa: E402,F401  (before Paddle: sets MKL's CPU type)
import paddle  # noqa: E402
from utils import cpu_threads, format_seconds  # noqa: E402


def bert_distill(args: list[str]) -> dict:
    """Runs bert_distill.py as a user would; returns its results.json."""
    subprocess.run([sys.executable, os.path.join(ROOT, "bert_distill.py"), *args], check=True)
    with open(os.path.join(args[args.index("--output_dir") + 1], "results.json")) as f:
        return json.load(f)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dir", default="../shared/data/sst2")
    p.add_argument("--teacher", default="../shared/models/minilm-sst2")
    p.add_argument("--embedding_path")
    p.add_argument("--n", type=int, default=2000, help="SST-2 training sentences used")
    p.add_argument("--n_iter", type=int, default=20)
    p.add_argument("--online_steps", type=int, default=100,
                   help="student steps timed with the online teacher")
    p.add_argument("--epochs", type=int, default=6, help="PaddleNLP trains 6 epochs")
    p.add_argument("--batch_size", type=int, default=128, help="PaddleNLP's SST-2 setting")
    p.add_argument("--num_threads", type=int, default=cpu_threads())
    args = p.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        common = ["--task_name", "sst-2", "--data_dir", args.data_dir, "--teacher_path",
                  args.teacher, "--max_train_samples", str(args.n), "--n_iter", str(args.n_iter),
                  "--batch_size", str(args.batch_size), "--device", "cpu",
                  "--num_threads", str(args.num_threads), "--logging_steps", "20",
                  "--cache_dir", os.path.join(tmp, "cache")]
        if args.embedding_path:
            common += ["--embedding_path", args.embedding_path]
        cached = bert_distill(common + ["--max_epoch", "1",
                                             "--output_dir", os.path.join(tmp, "cached")])
        online = bert_distill(common + ["--online_teacher", "--max_steps",
                                             str(args.online_steps),
                                             "--output_dir", os.path.join(tmp, "online")])
    n = cached["transfer_examples"]
    build, label = cached["seconds"]["transfer_set"], cached["seconds"]["labelling"]
    epoch_cached = n / cached["train_examples_per_s"]
    epoch_online = n / online["train_examples_per_s"]
    total_cached = build + label + args.epochs * epoch_cached
    total_online = build + args.epochs * epoch_online
    print(f"\nteacher {args.teacher}; {args.n:,} SST-2 sentences -> transfer set of {n:,} "
          f"(n_iter {args.n_iter}); student batch {args.batch_size}, {args.num_threads} "
          f"threads, Paddle {paddle.__version__}\n")
    print(f"{'':34s} {'cached logits':>14s} {'online teacher':>15s} {'speed-up':>9s}")
    print(f"{'student training, examples/s':34s} {cached['train_examples_per_s']:14,.0f} "
          f"{online['train_examples_per_s']:15,.0f} "
          f"{cached['train_examples_per_s'] / online['train_examples_per_s']:8.1f}x")
    print(f"{'transfer set (built once)':34s} {format_seconds(build):>14s} "
          f"{format_seconds(build):>15s}")
    print(f"{'teacher labelling (once)':34s} {format_seconds(label):>14s} {'-':>15s}")
    print(f"{'one epoch':34s} {format_seconds(epoch_cached):>14s} "
          f"{format_seconds(epoch_online):>15s} {epoch_online / epoch_cached:8.1f}x")
    print(f"{f'end to end, {args.epochs} epochs':34s} {format_seconds(total_cached):>14s} "
          f"{format_seconds(total_online):>15s} {total_online / total_cached:8.1f}x")
    print(f"\nonline: timed over {online['steps']} steps and extrapolated to the epoch; "
          f"cached: one measured epoch.")


if __name__ == "__main__":
    main()
