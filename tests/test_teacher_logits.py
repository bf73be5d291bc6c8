"""Teachers outside the project and beyond one: the transfer set exported as text, logits
from a file (checked row by row), several teachers averaged, unlabeled texts joining the
transfer set."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import bert_distill
from data import DataError
from logits import read_teacher_logits
from test_distill import cached_transfer, logits_files, run_distill

# A stand-alone labeller, as a user would write one for their own model: reads the
# exported TSV, runs the teacher (here ours, eagerly with paddlenlp, in file order) and
# writes one JSONL row per transfer example.
LABELLER = r'''
import json, sys
import paddle
from paddlenlp.transformers import AutoModelForSequenceClassification, AutoTokenizer

teacher, inp, out = sys.argv[1:]
model = AutoModelForSequenceClassification.from_pretrained(teacher)
model.eval()
tok = AutoTokenizer.from_pretrained(teacher)
with open(inp, encoding="utf-8") as f, open(out, "w") as g:
    f.readline()  # header
    for line in f:
        i, *texts = line.rstrip("\n").split("\t")
        enc = tok(texts[0], text_pair=texts[1] if len(texts) > 1 else None)
        with paddle.no_grad():
            z = model(paddle.to_tensor([enc["input_ids"]]), paddle.to_tensor([enc["token_type_ids"]]))
        g.write(json.dumps({"id": int(i), "logits": z.numpy()[0].tolist()}) + "\n")
'''


def test_round_trip_through_a_labeller_elsewhere(tiny_teacher, sst2_dir, tmp_path):
    """--export_transfer_set, logits from a separate script, --teacher_logits: the same
    student as labelling inside (same seed, identical dev metrics)."""
    ours = run_distill(tmp_path, tiny_teacher, sst2_dir)
    [cached] = logits_files(tmp_path / "cache")
    exported = tmp_path / "transfer.tsv"
    out = run_distill(tmp_path, tiny_teacher, sst2_dir, "--export_transfer_set", str(exported),
                      out="export")
    lines = exported.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "id\ttext" and len(lines) == out["examples"] + 1 == ours["transfer_examples"] + 1
    assert any("[MASK]" in l for l in lines) and not (tmp_path / "export" / "results.json").exists()
    script = tmp_path / "label.py"
    script.write_text(LABELLER)
    logits_path = tmp_path / "logits.jsonl"
    subprocess.run([sys.executable, str(script), str(tiny_teacher), str(exported), str(logits_path)],
                   check=True, capture_output=True)
    theirs = bert_distill.main(
        ["--task_name", "sst-2", "--data_dir", sst2_dir, "--teacher_logits", str(logits_path),
         "--output_dir", str(tmp_path / "file"), "--cache_dir", str(tmp_path / "cache"),
         "--n_iter", "3", "--p_pos", "0", "--emb_dim", "16", "--hidden_size", "16",
         "--fc_size", "16", "--max_epoch", "2", "--batch_size", "32", "--optimizer", "adam",
         "--device", "cpu", "--num_threads", "1"])
    assert theirs["dev"] == ours["dev"]
    from_file = [p for p in logits_files(tmp_path / "cache") if p != cached]
    assert len(from_file) == 1  # cached beside ours, under its own key
    np.testing.assert_allclose(np.load(from_file[0]), np.load(cached), atol=1e-5)
    meta = json.load(open(from_file[0].parent / "meta.json"))["payload"]
    assert meta["teacher_logits"] == str(logits_path)


def test_several_teachers_are_averaged_each_cached_once(tiny_teacher, sst2_dir, tmp_path,
                                                      monkeypatch):
    import shutil

    import paddle

    import logits

    other = tmp_path / "teacher2"  # the same teacher with another classifier bias
    shutil.copytree(tiny_teacher, other)
    state = paddle.load(str(other / "model_state.pdparams"))
    state["classifier.bias"] = state["classifier.bias"] + paddle.to_tensor([1.0, -1.0])
    paddle.save(state, str(other / "model_state.pdparams"))
    run_distill(tmp_path, tiny_teacher, sst2_dir, "--max_steps", "1", out="one")
    run_distill(tmp_path, other, sst2_dir, "--max_steps", "1", out="two")
    one, two = (np.load(p) for p in sorted(logits_files(tmp_path / "cache"),
                                           key=lambda p: p.stat().st_mtime_ns))
    assert not np.allclose(one, two)

    def no_labelling(*args, **kwargs):
        raise AssertionError("a cached teacher was run again")

    seen = {}

    def spy(cfg, data, vocab, model, train_set, loss, resume, extra, **kwargs):
        seen.update(extra)
        return {"stopped": "before training"}

    monkeypatch.setattr(logits, "teacher_logits", no_labelling)
    monkeypatch.setattr(bert_distill, "train_student", spy)
    run_distill(tmp_path, tiny_teacher, sst2_dir, "--teacher_path", str(tiny_teacher), str(other),
                out="both")
    np.testing.assert_allclose(seen["teacher_logits"], (one + two) / 2, rtol=1e-6)
    assert json.load(open(tmp_path / "both" / "config.json"))["distill"]["teacher_path"] == \
        [str(tiny_teacher), str(other)]


def test_student_runs_teach_as_an_ensemble(tiny_teacher, sst2_dir, tmp_path, monkeypatch):
    """--teacher_path takes small.py runs too (a BiLSTM and a CNN here): each labels the
    transfer set once, as its own eager model does ([MASK] read as [UNK]), and a BERT teacher
    can join them; the student learns from the mean."""
    import paddle

    import small
    from augment import student_view
    from data import UNK, Vocab, collate, make_batches
    from model_io import student_from_checkpoint
    from student import student_forward

    runs = []
    for kind in ("bilstm", "cnn"):
        runs.append(str(tmp_path / kind))
        small.main(["--task_name", "sst-2", "--data_dir", sst2_dir, "--output_dir", runs[-1],
                    "--emb_dim", "16", "--hidden_size", "16", "--fc_size", "16", "--num_filters",
                    "4", "--max_epoch", "1", "--device", "cpu", "--student", kind])
    seen = {}

    def spy(cfg, data, vocab, model, train_set, loss, resume, extra, **kwargs):
        seen.update(extra)
        return {"stopped": "before training"}

    monkeypatch.setattr(bert_distill, "train_student", spy)
    run_distill(tmp_path, tiny_teacher, sst2_dir, "--teacher_path", *runs, out="students")
    ts = cached_transfer(tmp_path / "cache")
    eager = []
    for run in runs:
        model, state = student_from_checkpoint(os.path.join(run, "best.ckpt"))
        data = student_view(ts, Vocab(state["vocab"]), UNK, None)
        out = np.zeros((len(ts), 2), dtype=np.float32)
        with paddle.no_grad():
            for idx in make_batches(data.lengths(), 64, None):
                batch = {k: paddle.to_tensor(v) for k, v in collate(data, idx).items()}
                out[idx] = student_forward(model, batch).numpy()
        eager.append(out)
    np.testing.assert_allclose(seen["teacher_logits"], np.mean(eager, axis=0), atol=1e-5)
    assert len(logits_files(tmp_path / "cache")) == 2
    run_distill(tmp_path, tiny_teacher, sst2_dir, "--teacher_path", str(tiny_teacher), *runs,
                out="mixed")
    assert len(logits_files(tmp_path / "cache")) == 3  # the students' logits were reused


def test_unlabeled_texts_join_the_transfer_set_without_gold_labels(tiny_teacher, sst2_dir,
                                                                   tmp_path, monkeypatch):
    texts = tmp_path / "unlabeled.txt"
    texts.write_text("a quietly moving zebra film\n\nthe zebra plot drags\n", encoding="utf-8")
    seen = {}

    def spy(cfg, data, vocab, model, train_set, loss, resume, extra, **kwargs):
        seen.update(extra=extra, vocab=vocab, n_train=len(data.train))
        return {}

    monkeypatch.setattr(bert_distill, "train_student", spy)
    run_distill(tmp_path, tiny_teacher, sst2_dir, "--transfer_file", str(texts), "--alpha", "0.5",
                "--n_iter", "2")
    ts = cached_transfer(tmp_path / "cache")
    source, n = np.asarray(ts.source), seen["n_train"]
    assert set(source[source >= n]) == {n, n + 1}  # the two texts, and augmented copies
    assert (["a", "quietly", "moving", "zebra", "film"],) in ts.words(np.arange(len(ts)))
    assert (source >= n).sum() > 2
    gold = seen["extra"]["original"]
    assert not gold[source >= n].any() and gold[ts.original & (source < n)].all()
    assert "zebra" in seen["vocab"].index  # the student has a row for the unlabeled words


def test_bad_transfer_file(tiny_teacher, mrpc_dir, tmp_path):
    texts = tmp_path / "pairs.txt"
    texts.write_text("first sentence\tsecond sentence\nonly one sentence\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"pairs\.txt:2: 1 tab-separated field\(s\), expected 2 \(mrpc pairs\)"):
        run_distill(tmp_path, tiny_teacher, mrpc_dir, "--transfer_file", str(texts), task="mrpc")


@pytest.mark.parametrize("name, lines, message", [
    ("l.jsonl", ['{"id": 0, "logits": [1, 2]}', '{"id": 2, "logits": [1, 2]}'],
     r"l\.jsonl: no logits for 1 of 3 transfer examples \(ids 1\)"),
    ("l.jsonl", ['{"id": 0, "logits": [1, 2]}'] * 2, r"l\.jsonl:2: id 0 again \(first on line 1\)"),
    ("l.jsonl", ['{"id": 3, "logits": [1, 2]}'], r"l\.jsonl:1: id 3 is not a transfer example \(ids 0\.\.2\)"),
    ("l.jsonl", ['{"id": 0, "logits": [1, 2, 3]}'], r"l\.jsonl:1: 3 logits, expected 2"),
    ("l.jsonl", ['{"id": 0, "logits": [1, 2'], r'l\.jsonl:1: expected \{"id": <int>, "logits"'),
    ("l.jsonl", ['{"id": 0, "logits": [NaN, 2]}'], r"l\.jsonl:1: logits must be finite numbers"),
    ("l.tsv", ["id\tneg\tpos", "0\t1\tx"], r"l\.tsv:2: expected an integer id and numbers"),
])
def test_bad_logits_files_name_file_and_line(tmp_path, name, lines, message):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=message):
        read_teacher_logits(str(path), 3, 2)


def test_logits_in_tsv_with_header_and_any_order(tmp_path):
    path = tmp_path / "l.tsv"
    path.write_text("id\tneg\tpos\n2\t0.5\t-1\n0\t1\t2\n\n1\t-3\t4e-1\n", encoding="utf-8")
    np.testing.assert_allclose(read_teacher_logits(str(path), 3, 2),
                               [[1, 2], [-3, 0.4], [0.5, -1]], rtol=1e-6)
