"""Reading a large file of your own: a CSV of --rows rows (default 1,000,000) read as
`small.py --train_file` reads it: its label set found, its rows read, its texts tokenized
and turned into word ids. Prints the time of each step, the resident memory after it and
the peak of the whole process.

The CSV is written first (in a temporary folder, or --out): a header `text,notes,label`, a
text drawn from SST-5's sentences with a few random words appended (so no two rows are
alike), a quoted notes field that spans two lines, and one of five string labels.

    python bench/read_file.py                    # 1,000,000 rows
    python bench/read_file.py --rows 2000 --json read.json
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from args import check_flags  # noqa: E402
from data import build_vocab, encode, load_split, task_of, tokenize  # noqa: E402
from utils import atomic_write_json, format_seconds  # noqa: E402

LABELS = ["terrible", "bad", "neutral", "good", "great"]


def write_csv(path: str, rows: int, data_root: str, seed: int = 0) -> None:
    with open(os.path.join(data_root, "sst5", "train.jsonl"), encoding="utf-8") as f:
        sentences = [json.loads(line)["sentence"] for line in f]
    extra = " ".join(sentences).split()
    rng = np.random.default_rng(seed)
    with open(path, "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["text", "notes", "label"])
        for i in range(rows):
            words = " ".join(extra[j] for j in rng.integers(0, len(extra), 3))
            out.writerow([f"{sentences[i % len(sentences)]} {words}", f"row {i},\nsecond line",
                          LABELS[i % len(LABELS)]])


def rss_gb() -> float:
    with open("/proc/self/status") as f:
        kb = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    return kb / 2**20


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--data_root", default=os.path.join(ROOT, "..", "shared", "data"))
    p.add_argument("--out", help="folder for the CSV (default: a temporary one)")
    p.add_argument("--json", help="also write the figures here")
    args = p.parse_args()
    out = args.out or tempfile.mkdtemp()
    os.makedirs(out, exist_ok=True)
    train = os.path.join(out, "train.csv")
    t0 = time.perf_counter()
    write_csv(train, args.rows, args.data_root)
    written = time.perf_counter() - t0
    size_mb = os.path.getsize(train) / 1e6
    d = check_flags("small", ["--train_file", train, "--dev_file", train]).data
    steps, before = [], rss_gb()

    def step(name: str, fn):
        t = time.perf_counter()
        value = fn()
        steps.append({"step": name, "seconds": round(time.perf_counter() - t, 2),
                      "rss_gb_after": round(rss_gb(), 3)})
        return value

    task = step("label set (one pass over the labels)", lambda: task_of(d))
    examples = step("rows read", lambda: load_split(task, "train", None))
    words = step("tokenized", lambda: tokenize(examples, task.language))
    vocab = step("vocabulary", lambda: build_vocab(w for ex in words for w in ex))
    ids = step("word ids", lambda: encode(words, vocab, [e.label for e in examples]))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    counts = np.bincount(ids.labels, minlength=task.num_labels).tolist()
    print(f"{args.rows:,} rows, {size_mb:.0f} MB of CSV (written in "
          f"{format_seconds(written)}); {len(task.labels)} labels, counts {counts}; "
          f"{len(vocab):,} words in the vocabulary")
    print(f"{'step':<40}{'time':>10}{'RSS after':>12}")
    print(f"{'(start: Python, numpy, our modules)':<40}{'':>10}{before:>10.2f} GB")
    for s in steps:
        print(f"{s['step']:<40}{s['seconds']:>9.1f}s{s['rss_gb_after']:>10.2f} GB")
    print(f"peak resident memory of the process: {peak:.2f} GB")
    if args.json:
        atomic_write_json(args.json, {"rows": args.rows, "csv_mb": round(size_mb, 1),
                                      "labels": list(task.labels), "counts": counts,
                                      "vocab": len(vocab), "start_rss_gb": round(before, 3),
                                      "steps": steps, "peak_rss_gb": round(peak, 3)})


if __name__ == "__main__":
    main()
