"""Student training speed on real SST-2 batches, every configuration in one run.

Each row runs the real training loop (trainer.fit) for --steps steps. The first two rows
reproduce PaddleNLP's distill_lstm small.py for SST-2 (bert-base-uncased WordPiece ids,
30,522-word embedding, hidden 300, 300-d embeddings, random unbucketed batches of 64,
Paddle's default single CPU thread): row 1 as that script runs, with its evaluation of the
whole dev set every 10 steps (wall clock), row 2 without it. The other rows are this
project at PaddleNLP's sizes and at its own defaults, with and without bucketing
(training steps only; we evaluate once per epoch). No row writes checkpoints: PaddleNLP's
SST-2 command saves every 10,000 steps, far beyond the steps timed here.

    python bench/train_speed.py --data_dir ../shared/data/sst2 \
        --wordpiece_vocab pretrained_models/minilm
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import astuple, dataclass

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import cpu  # noqa: E402,F401  (before Paddle: sets MKL's CPU type)
import paddle  # noqa: E402
from args import TrainArgs  # noqa: E402
from data import Encoded, build_vocab, collate, encode, load_split, make_batches, tokenize  # noqa: E402
from tasks import TASKS  # noqa: E402
from model import BiLSTMStudent, StudentConfig  # noqa: E402
from losses import cross_entropy  # noqa: E402
from student import student_forward  # noqa: E402
from trainer import build_optimizer, fit  # noqa: E402


@dataclass
class Row:
    name: str
    wordpiece: bool
    emb_dim: int
    hidden: int
    fc: int
    bucket: bool
    threads: int
    eval_every: int | None = None  # PaddleNLP's small.py evaluates every 10 steps


def wordpiece_ids(sentences: list[str], vocab_dir: str) -> list[np.ndarray]:
    """PaddleNLP's ids for the SST-2 student: BertTokenizer word pieces, no [CLS]/[SEP]."""
    from paddlenlp.transformers import BertTokenizer

    tok = BertTokenizer.from_pretrained(vocab_dir)
    return [np.array(tok.convert_tokens_to_ids(tok.tokenize(s))[:128], dtype=np.int64)
            for s in sentences]


def measure(row: Row, data: Encoded, dev: Encoded, vocab_size: int, steps: int,
            seed: int) -> tuple[float, float]:
    """(examples/s over `steps` steps of the real loop, mean padded length). With
    `eval_every`, the wall clock including those evaluations; otherwise training steps
    only."""
    paddle.base.core.set_num_threads(row.threads)
    paddle.seed(seed)
    with paddle.utils.unique_name.guard():
        model = BiLSTMStudent(StudentConfig(vocab_size=vocab_size, num_labels=2, emb_dim=row.emb_dim,
                                            hidden_size=row.hidden, fc_size=row.fc))
    lengths = data.lengths()
    batches = make_batches(lengths, 64, np.random.default_rng(seed), bucket=row.bucket)
    dev_batches = [collate(dev, idx) for idx in make_batches(dev.lengths(), 64, None, bucket=False)]
    if not row.eval_every:
        dev_batches = dev_batches[:1]  # fit evaluates once at its last step; not timed
    with tempfile.TemporaryDirectory() as out:
        train = TrainArgs(output_dir=out, max_steps=steps, logging_steps=10 ** 9, batch_size=64,
                          seed=seed, device="cpu", no_bucketing=not row.bucket,
                          eval_steps=row.eval_every)
        t0 = time.perf_counter()
        results = fit(model, build_optimizer(train, model, steps)[0], train,
                      epoch_batches=lambda e: batches, collate=lambda idx: collate(data, idx),
                      dev_batches=dev_batches, forward=student_forward, loss_fn=cross_entropy,
                      metric_names=("acc",), resume=False, save_checkpoints=False)
        wall = time.perf_counter() - t0
    padded = np.mean([lengths[b].max() for b in batches[:steps]])
    speed = steps * 64 / wall if row.eval_every else results["train_examples_per_s"]
    return speed, float(padded)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dir", default="../shared/data/sst2")
    p.add_argument("--wordpiece_vocab", default="pretrained_models/minilm",
                   help="a BERT directory with bert-base-uncased's uncased vocab.txt (MiniLM-L6 "
                        "uses the same one), or the name bert-base-uncased")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--seed", type=int, default=2021)
    p.add_argument("--compare_mkl", action="store_true",
                   help="add the last row again with MKL_DEBUG_CPU_TYPE flipped (in a process of "
                        "its own; done anyway on CPUs that are not Intel's, see cpu.py)")
    p.add_argument("--child_row", type=int, help=argparse.SUPPRESS)  # one row, in a child
    args = p.parse_args()
    logging.disable(logging.INFO)  # the loop's own progress lines
    paddle.set_device("cpu")
    cores = len(os.sched_getaffinity(0))

    task = TASKS["sst-2"]
    examples = load_split(task, "train", args.data_dir)
    dev_examples = load_split(task, "dev", args.data_dir)
    words = tokenize(examples, "en", 128)
    vocab = build_vocab(w for (w,) in words)
    ours = encode(words, vocab, [e.label for e in examples])
    ours_dev = encode(tokenize(dev_examples, "en", 128), vocab, [e.label for e in dev_examples])

    def pieces(exs):
        return Encoded.of([wordpiece_ids([e.texts[0] for e in exs], args.wordpiece_vocab)],
                          np.asarray([e.label for e in exs], dtype=np.int64))

    wp, wp_dev = pieces(examples), pieces(dev_examples)
    rows = [
        Row("PaddleNLP small.py: WordPiece, 300/300, eval every 10 steps", True, 300, 300, 300,
            False, 1, eval_every=10),
        Row("PaddleNLP setup without its evaluations", True, 300, 300, 300, False, 1),
        Row("ours at PaddleNLP sizes, no bucketing, 1 thread", False, 300, 300, 300, False, 1),
        Row("ours at PaddleNLP sizes, no bucketing", False, 300, 300, 300, False, cores),
        Row("ours at PaddleNLP sizes, bucketing", False, 300, 300, 300, True, cores),
        Row("ours defaults (50-d GloVe, 150/200), no bucketing", False, 50, 150, 200, False, cores),
        Row("ours defaults (50-d GloVe, 150/200), bucketing", False, 50, 150, 200, True, cores),
    ]
    def run(row: Row) -> tuple:
        data, dev, vsize = (wp, wp_dev, 30522) if row.wordpiece else (ours, ours_dev, len(vocab))
        return row, vsize, *measure(row, data, dev, vsize, args.steps, args.seed)

    if args.child_row is not None:
        print(json.dumps(run(rows[args.child_row])[1:]))
        return
    measured = []
    for row in rows:
        measured.append(run(row))
        print(f"measured: {row.name}", file=sys.stderr, flush=True)
    if args.compare_mkl or cpu.VENDOR != "GenuineIntel":
        # MKL reads the flag when Paddle loads: the other setting needs a process of its own
        flipped = "" if os.environ.get(cpu.MKL_FLAG) else "5"
        out = subprocess.run([sys.executable, os.path.abspath(__file__), *sys.argv[1:],
                              "--child_row", str(len(rows) - 1)], capture_output=True, text=True,
                             env={**os.environ, cpu.MKL_FLAG: flipped}, check=True)
        row = rows[-1]
        measured.append((Row(f"{row.name}, {cpu.MKL_FLAG}={flipped or 'unset'}", *astuple(row)[1:]),
                         *json.loads(out.stdout.strip().splitlines()[-1])))
    print(f"SST-2 train ({len(examples):,} sentences), batch 64, {args.steps} steps per row, "
          f"Paddle {paddle.__version__}, {cores} CPU cores\n{cpu.describe()}\n")
    print(f"{'configuration':75s} {'vocab':>6s} {'threads':>7s} {'pad len':>7s} {'ex/s':>7s} "
          f"{'x row 1':>7s} {'x row 2':>7s} {'epoch':>7s}")
    first, second = measured[0][2], measured[1][2]
    for row, vsize, speed, padded in measured:
        print(f"{row.name:75s} {vsize:6d} {row.threads:7d} {padded:7.1f} {speed:7.0f} "
              f"{speed / first:6.1f}x {speed / second:6.1f}x {len(examples) / speed / 60:5.1f}m")
    print("\nepoch: minutes per SST-2 epoch at that speed (evaluation time included only in "
          "row 1, as PaddleNLP's script spends it).")


if __name__ == "__main__":
    main()
