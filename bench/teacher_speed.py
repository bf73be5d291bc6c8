"""Teacher labelling speed, eager against the fast path, side by side in one run.

Every row labels the same SST-2 training sentences with the same fine-tuned teacher and
the same threads; the rows differ only in how the teacher runs:
  eager, PaddleNLP-style   batches in data order (padded to their longest sentence)
  eager, length-sorted     no-grad, length-sorted batches
  predictor (fast path)    paddle.jit.save export run by a Paddle Inference predictor
                           with oneDNN, length-sorted batches (teacher.teacher_logits),
                           in fp32 (the default) and in bf16 (--label_precision bf16)
It checks that the fast path's logits equal eager's and prints the speed-ups.

With --backbone it also times fine-tuning (teacher.py's AdamW step on length-bucketed
batches of 32) in eager mode against the same model compiled with paddle.jit.to_static,
and checks that both give the same losses.

    python bench/teacher_speed.py --teacher pretrained_models/sst-2 \
        --data_dir ../shared/data/sst2 --backbone pretrained_models/minilm
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import cpu  # noqa: E402,F401  (before Paddle: sets MKL's CPU type)
import paddle  # noqa: E402
from data import load_split  # noqa: E402
from tasks import TASKS  # noqa: E402
from engines import Predictor  # noqa: E402
from model_io import export_static  # noqa: E402
from teachers import (INPUTS, collate_teacher, eager_runner, encode_for_teacher,  # noqa: E402
                     load_teacher, teacher_logits)
from utils import cpu_threads  # noqa: E402


def timed(fn) -> tuple[np.ndarray, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--teacher", default="../shared/models/minilm-sst2")
    p.add_argument("--data_dir", default="../shared/data/sst2")
    p.add_argument("--n", type=int, default=4000, help="sentences labelled per row")
    p.add_argument("--batch_size", type=int, default=128)
    p.add_argument("--max_seq_length", type=int, default=128)
    p.add_argument("--num_threads", type=int, default=cpu_threads())
    p.add_argument("--backbone", help="also time fine-tuning this backbone, eager against "
                                      "paddle.jit.to_static")
    p.add_argument("--train_steps", type=int, default=60)
    args = p.parse_args()
    logging.disable(logging.WARNING)
    paddle.set_device("cpu")
    paddle.base.core.set_num_threads(args.num_threads)

    rng = np.random.default_rng(0)
    examples = load_split(TASKS["sst-2"], "train", args.data_dir)
    pick = rng.choice(len(examples), size=min(args.n, len(examples)), replace=False)
    model, tok = load_teacher(args.teacher, 2)
    data = encode_for_teacher(tok, [examples[i].texts for i in pick], args.max_seq_length)
    lengths = data.lengths()
    n = len(data)
    eager = eager_runner(model)

    def data_order() -> np.ndarray:
        return np.concatenate([eager(collate_teacher(data, np.arange(i, min(i + args.batch_size, n))))
                               for i in range(0, n, args.batch_size)])

    eager(collate_teacher(data, np.arange(8)))  # warm-up
    rows = []
    ref, t = timed(data_order)
    rows.append(("eager, PaddleNLP-style (data order)", t))
    got, t = timed(lambda: teacher_logits(eager, data, args.batch_size))
    rows.append(("eager, no-grad, length-sorted", t))
    np.testing.assert_allclose(got, ref, atol=1e-4)
    with tempfile.TemporaryDirectory() as tmp:
        _, t_export = timed(lambda: export_static(model, INPUTS, os.path.join(tmp, "model")))
        predictor = Predictor(os.path.join(tmp, "model"), num_threads=args.num_threads)
        predictor(collate_teacher(data, np.arange(8)))  # warm-up
        fast, t = timed(lambda: teacher_logits(predictor, data, args.batch_size))
        rows.append(("predictor + oneDNN fp32, length-sorted (fast path)", t))
        bf16 = Predictor(os.path.join(tmp, "model"), num_threads=args.num_threads, precision="bf16")
        bf16(collate_teacher(data, np.arange(8)))
        half, t = timed(lambda: teacher_logits(bf16, data, args.batch_size))
        rows.append(("predictor + oneDNN bf16 (--label_precision bf16)", t))
    diff = float(np.abs(fast - ref).max())

    print(f"teacher {args.teacher}: {n:,} SST-2 train sentences, mean {lengths.mean():.1f} "
          f"tokens (max {lengths.max()}), batch {args.batch_size}, {args.num_threads} threads, "
          f"Paddle {paddle.__version__}\n")
    print(f"{'path':52s} {'seconds':>8s} {'ex/s':>8s} {'x eager sorted':>15s} {'x PaddleNLP':>12s}")
    for name, t in rows:
        print(f"{name:52s} {t:8.1f} {n / t:8.0f} {rows[1][1] / t:14.1f}x {rows[0][1] / t:11.1f}x")
    print(f"\nexport (paddle.jit.save) took {t_export:.1f}s once. Logits against eager: fp32 "
          f"max |diff| {diff:.2e}, predictions agree on {(fast.argmax(1) == ref.argmax(1)).mean():.2%};"
          f" bf16 max |diff| {float(np.abs(half - ref).max()):.2e}, agree on "
          f"{(half.argmax(1) == ref.argmax(1)).mean():.2%}")


    if args.backbone:
        train_rows(args, tok, [examples[i] for i in pick])


def fine_tune(backbone: str, batches: list[dict], static: bool) -> tuple[list[float], float]:
    """(loss per step, examples/s after a warm-up step) of AdamW fine-tuning steps."""
    import paddle.nn.functional as F
    from paddlenlp.transformers import AutoModelForSequenceClassification

    paddle.seed(0)
    with paddle.utils.unique_name.guard():
        model = AutoModelForSequenceClassification.from_pretrained(backbone, num_classes=2)
    model.train()
    opt = paddle.optimizer.AdamW(learning_rate=1e-4, parameters=model.parameters(),
                                 weight_decay=0.01)
    forward = model
    if static:
        from paddle.static import InputSpec

        forward = paddle.jit.to_static(model, input_spec=[InputSpec([None, None], "int64"),
                                                          InputSpec([None, None], "int64")],
                                       full_graph=True)
    losses, t0 = [], None
    for step, b in enumerate(batches):
        paddle.seed(step)  # the same dropout masks in both modes
        logits = forward(paddle.to_tensor(b["input_ids"]), paddle.to_tensor(b["token_type_ids"]))
        loss = F.cross_entropy(logits, paddle.to_tensor(b["labels"]))
        loss.backward()
        opt.step()
        opt.clear_grad()
        losses.append(float(loss))
        if step == 0:
            t0 = time.perf_counter()  # the first step compiles (to_static) or warms up
    n = sum(len(b["labels"]) for b in batches[1:])
    return losses, n / (time.perf_counter() - t0)


def train_rows(args, tok, examples) -> None:
    from data import make_batches

    data = encode_for_teacher(tok, [e.texts for e in examples], args.max_seq_length,
                              [e.label for e in examples])
    order = make_batches(data.lengths(), 32, np.random.default_rng(0))[: args.train_steps]
    batches = [collate_teacher(data, idx) for idx in order]
    eager_losses, eager_speed = fine_tune(args.backbone, batches, static=False)
    static_losses, static_speed = fine_tune(args.backbone, batches, static=True)
    diff = float(np.abs(np.array(eager_losses) - np.array(static_losses)).max())
    print(f"\nfine-tuning {args.backbone}, {len(batches)} AdamW steps of 32 (length-bucketed):")
    print(f"  eager                 {eager_speed:6.1f} ex/s")
    print(f"  paddle.jit.to_static  {static_speed:6.1f} ex/s  ({static_speed / eager_speed:.2f}x "
          f"eager; losses differ by at most {diff:.1e})")


if __name__ == "__main__":
    main()
