"""Model files: training checkpoints, exports, and loading either back to predict.

A checkpoint (best.ckpt / last.ckpt) holds what a run needs to resume and a reader needs to
rebuild its model: weights, optimizer, scheduler and loss-scaler state, the loop's state,
and what the caller adds (the student's config and vocabulary, the run's settings).

An export (export.py) is a folder for deployment: a static graph for Paddle Inference
(model.json / model.pdiparams); for students also ONNX graphs for ONNX Runtime (model.onnx,
with --int8 model.int8.onnx; built in onnx_graph.py) and vocab.txt, for teachers their
tokenizer; and export.json, written last. `load_model` reads a student run, a student export
or a teacher export back as one LoadedModel, which predicts logits for texts.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import paddle
from paddle.static import InputSpec

from data import TOKENIZERS, LineError, Vocab, pad
from engines import OnnxPredictor, Predictor, Runner, eager_runner
from model import Student, StudentConfig, make_student, student_inputs
from onnx_graph import student_graph
from runs import BEST, EXPORT_INFO, RESULTS, VOCAB, RunError, model_kind, read_json
from tasks import TASKS
from teachers import (INPUTS, TeacherEncoded, collate_teacher, encode_for_teacher, load_teacher,
                      save_pretrained)
from utils import atomic_save, atomic_write, atomic_write_json, replace_folder, write_files_into

ONNX_FILE = "model.onnx"
INT8_ONNX_FILE = "model.int8.onnx"
ONNX_FILES = {"onnxruntime": ONNX_FILE, "onnxruntime-int8": INT8_ONNX_FILE}
BACKENDS = ("paddle", *ONNX_FILES)  # Paddle Inference; ONNX Runtime on the fp32 or int8 graph


def save_checkpoint(path: str, model, optimizer, scheduler, scaler, state: dict,
                    extra: dict) -> None:
    """Written atomically: an interrupted write leaves the previous checkpoint whole."""
    try:
        atomic_save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                     "scheduler": scheduler.state_dict() if scheduler is not None else None,
                     "scaler": scaler.state_dict() if scaler is not None else None,
                     "state": state, **extra}, path)
    except OSError as e:
        raise RunError(f"{path}: cannot write the checkpoint ({e.strerror}); the previous one is "
                       f"intact: free some space and run the same command again") from None


def load_checkpoint(path: str) -> dict:
    if not os.path.exists(path):
        raise RunError(f"{path}: checkpoint not found")
    try:
        return paddle.load(path)
    except Exception as e:  # a truncated or foreign file: say which file, not a pickle trace
        raise RunError(f"{path}: not a readable checkpoint ({type(e).__name__}: {e})") from None


def student_from_checkpoint(path: str) -> tuple[Student, dict]:
    """(the student with the weights of checkpoint `path`, in eval mode; the checkpoint): the
    one place a student is rebuilt from its saved config."""
    ckpt = load_checkpoint(path)
    model = make_student(StudentConfig(**ckpt["model_config"]))
    model.set_state_dict(ckpt["model"])
    model.eval()
    return model, ckpt


# ------------------------------------------------------------------------- export


def export_static(layer: paddle.nn.Layer, inputs: dict[str, int], prefix: str) -> None:
    """Saves `layer` (called with the named int64 inputs, in order; name -> rank, e.g. 2 for
    [batch, length] ids, 1 for [batch] lengths) as a static graph at `prefix`.json /
    `prefix`.pdiparams, written in a scratch folder and moved into place, so a reader never
    sees half an export."""
    spec = [InputSpec([None] * rank, "int64", name) for name, rank in inputs.items()]
    layer.eval()
    folder, name = os.path.split(os.path.abspath(prefix))
    # the graph last: its presence marks a whole export
    write_files_into(folder, lambda tmp: paddle.jit.save(layer, os.path.join(tmp, name),
                                                         input_spec=spec), last=name + ".json")


def export_student_onnx(model: Student, path: str) -> None:
    """The student's ONNX graph (onnx_graph.student_graph), written atomically."""
    import onnx  # here: training never needs it

    graph = student_graph(model)
    atomic_write(path, lambda tmp: onnx.save(graph, tmp))


def quantize_student_onnx(src: str, dst: str) -> None:
    """The fp32 ONNX graph with int8 weights in the LSTM and the matmuls (ONNX Runtime's
    dynamic quantization: weights quantized once, activations per call). The embedding
    lookup stays fp32: quantizing it adds a dequantization per call and was slower
    (docs/benchmarks.md)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    atomic_write(dst, lambda tmp: quantize_dynamic(src, tmp, weight_type=QuantType.QInt8,
                                                   op_types_to_quantize=["LSTM", "MatMul"]))


def checkpoint_task(ckpt: dict) -> dict:
    """{name, language, labels} of a student checkpoint's task (checkpoints written before
    they held it: their built-in task's)."""
    if "task" in ckpt:
        return ckpt["task"]
    task = TASKS[ckpt["config"]["data"]["task_name"]]
    return {"name": task.name, "language": task.language, "labels": list(task.names)}


def export_student(run_dir: str, out: str, int8: bool = False) -> dict:
    """The best checkpoint of a student run -> `out`: static graph, ONNX graph (and its int8
    version with `int8`), vocabulary and export.json (written last: it marks a whole
    export). Returns export.json's content."""
    model, ckpt = student_from_checkpoint(os.path.join(run_dir, BEST))
    config, data, task = model.config, ckpt["config"]["data"], checkpoint_task(ckpt)
    export_static(model, student_inputs(config.pair), os.path.join(out, "model"))
    export_student_onnx(model, os.path.join(out, ONNX_FILE))
    if int8:
        quantize_student_onnx(os.path.join(out, ONNX_FILE), os.path.join(out, INT8_ONNX_FILE))
    Vocab(ckpt["vocab"]).save(os.path.join(out, VOCAB))
    info = {"kind": "student", "task": task["name"], "language": task["language"],
            "labels": task["labels"],
            "max_seq_length": data["max_seq_length"], "num_labels": config.num_labels,
            "pair": config.pair, "int8": int8,
            "source": os.path.abspath(run_dir)}
    atomic_write_json(os.path.join(out, EXPORT_INFO), info)
    return info


def export_teacher(teacher_dir: str, out: str, max_seq_length: int = 128) -> dict:
    """A teacher directory -> `out`: static graph for Paddle Inference, the tokenizer (and
    the eager model) beside it, export.json last. Returns export.json's content."""
    model, tokenizer = load_teacher(teacher_dir, None)
    export_static(model, INPUTS, os.path.join(out, "model"))
    save_pretrained(model, tokenizer, out)
    results = os.path.join(teacher_dir, RESULTS)  # a teacher.py run knows its label names
    labels = read_json(results).get("labels") if os.path.isfile(results) else None
    info = {"kind": "teacher", "max_seq_length": max_seq_length, "labels": labels,
            "num_labels": model.num_labels, "source": os.path.abspath(teacher_dir)}
    atomic_write_json(os.path.join(out, EXPORT_INFO), info)
    return info


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


def read_export_info(path: str) -> dict:
    """export.json of an export folder; a damaged one is an error naming it."""
    file = os.path.join(path, EXPORT_INFO)
    try:
        info = read_json(file)
    except RunError:
        info = {}
    if info.get("kind") not in ("student", "teacher"):
        raise RunError(f"{file}: not an export.json written by export.py; run export.py again")
    return info


def check_export(path: str, files: list[str]) -> None:
    missing = [f for f in files if not os.path.exists(os.path.join(path, f))]
    if missing:
        raise RunError(f"{path}: incomplete export, {', '.join(missing)} missing; run "
                       f"export.py again")


# ------------------------------------------------------------------- text -> inputs

Encode = Callable[[tuple[str, ...]], dict]  # one example's texts -> its inputs
Collate = Callable[[list[dict]], dict]  # a list of those -> a named, padded batch


def student_text_encoder(vocab: Vocab, language: str, max_len: int) -> tuple[Encode, Collate]:
    """How a student reads text: the tokenization and truncation of training, its vocabulary's
    ids ({"ids": [ids per text]}), both texts of a pair padded to one width in a batch."""
    tok = TOKENIZERS[language]

    def encode(texts: tuple[str, ...]) -> dict:
        words = [tok(t)[:max_len] for t in texts]
        if any(not w for w in words):
            raise LineError("no words after tokenization")
        return {"ids": [vocab.encode(w) for w in words]}

    def collate(items: list[dict]) -> dict:
        k = len(items[0]["ids"])
        width = max(len(x) for it in items for x in it["ids"])
        out = {}
        for j, suffix in enumerate(("", "_b")[:k]):
            out["input_ids" + suffix], out["lengths" + suffix] = pad(
                [it["ids"][j] for it in items], width)
        return out

    return encode, collate


def teacher_text_encoder(tokenizer, max_seq_length: int) -> tuple[Encode, Collate]:
    """How a teacher reads text: its tokenizer's ids ([CLS] a [SEP] (b [SEP]), truncated to
    `max_seq_length` pieces) and segment ids, padded with its pad token in a batch."""
    def encode(texts: tuple[str, ...]) -> dict:
        enc = encode_for_teacher(tokenizer, [texts], max_seq_length)
        return {"input_ids": enc.input_ids[0], "token_type_ids": enc.token_type_ids[0]}

    def collate(items: list[dict]) -> dict:
        data = TeacherEncoded([i["input_ids"] for i in items],
                              [i["token_type_ids"] for i in items], None)
        return collate_teacher(data, np.arange(len(items)), tokenizer.pad_token_id)

    return encode, collate


# ------------------------------------------------------------------------ loading


@dataclass
class LoadedModel:
    """A trained model ready to predict, student or teacher, eager or exported: `encode` turns
    one example's texts into its inputs, `collate` a list of those into a batch, `run` a batch
    into logits. `model` is the eager network (None for an export)."""

    info: dict  # export.json's fields: kind, num_labels, max_seq_length; students: task, pair
    encode: Encode
    collate: Collate
    run: Runner
    model: paddle.nn.Layer | None = None

    def predict(self, texts: Sequence[tuple[str, ...]], batch_size: int = 64) -> np.ndarray:
        """[len(texts), num_labels] logits, `batch_size` examples per call in the given order;
        an example is the tuple of its texts (two for a pair task). A text in which the model
        finds no words is a LineError naming its example (counted from 1)."""
        out = []
        for start in range(0, len(texts), batch_size):
            items = []
            for i, t in enumerate(texts[start:start + batch_size], start=start):
                try:
                    items.append(self.encode(t))
                except LineError as e:
                    raise LineError(f"example {i + 1}: {e}") from None
            out.append(self.run(self.collate(items)))
        return np.concatenate(out)


def load_student(path: str, device: str = "cpu", num_threads: int | None = None,
                 backend: str = "paddle") -> LoadedModel:
    """A student run directory (its best checkpoint, eager) or a student export (Paddle
    Inference, or ONNX Runtime with backend 'onnxruntime' or 'onnxruntime-int8', on the
    CPU)."""
    if model_kind(path) == "export":
        info = read_export_info(path)
        if info["kind"] != "student":
            raise RunError(f"{path}: a {info['kind']} export, not a student")
        if backend in ONNX_FILES:
            if device != "cpu":
                raise RunError(f"{path}: --backend {backend} runs students on the CPU; use "
                               f"--backend paddle on {device}")
            if backend == "onnxruntime-int8" and not info.get("int8"):
                raise RunError(f"{path}: no int8 model in this export; export it with "
                               f"export.py --int8")
            check_export(path, [ONNX_FILES[backend]])
            run: Runner = OnnxPredictor(os.path.join(path, ONNX_FILES[backend]), num_threads)
        else:
            check_export(path, ["model.json", "model.pdiparams"])
            run = Predictor(os.path.join(path, "model"), device, num_threads)
        vocab, model = Vocab.load(os.path.join(path, VOCAB)), None
    else:
        model, ckpt = student_from_checkpoint(os.path.join(path, BEST))
        data, task = ckpt["config"]["data"], checkpoint_task(ckpt)
        info = {"kind": "student", "task": task["name"], "pair": model.config.pair,
                "language": task["language"], "labels": task["labels"],
                "max_seq_length": data["max_seq_length"], "num_labels": model.config.num_labels}
        vocab = Vocab(ckpt["vocab"])
        run = eager_runner(model, list(student_inputs(model.config.pair)))
    return LoadedModel(info, *student_text_encoder(vocab, info["language"],
                                                   info["max_seq_length"]), run, model)


def load_teacher_export(path: str, info: dict, device: str = "cpu",
                        num_threads: int | None = None) -> LoadedModel:
    """A teacher export (Paddle Inference) with its tokenizer; `info` its export.json."""
    from paddlenlp.transformers import AutoTokenizer

    check_export(path, ["model.json", "model.pdiparams"])
    return LoadedModel(info, *teacher_text_encoder(AutoTokenizer.from_pretrained(path),
                                                   info["max_seq_length"]),
                       Predictor(os.path.join(path, "model"), device, num_threads))


def load_model(path: str, device: str = "cpu", num_threads: int | None = None,
               backend: str = "paddle") -> LoadedModel:
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
