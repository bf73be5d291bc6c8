"""Training losses, picked by name. Each takes the model's logits and the named batch.

`_S` is the student, `_T` the teacher; z are logits, y gold labels, B the batch size.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import paddle
import paddle.nn.functional as F

Batch = dict  # name -> paddle.Tensor
LossFn = Callable[[paddle.Tensor, Batch], paddle.Tensor]


def cross_entropy(logits: paddle.Tensor, batch: Batch) -> paddle.Tensor:
    """Gold labels: mean_b -log softmax(z_b)[y_b]. The baseline's and the teacher's loss."""
    return F.cross_entropy(logits, batch["labels"])


def mse(z_S: paddle.Tensor, z_T: paddle.Tensor, temperature: float) -> paddle.Tensor:
    """Tang et al.: per example b, the mean over labels of (z_S - z_T)^2 (the temperature
    is unused); averaged over the batch, the paper's loss."""
    return ((z_S - z_T) ** 2).mean(axis=-1)


def soft_ce(z_S: paddle.Tensor, z_T: paddle.Tensor, temperature: float) -> paddle.Tensor:
    """Hinton et al.: per example b, T^2 * -sum_k softmax(z_T / T)_k * log softmax(z_S / T)_k."""
    p_T = F.softmax(z_T / temperature, axis=-1)
    return -(p_T * F.log_softmax(z_S / temperature, axis=-1)).sum(axis=-1) * temperature ** 2


KD_LOSSES: dict[str, Callable[[paddle.Tensor, paddle.Tensor, float], paddle.Tensor]] = {
    "mse": mse, "soft_ce": soft_ce}


def balance_weights(teacher_logits: np.ndarray, original: np.ndarray) -> np.ndarray:
    """Per transfer example, w = p_orig(c) / p_all(c) for the label c the teacher gives it,
    where p_orig and p_all are the shares of c among the original training examples and in
    the whole transfer set: weighted, the teacher's labels are as frequent as on the
    originals (augmenting a paraphrase pair tends to make it read as a non-paraphrase).
    The weights average 1 over the transfer set."""
    pred = teacher_logits.argmax(axis=1)
    k = teacher_logits.shape[1]
    p_orig = np.bincount(pred[original], minlength=k) / max(int(original.sum()), 1)
    p_all = np.bincount(pred, minlength=k) / len(pred)
    return (p_orig[pred] / p_all[pred]).astype(np.float32)


def distill_loss(kind: str, alpha: float, temperature: float) -> LossFn:
    """alpha * CE(gold labels, original examples only) + (1 - alpha) * KD_LOSSES[kind](z_S, z_T).

    The batch carries the teacher's logits (`teacher_logits`), optionally per-example
    weights of the distillation term (`weight`, see balance_weights) and, for the gold
    term, the labels of the training example each transfer example came from and whether
    it is that original (`original`): augmented copies have no gold label of their own."""
    kd_fn = KD_LOSSES[kind]

    def loss(logits: paddle.Tensor, batch: Batch) -> paddle.Tensor:
        kd = kd_fn(logits, batch["teacher_logits"], temperature)
        kd = (kd * batch["weight"]).mean() if "weight" in batch else kd.mean()
        if alpha == 0:
            return kd
        ce = F.cross_entropy(logits, batch["labels"], reduction="none").reshape([-1])
        mask = batch["original"].astype("float32")
        ce = (ce * mask).sum() / paddle.clip(mask.sum(), min=1.0)
        return alpha * ce + (1 - alpha) * kd

    return loss
