"""Fine-tunes a BERT teacher on a task with the shared training loop (teacher.py): the
backbone from --model_name_or_path (a local folder or a paddlenlp name), its best checkpoint
saved with `save_pretrained` to --output_dir, where bert_distill.py looks for it.
"""
from __future__ import annotations

import logging
import os

import numpy as np
import paddle

from args import Config
from data import DataError, Example, load_split, make_batches, task_of
from losses import cross_entropy
from model_io import load_checkpoint
from runs import BEST, TEACHER_CONFIG
from tasks import Task
from teachers import (LOCAL_BACKBONE, collate_teacher, compile_teacher, encode_for_teacher,
                      from_pretrained, save_pretrained, teacher_forward)
from trainer import build_optimizer, fit, prepare_run, start_run, total_steps
from utils import count_parameters

logger = logging.getLogger(__name__)

DEFAULT_BACKBONE = {"en": "bert-base-uncased", "zh": "bert-base-chinese"}


def load_texts(cfg: Config, task: Task, split: str, limit: int | None) -> list[Example]:
    """The split's first `limit` examples; a dev split without labels is an error."""
    examples = load_split(task, split, cfg.data.data_dir)[:limit]
    if split == "dev" and examples[0].label is None:
        raise DataError(f"{cfg.data.dev_file or cfg.data.data_dir or 'paddlenlp'}: the dev "
                        f"split has no labels")
    return examples


def finetune(cfg: Config) -> dict:
    """Fine-tunes --model_name_or_path on the task with the shared loop; the best
    checkpoint is saved with `save_pretrained` to --output_dir. Returns results.json's
    content."""
    from paddlenlp.transformers import AutoModelForSequenceClassification, AutoTokenizer

    d, t = cfg.data, cfg.train
    task = task_of(d)
    if cfg.teacher.model_name_or_path is None:
        cfg.teacher.model_name_or_path = DEFAULT_BACKBONE[task.language]
    resume = prepare_run(cfg.to_dict(), t, cfg.script, TEACHER_CONFIG)
    backbone = cfg.teacher.model_name_or_path
    train = load_texts(cfg, task, "train", d.max_train_samples)
    dev = load_texts(cfg, task, "dev", d.max_eval_samples)
    tokenizer = from_pretrained(AutoTokenizer, backbone, LOCAL_BACKBONE)
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
        model = from_pretrained(AutoModelForSequenceClassification, backbone, LOCAL_BACKBONE,
                                num_classes=task.num_labels)
        logger.info("teacher %s: %s parameters", backbone, f"{count_parameters(model):,}")
        cpu_bf16 = t.amp == "bf16" and t.device == "cpu"
        if cfg.teacher.to_static or cpu_bf16:  # same parameters, a compiled graph per mode
            model = compile_teacher(model, bf16=cpu_bf16)
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
                      results_extra={"task": task.name, "labels": list(task.names),
                                     "backbone": backbone,
                                     "num_params": count_parameters(model),
                                     "train_examples": len(train_set),
                                     "dev_examples": len(dev_set)},
                      finish=save_best)
    return results
