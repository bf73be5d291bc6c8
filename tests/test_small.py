"""End-to-end runs of small.py's real main() on tiny fixtures with tiny models."""
import json
import os
import resource

import numpy as np
import paddle
import pytest

import small
import student
from data import DataError
from runs import RunError
from utils import read_jsonl

TINY = ["--emb_dim", "16", "--hidden_size", "16", "--fc_size", "16", "--batch_size", "16",
        "--optimizer", "adam", "--lr", "0.01", "--dropout", "0.1", "--device", "cpu",
        "--logging_steps", "5"]


def run(data_dir, out, *extra, task="sst-2"):
    return small.main(["--task_name", task, "--data_dir", data_dir, "--output_dir", str(out),
                       *TINY, *extra])


def files(out):
    return {f: open(os.path.join(out, f), "rb").read() for f in sorted(os.listdir(out))
            if os.path.isfile(os.path.join(out, f))}


def test_single_sentence_run_learns_and_writes_its_files(sst2_dir, tmp_path):
    out = tmp_path / "run"
    results = run(sst2_dir, out, "--max_epoch", "6")
    saved = json.load(open(out / "results.json"))
    assert saved == json.loads(json.dumps(results))
    assert saved["dev"]["acc"] >= 0.9  # the fixture's label is one sentiment word: learnable
    assert saved["train_examples"] == 240 and saved["dev_examples"] == 60
    # the peak resident memory of the process, in GB, as the OS counts it
    assert saved["peak_memory_gb"] == pytest.approx(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, rel=0.5)
    assert {"config.json", "vocab.txt", "best.ckpt", "last.ckpt", "metrics.jsonl",
            "train.log"} <= set(os.listdir(out))
    records = read_jsonl(out / "metrics.jsonl")
    dev = [r for r in records if r["split"] == "dev"]
    assert [r["epoch"] for r in dev] == [1, 2, 3, 4, 5, 6]  # once per epoch
    assert max(r["acc"] for r in dev) == saved["dev"]["acc"]
    assert all("examples_per_s" in r for r in records if r["split"] == "train")
    # The same scalars for VisualDL: the dev accuracy curve reads back equal.
    from visualdl import LogReader

    [vdl] = os.listdir(out / "visualdl")
    curve = LogReader(file_path=str(out / "visualdl" / vdl)).get_data("scalar", "dev/acc")
    assert [(c.id, round(c.value, 4)) for c in curve] == [(r["step"], round(r["acc"], 4)) for r in dev]
    config = json.load(open(out / "config.json"))
    assert config["student"]["hidden_size"] == 16 and config["data"]["task_name"] == "sst-2"
    best = paddle.load(str(out / "best.ckpt"))
    assert best["state"]["best_step"] == saved["best_step"] and best["vocab"][:3] == ["[PAD]", "[UNK]", "[MASK]"]
    assert open(out / "vocab.txt").read().split("\n")[:-1] == best["vocab"]


def test_f1_against_a_hand_computed_answer():
    from utils import classification_metrics

    # tp 2 (items 0, 4), fp 1 (item 1), fn 2 (items 3, 5): P 2/3, R 1/2, F1 4/7.
    m = classification_metrics([1, 1, 0, 0, 1, 0], [1, 0, 0, 1, 1, 1], ["acc", "f1"])
    assert m == pytest.approx({"acc": 3 / 6, "precision": 2 / 3, "recall": 1 / 2, "f1": 4 / 7})
    assert classification_metrics([0, 0], [1, 0], ["acc", "f1"])["f1"] == 0.0


def test_pair_run_reports_accuracy_and_f1(mrpc_dir, tmp_path):
    """A pair run's dev acc and F1 equal scikit-learn's on the predictions of its best
    checkpoint, read back from the run directory."""
    from sklearn.metrics import accuracy_score, f1_score

    from data import TASKS, load_split
    from model_io import load_model

    results = run(mrpc_dir, tmp_path / "mrpc", "--max_epoch", "8", task="mrpc")
    assert {"acc", "f1", "precision", "recall", "loss"} <= set(results["dev"])
    assert results["dev"]["acc"] >= 0.85  # same polarity or not: learnable from 300 pairs
    cfg = paddle.load(str(tmp_path / "mrpc" / "best.ckpt"))["model_config"]
    assert cfg["pair"] is True
    dev = load_split(TASKS["mrpc"], "dev", mrpc_dir)
    model = load_model(str(tmp_path / "mrpc"))
    preds = model.run(model.collate([model.encode(e.texts) for e in dev])).argmax(axis=1)
    labels = [e.label for e in dev]
    assert results["dev"]["acc"] == pytest.approx(accuracy_score(labels, preds))
    assert results["dev"]["f1"] == pytest.approx(f1_score(labels, preds))


def test_chinese_run_tokenizes_with_jieba(chnsenticorp_dir, tmp_path):
    results = run(chnsenticorp_dir, tmp_path / "zh", "--max_epoch", "6", task="chnsenticorp")
    vocab = open(tmp_path / "zh" / "vocab.txt", encoding="utf-8").read().split()
    assert "酒店" in vocab and "满意" in vocab  # jieba words, not characters
    assert results["dev"]["acc"] >= 0.9


def test_eval_steps_and_max_steps(sst2_dir, tmp_path):
    results = run(sst2_dir, tmp_path / "r", "--max_steps", "7", "--eval_steps", "3")
    dev = [r["step"] for r in read_jsonl(tmp_path / "r" / "metrics.jsonl") if r["split"] == "dev"]
    assert dev == [3, 6, 7] and results["steps"] == 7


def test_resume_after_interruption_gives_identical_results(sst2_dir, tmp_path, monkeypatch):
    args = ["--max_epoch", "3", "--save_steps", "4", "--dropout", "0.3"]
    full = run(sst2_dir, tmp_path / "full", *args)

    calls = {"n": 0}
    real_collate = student.collate

    def interrupt_at_step_22(*a, **k):
        calls["n"] += 1
        if calls["n"] == 22:
            raise KeyboardInterrupt
        return real_collate(*a, **k)

    monkeypatch.setattr(student, "collate", interrupt_at_step_22)
    with pytest.raises(KeyboardInterrupt):
        run(sst2_dir, tmp_path / "cut", *args)
    monkeypatch.setattr(student, "collate", real_collate)
    assert not (tmp_path / "cut" / "results.json").exists()
    assert paddle.load(str(tmp_path / "cut" / "last.ckpt"))["state"]["step"] == 20
    resumed = run(sst2_dir, tmp_path / "cut", *args)  # the same command resumes

    for key in ("dev", "last_dev", "best_step", "steps"):
        assert resumed[key] == full[key]
    a = paddle.load(str(tmp_path / "full" / "last.ckpt"))["model"]
    b = paddle.load(str(tmp_path / "cut" / "last.ckpt"))["model"]
    for k in a:
        np.testing.assert_array_equal(a[k].numpy(), b[k].numpy())
    strip = lambda recs: [{k: v for k, v in r.items() if k != "examples_per_s"} for r in recs]
    assert strip(read_jsonl(tmp_path / "cut" / "metrics.jsonl")) == \
        strip(read_jsonl(tmp_path / "full" / "metrics.jsonl"))


def test_an_earlier_run_is_never_damaged(sst2_dir, tmp_path):
    out = tmp_path / "run"
    run(sst2_dir, out, "--max_steps", "3")
    before = files(out)
    with pytest.raises(RunError, match=r"already holds a finished run .*pass --overwrite_output_dir"):
        run(sst2_dir, out, "--max_steps", "3")
    with pytest.raises(RunError, match=r"--resume: settings differ .* --hidden_size: 16 -> 32"):
        run(sst2_dir, out, "--max_steps", "3", "--resume", "--hidden_size", "32")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "train.tsv").write_text("sentence\tlabel\ngood\t1\nbad\t7\n")
    (bad / "dev.tsv").write_text("sentence\tlabel\ngood\t1\n")
    with pytest.raises(DataError, match=r"train\.tsv:3: label 7 is out of range"):
        run(str(bad), out, "--max_steps", "3", "--overwrite_output_dir")
    assert files(out) == before | {"train.log": files(out)["train.log"]}  # only the log grew
    run(sst2_dir, out, "--max_steps", "3", "--overwrite_output_dir")  # and overwrite works


@pytest.mark.parametrize("argv, message", [
    (["--task_name", "sst2"], r"--task_name: invalid choice: 'sst2'"),
    (["--optimizer", "sgd"], r"--optimizer: invalid choice: 'sgd'"),
    (["--resume", "--overwrite_output_dir"], r"--resume: contradicts --overwrite_output_dir"),
    (["--embedding_path", "a.txt", "--embedding_name", "b"], r"--embedding_path: give --embedding_path or --embedding_name, not both"),
    (["--embedding_path", "missing.txt"], r"--embedding_path: missing.txt: file not found"),
    (["--data_dir", "/nonexistent"], r"--data_dir: /nonexistent is not a directory"),
    (["--dropout", "1.5"], r"--dropout: must be in \[0, 1\)"),
    (["--batch_size", "0"], r"--batch_size: must be >= 1"),
    (["--max_vocab_size", "2"], r"--max_vocab_size: must be > 3"),
])
def test_bad_flags_exit_with_a_message_naming_the_flag(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        small.main(argv)
    assert e.value.code == 2
    import re
    assert re.search(message, capsys.readouterr().err)


def test_emb_dim_contradicting_vectors(sst2_dir, tmp_path):
    vec = tmp_path / "v.txt"
    vec.write_text("good 1 2 3\nbad 3 2 1\n")
    with pytest.raises(DataError, match=r"--emb_dim 16 contradicts the 3-dimensional vectors"):
        run(sst2_dir, tmp_path / "r", "--embedding_path", str(vec))
    assert not (tmp_path / "r" / "config.json").exists()


def test_early_stopping_ends_after_patience_evaluations_without_improvement(sst2_dir, tmp_path):
    results = run(sst2_dir, tmp_path / "run", "--max_epoch", "30", "--early_stopping_patience",
                  "2", "--lr", "0.05")
    dev = [r for r in read_jsonl(tmp_path / "run" / "metrics.jsonl") if r["split"] == "dev"]
    best = max(range(len(dev)), key=lambda i: (dev[i]["acc"], -i))  # the first best
    assert results["stopped_early"] and results["steps"] < results["planned_steps"]
    assert len(dev) == best + 3  # two evaluations after the best, then the stop
    assert results["best_step"] == dev[best]["step"] and results["last_dev"] == dev[-1]
