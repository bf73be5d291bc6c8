"""Student training speed on real SST-2 batches, every configuration in one run.

Each row runs the real training loop (trainer.fit) for --steps steps and reports its
examples/s. The first row reproduces PaddleNLP's distill_lstm small.py setup for SST-2
(bert-base-uncased WordPiece ids, 30,522-word embedding, hidden 300, 300-d embeddings,
random unbucketed batches of 64, Paddle's default single CPU thread); the other rows are
this project at PaddleNLP's sizes and at its own defaults, with and without bucketing.

    python bench/train_speed.py --data_dir ../shared/data/sst2 \
        --wordpiece_vocab ../shared/models/minilm-sst2
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from dataclasses import dataclass

import numpy as np
import paddle

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from args import TrainArgs  # noqa: E402
from data import TASKS, Encoded, build_vocab, collate, encode, load_split, make_batches, tokenize  # noqa: E402
from model import BiLSTMStudent, StudentConfig  # noqa: E402
from small import student_forward  # noqa: E402
from trainer import build_optimizer, cross_entropy, fit  # noqa: E402

PADDLENLP_MEASURED = 58.0  # ex/s of PaddleNLP's own small.py on this machine (issue #3)


@dataclass
class Row:
    name: str
    wordpiece: bool
    emb_dim: int
    hidden: int
    fc: int
    bucket: bool
    threads: int


def wordpiece_ids(sentences: list[str], vocab_dir: str) -> list[np.ndarray]:
    """PaddleNLP's ids for the SST-2 student: BertTokenizer word pieces, no [CLS]/[SEP]."""
    from paddlenlp.transformers import BertTokenizer

    tok = BertTokenizer.from_pretrained(vocab_dir)
    return [np.array(tok.convert_tokens_to_ids(tok.tokenize(s))[:128], dtype=np.int64)
            for s in sentences]


def measure(row: Row, data: Encoded, vocab_size: int, steps: int, seed: int) -> tuple[float, float]:
    """(examples/s over `steps` training steps of the real loop, mean padded length)."""
    paddle.base.core.set_num_threads(row.threads)
    paddle.seed(seed)
    with paddle.utils.unique_name.guard():
        model = BiLSTMStudent(StudentConfig(vocab_size=vocab_size, num_labels=2, emb_dim=row.emb_dim,
                                            hidden_size=row.hidden, fc_size=row.fc))
    with tempfile.TemporaryDirectory() as out:
        train = TrainArgs(output_dir=out, max_steps=steps, logging_steps=10 ** 9, batch_size=64,
                          seed=seed, device="cpu", no_bucketing=not row.bucket)
        lengths = data.lengths()
        batches = make_batches(lengths, 64, np.random.default_rng(seed), bucket=row.bucket)
        dev = [collate(data, np.arange(64))]
        results = fit(model, build_optimizer(train, model, steps)[0], train,
                      epoch_batches=lambda e: batches, collate=lambda idx: collate(data, idx),
                      dev_batches=dev, forward=student_forward, loss_fn=cross_entropy,
                      metric_names=("acc",), resume=False)
    padded = np.mean([lengths[b].max() for b in batches[:steps]])
    return results["train_examples_per_s"], float(padded)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dir", default="../shared/data/sst2")
    p.add_argument("--wordpiece_vocab", default="../shared/models/minilm-sst2",
                   help="a BERT directory with bert-base-uncased's vocab.txt, or the name bert-base-uncased")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--seed", type=int, default=2021)
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    paddle.set_device("cpu")
    cores = len(os.sched_getaffinity(0))

    examples = load_split(TASKS["sst-2"], "train", args.data_dir)
    labels = [e.label for e in examples]
    words = tokenize(examples, "en", 128)
    vocab = build_vocab(w for (w,) in words)
    ours = encode(words, vocab, labels)
    pieces = Encoded((wordpiece_ids([e.texts[0] for e in examples], args.wordpiece_vocab),),
                     np.asarray(labels, dtype=np.int64))

    rows = [
        Row("PaddleNLP setup: WordPiece, 300/300, no bucketing", True, 300, 300, 300, False, 1),
        Row("ours at PaddleNLP sizes, no bucketing, 1 thread", False, 300, 300, 300, False, 1),
        Row("ours at PaddleNLP sizes, no bucketing", False, 300, 300, 300, False, cores),
        Row("ours at PaddleNLP sizes, bucketing", False, 300, 300, 300, True, cores),
        Row("ours defaults (50-d GloVe, 150/200), no bucketing", False, 50, 150, 200, False, cores),
        Row("ours defaults (50-d GloVe, 150/200), bucketing", False, 50, 150, 200, True, cores),
    ]
    print(f"SST-2 train ({len(examples):,} sentences), batch 64, {args.steps} steps per row, "
          f"Paddle {paddle.__version__}, {cores} CPU cores\n")
    print(f"{'configuration':52s} {'vocab':>6s} {'threads':>7s} {'pad len':>7s} {'ex/s':>8s} "
          f"{'x row 1':>7s} {'x 58':>6s}")
    base = None
    for row in rows:
        data, vsize = (pieces, 30522) if row.wordpiece else (ours, len(vocab))
        speed, padded = measure(row, data, vsize, args.steps, args.seed)
        base = base or speed
        print(f"{row.name:52s} {vsize:6d} {row.threads:7d} {padded:7.1f} {speed:8.0f} "
              f"{speed / base:6.1f}x {speed / PADDLENLP_MEASURED:5.1f}x", flush=True)
    print("\nx 58: against the 58 ex/s PaddleNLP's own small.py trains at on this machine.")


if __name__ == "__main__":
    main()
