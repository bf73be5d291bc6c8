import gzip

import numpy as np
import pytest

from conftest import shared, write_lines
from data import (MASK, PAD, TASKS, UNK, DataError, Example, Vocab, build_vocab, collate, encode,
                  load_split, make_batches, read_split, read_word_list, tokenize, tokenize_en,
                  tokenize_zh)
from vectors import load_embedding_matrix, read_npz, read_word2vec_binary, read_word2vec_text


# ----------------------------------------------------------------- readers


def test_read_each_task_layout(sst2_dir, mrpc_dir, chnsenticorp_dir):
    sst = load_split(TASKS["sst-2"], "train", sst2_dir)
    assert len(sst) == 240 and sst[0].label in (0, 1) and len(sst[0].texts) == 1
    assert not sst[0].texts[0].endswith(" ")  # GLUE's trailing space is stripped
    test = load_split(TASKS["sst-2"], "test", sst2_dir)
    assert len(test) == 10 and test[0].label is None
    mrpc = load_split(TASKS["mrpc"], "dev", mrpc_dir)  # file starts with a BOM
    assert len(mrpc) == 60 and len(mrpc[0].texts) == 2
    zh_train = load_split(TASKS["chnsenticorp"], "train", chnsenticorp_dir)
    zh_dev = load_split(TASKS["chnsenticorp"], "dev", chnsenticorp_dir)
    assert len(zh_train) == 240 and len(zh_dev) == 60 and zh_dev[0].label in (0, 1)


def test_read_qqp_layout(tmp_path):
    header = "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate"
    p = write_lines(tmp_path / "dev.tsv", [header, "7\t1\t2\tHow do I cook?\tHow to cook?\t1",
                                            "8\t3\t4\tWhat is AI?\tWho won?\t0"])
    ex, _ = read_split(str(p), TASKS["qqp"].files["dev"][1], ("0", "1"))
    assert ex[0] == Example(("How do I cook?", "How to cook?"), 1) and ex[1].label == 0


SST_LAYOUT = TASKS["sst-2"].files["train"][1]


@pytest.mark.parametrize("lines, message", [
    (["text\tlabel", "good film\t1"], r"train\.tsv:1: header is \['text', 'label'\], expected \['sentence', 'label'\]"),
    (["sentence\tlabel", "good film\t1", "bad film"], r"train\.tsv:3: 1 tab-separated columns, expected 2"),
    (["sentence\tlabel", "good film\t1\textra"], r"train\.tsv:2: 3 tab-separated columns, expected 2"),
    (["sentence\tlabel", "good film\tpositive"], r"train\.tsv:2: label 'positive' is not an integer"),
    (["sentence\tlabel", "good film\t1", "bad film\t2"], r"train\.tsv:3: label 2 is out of range \(expected 0..1\)"),
    (["sentence\tlabel", " \t1"], r"train\.tsv:2: empty text in column 1 \('sentence'\)"),
    (["sentence\tlabel"], r"train\.tsv: no examples after the header"),
])
def test_bad_tsv_names_file_and_line(tmp_path, lines, message):
    p = write_lines(tmp_path / "train.tsv", lines)
    with pytest.raises(DataError, match=message):
        read_split(str(p), SST_LAYOUT, ("0", "1"))


def test_missing_file_and_non_utf8(tmp_path):
    with pytest.raises(DataError, match=r"nope\.tsv: file not found"):
        read_split(str(tmp_path / "nope.tsv"), SST_LAYOUT, ("0", "1"))
    p = tmp_path / "latin1.tsv"
    p.write_bytes("sentence\tlabel\ncaf\xe9 au lait\t1\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1\.tsv:2: not UTF-8 text"):
        read_split(str(p), SST_LAYOUT, ("0", "1"))


# --------------------------------------------------------------- tokenizers


def test_english_tokenizer_lowercases_and_splits_punctuation():
    assert tokenize_en("It's a GREAT film, isn't it?") == ["it", "'s", "a", "great", "film", ",",
                                                           "is", "n't", "it", "?"]
    # Already PTB-tokenized SST-2 text keeps its tokens (so they match word vectors).
    assert tokenize_en("it 's a well-made , funny film -- do n't miss it ...") == [
        "it", "'s", "a", "well-made", ",", "funny", "film", "--", "do", "n't", "miss", "it", "..."]
    assert tokenize_en("$2.5 billion in the U.S.") == ["$", "2.5", "billion", "in", "the", "u.s."]


def test_chinese_tokenizer_uses_jieba_words():
    words = tokenize_zh("这个酒店的服务很好 Hotel")
    assert "酒店" in words and "服务" in words and "hotel" in words
    assert "".join(words) == "这个酒店的服务很好hotel"  # nothing lost but whitespace


def test_tokenize_truncates_and_rejects_empty():
    out = tokenize([Example(("a b c d",), 1), Example(("x", "y z"), 0)], "en", max_len=2)
    assert out == [(["a", "b"],), (["x"], ["y", "z"])]
    with pytest.raises(DataError, match=r"train example 2: text \('   ',\) has no words"):
        tokenize([Example(("fine",), 1), Example(("   ",), 0)], "en", where="train")


# ---------------------------------------------------------------- vocabulary


def test_vocab_specials_order_min_freq_and_max_size():
    words = [["b", "a", "b"], ["c", "b", "a"], ["d"]]
    v = build_vocab(words)
    assert v.tokens[:3] == [PAD, UNK, MASK]
    assert v.tokens[3:] == ["b", "a", "c", "d"]  # by frequency, ties alphabetical
    assert build_vocab(words, min_freq=2).tokens[3:] == ["b", "a"]
    assert build_vocab(words, max_size=5).tokens[3:] == ["b", "a"]
    assert list(v.encode(["a", "zzz"])) == [4, 1]


def test_vocab_restricted_to_word_dict_keeps_only_data_words(tmp_path):
    p = write_lines(tmp_path / "dict.txt", ["a", "c", "never_seen", "x\t123"])
    allowed = read_word_list(str(p))
    v = build_vocab([["a", "b", "c"], ["b"]], allowed=allowed)
    assert v.tokens[3:] == ["a", "c"]  # b is not in the dict; never_seen is not in the data


def test_vocab_save_load_roundtrip(tmp_path):
    v = build_vocab([["hello", "world", "hello"]])
    v.save(str(tmp_path / "vocab.txt"))
    assert Vocab.load(str(tmp_path / "vocab.txt")).tokens == v.tokens


# -------------------------------------------------------------- word vectors


@pytest.fixture
def vocab():
    return build_vocab([["good", "film", "paris", "unknownword"]])


VECS = {"good": [0.1, 0.2, 0.3], "Paris": [1.0, 2.0, 3.0], "film": [-1, 0, 1], "other": [9, 9, 9]}


def test_word2vec_text_with_and_without_header(tmp_path, vocab):
    lines = [f"{w} " + " ".join(map(str, v)) for w, v in VECS.items()]
    for name, content in (("h.txt", ["4 3"] + lines), ("n.txt", lines)):
        found, dim = read_word2vec_text(str(write_lines(tmp_path / name, content)), vocab)
        assert dim == 3
        assert np.allclose(found[vocab.index["good"]], [0.1, 0.2, 0.3])
        assert np.allclose(found[vocab.index["paris"]], [1, 2, 3])  # cased file, lowercase vocab
        assert vocab.index["unknownword"] not in found and len(found) == 3


def test_exact_case_beats_lowercased_match(tmp_path, vocab):
    p = write_lines(tmp_path / "v.txt", ["Good 1 1 1", "good 2 2 2", "GOOD 3 3 3"])
    found, _ = read_word2vec_text(str(p), vocab)
    assert np.allclose(found[vocab.index["good"]], 2)


def _write_binary(path, vecs, header=None, gz=False):
    body = (header or f"{len(vecs)} 3\n").encode()
    for w, v in vecs.items():
        body += w.encode() + b" " + np.asarray(v, dtype="<f4").tobytes() + b"\n"
    if gz:
        with gzip.open(path, "wb") as f:
            f.write(body)
    else:
        with open(path, "wb") as f:
            f.write(body)
    return str(path)


@pytest.mark.parametrize("name, gz", [("GoogleNews-tiny.bin", False), ("GoogleNews-tiny.bin.gz", True)])
def test_word2vec_binary_google_news_format(tmp_path, vocab, name, gz):
    path = _write_binary(tmp_path / name, VECS, gz=gz)
    found, dim = read_word2vec_binary(path, vocab)
    assert dim == 3 and len(found) == 3
    assert np.allclose(found[vocab.index["paris"]], [1, 2, 3])
    # The same file through the public entry point, with coverage and random init elsewhere.
    m = load_embedding_matrix(vocab, np.random.default_rng(0), path=path)
    assert m.shape == (len(vocab), 3)
    assert np.allclose(m[vocab.index["film"]], [-1, 0, 1]) and np.all(m[0] == 0)
    unk = m[vocab.index["unknownword"]]
    assert np.all(unk != 0) and np.abs(unk).max() < 10


def test_gzipped_text_vectors(tmp_path, vocab):
    p = tmp_path / "v.txt.gz"
    with gzip.open(p, "wt") as f:
        f.write("2 3\ngood 1 2 3\nfilm 4 5 6\n")
    m = load_embedding_matrix(vocab, np.random.default_rng(0), path=str(p))
    assert np.allclose(m[vocab.index["film"]], [4, 5, 6])


@pytest.mark.parametrize("content, message", [
    (["good 1 2 3", "film 1 2"], r"v\.txt:2: 2 values, expected 3"),
    (["2 3", "good 1 2 3 4"], r"v\.txt:2: 4 values, expected 3"),
    (["good 1 2 x"], r"v\.txt:1: vector of 'good' has a non-numeric value"),
    (["good"], r"v\.txt:1: expected 'word v1 \.\.\. vN'"),
    ([], r"v\.txt: no vectors in file"),
])
def test_bad_text_vectors(tmp_path, vocab, content, message):
    p = write_lines(tmp_path / "v.txt", content)
    with pytest.raises(DataError, match=message):
        read_word2vec_text(str(p), vocab)


def test_bad_binary_vectors(tmp_path, vocab):
    truncated = _write_binary(tmp_path / "t.bin", VECS, header="5 3\n")
    with pytest.raises(DataError, match=r"t\.bin: file ends inside vector 5 of 5"):
        read_word2vec_binary(truncated, vocab)
    no_header = tmp_path / "n.bin"
    no_header.write_bytes(b"good " + np.zeros(3, "<f4").tobytes())
    with pytest.raises(DataError, match=r"n\.bin: binary word2vec must start with a 'count dim' line"):
        read_word2vec_binary(str(no_header), vocab)


def test_emb_dim_contradicting_vectors_is_an_error(tmp_path, vocab):
    p = write_lines(tmp_path / "v.txt", ["good 1 2 3"])
    with pytest.raises(DataError, match=r"--emb_dim 300 contradicts the 3-dimensional vectors"):
        load_embedding_matrix(vocab, np.random.default_rng(0), path=str(p), dim=300)


def test_embedding_by_name_reads_paddlenlp_cache(tmp_path, monkeypatch, vocab):
    """The online TokenEmbedding path, fed from a pre-filled cache (no download)."""
    import paddlenlp.embeddings.token_embedding as te

    name = "w2v.google_news.target.word-word.dim300.en"
    np.savez(tmp_path / f"{name}.npz", vocab=np.array(["good", "Paris"]),
             embedding=np.ones((2, 300), dtype=np.float32))
    monkeypatch.setattr(te, "EMBEDDING_HOME", str(tmp_path))
    m = load_embedding_matrix(vocab, np.random.default_rng(0), name=name)
    assert m.shape == (len(vocab), 300) and np.all(m[vocab.index["paris"]] == 1)
    with pytest.raises(DataError, match=r"--embedding_name 'w2v.google_news' is not a paddlenlp"):
        load_embedding_matrix(vocab, np.random.default_rng(0), name="w2v.google_news")


@pytest.mark.parametrize("save, order", [(np.savez, "C"), (np.savez_compressed, "C"),
                                         (np.savez, "F")])
def test_npz_read_in_row_blocks(tmp_path, vocab, save, order):
    """paddlenlp's layout, stored or compressed, read in blocks smaller than the file (the
    cased file word fills the lowercased vocabulary word, as in the other readers)."""
    names = list(VECS) + [f"w{i}" for i in range(7)]
    table = np.arange(len(names) * 3, dtype=np.float32).reshape(-1, 3)
    path = tmp_path / "e.npz"
    save(path, vocab=np.array(names), embedding=np.asarray(table, order=order))
    found, dim = read_npz(str(path), vocab, rows=2)
    assert dim == 3 and len(found) == 3
    for w in ("good", "Paris", "film"):
        np.testing.assert_array_equal(found[vocab.index[w.lower()]], table[names.index(w)])
    m = load_embedding_matrix(vocab, np.random.default_rng(0), path=str(path))
    np.testing.assert_array_equal(m[vocab.index["film"]], table[names.index("film")])


def test_bad_npz_vectors(tmp_path, vocab):
    np.savez(tmp_path / "a.npz", vocab=np.array(["good", "film"]), embedding=np.ones((3, 2)))
    with pytest.raises(DataError, match=r"a\.npz: 'embedding' has shape \(3, 2\), expected \(2, dim\)"):
        read_npz(str(tmp_path / "a.npz"), vocab)
    np.savez(tmp_path / "b.npz", words=np.array(["good"]), embedding=np.ones((1, 2)))
    with pytest.raises(DataError, match=r"b\.npz: no 'vocab' array \(paddlenlp's layout"):
        read_npz(str(tmp_path / "b.npz"), vocab)
    np.savez(tmp_path / "o.npz", vocab=np.array(["good"], dtype=object), embedding=np.ones((1, 2)))
    with pytest.raises(DataError, match=r"o\.npz: 'vocab' is pickled Python objects; expected an array of words"):
        read_npz(str(tmp_path / "o.npz"), vocab)
    (tmp_path / "c.npz").write_text("good 1 2 3\n")
    with pytest.raises(DataError, match=r"c\.npz: not an \.npz \(zip\) file"):
        read_npz(str(tmp_path / "c.npz"), vocab)
    import zipfile
    with zipfile.ZipFile(tmp_path / "d.npz", "w") as z:  # the table's bytes cut short
        z.writestr("vocab.npy", _npy(np.array(["good", "film"])))
        z.writestr("embedding.npy", _npy(np.ones((2, 4), dtype=np.float32))[:-8])
    with pytest.raises(DataError, match=r"d\.npz: 'embedding' ends at row 1 of 2"):
        read_npz(str(tmp_path / "d.npz"), vocab, rows=1)


def _npy(arr):
    import io
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


# ------------------------------------------------------------------ batching


def test_make_batches_covers_all_and_buckets_by_length():
    lengths = np.random.default_rng(0).integers(1, 50, size=1000)
    batches = make_batches(lengths, 32, np.random.default_rng(1), bucket=True, pool_batches=10)
    assert sorted(np.concatenate(batches).tolist()) == list(range(1000))
    spread = np.mean([lengths[b].max() - lengths[b].min() for b in batches])
    plain = make_batches(lengths, 32, np.random.default_rng(1), bucket=False)
    spread_plain = np.mean([lengths[b].max() - lengths[b].min() for b in plain])
    assert spread < spread_plain / 5
    again = make_batches(lengths, 32, np.random.default_rng(1), bucket=True, pool_batches=10)
    assert all(np.array_equal(a, b) for a, b in zip(batches, again))  # same seed, same order
    ev = make_batches(lengths, 100, None)
    assert np.all(np.diff(lengths[np.concatenate(ev)]) >= 0)


def test_collate_pairs_share_one_width_and_keep_true_lengths():
    vocab = build_vocab([["a", "b", "c"]])
    enc = encode([(["a"], ["b", "c", "a"]), (["a", "b"], ["c"])], vocab, [1, 0])
    b = collate(enc, np.array([0, 1]), {"teacher_logits": np.array([[1.0, 2.0], [3.0, 4.0]])})
    assert b["input_ids"].shape == b["input_ids_b"].shape == (2, 3)
    assert b["lengths"].tolist() == [1, 2] and b["lengths_b"].tolist() == [3, 1]
    assert b["input_ids"][0].tolist() == [vocab.index["a"], 0, 0]
    assert b["labels"].tolist() == [1, 0] and b["teacher_logits"][1].tolist() == [3.0, 4.0]


# -------------------------------------------------------- real data (skips)


def test_real_files_read_with_official_counts():
    assert len(load_split(TASKS["sst-2"], "train", shared("sst2"))) == 67349
    assert len(load_split(TASKS["sst-2"], "dev", shared("sst2"))) == 872
    assert len(load_split(TASKS["mrpc"], "train", shared("mrpc"))) == 3668
    assert len(load_split(TASKS["mrpc"], "dev", shared("mrpc"))) == 408
    assert len(load_split(TASKS["chnsenticorp"], "train", shared("chnsenticorp"))) == 9600
    assert len(load_split(TASKS["chnsenticorp"], "dev", shared("chnsenticorp"))) == 1200


def test_real_glove_covers_sst2():
    path = shared("embeddings", "glove.6B.50d.sst2.txt")
    train = load_split(TASKS["sst-2"], "train", shared("sst2"))
    vocab = build_vocab(w for (w,) in tokenize(train, "en"))
    found, dim = read_word2vec_text(path, vocab)
    assert dim == 50 and len(found) / (len(vocab) - 3) > 0.9  # the data README says 92.9%
