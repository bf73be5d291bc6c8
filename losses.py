"""Training losses, picked by name. Each takes the model's logits and the named batch.

`_S` is the student, `_T` the teacher; z are logits, y gold labels, B the batch size.
"""
from __future__ import annotations

from typing import Callable

import paddle
import paddle.nn.functional as F

Batch = dict  # name -> paddle.Tensor
LossFn = Callable[[paddle.Tensor, Batch], paddle.Tensor]


def cross_entropy(logits: paddle.Tensor, batch: Batch) -> paddle.Tensor:
    """Gold labels: mean_b -log softmax(z_b)[y_b]. The baseline's and the teacher's loss."""
    return F.cross_entropy(logits, batch["labels"])


def mse(z_S: paddle.Tensor, z_T: paddle.Tensor, temperature: float) -> paddle.Tensor:
    """Tang et al.: mean over B x labels of (z_S - z_T)^2 (the temperature is unused)."""
    return F.mse_loss(z_S, z_T)


def soft_ce(z_S: paddle.Tensor, z_T: paddle.Tensor, temperature: float) -> paddle.Tensor:
    """Hinton et al.: T^2 * mean_b -sum_k softmax(z_T / T)_k * log softmax(z_S / T)_k."""
    p_T = F.softmax(z_T / temperature, axis=-1)
    return -(p_T * F.log_softmax(z_S / temperature, axis=-1)).sum(axis=-1).mean() * temperature ** 2


KD_LOSSES: dict[str, Callable[[paddle.Tensor, paddle.Tensor, float], paddle.Tensor]] = {
    "mse": mse, "soft_ce": soft_ce}


def distill_loss(kind: str, alpha: float, temperature: float) -> LossFn:
    """alpha * CE(gold labels, original examples only) + (1 - alpha) * KD_LOSSES[kind](z_S, z_T).

    The batch carries the teacher's logits (`teacher_logits`) and, for the gold term, the
    labels of the training example each transfer example came from and whether it is that
    original (`original`): augmented copies have no gold label of their own."""
    kd_fn = KD_LOSSES[kind]

    def loss(logits: paddle.Tensor, batch: Batch) -> paddle.Tensor:
        kd = kd_fn(logits, batch["teacher_logits"], temperature)
        if alpha == 0:
            return kd
        ce = F.cross_entropy(logits, batch["labels"], reduction="none").reshape([-1])
        mask = batch["original"].astype("float32")
        ce = (ce * mask).sum() / paddle.clip(mask.sum(), min=1.0)
        return alpha * ce + (1 - alpha) * kd

    return loss
