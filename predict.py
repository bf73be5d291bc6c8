"""Predicts labels for texts with an exported model (Paddle Inference: oneDNN on CPU, the
GPU when there is one; or ONNX Runtime for students on CPU, --backend onnxruntime) or
straight from a student run's checkpoint (eager).

    python predict.py exported/sst-2-student --input texts.txt --output preds.jsonl
    echo "a gripping , funny film" | python predict.py exported/sst-2-student

One text per line (pair tasks: the two texts separated by a tab). Each output line carries
the input line number and either the label and class probabilities or an error; a bad line
(empty, not UTF-8, wrong number of fields) does not stop the file unless --strict.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import BinaryIO, Callable, Iterator, TextIO

import numpy as np

from data import TASKS, TOKENIZERS, DataError, Vocab, pad
from export import EXPORT_INFO, student_inputs
from teacher import TeacherEncoded, collate_teacher, encode_for_teacher
from trainer import BEST, RunError, load_checkpoint

Encoder = Callable[[tuple[str, ...]], dict]  # one example's texts -> named id arrays


class LineError(ValueError):
    pass


def read_lines(f: BinaryIO) -> Iterator[tuple[int, str | None, str | None]]:
    """(line number, text or None, error or None) per line, decoding line by line."""
    for n, raw in enumerate(f, start=1):
        try:
            yield n, raw.decode("utf-8-sig" if n == 1 else "utf-8").rstrip("\r\n"), None
        except UnicodeDecodeError as e:
            yield n, None, f"not UTF-8 ({e.reason} at byte {e.start})"


def student_encoder(vocab: Vocab, language: str, max_len: int) -> Encoder:
    """The same tokenization and truncation as training."""
    tok = TOKENIZERS[language]

    def encode(texts: tuple[str, ...]) -> dict:
        words = [tok(t)[:max_len] for t in texts]
        if any(not w for w in words):
            raise LineError("no words after tokenization")
        return {"ids": [vocab.encode(w) for w in words]}

    return encode


def collate_student(items: list[dict]) -> dict:
    k = len(items[0]["ids"])
    width = max(len(x) for it in items for x in it["ids"])
    out = {}
    for j, suffix in enumerate(("", "_b")[:k]):
        out["input_ids" + suffix], out["lengths" + suffix] = pad([it["ids"][j] for it in items], width)
    return out


BACKENDS = ("paddle", "onnxruntime")


def read_export_info(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            info = json.load(f)
        if info.get("kind") in ("student", "teacher"):
            return info
    except (ValueError, UnicodeDecodeError):
        pass
    raise RunError(f"{path}: not an export.json written by export.py; run export.py again")


def load_model(path: str, device: str, num_threads: int | None, backend: str = "paddle"):
    """(info, encoder, collate, run) for an export directory or a student run directory."""
    if os.path.exists(os.path.join(path, EXPORT_INFO)):
        from inference import ONNX_FILE, OnnxPredictor, Predictor

        info = read_export_info(os.path.join(path, EXPORT_INFO))
        needed = [ONNX_FILE] if backend == "onnxruntime" and info["kind"] == "student" else \
            ["model.json", "model.pdiparams"]
        missing = [f for f in needed if not os.path.exists(os.path.join(path, f))]
        if missing:
            raise RunError(f"{path}: incomplete export, {', '.join(missing)} missing; run "
                           f"export.py again")
        if backend == "onnxruntime":
            if info["kind"] != "student" or device != "cpu":
                raise RunError(f"{path}: --backend onnxruntime runs exported students on the "
                               f"CPU; use --backend paddle for this {info['kind']} on {device}")
            run = OnnxPredictor(os.path.join(path, ONNX_FILE), num_threads)
        else:
            run = Predictor(os.path.join(path, "model"), device, num_threads)
        if info["kind"] == "teacher":
            from paddlenlp.transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(path)

            def encode(texts: tuple[str, ...]) -> dict:
                enc = encode_for_teacher(tokenizer, [texts], info["max_seq_length"])
                return {"input_ids": enc.input_ids[0], "token_type_ids": enc.token_type_ids[0]}

            def collate(items: list[dict]) -> dict:
                data = TeacherEncoded([i["input_ids"] for i in items],
                                      [i["token_type_ids"] for i in items], None)
                return collate_teacher(data, np.arange(len(items)), tokenizer.pad_token_id)

            return info, encode, collate, run
        vocab = Vocab.load(os.path.join(path, "vocab.txt"))
        return info, student_encoder(vocab, info["language"], info["max_seq_length"]), \
            collate_student, run
    if os.path.exists(os.path.join(path, BEST)):  # a run directory: the eager student
        import paddle

        from model import BiLSTMStudent, StudentConfig

        ckpt = load_checkpoint(os.path.join(path, BEST))
        config = StudentConfig(**ckpt["model_config"])
        model = BiLSTMStudent(config)
        model.set_state_dict(ckpt["model"])
        model.eval()
        data = ckpt["config"]["data"]
        info = {"kind": "student", "task": data["task_name"], "pair": config.pair,
                "language": TASKS[data["task_name"]].language,
                "max_seq_length": data["max_seq_length"], "num_labels": config.num_labels}
        names = list(student_inputs(config.pair))

        def run(batch):
            with paddle.no_grad():
                return model(*[paddle.to_tensor(batch[n]) for n in names]).numpy()

        encoder = student_encoder(Vocab(ckpt["vocab"]), info["language"], info["max_seq_length"])
        return info, encoder, collate_student, run
    raise RunError(f"{path}: neither an export ({EXPORT_INFO}) nor a run directory ({BEST})")


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def predict(path: str, inp: BinaryIO, out: TextIO, where: str = "<stdin>", fmt: str = "jsonl",
            batch_size: int = 64, device: str = "cpu", num_threads: int | None = None,
            strict: bool = False, backend: str = "paddle") -> dict:
    """Writes one prediction (or error) per input line; returns counts."""
    info, encode, collate, run = load_model(path, device, num_threads, backend)
    n_fields = 2 if info.get("pair") else 1
    counts = {"lines": 0, "errors": 0}
    pending: list[tuple[int, dict]] = []

    def emit(n: int, probs: np.ndarray | None = None, error: str | None = None) -> None:
        if error is not None:
            counts["errors"] += 1
            if strict:
                raise LineError(f"{where} line {n}: {error}")
            out.write(json.dumps({"line": n, "error": error}) + "\n" if fmt == "jsonl"
                      else f"{n}\tERROR\t{error}\n")
        elif fmt == "jsonl":
            out.write(json.dumps({"line": n, "label": int(probs.argmax()),
                                  "probs": [round(float(p), 6) for p in probs]}) + "\n")
        else:
            out.write(f"{n}\t{int(probs.argmax())}\t" + "\t".join(f"{p:.6f}" for p in probs) + "\n")

    def flush() -> None:
        if pending:
            probs = softmax(run(collate([item for _, item in pending])))
            for (n, _), p in zip(pending, probs):
                emit(n, p)
            pending.clear()

    for n, text, error in read_lines(inp):
        counts["lines"] += 1
        if error is None:
            fields = tuple(text.split("\t"))
            if not text.strip():
                error = "empty line"
            elif len(fields) != n_fields or not all(f.strip() for f in fields):
                error = f"expected {n_fields} non-empty tab-separated text(s), got {len(fields)}"
        if error is None:
            try:
                pending.append((n, encode(fields)))
            except LineError as e:
                error = str(e)
        if error is not None:
            flush()  # keep the output in input order
            emit(n, error=error)
        elif len(pending) >= batch_size:
            flush()
    flush()
    return counts


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="export directory (export.py) or a student run directory")
    p.add_argument("--input", help="text file (default: stdin)")
    p.add_argument("--output", help="output file (default: stdout)")
    p.add_argument("--format", choices=["jsonl", "tsv"], default="jsonl")
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--device", choices=["cpu", "gpu"], default=None,
                   help="default: gpu when Paddle sees one")
    p.add_argument("--num_threads", type=int, default=None)
    p.add_argument("--backend", choices=BACKENDS, default="paddle",
                   help="engine for an export: Paddle Inference, or ONNX Runtime (students, "
                        "CPU; the fastest there)")
    p.add_argument("--strict", action="store_true", help="stop at the first bad line")
    args = p.parse_args(argv)
    from utils import default_device

    device = args.device or default_device()
    if args.input and not os.path.isfile(args.input):
        p.error(f"--input {args.input}: file not found")
    inp = open(args.input, "rb") if args.input else sys.stdin.buffer
    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
    try:
        counts = predict(args.model, inp, out, args.input or "<stdin>", args.format,
                         args.batch_size, device, args.num_threads, args.strict, args.backend)
    except (DataError, LineError, RunError) as e:
        sys.exit(f"error: {e}")
    finally:
        if args.output:
            out.close()
    print(f"{counts['lines']} lines, {counts['errors']} errors", file=sys.stderr)


if __name__ == "__main__":
    main()
