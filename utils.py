"""Small shared helpers: seeding, device, atomic file writes, logging, metrics."""
from __future__ import annotations

import json
import logging
import os
import random
import sys
import tempfile
from typing import Any, Sequence

import numpy as np

logger = logging.getLogger(__name__)


def set_seed(seed: int) -> None:
    """One seed for Python, NumPy and Paddle (parameter init and dropout)."""
    import paddle

    random.seed(seed)
    np.random.seed(seed)
    paddle.seed(seed)


def default_device() -> str:
    """'gpu' when Paddle was built with CUDA and sees a GPU, else 'cpu'."""
    import paddle

    if paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0:
        return "gpu"
    return "cpu"


def setup_device(device: str, num_threads: int | None = None) -> None:
    """Selects the device; on CPU uses `num_threads` math threads (default: the cores this
    process may use). Paddle's CPU kernels otherwise run on one thread (1.7x slower here)."""
    import paddle

    paddle.set_device(device)
    if device == "cpu":
        threads = num_threads or len(os.sched_getaffinity(0))
        paddle.base.core.set_num_threads(threads)


def setup_logging(log_file: str | None = None) -> None:
    """INFO to stderr and, when given, appended to `log_file` for background runs."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        os.makedirs(os.path.dirname(os.path.abspath(log_file)), exist_ok=True)
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    logging.basicConfig(level=logging.INFO, handlers=handlers, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")


# --------------------------------------------------------------- atomic writes


def _atomic(path: str, write) -> None:
    """Writes through a temporary file in the same folder, fsyncs, then renames over `path`:
    readers see the old file or the new one, never half of one."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would make outputs private
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def atomic_write_text(path: str, text: str) -> None:
    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)

    _atomic(path, write)


def atomic_write_json(path: str, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def atomic_save(obj: Any, path: str) -> None:
    """paddle.save, atomically."""
    import paddle

    _atomic(path, lambda tmp: paddle.save(obj, tmp))


def atomic_save_npy(path: str, arr) -> None:
    def write(tmp):
        with open(tmp, "wb") as f:
            np.save(f, arr)

    _atomic(path, write)


def read_jsonl(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def append_jsonl(path: str, record: dict) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()


# --------------------------------------------------------------------- metrics


def classification_metrics(preds: Sequence[int], labels: Sequence[int],
                           names: Sequence[str]) -> dict[str, float]:
    """Accuracy, and for 'f1' the binary F1 / precision / recall of class 1 (GLUE's way)."""
    preds, labels = np.asarray(preds), np.asarray(labels)
    out = {"acc": float((preds == labels).mean())}
    if "f1" in names:
        tp = float(((preds == 1) & (labels == 1)).sum())
        precision = tp / max(1.0, float((preds == 1).sum()))
        recall = tp / max(1.0, float((labels == 1).sum()))
        out["precision"], out["recall"] = precision, recall
        out["f1"] = 2 * precision * recall / (precision + recall) if tp else 0.0
    return out


def format_seconds(s: float) -> str:
    s = int(round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h{m:02d}m{sec:02d}s" if h else f"{m}m{sec:02d}s"


def count_parameters(model) -> int:
    return int(sum(int(np.prod(p.shape)) for p in model.parameters()))
