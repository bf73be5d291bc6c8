"""The training and evaluation loop shared by every entry point (small.py, bert_distill.py,
teacher.py): checkpoints, resume, progress and metrics live here once.

A run is deterministic given its seed and resumable at any checkpoint: the batch order of
epoch e is drawn from (seed, e) and the dropout masks of step s from (seed, s), so a resumed
run replays exactly what the uninterrupted run would have done.

Under `python -m paddle.distributed.launch` every process draws the same global batches and
trains on its share of each (DataParallel averages the gradients, weighted so that they equal
the whole batch's); evaluation is shared too, and only the main process writes files.
Without dropout, N processes give the metrics of one process with the same total batch.
"""
from __future__ import annotations

import json
import logging
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import paddle
import paddle.nn.functional as F

import cpu
from args import TrainArgs, settings_diff
from losses import Batch, LossFn
from model_io import load_checkpoint, save_checkpoint
from runs import BEST, CONFIG, LAST, METRICS, RESULTS, RUN_FILES, VISUALDL_DIR, RunError
from utils import (all_gather, append_jsonl, atomic_write_json, atomic_write_text,
                   barrier, classification_metrics, fault_point, format_seconds, is_main,
                   peak_memory_gb, rank, read_jsonl, set_seed, setup_device, setup_logging,
                   world_size)

logger = logging.getLogger(__name__)

Forward = Callable[[paddle.nn.Layer, Batch], paddle.Tensor]


def check_output_dir(config: dict, train: TrainArgs, config_file: str = CONFIG) -> bool:
    """Decides, before anything is written, whether this run resumes an earlier one.

    An interrupted run (a checkpoint, no results) resumes when the same command is run
    again (or with --resume); a finished one is never touched unless --resume or
    --overwrite_output_dir is given. Resuming needs the same settings, runtime flags
    excepted.
    """
    out = train.output_dir
    earlier = [f for f in (LAST, RESULTS) if os.path.exists(os.path.join(out, f))]
    if not earlier or train.overwrite_output_dir:
        return False
    if RESULTS in earlier and not train.resume:
        raise RunError(f"--output_dir {out} already holds a finished run ({', '.join(earlier)});"
                       f" pass --overwrite_output_dir to start over (or --resume to rewrite its "
                       f"results)")
    with open(os.path.join(out, config_file), encoding="utf-8") as f:
        saved = json.load(f)
    diffs = [f"--{k.split('.')[1]}: {was!r} -> {now!r}"
             for k, (was, now) in settings_diff(saved, config, "resume").items()]
    if diffs:
        raise RunError(f"{'--resume: ' if train.resume else ''}settings differ from the "
                       f"interrupted run in {out}: " + "; ".join(diffs) +
                       "; pass --overwrite_output_dir to start over")
    return True


def prepare_run(config: dict, train: TrainArgs, script: str, config_file: str = CONFIG) -> bool:
    """Checks output_dir (nothing is written if the run must not start), sets up logging,
    device and seed. Returns whether the run resumes."""
    resume = check_output_dir(config, train, config_file)
    check_writable(train.output_dir)
    setup_logging(os.path.join(train.output_dir, "train.log"))
    setup_device(train.device, train.num_threads)
    barrier()  # every rank has decided before the main one writes anything
    set_seed(train.seed)
    logger.info("%s %s", script, " ".join(sys.argv[1:]))
    logger.info("%s", cpu.describe())
    return resume


def check_writable(out: str) -> None:
    """Fails before any work when output_dir cannot be created or written."""
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as e:
        raise RunError(f"--output_dir {out}: cannot create it ({e.strerror})") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise RunError(f"--output_dir {out}: not writable; choose another --output_dir")


def start_run(config: dict, train: TrainArgs, config_file: str = CONFIG) -> None:
    """Clears an overwritten run's files (only ours) and saves the run's settings to
    `config_file` (main process; the others wait for it)."""
    if not is_main():
        barrier()
        return
    os.makedirs(train.output_dir, exist_ok=True)
    for f in os.listdir(train.output_dir):  # what a killed run's atomic writes left behind
        if f.startswith(".") and f.endswith(".tmp"):
            os.remove(os.path.join(train.output_dir, f))
    if train.overwrite_output_dir:
        for f in (*RUN_FILES, config_file):
            p = os.path.join(train.output_dir, f)
            if os.path.exists(p):
                os.remove(p)
        shutil.rmtree(os.path.join(train.output_dir, VISUALDL_DIR), ignore_errors=True)
    atomic_write_json(os.path.join(train.output_dir, config_file), config)
    barrier()


def build_optimizer(train: TrainArgs, model: paddle.nn.Layer, n_steps: int):
    """(optimizer, scheduler or None) as the flags ask; the scheduler steps once per batch."""
    lr = train.lr
    scheduler = None
    if train.lr_schedule == "linear":
        from paddlenlp.transformers import LinearDecayWithWarmup

        scheduler = lr = LinearDecayWithWarmup(train.lr, n_steps, train.warmup_proportion)
    clip = paddle.nn.ClipGradByGlobalNorm(train.max_grad_norm) if train.max_grad_norm else None
    params = model.parameters()
    if train.optimizer == "adadelta":
        opt = paddle.optimizer.Adadelta(learning_rate=lr, rho=train.rho, epsilon=1e-6,
                                        parameters=params, grad_clip=clip)
    elif train.optimizer == "adam":
        opt = paddle.optimizer.Adam(learning_rate=lr, parameters=params, grad_clip=clip)
    elif train.optimizer == "adamw":
        decayed = {p.name for n, p in model.named_parameters()
                   if not any(k in n for k in ("bias", "norm"))}
        opt = paddle.optimizer.AdamW(learning_rate=lr, parameters=params, grad_clip=clip,
                                     weight_decay=train.weight_decay,
                                     apply_decay_param_fun=lambda name: name in decayed)
    else:
        raise ValueError(f"unknown optimizer {train.optimizer!r}")
    return opt, scheduler


def total_steps(train: TrainArgs, steps_per_epoch: int) -> int:
    return train.max_steps or steps_per_epoch * train.max_epoch


def to_tensors(batch: Batch) -> Batch:
    return {k: paddle.to_tensor(v) for k, v in batch.items()}


def evaluate(model: paddle.nn.Layer, batches: Sequence[Batch], forward: Forward,
             metric_names: Sequence[str]) -> tuple[dict[str, float], list[list[int]]]:
    """(metrics over all batches, confusion matrix [gold][predicted]); `loss` is the mean
    cross-entropy over every example (not the last batch's, as in PaddleNLP's example).
    Data-parallel ranks evaluate every world_size-th batch and pool their predictions."""
    model.eval()
    total, preds, labels, k = 0.0, [], [], 0
    with paddle.no_grad():
        for batch in batches[rank()::world_size()]:
            t = to_tensors(batch)
            logits = forward(model, t)
            total += float(F.cross_entropy(logits, t["labels"], reduction="sum"))
            preds.append(logits.argmax(axis=-1).numpy())
            labels.append(batch["labels"])
            k = logits.shape[-1]
    model.train()
    shares = all_gather((total, preds, labels, k))
    total = sum(t for t, _, _, _ in shares)
    preds = np.concatenate([p for _, ps, _, _ in shares for p in ps])
    labels = np.concatenate([y for _, _, ys, _ in shares for y in ys])
    k = max(n for _, _, _, n in shares)  # the classes: the logits' width
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (labels, preds), 1)
    return ({"loss": total / len(labels), **classification_metrics(preds, labels, metric_names)},
            confusion.tolist())


class Progress:
    """A tqdm bar on a terminal; log lines with examples/s and ETA everywhere."""

    def __init__(self, total: int, start: int):
        self.total, self.start = total, start
        self.bar = None
        if sys.stderr.isatty() and is_main():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=start, unit="step", dynamic_ncols=True)

    def update(self, loss: float, ex_per_s: float) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{loss:.4f}", ex_s=f"{ex_per_s:,.0f}", refresh=False)

    def write(self, msg: str) -> None:
        logger.info(msg)  # on a terminal the log handler prints above the bar, once

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class MetricsLog:
    """Training and dev records, appended to metrics.jsonl (one JSON object per line, for
    any plotting tool) and written as VisualDL scalars under visualdl/ (`visualdl --logdir
    OUTPUT_DIR/visualdl`). Main process only."""

    def __init__(self, out: str):
        self.path = os.path.join(out, METRICS)
        self.writer = None
        if is_main():
            from visualdl import LogWriter

            self.writer = LogWriter(logdir=os.path.join(out, VISUALDL_DIR))

    def add(self, record: dict) -> None:
        if not is_main():
            return
        append_jsonl(self.path, record)
        for k, v in record.items():
            if k not in ("step", "epoch", "split") and isinstance(v, (int, float)):
                self.writer.add_scalar(f"{record['split']}/{k}", v, record["step"])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def local_share(idx: np.ndarray) -> tuple[np.ndarray, float]:
    """This rank's part of a global batch and the weight of its mean loss: DataParallel
    averages gradients over ranks, so weight = len(part) * world / len(idx) makes the average
    the whole batch's gradient even when parts differ in size. A rank left with no example
    runs one with weight 0, since every rank must take part in the gradient exchange."""
    world = world_size()
    if world == 1:
        return idx, 1.0
    part = np.array_split(idx, world)[rank()]
    if len(part) == 0:
        return idx[:1], 0.0
    return part, len(part) * world / len(idx)


@dataclass
class TrainState:
    """Where the loop is, saved in every checkpoint (as a dict) so a resumed run replays the
    uninterrupted one."""

    step: int = 0
    epoch: int = 0
    batch: int = 0  # the next batch of `epoch`
    best_step: int | None = None
    best: dict | None = None  # the best dev record so far
    last: dict | None = None  # the last dev record
    train_seconds: float = 0.0
    examples: int = 0
    stale_evals: int = 0  # evaluations in a row without a better dev score
    stopped_early: bool = False
    # train loss summed since the last log line, checkpointed so that a resumed run logs the
    # same losses as an uninterrupted one
    window_loss: float = 0.0
    window_examples: int = 0
    best_confusion: list[list[int]] | None = None  # dev [gold][predicted] at the best

    def advance(self, b: int, n_batches: int, n: int, seconds: float, loss_sum: float) -> None:
        """Batch b of the epoch's n_batches done: n examples in `seconds`."""
        self.step, self.batch = self.step + 1, b + 1
        self.examples += n
        self.train_seconds += seconds
        self.window_loss += loss_sum
        self.window_examples += n
        if b + 1 == n_batches:
            self.epoch, self.batch = self.epoch + 1, 0


@dataclass
class Loop:
    """What every step of one fit() call shares."""

    model: paddle.nn.Layer
    net: paddle.nn.Layer  # the model, wrapped for data parallelism when there are ranks
    optimizer: paddle.optimizer.Optimizer
    scheduler: object | None
    scaler: paddle.amp.GradScaler | None
    train: TrainArgs
    forward: Forward
    loss_fn: LossFn
    metric_names: Sequence[str]
    n_steps: int
    steps_per_epoch: int
    checkpoint_extra: dict
    save_checkpoints: bool
    log: MetricsLog | None = None
    progress: Progress | None = None

    def save(self, name: str, state: TrainState) -> None:
        if self.save_checkpoints and is_main():
            save_checkpoint(os.path.join(self.train.output_dir, name), self.model,
                            self.optimizer, self.scheduler, self.scaler, dict(vars(state)),
                            self.checkpoint_extra)


def resume_state(loop: Loop) -> TrainState:
    """Model, optimizer, scheduler and scaler as last.ckpt saved them, and the loop's state;
    metrics.jsonl cut back to that checkpoint's step, since what came after is redone."""
    out = loop.train.output_dir
    ckpt = load_checkpoint(os.path.join(out, LAST))
    loop.model.set_state_dict(ckpt["model"])
    loop.optimizer.set_state_dict(ckpt["optimizer"])
    if loop.scheduler is not None:
        loop.scheduler.set_state_dict(ckpt["scheduler"])
    if loop.scaler is not None:
        loop.scaler.load_state_dict(ckpt["scaler"])
    state = TrainState(**ckpt["state"])
    metrics_path = os.path.join(out, METRICS)
    if is_main():
        try:
            kept = [r for r in read_jsonl(metrics_path) if r["step"] <= state.step]
        except ValueError as e:
            raise RunError(f"{e}; remove the line (or the file) to resume") from None
        atomic_write_text(metrics_path, "".join(json.dumps(r) + "\n" for r in kept))
    logger.info("resumed %s at step %d (epoch %d, batch %d)", out, state.step, state.epoch,
                state.batch)
    return state


def train_step(loop: Loop, idx: np.ndarray, collate: Callable[[np.ndarray], Batch],
               step: int) -> tuple[float, float]:
    """One optimizer step on the global batch `idx` (this rank's share of it): (this rank's
    loss summed over its examples, for the logged mean; the batch's mean loss)."""
    t = loop.train
    mine, weight = local_share(idx)
    batch = to_tensors(collate(mine))
    # --amp: paddle.amp's O1 auto-cast on GPUs (fp16 also needs loss scaling); it does
    # nothing on CPU, where the teacher's bf16 is compiled in (teachers.compile_teacher)
    with paddle.amp.auto_cast(enable=t.amp != "fp32" and t.device != "cpu",
                              dtype="float16" if t.amp == "fp16" else "bfloat16"):
        loss = loop.loss_fn(loop.forward(loop.net, batch), batch)
    scaled = loss * weight if weight != 1.0 else loss
    if loop.scaler is None:
        scaled.backward()
        loop.optimizer.step()
    else:
        loop.scaler.scale(scaled).backward()
        loop.scaler.step(loop.optimizer)
        loop.scaler.update()
    loop.optimizer.clear_grad()
    if loop.scheduler is not None:
        loop.scheduler.step()
    value = float(loss)
    if not math.isfinite(value):
        raise FloatingPointError(f"loss is {value} at step {step + 1}; lower --lr or set "
                                 f"--max_grad_norm")
    return value * len(mine) * (weight > 0), value


def log_train(loop: Loop, state: TrainState, elapsed: float, sec_per_step: float) -> None:
    """A train record: the mean loss over the examples since the last one, and speed."""
    step = state.step
    record = {"step": step, "epoch": round(step / loop.steps_per_epoch, 4), "split": "train",
              "loss": sum(all_gather(state.window_loss)) / state.window_examples,
              "examples_per_s": state.window_examples / elapsed,
              "lr": float(loop.optimizer.get_lr())}
    loop.log.add(record)
    loop.progress.write(f"step {step}/{loop.n_steps} epoch {record['epoch']:.2f} "
                        f"loss {record['loss']:.4f} | {record['examples_per_s']:,.0f} ex/s"
                        f" | ETA {format_seconds(sec_per_step * (loop.n_steps - step))}")
    state.window_loss, state.window_examples = 0.0, 0


def evaluate_and_track(loop: Loop, state: TrainState, dev_batches: Sequence[Batch]) -> bool:
    """Evaluates on dev, keeps the best record and counts evaluations without a better one
    (--early_stopping_patience); returns whether this one is the best."""
    main_metric = loop.metric_names[0]
    metrics, confusion = evaluate(loop.model, dev_batches, loop.forward, loop.metric_names)
    record = {"step": state.step, "epoch": round(state.step / loop.steps_per_epoch, 4),
              "split": "dev", **metrics}
    loop.log.add(record)
    state.last = record
    improved = state.best is None or metrics[main_metric] > state.best[main_metric]
    if improved:
        state.best, state.best_step, state.stale_evals = record, state.step, 0
        state.best_confusion = confusion
    else:
        state.stale_evals += 1
    patience = loop.train.early_stopping_patience
    if patience and state.stale_evals >= patience and state.step < loop.n_steps:
        state.stopped_early = True
        loop.progress.write(f"early stopping: {patience} evaluation"
                            f"{'s' if patience > 1 else ''} without a better dev "
                            f"{main_metric}")
    loop.progress.write("dev " + " ".join(f"{k} {v:.4f}" for k, v in metrics.items()) +
                        (" (best)" if improved else f" (best {main_metric} "
                         f"{state.best[main_metric]:.4f} at step {state.best_step})"))
    return improved


def run_results(loop: Loop, state: TrainState, results_extra: dict | None) -> dict:
    """results.json's content: the best and last dev records, steps, speed, memory."""
    return {"best_step": state.best_step, "best_epoch": state.best["epoch"],
            "dev": {k: v for k, v in state.best.items() if k not in ("step", "epoch", "split")},
            "last_dev": state.last, "dev_confusion": state.best_confusion,
            "steps": state.step, "planned_steps": loop.n_steps,
            "stopped_early": state.stopped_early,
            "train_seconds": round(state.train_seconds, 2),
            "train_examples_per_s": round(state.examples / max(1e-9, state.train_seconds), 1),
            "peak_memory_gb": peak_memory_gb(), **(results_extra or {})}


def fit(model: paddle.nn.Layer, optimizer: paddle.optimizer.Optimizer, train: TrainArgs, *,
        epoch_batches: Callable[[int], list[np.ndarray]], collate: Callable[[np.ndarray], Batch],
        dev_batches: Sequence[Batch], forward: Forward, loss_fn: LossFn,
        metric_names: Sequence[str], resume: bool, scheduler=None,
        checkpoint_extra: dict | None = None, results_extra: dict | None = None,
        finish: Callable[[dict], None] | None = None, save_checkpoints: bool = True) -> dict:
    """Trains `model`, evaluating on dev every epoch (or --eval_steps); keeps best.ckpt (by
    the first metric) and last.ckpt; appends to metrics.jsonl; writes results.json.

    `epoch_batches(e)` gives the example indices of each batch of epoch e (deterministic in
    e); `collate(indices)` turns them into a named batch of arrays. With
    --early_stopping_patience N, training stops after N evaluations in a row without a
    better dev score (results.json says where). `finish(results)` runs
    on the main process before results.json is written (it may save the final model or add
    to the results), so that results.json, the mark of a finished run, is the last file.
    `save_checkpoints=False` writes no checkpoint (benchmarks of scripts that save none).
    """
    out = train.output_dir
    steps_per_epoch = len(epoch_batches(0))
    loop = Loop(model, paddle.DataParallel(model) if world_size() > 1 else model, optimizer,
                scheduler, paddle.amp.GradScaler() if train.amp == "fp16" else None, train,
                forward, loss_fn, metric_names, total_steps(train, steps_per_epoch),
                steps_per_epoch, checkpoint_extra or {}, save_checkpoints)
    if resume:
        state = resume_state(loop)
    else:
        state = TrainState()
        if os.path.exists(os.path.join(out, METRICS)) and is_main():
            os.remove(os.path.join(out, METRICS))
    logger.info("training: %d steps (%d per epoch, batch %d), evaluating every %s",
                loop.n_steps, steps_per_epoch, train.batch_size,
                f"{train.eval_steps} steps" if train.eval_steps else "epoch")
    loop.progress, loop.log = Progress(loop.n_steps, state.step), MetricsLog(out)
    model.train()
    window_start = time.perf_counter()
    sec_per_step = None
    while state.step < loop.n_steps and not state.stopped_early:
        batches = epoch_batches(state.epoch)
        for b in range(state.batch, len(batches)):
            t0 = time.perf_counter()
            # Dropout masks depend on (seed, step) only, so a resumed run replays them.
            paddle.seed(train.seed * 1_000_003 + state.step)
            loss_sum, loss = train_step(loop, batches[b], collate, state.step)
            dt = time.perf_counter() - t0
            state.advance(b, len(batches), len(batches[b]), dt, loss_sum)
            sec_per_step = dt if sec_per_step is None else 0.95 * sec_per_step + 0.05 * dt
            loop.progress.update(loss, len(batches[b]) / dt)
            step = state.step
            if step % train.logging_steps == 0 or step == loop.n_steps:
                log_train(loop, state, time.perf_counter() - window_start, sec_per_step)
                window_start = time.perf_counter()
            if (train.eval_steps and step % train.eval_steps == 0) or \
                    (not train.eval_steps and state.batch == 0) or step == loop.n_steps:
                if evaluate_and_track(loop, state, dev_batches):
                    loop.save(BEST, state)
                loop.save(LAST, state)
                window_start = time.perf_counter()  # evaluation time is not training speed
            elif train.save_steps and step % train.save_steps == 0:
                loop.save(LAST, state)
            fault_point("step")
            if step >= loop.n_steps or state.stopped_early:
                break
    loop.progress.close()
    loop.log.close()
    results = run_results(loop, state, results_extra)
    if is_main():
        if finish is not None:
            finish(results)
        atomic_write_json(os.path.join(out, RESULTS), results)
    barrier()
    logger.info("best dev %s %.4f at step %d; results in %s", metric_names[0],
                state.best[metric_names[0]], state.best_step, os.path.join(out, RESULTS))
    return results
