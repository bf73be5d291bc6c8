"""Model files: saving and loading training checkpoints (best.ckpt / last.ckpt). A checkpoint
holds what a run needs to resume and a reader needs to rebuild its model: weights,
optimizer, scheduler and loss-scaler state, the loop's state, and what the caller adds
(the student's config and vocabulary, the run's settings)."""
from __future__ import annotations

import os

from runs import RunError
from utils import atomic_save


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
    import paddle

    if not os.path.exists(path):
        raise RunError(f"{path}: checkpoint not found")
    try:
        return paddle.load(path)
    except Exception as e:  # a truncated or foreign file: say which file, not a pickle trace
        raise RunError(f"{path}: not a readable checkpoint ({type(e).__name__}: {e})") from None
