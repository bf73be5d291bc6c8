"""Fine-tunes the BERT teacher on a task of the task table, and loads teachers for everything
that needs one (labelling the transfer set, benchmarks, export).

    python teacher.py --task_name sst-2 --data_dir ../shared/data/sst2 \
        --model_name_or_path pretrained_models/minilm --output_dir pretrained_models/sst-2

The best checkpoint is saved with `save_pretrained` (config.json, model_state.pdparams,
tokenizer files) to --output_dir, where bert_distill.py looks for it by default.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import paddle

from args import Config, parse_config
from data import DataError, Example, TASKS, Task, load_split, make_batches, pad
from trainer import (BEST, TEACHER_CONFIG, RunError, build_optimizer, cross_entropy, fit,
                     load_checkpoint, prepare_run, start_run, total_steps)
from utils import count_parameters, run_cli

logger = logging.getLogger(__name__)

INPUTS = {"input_ids": 2, "token_type_ids": 2}  # what the teacher (and its export) takes
DEFAULT_BACKBONE = {"en": "bert-base-uncased", "zh": "bert-base-chinese"}
TEACHER_DEFAULTS = {"optimizer": "adamw", "lr_schedule": "linear", "weight_decay": 0.01,
                    "batch_size": 32, "eval_batch_size": 128, "max_epoch": 3}


class TeacherError(ValueError):
    """A teacher that cannot be used as given; the message names the file and the fix."""


TEACHER_ROOT = "pretrained_models"  # teacher.py saves to, bert_distill.py looks in, <root>/<task>


# ------------------------------------------------------------------------- loading


def _classifier_labels(state: dict, where: str) -> int:
    w = state.get("classifier.weight")
    if w is None:
        raise TeacherError(f"{where}: has no classifier.weight: this is a backbone, not a "
                           f"fine-tuned teacher (fine-tune it with teacher.py first)")
    return int(w.shape[1])


def load_teacher(path: str, num_labels: int | None, model_name: str | None = None):
    """(model in eval mode, tokenizer) from either
    - a `save_pretrained` directory (config.json, model_state.pdparams, vocab), or
    - PaddleNLP's example layout: a `model_state.pdparams` file plus the backbone name it was
      fine-tuned from (`model_name`, e.g. bert-base-uncased), so existing teachers load
      unchanged.
    Fails with a TeacherError naming the file when the teacher does not fit the task
    (`num_labels`; None accepts any)."""
    from paddlenlp.transformers import AutoModelForSequenceClassification, AutoTokenizer

    if os.path.isdir(path):
        state_file = os.path.join(path, "model_state.pdparams")
        for f in ("config.json", "model_state.pdparams", "vocab.txt"):
            if not os.path.isfile(os.path.join(path, f)):
                hf = [g for g in ("model.safetensors", "pytorch_model.bin")
                      if os.path.exists(os.path.join(path, g))]
                hint = (f"; it looks like a Hugging Face checkpoint: convert it with "
                        f"`python convert.py {path} DST`" if hf else "")
                raise TeacherError(f"{path}: missing {f}; expected a save_pretrained directory "
                                   f"(config.json, model_state.pdparams, vocab.txt){hint}")
        source = path
    elif os.path.isfile(path):
        if not path.endswith(".pdparams"):
            raise TeacherError(f"{path}: expected a save_pretrained directory or a "
                               f".pdparams state file")
        if not model_name:
            raise TeacherError(f"{path}: a bare state file needs --model_name, the backbone it "
                               f"was fine-tuned from (e.g. bert-base-uncased)")
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
    model = AutoModelForSequenceClassification.from_pretrained(source, num_classes=n)
    missing, unexpected = model.set_state_dict(state)
    if missing or unexpected:
        raise TeacherError(f"{state_file}: does not fit {source} (missing {missing[:3]}, "
                           f"unexpected {unexpected[:3]})")
    model.eval()
    return model, AutoTokenizer.from_pretrained(source)


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


def encode_words_for_teacher(tokenizer, examples: Sequence[tuple[Sequence[str], ...]],
                             max_seq_length: int, mask_word: str = "[MASK]") -> TeacherEncoded:
    """Teacher ids of already-tokenized examples (the transfer set): each distinct word goes
    through the teacher's own tokenizer once (BERT's tokenizer splits on whitespace before
    anything else, so this equals tokenizing the words joined by spaces, ~50x faster), and
    `mask_word` becomes the teacher's mask token. Pairs are truncated longest-first."""
    pieces: dict[str, list[int]] = {mask_word: [tokenizer.mask_token_id]}
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    ids, types = [], []
    for ex in examples:
        parts = []
        for words in ex:
            seq = []
            for w in words:
                if w not in pieces:
                    pieces[w] = tokenizer.convert_tokens_to_ids(tokenizer.tokenize(w))
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


# ------------------------------------------------------------------------ labelling

Runner = Callable[[dict], np.ndarray]  # named int64 arrays -> logits


def eager_runner(model: paddle.nn.Layer) -> Runner:
    """The teacher in eager mode, no grad: the slow reference path."""
    def run(batch: dict) -> np.ndarray:
        with paddle.no_grad():
            return teacher_forward(model, {k: paddle.to_tensor(batch[k]) for k in INPUTS}).numpy()
    return run


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


# ------------------------------------------------------------------------- training


def save_pretrained(model, tokenizer, out: str) -> None:
    """`save_pretrained` into a scratch folder, then each file moved into place (weights
    first, config last), so an interrupted save never leaves a half-written model."""
    import shutil
    import tempfile

    os.makedirs(out, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=out, prefix=".save_")
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        names = sorted(os.listdir(tmp), key=lambda f: (f == "config.json", f))
        for f in names:
            os.replace(os.path.join(tmp, f), os.path.join(out, f))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_texts(cfg: Config, task: Task, split: str, limit: int | None) -> list[Example]:
    examples = load_split(task, split, cfg.data.data_dir)[:limit]
    if split == "dev" and examples[0].label is None:
        raise DataError(f"{cfg.data.data_dir or 'paddlenlp'}: the dev split has no labels")
    return examples


def main(argv: Sequence[str] | None = None) -> dict:
    from paddlenlp.transformers import AutoModelForSequenceClassification, AutoTokenizer

    cfg = parse_config("teacher", ["data", "teacher", "train"], argv, __doc__, TEACHER_DEFAULTS,
                       output_root=TEACHER_ROOT)
    d, t = cfg.data, cfg.train
    task = TASKS[d.task_name]
    if cfg.teacher.model_name_or_path is None:
        cfg.teacher.model_name_or_path = DEFAULT_BACKBONE[task.language]
    resume = prepare_run(cfg.to_dict(), t, cfg.script, TEACHER_CONFIG)
    backbone = cfg.teacher.model_name_or_path
    train = load_texts(cfg, task, "train", d.max_train_samples)
    dev = load_texts(cfg, task, "dev", d.max_eval_samples)
    tokenizer = AutoTokenizer.from_pretrained(backbone)
    train_set = encode_for_teacher(tokenizer, [e.texts for e in train], d.max_seq_length,
                                   [e.label for e in train])
    dev_set = encode_for_teacher(tokenizer, [e.texts for e in dev], d.max_seq_length,
                                 [e.label for e in dev])
    lengths = train_set.lengths()
    logger.info("%s: %d train / %d dev examples; train average %.1f tokens (max %d after "
                "truncation at %d)", task.name, len(train_set), len(dev_set), lengths.mean(),
                lengths.max(), d.max_seq_length)
    pad_id = tokenizer.pad_token_id

    def epoch_batches(epoch: int) -> list[np.ndarray]:
        return make_batches(lengths, t.batch_size, np.random.default_rng([t.seed, epoch]),
                            bucket=not t.no_bucketing)

    dev_batches = [collate_teacher(dev_set, idx, pad_id)
                   for idx in make_batches(dev_set.lengths(), t.eval_batch_size, None)]
    with paddle.utils.unique_name.guard():
        model = AutoModelForSequenceClassification.from_pretrained(backbone,
                                                                   num_classes=task.num_labels)
        logger.info("teacher %s: %s parameters", backbone, f"{count_parameters(model):,}")
        if cfg.teacher.to_static:  # same parameters and losses, a compiled graph per mode
            from paddle.static import InputSpec

            model = paddle.jit.to_static(model, full_graph=True, input_spec=[
                InputSpec([None, None], "int64", name) for name in INPUTS])
        start_run(cfg.to_dict(), t, TEACHER_CONFIG)

        def save_best(results: dict) -> None:
            model.set_state_dict(load_checkpoint(os.path.join(t.output_dir, BEST))["model"])
            save_pretrained(model, tokenizer, t.output_dir)
            logger.info("best teacher saved with save_pretrained in %s", t.output_dir)

        optimizer, scheduler = build_optimizer(t, model, total_steps(t, len(epoch_batches(0))))
        results = fit(model, optimizer, t, epoch_batches=epoch_batches,
                      collate=lambda idx: collate_teacher(train_set, idx, pad_id),
                      dev_batches=dev_batches, forward=teacher_forward, loss_fn=cross_entropy,
                      metric_names=task.metrics, resume=resume, scheduler=scheduler,
                      checkpoint_extra={"config": cfg.to_dict()},
                      results_extra={"task": task.name, "backbone": backbone,
                                     "num_params": count_parameters(model),
                                     "train_examples": len(train_set),
                                     "dev_examples": len(dev_set)},
                      finish=save_best)
    return results


if __name__ == "__main__":
    run_cli(main, (DataError, RunError, TeacherError))
