"""Predicting labels with a trained model (predict.py): one prediction or error per line
of a file of texts, or GLUE's submission file for a task's test split. The model is any
export or student run, loaded by model_io.load_model.
"""
from __future__ import annotations

import json
import os
from typing import BinaryIO, Iterator, TextIO

import numpy as np

from data import DataError, LineError, load_split, read_table
from model_io import load_model
from runs import RunError
from tasks import TASKS, Layout
from utils import atomic_write_text


def read_lines(f: BinaryIO) -> Iterator[tuple[int, str | None, str | None]]:
    """(line number, text or None, error or None) per line, decoding line by line."""
    for n, raw in enumerate(f, start=1):
        try:
            yield n, raw.decode("utf-8-sig" if n == 1 else "utf-8").rstrip("\r\n"), None
        except UnicodeDecodeError as e:
            yield n, None, f"not UTF-8 ({e.reason} at byte {e.start})"


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def label_names(info: dict) -> list[str] | None:
    """The names predictions print, or None where the labels are the class ids 0..k-1 (the
    built-in tasks: their output stays as it was)."""
    labels = info.get("labels")
    return None if not labels or labels == [str(i) for i in range(len(labels))] else labels


def prediction_line(key: str, value: int | str, probs: np.ndarray, names: list[str] | None,
                    fmt: str) -> str:
    """One output line: JSONL {key: value, "label", "probs"} (probabilities by label name
    when the labels have names), or TSV value<TAB>label<TAB>probabilities."""
    label = names[int(probs.argmax())] if names else int(probs.argmax())
    if fmt == "jsonl":
        scores = [round(float(p), 6) for p in probs]
        return json.dumps({key: value, "label": label, "probs": dict(zip(names, scores))
                           if names else scores}, ensure_ascii=False) + "\n"
    return f"{value}\t{label}\t" + "\t".join(f"{p:.6f}" for p in probs) + "\n"


def predict_table(path: str, test_file: str, layout: Layout, out: TextIO, fmt: str = "jsonl",
                  batch_size: int = 64, device: str = "cpu", num_threads: int | None = None,
                  backend: str = "paddle") -> dict:
    """Predicts every row of your own CSV, TSV or JSONL file, read as the training files are
    (a bad row stops with its file:line); each output line keeps the row's id (--id_column),
    else its line number. Rows are streamed in batches."""
    model = load_model(path, device, num_threads, backend)
    n_fields = 2 if model.info.get("pair") else 1
    if len(layout.text) != n_fields:
        raise DataError(f"--text_column: {len(layout.text)} column(s) given, the model reads "
                        f"{n_fields} text(s) per example")
    names = label_names(model.info)
    key = "line" if layout.id is None else "id"
    batch: list[tuple[int | str, tuple[str, ...]]] = []
    rows = 0

    def flush() -> None:
        if batch:
            probs = softmax(model.predict([texts for _, texts in batch], len(batch)))
            out.writelines(prediction_line(key, v, p, names, fmt)
                           for (v, _), p in zip(batch, probs))
            batch.clear()

    for lineno, texts, _, id_ in read_table(test_file, layout):
        batch.append((lineno if id_ is None else id_, texts))
        rows += 1
        if len(batch) >= batch_size:
            flush()
    flush()
    return {"lines": rows, "errors": 0}


def predict(path: str, inp: BinaryIO, out: TextIO, where: str = "<stdin>", fmt: str = "jsonl",
            batch_size: int = 64, device: str = "cpu", num_threads: int | None = None,
            strict: bool = False, backend: str = "paddle") -> dict:
    """Writes one prediction (or error) per input line, in input order; returns counts."""
    model = load_model(path, device, num_threads, backend)
    n_fields = 2 if model.info.get("pair") else 1
    names = label_names(model.info)
    counts = {"lines": 0, "errors": 0}
    pending: list[tuple[int, tuple[str, ...]]] = []  # (line number, texts)

    def emit(n: int, probs: np.ndarray | None = None, error: str | None = None) -> None:
        if error is not None:
            counts["errors"] += 1
            if strict:
                raise LineError(f"{where} line {n}: {error}")
            out.write(json.dumps({"line": n, "error": error}) + "\n" if fmt == "jsonl"
                      else f"{n}\tERROR\t{error}\n")
        else:
            out.write(prediction_line("line", n, probs, names, fmt))

    def flush() -> None:
        if pending:
            probs = softmax(model.predict([texts for _, texts in pending], len(pending)))
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
        if error is not None:
            flush()  # keep the output in input order
            emit(n, error=error)
            continue
        pending.append((n, fields))
        if len(pending) >= batch_size:
            flush()
    flush()
    return counts


def write_submission(path: str, task_name: str, data_dir: str | None, out_dir: str,
                     batch_size: int = 64, device: str = "cpu", num_threads: int | None = None,
                     backend: str = "paddle") -> str:
    """Predicts the task's test split (whose labels are private) and writes the file GLUE's
    server expects, e.g. out_dir/SST-2.tsv with `index<TAB>prediction` lines (ChnSentiCorp:
    `qid<TAB>label`). Returns the file's path."""
    task = TASKS[task_name]
    model = load_model(path, device, num_threads, backend)
    if model.info.get("task", task.name) != task.name:
        raise RunError(f"{path}: a {model.info['task']} model, not {task.name}")
    examples = load_split(task, "test", data_dir)
    name, id_header, label_header = task.submission
    where = os.path.join(data_dir, task.files["test"][0]) if data_dir else f"{task.name} test"
    try:
        labels = model.predict([ex.texts for ex in examples], batch_size).argmax(axis=1)
    except LineError as e:
        raise DataError(f"{where}: {e}") from None
    lines = [f"{id_header}\t{label_header}\n"] + [f"{ex.id}\t{int(y)}\n"
                                                  for ex, y in zip(examples, labels)]
    out = os.path.join(out_dir, name)
    os.makedirs(out_dir, exist_ok=True)
    atomic_write_text(out, "".join(lines))
    return out
