"""Using trained models: export a run for deployment, load any export or run, and predict
labels for a file of texts.

Students are loaded by student.load_student (a run's checkpoint, or an export through
Paddle Inference or ONNX Runtime); teachers here, from their export (Paddle Inference).
"""
from __future__ import annotations

import json
import os
from typing import BinaryIO, Iterator, TextIO

import numpy as np

from data import TASKS, DataError, LineError, load_split
from engines import Predictor
from runs import EXPORT_INFO, RunError, model_kind
from student import ONNX_FILES, LoadedStudent, check_export, export_student, load_student, \
    read_export_info
from teachers import export_teacher, text_encoder
from utils import atomic_write_text, replace_folder

BACKENDS = ("paddle", *ONNX_FILES)  # ONNX Runtime: fp32 or int8 graph


def export_model(src: str, dst: str, max_seq_length: int = 128, int8: bool = False) -> dict:
    """A student run (its best checkpoint) or a teacher (a save_pretrained directory, e.g.
    a teacher.py run) -> an export folder at `dst`, swapped in whole; `int8` adds a
    quantized ONNX graph (students). Returns export.json's content."""
    kind = model_kind(src)
    if kind == "export":
        raise RunError(f"{src}: already an export ({EXPORT_INFO}); give the run directory")
    if kind == "student":
        return replace_folder(dst, lambda tmp: export_student(src, tmp, int8))
    if int8:
        raise RunError(f"{src}: --int8 quantizes students; a teacher exports in fp32")
    return replace_folder(dst, lambda tmp: export_teacher(src, tmp, max_seq_length))


def load_teacher_export(path: str, info: dict, device: str,
                        num_threads: int | None) -> LoadedStudent:
    """A teacher export as a predictor with the same interface as a loaded student."""
    from paddlenlp.transformers import AutoTokenizer

    check_export(path, ["model.json", "model.pdiparams"])
    encode, collate = text_encoder(AutoTokenizer.from_pretrained(path), info["max_seq_length"])
    return LoadedStudent(info, encode, collate, Predictor(os.path.join(path, "model"), device,
                                                          num_threads))


def load_model(path: str, device: str = "cpu", num_threads: int | None = None,
               backend: str = "paddle") -> LoadedStudent:
    """Any export (student or teacher) or student run directory, ready to predict."""
    kind = model_kind(path)
    if kind == "teacher":
        raise RunError(f"{path}: a teacher directory; export it first (python export.py "
                       f"{path} DST) and predict with the export")
    if kind == "export":
        info = read_export_info(path)
        if info["kind"] == "teacher":
            if backend != "paddle":
                raise RunError(f"{path}: --backend {backend} runs exported students; use "
                               f"--backend paddle for this teacher")
            return load_teacher_export(path, info, device, num_threads)
    return load_student(path, device, num_threads, backend)


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


def predict(path: str, inp: BinaryIO, out: TextIO, where: str = "<stdin>", fmt: str = "jsonl",
            batch_size: int = 64, device: str = "cpu", num_threads: int | None = None,
            strict: bool = False, backend: str = "paddle") -> dict:
    """Writes one prediction (or error) per input line, in input order; returns counts."""
    model = load_model(path, device, num_threads, backend)
    n_fields = 2 if model.info.get("pair") else 1
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
            probs = softmax(model.run(model.collate([item for _, item in pending])))
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
                pending.append((n, model.encode(fields)))
            except LineError as e:
                error = str(e)
        if error is not None:
            flush()  # keep the output in input order
            emit(n, error=error)
        elif len(pending) >= batch_size:
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
    lines = [f"{id_header}\t{label_header}\n"]
    for start in range(0, len(examples), batch_size):
        batch = examples[start:start + batch_size]
        items = []
        for i, ex in enumerate(batch, start=start):
            try:
                items.append(model.encode(ex.texts))
            except LineError as e:
                raise DataError(f"{where}: example {i + 1} (id {ex.id}): {e}") from None
        labels = model.run(model.collate(items)).argmax(axis=1)
        lines += [f"{ex.id}\t{int(y)}\n" for ex, y in zip(batch, labels)]
    out = os.path.join(out_dir, name)
    os.makedirs(out_dir, exist_ok=True)
    atomic_write_text(out, "".join(lines))
    return out
