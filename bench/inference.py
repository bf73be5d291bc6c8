"""Inference cost of the students against the teachers, side by side in one run.

Models: one or more students, BiLSTM and/or CNN (small.py / bert_distill.py runs), the
fine-tuned teacher (e.g. MiniLM-L6), and a bert-base-shaped teacher (12 layers, hidden
768) with random weights read as the teacher reads (without --teacher: the students alone).
Each model runs on every path it has, on real dev texts of the task:
  eager             no-grad dygraph
  exported          paddle.jit.save + Paddle Inference predictor (oneDNN), fp32
  exported bf16     the same in bfloat16 (teachers; the LSTM kernel has no bf16 on CPU)
  onnxruntime       ONNX Runtime, fp32: the student's export.py ONNX graph; the teachers
                    converted with paddle2onnx
  onnxruntime int8  students: the same graph with int8 weights (export.py --int8)
and reports throughput at batch 1, 32 and 256 with all threads in one process, throughput
at batch 32 with --processes single-threaded processes side by side (how a CPU server
runs a model whose steps are too small to use several cores), p50/p99 latency at batch 1,
dev accuracy of each path, parameters and size on disk. The ratios compare each model's
fastest path at batch 32, and int8 against fp32. It also times a BiLSTM student's parts,
to show where its time goes.

    python bench/inference.py --student output/bert_distill/sst-2 output/cnn/sst-2 \
        --teacher pretrained_models/sst-2 --data_dir ../shared/data/sst2
"""
from __future__ import annotations

import logging
import multiprocessing as mp
import os
import sys
import tempfile
import time
from typing import Callable

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import cpu  # noqa: E402,F401  (before Paddle: sets MKL's CPU type)
import paddle  # noqa: E402
from args import build_parser, data_args  # noqa: E402
from data import load_split, task_of  # noqa: E402
from engines import OnnxPredictor, Predictor, eager_runner  # noqa: E402
from model import BiLSTMStudent, student_inputs  # noqa: E402
from model_io import (Collate, Encode, export_static, export_student_onnx,  # noqa: E402
                      load_model, quantize_student_onnx, teacher_text_encoder)
from teachers import INPUTS, load_teacher  # noqa: E402
from utils import atomic_write_json, count_parameters, cpu_threads  # noqa: E402

BATCH_SIZES = (1, 32, 256)
TEACHER_PATHS = ["eager", "exported", "exported bf16", "onnxruntime"]


def dir_size(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def throughput(run, batches: list[dict], n: int, min_seconds: float) -> float:
    """Examples/s over repeated passes through `batches` (n examples; >= min_seconds),
    after one untimed pass so every batch shape is warmed up."""
    for b in batches:
        run(b)
    done, t0 = 0, time.perf_counter()
    while True:
        for b in batches:
            run(b)
        done += n
        if time.perf_counter() - t0 >= min_seconds:
            return done / (time.perf_counter() - t0)


def latencies(run, singles: list[dict]) -> tuple[float, float]:
    """p50 and p99 milliseconds of single-example calls, each input shape warmed up first."""
    shapes = {}
    for b in singles:
        shapes.setdefault(tuple(np.shape(v) for v in b.values()), b)
    for b in shapes.values():
        run(b)
    ms = []
    for b in singles:
        t0 = time.perf_counter()
        run(b)
        ms.append(1000 * (time.perf_counter() - t0))
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def make_runner(spec: tuple, threads: int):
    """An exported model's runner from (engine, file, precision)."""
    engine, path, precision = spec
    if engine == "onnxruntime":
        return OnnxPredictor(path, threads)
    return Predictor(path, num_threads=threads, precision=precision)


def _worker(spec, batches, n, seconds, barrier, queue) -> None:
    run = make_runner(spec, 1)
    for b in batches:  # warm every shape before the common window
        run(b)
    barrier.wait()  # all processes measure over the same window
    queue.put(throughput(run, batches, n, seconds))


def parallel_throughput(spec: tuple, batches: list[dict], n: int, seconds: float,
                        processes: int) -> float:
    """Summed examples/s of `processes` single-threaded runners working at once."""
    ctx = mp.get_context("spawn")
    barrier, queue = ctx.Barrier(processes), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(spec, batches, n, seconds, barrier, queue))
             for _ in range(processes)]
    for p in procs:
        p.start()
    rates = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    return float(sum(rates))


def student_breakdown(model: BiLSTMStudent, batches: list[dict], repeat: int = 20) -> dict:
    """Eager milliseconds per batch spent in the embedding, the BiLSTM and the head, and
    what the BiLSTM's recurrent matmuls alone cost: one [B, H] x [H, 4H] per time step and
    direction, the sequential part no kernel can avoid."""
    parts = {"embedding": 0.0, "BiLSTM": 0.0, "FC + classifier": 0.0, "recurrent matmuls": 0.0}
    w_hh = model.lstm.weight_hh_l0.T
    with paddle.no_grad():
        for _ in range(repeat):
            for b in batches:
                ids, lengths = b["input_ids"], b["lengths"]
                if model.config.pair:  # both sides in one LSTM call, as the model runs them
                    width = max(ids.shape[1], b["input_ids_b"].shape[1])
                    ids = np.concatenate([np.pad(x, ((0, 0), (0, width - x.shape[1])))
                                          for x in (ids, b["input_ids_b"])])
                    lengths = np.concatenate([lengths, b["lengths_b"]])
                ids, lengths = paddle.to_tensor(ids), paddle.to_tensor(lengths)
                t0 = time.perf_counter()
                x = model.embedding(ids)
                t1 = time.perf_counter()
                _, (h, _) = model.lstm(x, sequence_length=lengths)
                h = paddle.concat([h[-2], h[-1]], axis=-1)
                t2 = time.perf_counter()
                if model.config.pair:
                    h1, h2 = paddle.split(h, 2)
                    h = paddle.concat([h1, h2, h1 * h2, paddle.abs(h1 - h2)], axis=-1)
                model.classifier(paddle.nn.functional.relu(model.fc(h))).numpy()
                t3 = time.perf_counter()
                state = paddle.zeros([len(lengths), w_hh.shape[0]])
                for _ in range(2 * ids.shape[1]):
                    paddle.matmul(state, w_hh)
                t4 = time.perf_counter()
                for k, dt in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                    parts[k] += 1000 * dt / (repeat * len(batches))
    return parts


def accuracy(run, batches_of, labels: np.ndarray) -> float:
    """Dev accuracy of a path over all dev texts, from batches of 32 (length-sorted:
    `order` maps them back to the labels)."""
    order, batches = batches_of(32)
    preds = np.concatenate([np.asarray(run(b)).argmax(-1) for b in batches])
    return float((preds == labels[order]).mean())


def main() -> None:
    p = build_parser(("data",), __doc__)  # the task: the scripts' own data flags
    p.add_argument("--student", required=True, nargs="+",
                   help="student run directories (best.ckpt), e.g. a BiLSTM and a CNN")
    p.add_argument("--teacher", help="a fine-tuned teacher directory (none: the students "
                   "alone, e.g. when the teacher was an ensemble of student runs)")
    p.add_argument("--n", type=int, help="the first N dev texts (default: all)")
    p.add_argument("--min_seconds", type=float, default=2.0,
                   help="time each throughput over at least this long")
    p.add_argument("--no_bert_base", action="store_true",
                   help="skip the bert-base-shaped teacher (110M parameters)")
    p.add_argument("--teacher_paths", nargs="+", default=TEACHER_PATHS, choices=TEACHER_PATHS,
                   help="the teachers' paths to measure (default: all; bf16 where the CPU "
                        "has it)")
    p.add_argument("--num_threads", type=int, default=cpu_threads())
    p.add_argument("--processes", type=int, default=len(os.sched_getaffinity(0)),
                   help="single-threaded processes for the side-by-side throughput (1: skip)")
    p.add_argument("--json", help="also write the rows here (read by report.py)")
    args = p.parse_args()
    logging.disable(logging.WARNING)
    paddle.set_device("cpu")
    paddle.base.core.set_num_threads(args.num_threads)
    data = data_args(vars(args))  # a built-in task or your own files, as the scripts take them
    task = task_of(data)
    dev_all = load_split(task, "dev", data.data_dir)
    dev, labels = dev_all[: args.n], np.array([e.label for e in dev_all])
    bf16 = paddle.base.core.supports_bfloat16()

    def sorted_batches(lengths, collate: Callable[[np.ndarray], dict]) -> Callable:
        """bs -> (order, batches): length-sorted, except single texts, which come in data
        order (a latency is measured over every text); `order` maps the batches back to the
        texts."""
        def batches_of(bs: int) -> tuple[np.ndarray, list[dict]]:
            order = np.argsort(lengths, kind="stable") if bs > 1 else np.arange(len(lengths))
            return order, [collate(order[j:j + bs]) for j in range(0, len(order), bs)]
        return batches_of

    def model_batches(encode: Encode, collate: Collate, examples) -> tuple[Callable, float]:
        """Batches of `examples` as a model reads them, and their mean length (a student's
        words, a teacher's word pieces): an example's length is its padded width alone."""
        items = [encode(e.texts) for e in examples]
        lengths = [collate([it])["input_ids"].shape[1] for it in items]
        return (sorted_batches(lengths, lambda idx: collate([items[i] for i in idx])),
                float(np.mean(lengths)))

    # (name, run directory, model, inputs, timed batches, scored batches (all dev texts;
    # None: random weights), precisions of its exported path)
    models, students, mean_words = [], [], []
    for source in args.student:
        loaded = load_model(source)
        config = loaded.model.config
        kind = "CNN" if config.kind == "cnn" else "BiLSTM"
        same = [n for n in students if n.startswith(kind)]
        name = f"{kind} student" + (f" {len(same) + 1}" if same else "")
        timed, words = model_batches(loaded.encode, loaded.collate, dev)
        mean_words.append(words)
        models.append((name, source, loaded.model, student_inputs(config.pair), timed,
                       model_batches(loaded.encode, loaded.collate, dev_all)[0], ["fp32"]))
        students.append(name)
    precisions = ["fp32", "bf16"] if bf16 else ["fp32"]
    pieces, timed = None, None
    if args.teacher:
        teacher, tok = load_teacher(args.teacher, task.num_labels)
        teacher_text = teacher_text_encoder(tok, 128)
        timed, pieces = model_batches(*teacher_text, dev)
        models.append(("fine-tuned teacher", args.teacher, teacher, INPUTS, timed,
                       model_batches(*teacher_text, dev_all)[0], precisions))
    if timed and not args.no_bert_base:  # read as the teacher reads: its word pieces
        from paddlenlp.transformers import BertConfig, BertForSequenceClassification

        paddle.seed(0)
        bert_base = BertForSequenceClassification(BertConfig(num_labels=task.num_labels))
        bert_base.eval()
        models.append(("bert-base-shaped teacher", None, bert_base, INPUTS, timed, None,
                       precisions))

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, source, model, inputs, batches_of, scored, precisions in models:
            prefix = os.path.join(tmp, str(len(rows)), "model")
            export_static(model, inputs, prefix)
            size = dir_size(os.path.dirname(prefix))
            specs = [("exported" + (" bf16" if prec == "bf16" else ""), ("paddle", prefix, prec))
                     for prec in precisions]
            onnx_file = prefix + ".onnx"
            if name in students:
                export_student_onnx(model, onnx_file)
                quantize_student_onnx(onnx_file, prefix + ".int8.onnx")
                specs += [("onnxruntime", ("onnxruntime", onnx_file, None)),
                          ("onnxruntime int8", ("onnxruntime", prefix + ".int8.onnx", None))]
            elif "onnxruntime" in args.teacher_paths:
                import paddle2onnx

                paddle2onnx.export(prefix + ".json", prefix + ".pdiparams", onnx_file,
                                   opset_version=14)
                specs.append(("onnxruntime", ("onnxruntime", onnx_file, None)))
            paths = [("eager", eager_runner(model, list(inputs)), None)] + \
                [(path, make_runner(spec, args.num_threads), spec) for path, spec in specs]
            if name not in students:
                paths = [p for p in paths if p[0] in args.teacher_paths]
            for path, run, spec in paths:
                speed = {str(bs): throughput(run, batches_of(bs)[1], len(dev), args.min_seconds)
                         for bs in BATCH_SIZES}
                procs = None
                if spec is not None and args.processes > 1:
                    procs = parallel_throughput(spec, batches_of(32)[1], len(dev),
                                                args.min_seconds, args.processes)
                singles = batches_of(1)[1]
                p50, p99 = latencies(run, singles)
                rows.append({"model": name, "source": source and os.path.abspath(source),
                             "path": path, "params": count_parameters(model), "bytes": size,
                             "ex_per_s": speed, "ex_per_s_processes": procs,
                             "p50_ms": p50, "p99_ms": p99, "latency_texts": len(singles),
                             "dev_acc": accuracy(run, scored, labels) if scored else None})
                print(f"measured {name} {path}", file=sys.stderr, flush=True)

    teacher_len = f", teacher mean {pieces:.1f} word pieces" if pieces else ""
    setting = (f"{task.name} dev texts ({len(dev)}; student mean {np.mean(mean_words):.1f} words"
               f"{teacher_len}), length-sorted batches "
               f"(batch-1 latency: every text in data order), every shape warmed up, "
               f"{args.num_threads} threads or {args.processes} single-threaded processes, "
               f"Paddle {paddle.__version__}")
    print(setting + "\n")
    print(f"{'model':25s} {'path':16s} {'params':>11s} {'MB':>6s} {'ex/s b1':>8s} {'b32':>7s} "
          f"{'b256':>7s} {f'b32 x{args.processes}p':>9s} {'p50 ms':>7s} {'p99 ms':>7s} "
          f"{'dev acc':>7s}")
    for r in rows:
        v, procs, acc = r["ex_per_s"], r["ex_per_s_processes"], r["dev_acc"]
        print(f"{r['model']:25s} {r['path']:16s} {r['params']:11,d} {r['bytes'] / 1e6:6.1f} "
              f"{v['1']:8.0f} {v['32']:7.0f} {v['256']:7.0f} "
              f"{f'{procs:.0f}' if procs else '-':>9s} {r['p50_ms']:7.2f} {r['p99_ms']:7.2f} "
              f"{f'{acc:.4f}' if acc is not None else '-':>7s}")

    def best32(r: dict) -> float:
        return max(r["ex_per_s"]["32"], r["ex_per_s_processes"] or 0.0)

    def how(r: dict) -> str:
        multi = (r["ex_per_s_processes"] or 0.0) > r["ex_per_s"]["32"]
        return r["path"] + (f", {args.processes} processes" if multi else
                            f", {args.num_threads} threads")

    fastest: dict[str, dict] = {}
    for r in rows:
        if r["model"] not in fastest or best32(r) > best32(fastest[r["model"]]):
            fastest[r["model"]] = r
    for student in students:
        s = fastest[student]
        print(f"\nfastest path at batch 32 of each model, against the {student}'s "
              f"({best32(s):,.0f} ex/s, {how(s)}; batch-1 p50 "
              f"{min(r['p50_ms'] for r in rows if r['model'] == student):.3f} ms):")
        for name, t in fastest.items():
            if t is not s:
                print(f"  {name}: {best32(t):,.0f} ex/s ({how(t)}) -> {student} "
                      f"{best32(s) / best32(t):.1f}x as fast, {t['params'] / s['params']:.1f}x "
                      f"the parameters")
    print("\nint8 against fp32 (ONNX Runtime, batch 32, fastest of threads and processes):")
    for student in students:
        fp32, int8 = (next(r for r in rows if r["model"] == student and r["path"] == path)
                      for path in ("onnxruntime", "onnxruntime int8"))
        print(f"  {student}: {best32(int8) / best32(fp32):.2f}x as fast, dev acc "
              f"{fp32['dev_acc']:.4f} -> {int8['dev_acc']:.4f} "
              f"({100 * (int8['dev_acc'] - fp32['dev_acc']):+.2f} points)")
    parts = None
    bilstm = next((m for m in models if m[0] in students and m[2].config.kind == "bilstm"), None)
    if bilstm:
        parts = student_breakdown(bilstm[2], bilstm[4](32)[1])
        total = parts["embedding"] + parts["BiLSTM"] + parts["FC + classifier"]
        print(f"\nwhere the {bilstm[0]}'s time goes (eager, per batch of 32): " + ", ".join(
            f"{k} {parts[k]:.2f} ms ({100 * parts[k] / total:.0f}%)"
            for k in ("embedding", "BiLSTM", "FC + classifier")) +
            f"; the BiLSTM's recurrent matmuls alone (2 directions x every time step) take "
            f"{parts['recurrent matmuls']:.2f} ms of its {parts['BiLSTM']:.2f} ms")
    if args.json:
        for r in rows:
            r["fastest_b32"] = best32(r)
        atomic_write_json(args.json, {"setting": setting, "processes": args.processes,
                                      "rows": rows, "student_ms": parts})


if __name__ == "__main__":
    main()
