"""Loading word vectors of Google-News size for the SST-2 vocabulary: time and memory.

Writes a synthetic file the size of Google-News word2vec (3,000,000 words x 300 float32)
in every format the readers take -- word2vec binary, gzipped binary, word2vec text and
paddlenlp's TokenEmbedding .npz -- into a temporary folder, then loads each in a fresh
process as small.py does (vocabulary of the training words, then vectors.read_vectors), printing
load time, vocabulary words found and the process's peak resident memory above what it
held before loading. The file holds every vocabulary word once (half of them capitalized,
as Google-News is cased) among synthetic words.

    python bench/vectors.py --data_dir path/to/SST-2
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from args import DataArgs  # noqa: E402
from data import SPECIAL_TOKENS, load_data, make_vocab  # noqa: E402
from vectors import read_vectors  # noqa: E402

FORMATS = {"bin": "vectors.bin", "bin.gz": "vectors.bin.gz", "txt": "vectors.txt",
           "npz": "vectors.npz"}
BLOCK = 100_000  # words generated and written at a time


def file_words(vocab_words: list[str], n: int, rng: np.random.Generator) -> list[str]:
    """n words: the vocabulary words (every other one capitalized) at random places among
    synthetic ones."""
    words = [f"syn{i}" if i % 2 else f"Syn_{i}" for i in range(n)]
    for k, (w, pos) in enumerate(zip(vocab_words, rng.choice(n, len(vocab_words), replace=False))):
        words[pos] = w.capitalize() if k % 2 else w
    return words


def blocks(words: list[str], dim: int, seed: int):
    """(words, [len, dim] float32 vectors) in blocks of BLOCK, the same for every format."""
    rng = np.random.default_rng(seed)
    for i in range(0, len(words), BLOCK):
        chunk = words[i:i + BLOCK]
        yield chunk, (rng.standard_normal((len(chunk), dim), dtype=np.float32) * 0.1)


def write_binary(path: str, words: list[str], dim: int, opener=open) -> None:
    """word2vec's binary format: `count dim`, then per word the word, a space, dim float32
    and a newline (as word2vec's C tool writes them)."""
    with opener(path, "wb") as f:
        f.write(f"{len(words)} {dim}\n".encode())
        for chunk, vecs in blocks(words, dim, 0):
            f.write(b"".join(w.encode() + b" " + v.tobytes() + b"\n" for w, v in zip(chunk, vecs)))


def write_text(path: str, words: list[str], dim: int) -> None:
    """word2vec's text format with 4 decimals ("+0.1234"), formatted with array operations
    (Python's float formatting would take longer than the benchmark)."""
    with open(path, "wb") as f:
        f.write(f"{len(words)} {dim}\n".encode())
        for chunk, vecs in blocks(words, dim, 0):
            q = np.clip(np.rint(np.abs(vecs) * 1e4), 0, 9999).astype(np.int64)
            chars = np.empty((len(chunk), dim, 8), dtype=np.uint8)
            chars[:, :, 0] = np.where(vecs < 0, ord("-"), ord("+"))
            chars[:, :, 1], chars[:, :, 2] = ord("0"), ord(".")
            for d, p in enumerate((1000, 100, 10, 1)):
                chars[:, :, 3 + d] = ord("0") + (q // p) % 10
            chars[:, :, 7] = ord(" ")
            chars[:, -1, 7] = ord("\n")
            f.write(b"".join(w.encode() + b" " + row.tobytes() for w, row in zip(chunk, chars)))


def write_npz(path: str, words: list[str], dim: int) -> None:
    """paddlenlp's TokenEmbedding layout (`vocab`, `embedding`) as np.savez writes it
    (uncompressed zip), the table streamed in rather than built in memory."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as z:
        with z.open("vocab.npy", "w", force_zip64=True) as f:
            np.save(f, np.array(words))
        with z.open("embedding.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_2_0(
                f, {"descr": "<f4", "fortran_order": False, "shape": (len(words), dim)})
            for _, vecs in blocks(words, dim, 0):
                f.write(vecs.tobytes())


WRITERS = {"bin": write_binary, "bin.gz": lambda p, w, d: write_binary(
    p, w, d, lambda q, m: gzip.open(q, m, compresslevel=1)), "txt": write_text, "npz": write_npz}


def _status(field: str) -> int:
    """A /proc/self/status memory field in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def measure(path: str, data_dir: str) -> dict:
    """In this (fresh) process: the SST-2 vocabulary as small.py builds it, then its vectors
    read from `path` as small.py reads them."""
    d = DataArgs(task_name="sst-2", data_dir=data_dir)
    vocab = make_vocab(d, load_data(d))
    with open("/proc/self/clear_refs", "w") as f:  # restart the peak (VmHWM) from here
        f.write("5")
    before = _status("VmRSS")
    t0 = time.perf_counter()
    found, _ = read_vectors(vocab, path)
    return {"seconds": time.perf_counter() - t0, "peak_above_before": _status("VmHWM") - before,
            "before": before, "vocab_words": len(vocab) - len(SPECIAL_TOKENS), "found": len(found)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dir", required=True, help="SST-2's train.tsv / dev.tsv")
    p.add_argument("--words", type=int, default=3_000_000)
    p.add_argument("--dim", type=int, default=300)
    p.add_argument("--formats", nargs="+", default=list(FORMATS), choices=list(FORMATS))
    p.add_argument("--tmp_dir", default=None, help="where the files are written (default: "
                   "a temporary folder, removed at the end; needs ~15 GB for all formats)")
    p.add_argument("--json", default=None, help="also write the results here")
    p.add_argument("--measure", default=None, help=argparse.SUPPRESS)  # the child process
    a = p.parse_args()
    if a.measure:
        print(json.dumps(measure(a.measure, a.data_dir)))
        return
    d = DataArgs(task_name="sst-2", data_dir=a.data_dir)
    vocab_words = make_vocab(d, load_data(d)).tokens[len(SPECIAL_TOKENS):]
    words = file_words(vocab_words, a.words, np.random.default_rng(0))
    rows = []
    with tempfile.TemporaryDirectory(dir=a.tmp_dir) as tmp:
        for fmt in a.formats:
            path = os.path.join(tmp, FORMATS[fmt])
            t0 = time.perf_counter()
            WRITERS[fmt](path, words, a.dim)
            written = time.perf_counter() - t0
            out = subprocess.run([sys.executable, os.path.abspath(__file__), "--data_dir",
                                  a.data_dir, "--measure", path], capture_output=True, text=True)
            if out.returncode != 0:
                sys.exit(f"loading {path} failed:\n{out.stderr}")
            r = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append({"format": fmt, "file_gb": os.path.getsize(path) / 1e9,
                         "write_s": written, **r})
            os.remove(path)
            print(f"{fmt:7s} {rows[-1]['file_gb']:6.2f} GB  load {r['seconds']:6.1f} s  "
                  f"peak +{r['peak_above_before'] / 1e9:.2f} GB", flush=True)
    print(f"\nsynthetic vectors, {a.words:,} words x {a.dim} (Google-News word2vec: 3,000,000 "
          f"x 300); SST-2 vocabulary of {len(vocab_words):,} words; each load in a fresh "
          f"process as small.py reads vectors\n")
    print(f"{'format':8s} {'file GB':>8s} {'load s':>8s} {'found':>14s} {'peak above before':>18s}")
    for r in rows:
        print(f"{r['format']:8s} {r['file_gb']:8.2f} {r['seconds']:8.1f} "
              f"{r['found']:>6,}/{r['vocab_words']:<7,} {r['peak_above_before'] / 1e9:15.2f} GB")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
