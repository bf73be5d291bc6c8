"""Pretrained word vectors for the student's embedding: word2vec text and binary files
(Google-News word2vec, GloVe), gzipped or not, and paddlenlp's TokenEmbedding (.npz) by
name or path.

Files are streamed and only vocabulary words are kept, so a 3M-word file never sits in
memory whole (bench/vectors.py measures it at Google-News size).
"""
from __future__ import annotations

import gzip
import logging
import os
import zipfile
from typing import Iterator

import numpy as np

from data import PAD, SPECIAL_TOKENS, DataError, Vocab, decoded_lines
from utils import fetch_failed

logger = logging.getLogger(__name__)


def _open_maybe_gzip(path: str, mode: str):
    if path.endswith(".gz"):
        return gzip.open(path, mode)
    return open(path, mode)


def _lookup(word: str, vocab: Vocab, found: dict, exact: set[int]) -> int | None:
    """The vocab id whose vector this file word should set, or None.

    An exact match always wins; otherwise a case-insensitive match fills a word not yet
    found (Google-News word2vec is cased, our vocabulary lowercased), so the first cased
    variant in the file -- the most frequent one in word2vec files -- is kept."""
    i = vocab.index.get(word)
    if i is not None:
        exact.add(i)
        return i
    i = vocab.index.get(word.lower())
    return i if i is not None and i not in found else None


def read_word2vec_text(path: str, vocab: Vocab) -> tuple[dict[int, np.ndarray], int]:
    """word2vec text format (`word v1 ... vN`, optional `count dim` first line), streamed;
    only vocabulary words are parsed. Returns ({vocab id: vector}, dim)."""
    found: dict[int, np.ndarray] = {}
    exact: set[int] = set()
    dim = None
    with _open_maybe_gzip(path, "rb") as f:
        for lineno, line in decoded_lines(f, path, "; a binary word2vec file must end in .bin or .bin.gz"):
            parts = line.rstrip(" ").split(" ")
            if lineno == 1 and len(parts) == 2 and all(p.isdigit() for p in parts):
                dim = int(parts[1])  # header: count dim
                continue
            if len(parts) < 2:
                if not line.strip():
                    continue
                raise DataError(f"{path}:{lineno}: expected 'word v1 ... vN', got {line[:80]!r}")
            if dim is None:
                dim = len(parts) - 1
            if len(parts) - 1 != dim:
                raise DataError(f"{path}:{lineno}: {len(parts) - 1} values, expected {dim} "
                                f"(the dimension of the first vector or the header)")
            i = _lookup(parts[0], vocab, found, exact)
            if i is not None:
                try:
                    found[i] = np.array(parts[1:], dtype=np.float32)
                except ValueError:
                    raise DataError(f"{path}:{lineno}: vector of {parts[0]!r} has a "
                                    f"non-numeric value") from None
    if dim is None:
        raise DataError(f"{path}: no vectors in file")
    return found, dim


def read_word2vec_binary(path: str, vocab: Vocab) -> tuple[dict[int, np.ndarray], int]:
    """word2vec binary format (GoogleNews-vectors-negative300.bin[.gz]): a `count dim` line,
    then per word: the word, a space, dim float32 values. Streamed in large chunks."""
    found: dict[int, np.ndarray] = {}
    exact: set[int] = set()
    with _open_maybe_gzip(path, "rb") as f:
        header = f.readline().split()
        if len(header) != 2 or not all(h.isdigit() for h in header):
            raise DataError(f"{path}: binary word2vec must start with a 'count dim' line, "
                            f"got {b' '.join(header)[:80]!r}")
        count, dim = int(header[0]), int(header[1])
        nbytes = 4 * dim
        buf, pos = b"", 0
        for n in range(count):
            while True:  # make sure the buffer holds the word, a space and its vector
                sp = buf.find(b" ", pos)
                if sp != -1 and len(buf) >= sp + 1 + nbytes:
                    break
                more = f.read(1 << 22)
                if not more:
                    raise DataError(f"{path}: file ends inside vector {n + 1} of {count} "
                                    f"(truncated or corrupt)")
                buf, pos = buf[pos:] + more, 0
            word = buf[pos:sp].lstrip(b"\n").decode("utf-8", errors="replace")
            if not word or len(word) > 1000:
                raise DataError(f"{path}: vector {n + 1} of {count} has no readable word "
                                f"(corrupt file or wrong dim {dim} in the header)")
            i = _lookup(word, vocab, found, exact)
            if i is not None:
                found[i] = np.frombuffer(buf, dtype="<f4", count=dim, offset=sp + 1).copy()
            pos = sp + 1 + nbytes
    return found, dim


def _npy_blocks(zf: zipfile.ZipFile, name: str, path: str, rows: int
                ) -> tuple[tuple[int, ...], Iterator[np.ndarray]]:
    """The shape of the .npz member `name` and its rows in blocks of `rows`, decompressed
    as they are read: np.load(...)[name] would hold the whole array (3.6 GB for
    Google-News word2vec). A Fortran-ordered array cannot be cut into rows and is read
    whole."""
    try:
        f = zf.open(name + ".npy")
    except KeyError:
        raise DataError(f"{path}: no {name!r} array (paddlenlp's layout: 'vocab', the words, "
                        f"and 'embedding', one row per word)") from None
    version = np.lib.format.read_magic(f)
    read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                   else np.lib.format.read_array_header_2_0)
    shape, fortran, dtype = read_header(f)
    if dtype.hasobject or not shape:
        raise DataError(f"{path}: {name!r} is {'pickled Python objects' if shape else 'a scalar'}"
                        f"; expected an array of {'words' if name == 'vocab' else 'vectors'} "
                        f"(e.g. saved with np.savez(..., vocab=np.array(words, dtype=str)))")
    if fortran:
        whole = np.lib.format.read_array(zf.open(name + ".npy"))
        return whole.shape, iter([whole[i:i + rows] for i in range(0, len(whole), rows)])
    row_bytes = dtype.itemsize * int(np.prod(shape[1:], dtype=np.int64))

    def blocks() -> Iterator[np.ndarray]:
        with f:
            for start in range(0, shape[0], rows):
                n = min(rows, shape[0] - start)
                buf = f.read(n * row_bytes)
                if len(buf) != n * row_bytes:
                    raise DataError(f"{path}: {name!r} ends at row {start + len(buf) // row_bytes}"
                                    f" of {shape[0]} (truncated or corrupt)")
                yield np.frombuffer(buf, dtype).reshape((n, *shape[1:]))
    return shape, blocks()


def read_npz(path: str, vocab: Vocab, rows: int = 8192) -> tuple[dict[int, np.ndarray], int]:
    """paddlenlp's TokenEmbedding file (`vocab`: words, `embedding`: [words, dim]), read in
    blocks of rows so only vocabulary words' vectors are kept."""
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise DataError(f"{path}: not an .npz (zip) file") from None
    with zf:
        (n_words,), words = _npy_blocks(zf, "vocab", path, rows)
        shape, table = _npy_blocks(zf, "embedding", path, rows)
        if len(shape) != 2 or shape[0] != n_words:
            raise DataError(f"{path}: 'embedding' has shape {shape}, expected ({n_words}, dim) "
                            f"for {n_words} words in 'vocab'")
        found: dict[int, np.ndarray] = {}
        exact: set[int] = set()
        for word_block, vec_block in zip(words, table):
            for word, vec in zip(word_block, vec_block):
                i = _lookup(str(word), vocab, found, exact)
                if i is not None:
                    found[i] = vec.astype(np.float32)
    return found, shape[1]


def read_token_embedding(name: str, vocab: Vocab) -> tuple[dict[int, np.ndarray], int]:
    """Vectors of a paddlenlp TokenEmbedding by name (downloaded once to paddlenlp's
    EMBEDDING_HOME), streamed from its .npz: building TokenEmbedding itself would allocate
    the full table (3M x 300 floats for Google-News word2vec)."""
    from paddle.utils.download import get_path_from_url
    from paddlenlp.embeddings.constant import EMBEDDING_NAME_LIST, EMBEDDING_URL_ROOT
    from paddlenlp.embeddings.token_embedding import EMBEDDING_HOME

    if name not in EMBEDDING_NAME_LIST:
        import difflib

        close = difflib.get_close_matches(name, EMBEDDING_NAME_LIST, n=3, cutoff=0.5)
        raise DataError(f"--embedding_name {name!r} is not a paddlenlp TokenEmbedding; "
                        f"close names: {close or 'none'} (see paddlenlp.embeddings.list_embedding_name())")
    path = os.path.join(EMBEDDING_HOME, name + ".npz")
    if not os.path.exists(path):
        # paddle's downloader raises RuntimeError (naming the URL) once its retries fail;
        # socket errors are OSErrors
        try:
            get_path_from_url(f"{EMBEDDING_URL_ROOT}/{name}.tar.gz", EMBEDDING_HOME)
        except (RuntimeError, OSError) as e:
            raise fetch_failed(f"the word vectors --embedding_name {name}", e,
                               "without internet, give a local copy: --embedding_path FILE "
                               "instead (word2vec text or binary, GloVe, or this "
                               f"TokenEmbedding's .npz, which paddlenlp keeps as {path})") from e
    return read_npz(path, vocab)


def read_vectors(vocab: Vocab, path: str | None = None, name: str | None = None
                 ) -> tuple[dict[int, np.ndarray], int]:
    """({vocab id: vector}, dim) of the vocabulary words in the file `path` (its format
    told by its name) or the TokenEmbedding `name`."""
    if name is not None:
        return read_token_embedding(name, vocab)
    if not os.path.isfile(path):
        raise DataError(f"--embedding_path {path}: file not found")
    reader = (read_npz if path.endswith(".npz") else
              read_word2vec_binary if path.endswith((".bin", ".bin.gz")) else
              read_word2vec_text)
    return reader(path, vocab)


def load_embedding_matrix(vocab: Vocab, rng: np.random.Generator, path: str | None = None,
                          name: str | None = None, dim: int | None = None) -> np.ndarray:
    """[len(vocab), dim] initial embedding: pretrained vectors where the file (or named
    TokenEmbedding) has the word, small random vectors elsewhere, zeros for [PAD].

    Random vectors have the pretrained vectors' standard deviation so both kinds start on
    the same scale. Logs coverage by word types and by training tokens.
    """
    source = path or name
    found, file_dim = read_vectors(vocab, path, name) if source else ({}, dim)
    if dim is not None and dim != file_dim:
        raise DataError(f"--emb_dim {dim} contradicts the {file_dim}-dimensional vectors of "
                        f"{source}; drop --emb_dim (it is read from the vectors)")
    if found:
        scale = float(np.std(np.stack(list(found.values()))))
    else:
        scale = 0.1
    matrix = rng.normal(0.0, scale, size=(len(vocab), file_dim)).astype(np.float32)
    for i, v in found.items():
        matrix[i] = v
    matrix[vocab.index[PAD]] = 0.0
    if source is not None:
        words = [i for i in range(len(SPECIAL_TOKENS), len(vocab))]
        n_tok = sum(vocab.counts.get(vocab.tokens[i], 0) for i in words)
        n_tok_found = sum(vocab.counts.get(vocab.tokens[i], 0) for i in words if i in found)
        logger.info("word vectors %s: %d-d, cover %d/%d vocabulary words (%.1f%%) and %.1f%% "
                    "of training tokens", source, file_dim, len(found), len(words),
                    100.0 * len(found) / max(1, len(words)), 100.0 * n_tok_found / max(1, n_tok))
    return matrix
