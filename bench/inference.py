"""Inference cost of the student against the teachers, side by side in one run.

Models: the BiLSTM student (a small.py / bert_distill.py run), the fine-tuned MiniLM
teacher, and a bert-base-shaped teacher (12 layers, hidden 768) with random weights. Each
runs eager (no-grad) and exported (paddle.jit.save + Paddle Inference predictor, oneDNN)
on real SST-2 dev sentences: throughput at batch 1, 32 and 256, p50/p99 latency at batch
1, parameter count and size on disk. Ratios are against the student's exported path.

    python bench/inference.py --student output/bert_distill/sst-2 \
        --teacher ../shared/models/minilm-sst2 --data_dir ../shared/data/sst2
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time

import numpy as np
import paddle

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from data import TASKS, Vocab, load_split, tokenize  # noqa: E402
from export import student_inputs  # noqa: E402
from inference import Predictor, export_static  # noqa: E402
from model import BiLSTMStudent, StudentConfig  # noqa: E402
from predict import collate_student  # noqa: E402
from teacher import INPUTS, collate_teacher, encode_for_teacher, load_teacher  # noqa: E402
from trainer import BEST, load_checkpoint  # noqa: E402
from utils import count_parameters  # noqa: E402


def dir_size(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def throughput(run, batches: list[dict], n: int, min_seconds: float = 2.0) -> float:
    """Examples/s over repeated passes through `batches` (at least `min_seconds`)."""
    run(batches[0])
    done, t0 = 0, time.perf_counter()
    while True:
        for b in batches:
            run(b)
        done += n
        if time.perf_counter() - t0 >= min_seconds:
            return done / (time.perf_counter() - t0)


def latencies(run, singles: list[dict]) -> tuple[float, float]:
    run(singles[0])
    ms = []
    for b in singles:
        t0 = time.perf_counter()
        run(b)
        ms.append(1000 * (time.perf_counter() - t0))
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def eager(model, names):
    def run(batch):
        with paddle.no_grad():
            return model(*[paddle.to_tensor(batch[k]) for k in names]).numpy()
    return run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--student", required=True, help="a student run directory (best.ckpt)")
    p.add_argument("--teacher", default="../shared/models/minilm-sst2")
    p.add_argument("--data_dir", default="../shared/data/sst2")
    p.add_argument("--n", type=int, default=256, help="dev sentences per pass")
    p.add_argument("--num_threads", type=int, default=len(os.sched_getaffinity(0)))
    args = p.parse_args()
    logging.disable(logging.WARNING)
    paddle.set_device("cpu")
    paddle.base.core.set_num_threads(args.num_threads)
    dev = load_split(TASKS["sst-2"], "dev", args.data_dir)[: args.n]

    ckpt = load_checkpoint(os.path.join(args.student, BEST))
    student = BiLSTMStudent(StudentConfig(**ckpt["model_config"]))
    student.set_state_dict(ckpt["model"])
    student.eval()
    vocab = Vocab(ckpt["vocab"])
    ids = [{"ids": [vocab.encode(w[0])]} for w in tokenize(dev, "en", 128)]
    minilm, tok = load_teacher(args.teacher, 2)
    from paddlenlp.transformers import BertConfig, BertForSequenceClassification

    paddle.seed(0)
    bert_base = BertForSequenceClassification(BertConfig(num_labels=2))  # bert-base shape
    bert_base.eval()
    enc = encode_for_teacher(tok, [e.texts for e in dev], 128)

    def student_batches(bs):
        order = np.argsort([len(x["ids"][0]) for x in ids], kind="stable")
        return [collate_student([ids[i] for i in order[j:j + bs]]) for j in range(0, len(ids), bs)]

    def teacher_batches(bs):
        order = np.argsort(enc.lengths(), kind="stable")
        return [collate_teacher(enc, order[j:j + bs]) for j in range(0, len(enc), bs)]

    models = [("BiLSTM student", student, student_inputs(False), student_batches),
              ("MiniLM-L6 teacher", minilm, INPUTS, teacher_batches),
              ("bert-base-shaped teacher", bert_base, INPUTS, teacher_batches)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, model, inputs, batches_of in models:
            prefix = os.path.join(tmp, name.split()[0], "model")
            export_static(model, inputs, prefix)
            size = dir_size(os.path.dirname(prefix))
            paths = [("eager", eager(model, list(inputs))),
                     ("exported", Predictor(prefix, num_threads=args.num_threads))]
            for path, run in paths:
                speed = {bs: throughput(run, batches_of(bs), len(dev)) for bs in (1, 32, 256)}
                p50, p99 = latencies(run, batches_of(1)[:200])
                rows.append((name, path, count_parameters(model), size, speed, p50, p99))
                print(f"measured {name} {path}", file=sys.stderr, flush=True)

    print(f"SST-2 dev sentences ({len(dev)}; student mean {np.mean([len(x['ids'][0]) for x in ids]):.1f}"
          f" words, teacher mean {enc.lengths().mean():.1f} word pieces), length-sorted batches, "
          f"{args.num_threads} threads, Paddle {paddle.__version__}\n")
    print(f"{'model':26s} {'path':9s} {'params':>11s} {'MB':>7s} {'ex/s b1':>8s} {'b32':>8s} "
          f"{'b256':>8s} {'p50 ms':>7s} {'p99 ms':>7s}")
    for name, path, n, size, speed, p50, p99 in rows:
        print(f"{name:26s} {path:9s} {n:11,d} {size / 1e6:7.1f} {speed[1]:8.0f} {speed[32]:8.0f} "
              f"{speed[256]:8.0f} {p50:7.2f} {p99:7.2f}")
    fastest = {name: max((r for r in rows if r[0] == name), key=lambda r: r[4][32]) for name, *_ in models}
    s = fastest["BiLSTM student"]
    print("\nstudent's fastest path against each teacher's fastest path, batch 32:")
    for name in ("MiniLM-L6 teacher", "bert-base-shaped teacher"):
        t = fastest[name]
        print(f"  {name}: {s[4][32] / t[4][32]:.0f}x throughput, {t[2] / s[2]:.0f}x fewer "
              f"parameters, batch-1 p50 {s[5]:.2f} ms vs {t[5]:.2f} ms")


if __name__ == "__main__":
    main()
