"""Small shared helpers: the one error path of every script, seeding, device, data-parallel
ranks, atomic file writes, content hashes, logging, metrics. Paddle is imported only by the
functions that need it, so scripts that only read files start fast."""
from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
import signal
import sys
import tempfile
from typing import Any, Callable, Sequence, TypeVar

import numpy as np

logger = logging.getLogger(__name__)
T = TypeVar("T")


class UserError(ValueError):
    """Bad input or an unusable file: the message names the file, line or flag and what was
    expected. Every script ends on one with a one-line message, not a traceback."""


def fetch_failed(what: str, cause: BaseException, local_copy: str) -> UserError:
    """The error for something fetched by name (a dataset, word vectors, a model) that could
    not be: `what` it was, the first failure behind `cause` on one line (paddlenlp wraps a
    refused connection in a long generic message), and `local_copy`, the flag (or step) that
    gives a local copy instead, for machines without internet."""
    while cause.__cause__ or cause.__context__:
        cause = cause.__cause__ or cause.__context__
    reason = " ".join(str(cause).split())
    reason = reason if len(reason) <= 200 else reason[:200] + "..."
    return UserError(f"could not fetch {what} ({type(cause).__name__}: {reason}); "
                     f"{local_copy}")


def set_seed(seed: int) -> None:
    """One seed for Python, NumPy and Paddle (parameter init and dropout)."""
    import paddle

    random.seed(seed)
    np.random.seed(seed)
    paddle.seed(seed)


def peak_memory_gb() -> float | None:
    """This process's peak resident memory so far (Linux and macOS; None elsewhere)."""
    try:
        import resource
    except ImportError:
        return None
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(kb / (2**30 if sys.platform == "darwin" else 2**20), 3)


def default_device() -> str:
    """'gpu' when Paddle was built with CUDA and sees a GPU, else 'cpu'."""
    import paddle

    if paddle.device.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0:
        return "gpu"
    return "cpu"


def cpu_threads() -> int:
    """The default number of math threads: OMP_NUM_THREADS when set (the usual way to pin
    them; the tests do), else the cores this process may use."""
    return int(os.environ.get("OMP_NUM_THREADS") or 0) or len(os.sched_getaffinity(0))


def setup_device(device: str, num_threads: int | None = None) -> None:
    """Selects the device and, under `paddle.distributed.launch`, joins the process group.
    On CPU uses `num_threads` math threads (default: cpu_threads(), shared among the
    processes of the job). Paddle's CPU kernels otherwise run on one thread."""
    import paddle

    paddle.set_device(device)
    if world_size() > 1:
        import paddle.distributed as dist

        if not dist.is_initialized():
            dist.init_parallel_env()
    if device == "cpu":
        threads = num_threads or max(1, cpu_threads() // world_size())
        paddle.base.core.set_num_threads(threads)


def run_cli(main: Callable[[], Any]) -> None:
    """Runs a script's main: the one way every script exits with an error. Bad input
    (UserError) and disks that are full or read-only end it with a one-line message."""
    try:
        main()
        if world_size() > 1:  # leave together, so that no process tears down a live group
            import paddle.distributed as dist

            barrier()
            dist.destroy_process_group()
    except UserError as e:
        sys.exit(f"error: {e}")
    except OSError as e:
        where = f"{e.filename}: " if e.filename else ""
        sys.exit(f"error: {where}{e.strerror or e}; files already written are intact "
                 f"(every write goes through a temporary file)")


# ------------------------------------------------------------ data-parallel ranks
# Set by `python -m paddle.distributed.launch`; a plain run is rank 0 of 1.


def world_size() -> int:
    return int(os.environ.get("PADDLE_TRAINERS_NUM", "1"))


def rank() -> int:
    return int(os.environ.get("PADDLE_TRAINER_ID", "0"))


def is_main() -> bool:
    """Only the main process writes run files (checkpoints, metrics, caches' final files)."""
    return rank() == 0


def barrier() -> None:
    if world_size() > 1:
        import paddle.distributed as dist

        dist.barrier()


def main_first(fn: Callable[[], T]) -> T:
    """fn() on the main process, then on the others, which find what it cached."""
    if is_main():
        out = fn()
        barrier()
        return out
    barrier()
    return fn()


def all_gather(obj: Any) -> list:
    """Every rank's `obj`, in rank order (just [obj] in a plain run)."""
    if world_size() == 1:
        return [obj]
    import paddle.distributed as dist

    out: list = []
    dist.all_gather_object(out, obj)
    return out


class _TqdmHandler(logging.StreamHandler):
    """On a terminal, log lines go through tqdm.write so that they print once, above a
    progress bar, instead of tearing it."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        try:
            tqdm.write(self.format(record), file=self.stream)
        except Exception:
            self.handleError(record)


def setup_logging(log_file: str | None = None) -> None:
    """INFO to stderr and, when given, appended to `log_file` for background runs (by the
    main process only: other ranks log warnings to stderr)."""
    handlers: list[logging.Handler] = [
        _TqdmHandler(sys.stderr) if sys.stderr.isatty() else logging.StreamHandler(sys.stderr)]
    if not is_main():
        logging.basicConfig(level=logging.WARNING, handlers=handlers, force=True,
                            format=f"%(asctime)s rank {rank()} %(levelname)s %(name)s: %(message)s")
        return
    if log_file:
        os.makedirs(os.path.dirname(os.path.abspath(log_file)), exist_ok=True)
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    logging.basicConfig(level=logging.INFO, handlers=handlers, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")


# --------------------------------------------------------------- fault points
# Tests kill a run where it saves state, not after a timer: with FAULT_POINT="name@n" in the
# environment the process kills itself (SIGKILL, as `kill -9` would) the n-th time it reaches
# fault_point(name). Names: "transfer set built", "teacher exported", "chunk labelled",
# "before meta" (before a checksummed JSON such as a cache's meta.json), "rename <file>"
# (between an atomic write and its rename), "step" (after a training step and its
# checkpoint), "<folder> written" (a folder replace_folder filled, not yet swapped in).
FAULT_ENV = "FAULT_POINT"
_fault_hits: dict[str, int] = {}


def fault_point(name: str) -> None:
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    target, _, n = spec.rpartition("@")
    if target != name:
        return
    _fault_hits[name] = _fault_hits.get(name, 0) + 1
    if _fault_hits[name] == int(n):
        logger.info("fault point %r reached the %s-th time: killing this process", name, n)
        for h in logging.getLogger().handlers:
            h.flush()
        os.kill(os.getpid(), signal.SIGKILL)


# --------------------------------------------------------------- atomic writes


def atomic_write(path: str, write: Callable[[str], Any]) -> None:
    """`write(tmp)` writes a temporary file in the same folder, which is fsynced and renamed
    over `path`: readers see the old file or the new one, never half of one. Every file the
    project writes whole goes through here."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    os.close(fd)
    os.chmod(tmp, _unmasked(0o666))  # mkstemp's 0600 would make outputs private
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        fault_point("rename " + os.path.basename(path))
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _unmasked(mode: int) -> int:
    """`mode` as the umask lets a new file have it."""
    umask = os.umask(0)
    os.umask(umask)
    return mode & ~umask


def atomic_write_text(path: str, text: str) -> None:
    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)

    atomic_write(path, write)


def atomic_write_json(path: str, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def atomic_save(obj: Any, path: str) -> None:
    """paddle.save, atomically."""
    import paddle

    atomic_write(path, lambda tmp: paddle.save(obj, tmp))


def atomic_save_npy(path: str, arr) -> None:
    def write(tmp):
        with open(tmp, "wb") as f:
            np.save(f, arr)

    atomic_write(path, write)


class NpyAppender:
    """A 1-d .npy file of unknown length written piece by piece, so that an array larger than
    memory never has to be held: the pieces go to a hidden scratch file beside `path`;
    close() writes `path` (header, then the pieces) atomically and removes the scratch file."""

    def __init__(self, path: str, dtype: np.dtype | type) -> None:
        self.path, self.dtype, self.size = path, np.dtype(dtype), 0
        folder = os.path.dirname(os.path.abspath(path))
        os.makedirs(folder, exist_ok=True)
        self.scratch = os.path.join(folder, f".{os.path.basename(path)}.part")
        self.file = open(self.scratch, "wb")

    def append(self, arr: np.ndarray) -> None:
        self.file.write(np.ascontiguousarray(arr, dtype=self.dtype).tobytes())
        self.size += len(arr)

    def close(self) -> None:
        self.file.close()

        def write(tmp: str) -> None:
            with open(tmp, "wb") as out, open(self.scratch, "rb") as part:
                np.lib.format.write_array_header_1_0(out, {
                    "descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False,
                    "shape": (self.size,)})
                shutil.copyfileobj(part, out, 1 << 20)

        atomic_write(self.path, write)
        os.remove(self.scratch)


def write_files_into(out: str, write: Callable[[str], Any], last: str) -> None:
    """`write(tmp)` writes files into a scratch folder inside `out`; each is then moved into
    `out`, `last` (the file whose presence marks the set complete) after the others."""
    os.makedirs(out, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=out, prefix=".save_")
    try:
        write(tmp)
        for f in sorted(os.listdir(tmp), key=lambda f: (f == last, f)):
            os.replace(os.path.join(tmp, f), os.path.join(out, f))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def replace_folder(dst: str, write: Callable[[str], T]) -> T:
    """`write(tmp)` fills a scratch folder beside `dst`, which is then swapped in whole: an
    interrupted write never leaves half a folder under `dst`, and an earlier one stays
    whole until the new one is complete (if the swap itself is cut between its two renames,
    the next call puts the earlier folder back first)."""
    parent, name = os.path.split(os.path.abspath(dst))
    os.makedirs(parent, exist_ok=True)
    for f in sorted(os.listdir(parent)):  # what a killed write left behind
        path = os.path.join(parent, f)
        if f.startswith(f".{name}.") and os.path.isdir(path):
            if f.endswith(".old") and not os.path.exists(dst):
                os.rename(path, dst)
            else:
                shutil.rmtree(path)
    tmp = tempfile.mkdtemp(dir=parent, prefix=f".{name}.")
    os.chmod(tmp, _unmasked(0o777))  # mkdtemp's 0700 would make the folder private
    try:
        logger.info("writing %s (swapped in when complete)", tmp)
        out = write(tmp)
        fault_point(f"{name} written")
        logger.info("swapping %s in", dst)
        if os.path.exists(dst):
            old = tmp + ".old"
            os.rename(dst, old)
            os.rename(tmp, dst)
            shutil.rmtree(old)
        else:
            os.rename(tmp, dst)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


# ---------------------------------------------------------- content-hashed caches


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def content_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, ensure_ascii=False).encode("utf-8")).hexdigest()


def read_verified_json(path: str) -> Any | None:
    """A cache file {"sha256": ..., "payload": ...} whose payload matches its hash, else None
    (a corrupt or foreign file is reported and rebuilt, never used)."""
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            obj = json.load(f)
        if obj["sha256"] == content_hash(obj["payload"]):
            return obj["payload"]
    except (ValueError, KeyError, TypeError):
        pass
    logger.warning("%s: corrupt cache file (content hash mismatch); rebuilding it", path)
    return None


def write_verified_json(path: str, payload: Any) -> None:
    fault_point("before meta")
    atomic_write_json(path, {"sha256": content_hash(payload), "payload": payload})


def read_jsonl(path: str) -> list[dict]:
    """The records of a JSON-lines file. A last line without its newline is what a killed
    writer leaves: it is dropped; any other bad line is an error naming it."""
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        lines = f.readlines()
    if lines and not lines[-1].endswith("\n"):
        lines.pop()
    out = []
    for i, line in enumerate(lines, 1):
        if line.strip():
            try:
                out.append(json.loads(line))
            except ValueError:
                raise ValueError(f"{path}:{i}: not a JSON record: {line[:80]!r}") from None
    return out


def append_jsonl(path: str, record: dict) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()


# --------------------------------------------------------------------- metrics


def per_class_scores(preds: np.ndarray, labels: np.ndarray, c: int) -> tuple[float, float, float]:
    """(precision, recall, F1) of class c; 0 where undefined."""
    tp = float(((preds == c) & (labels == c)).sum())
    precision = tp / max(1.0, float((preds == c).sum()))
    recall = tp / max(1.0, float((labels == c).sum()))
    return precision, recall, (2 * precision * recall / (precision + recall) if tp else 0.0)


def classification_metrics(preds: Sequence[int], labels: Sequence[int],
                           names: Sequence[str]) -> dict[str, float]:
    """Accuracy; for 'macro_f1' the mean F1 over the classes that occur in the labels or the
    predictions (scikit-learn's macro average); for 'f1' the binary F1 / precision / recall
    of class 1 (GLUE's way)."""
    preds, labels = np.asarray(preds), np.asarray(labels)
    out = {"acc": float((preds == labels).mean())}
    if "macro_f1" in names:
        classes = np.union1d(preds, labels)
        out["macro_f1"] = float(np.mean([per_class_scores(preds, labels, c)[2]
                                         for c in classes]))
    if "f1" in names:
        out["precision"], out["recall"], out["f1"] = per_class_scores(preds, labels, 1)
    return out


def format_seconds(s: float) -> str:
    s = int(round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h{m:02d}m{sec:02d}s" if h else f"{m}m{sec:02d}s"


def count_parameters(model) -> int:
    return int(sum(int(np.prod(p.shape)) for p in model.parameters()))
