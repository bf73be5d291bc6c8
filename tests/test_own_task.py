"""A user's own task end to end: a 3-class CSV (a header, string labels, a quoted field that
spans lines) read by every stage: a tiny teacher trained on it teaches a student that
agrees with it and beats the majority class; the export predicts label names."""
from __future__ import annotations

import csv
import json
import random

import numpy as np
import pytest

from conftest import predicted_labels

WORDS = {"pos": ["great", "lovely", "superb", "best"], "neg": ["awful", "poor", "worst", "boring"],
         "meh": ["fine", "bland", "quite"]}
FILLER = ["the", "movie", "film", "was", "is", "a", "it", "and", "so", "story", "plot", "actors"]


def write_csv(path, n: int, seed: int) -> list[tuple[str, str]]:
    """(text, label) rows under a `text,notes,label` header; notes span two lines."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        label = rng.choice(sorted(WORDS))
        words = rng.choices(FILLER, k=rng.randint(2, 8))
        words.insert(rng.randint(0, len(words)), rng.choice(WORDS[label]))
        rows.append((" ".join(words), label))
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "notes", "label"])
        for text, label in rows:
            w.writerow([text, "seen, twice\nby \"us\"", label])
    return rows


@pytest.fixture(scope="module")
def own_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy3")
    write_csv(root / "train.csv", 300, 0)
    dev = write_csv(root / "dev.csv", 90, 1)
    return ["--train_file", str(root / "train.csv"), "--dev_file", str(root / "dev.csv"),
            "--label_names", "so-so", "negative", "positive"], dev


STUDENT = ["--emb_dim", "16", "--hidden_size", "16", "--fc_size", "16", "--batch_size", "16",
           "--optimizer", "adam", "--lr", "3e-3", "--device", "cpu", "--num_threads", "1"]


def test_a_three_class_teacher_teaches_the_student(own_files, tiny_en, tmp_path):
    import bert_distill
    import small
    import teacher
    from data import DataError
    from export import main as export
    from predict import main as predict

    data, dev = own_files
    labels = np.array([sorted(WORDS).index(label) for _, label in dev])  # meh, neg, pos
    t = teacher.main([*data, "--model_name_or_path", str(tiny_en[1]), "--output_dir",
                      str(tmp_path / "teacher"), "--max_epoch", "20", "--batch_size", "16",
                      "--lr", "5e-3", "--device", "cpu", "--num_threads", "1"])
    assert set(t["dev"]) >= {"acc", "macro_f1"} and t["labels"] == ["so-so", "negative",
                                                                      "positive"]
    export([str(tmp_path / "teacher"), str(tmp_path / "teacher-export")])
    texts = [(text,) for text, _ in dev]
    by_teacher = predicted_labels(tmp_path / "teacher-export", texts)
    assert np.mean(by_teacher == labels) >= 0.9  # the teacher learned the task
    few = ["--max_train_samples", "30"]
    alone = small.main([*data, *STUDENT, *few, "--max_epoch", "10", "--output_dir",
                        str(tmp_path / "alone")])
    distilled = bert_distill.main([*data, *STUDENT, "--max_epoch", "4", "--teacher_path",
                                   str(tmp_path / "teacher"), "--n_iter", "4", "--p_pos", "0",
                                   "--cache_dir", str(tmp_path / "cache"), "--output_dir",
                                   str(tmp_path / "distilled")])
    by_student = predicted_labels(tmp_path / "distilled", texts)
    majority = max(np.mean(labels == c) for c in range(3))
    assert np.mean(by_student == by_teacher) >= 0.85
    assert distilled["dev"]["acc"] >= majority + 0.2, (distilled["dev"], majority)
    assert distilled["dev"]["acc"] > alone["dev"]["acc"], (distilled["dev"], alone["dev"])

    export([str(tmp_path / "distilled"), str(tmp_path / "exp")])
    (tmp_path / "in.txt").write_text("a superb film\nthe worst plot\n")
    predict([str(tmp_path / "exp"), "--input", str(tmp_path / "in.txt"), "--output",
             str(tmp_path / "out.jsonl")])
    rows = [json.loads(line) for line in open(tmp_path / "out.jsonl")]
    assert [r["label"] for r in rows] == ["positive", "negative"]
    assert set(rows[0]["probs"]) == {"so-so", "negative", "positive"}

    # your own test file, read as training files are: each output line keeps the row's id
    (tmp_path / "test.csv").write_text('id,text\nq7,"a superb film,\nsuperb"\nq9,the worst plot\n')
    own = [str(tmp_path / "exp"), "--test_file", str(tmp_path / "test.csv"), "--id_column", "id"]
    predict([*own, "--output", str(tmp_path / "t.jsonl")])
    rows = [json.loads(line) for line in open(tmp_path / "t.jsonl")]
    assert [(r["id"], r["label"]) for r in rows] == [("q7", "positive"), ("q9", "negative")]
    predict([*own, "--format", "tsv", "--output", str(tmp_path / "t.tsv")])
    assert [line.split("\t")[:2] for line in open(tmp_path / "t.tsv")] == [["q7", "positive"],
                                                                         ["q9", "negative"]]
    (tmp_path / "bad.csv").write_text("id,text\nq1,fine\nq2,\n")
    before = (tmp_path / "t.jsonl").read_text()
    with pytest.raises(DataError, match=r"bad\.csv:3: empty text in column 'text'"):
        predict([str(tmp_path / "exp"), "--test_file", str(tmp_path / "bad.csv"), "--output",
                 str(tmp_path / "t.jsonl")])
    assert (tmp_path / "t.jsonl").read_text() == before  # the earlier output kept whole


def test_macro_f1_matches_scikit_learn():
    from sklearn.metrics import f1_score

    from utils import classification_metrics

    rng = np.random.default_rng(0)
    for k in (2, 3, 5):
        y = rng.integers(0, k, 200)
        p = np.where(rng.random(200) < 0.6, y, rng.integers(0, k, 200))
        p[p == k - 1] = 0  # a class never predicted still counts in the average
        m = classification_metrics(p, y, ("acc", "macro_f1", "f1"))
        assert m["macro_f1"] == pytest.approx(f1_score(y, p, average="macro"))
        assert m["f1"] == pytest.approx(f1_score(y == 1, p == 1))


def test_pipeline_runs_on_own_files_alone(own_files, tiny_en, tmp_path):
    """pipeline.py from the user's files alone (no --task_name): every stage runs, the
    report names the task, and no GLUE submission is attempted."""
    import pipeline
    from conftest import tiny_vectors

    data, _ = own_files
    state = pipeline.main([*data, "--preset", "quick", "--backbone", str(tiny_en[1]),
                           "--output_dir", str(tmp_path / "p"), "--embedding_path",
                           tiny_vectors(tmp_path / "v.txt"), "--device", "cpu",
                           "--teacher_args", "--max_steps 4 --batch_size 16",
                           "--student_args", "--hidden_size 8 --fc_size 8 --max_epoch 1",
                           "--distill_args", "--n_iter 2 --p_pos 0",
                           "--bench_args", "--n 16 --min_seconds 0.01"])
    assert state["task"].startswith("toy3")  # named after the files' folder
    assert {"teacher", "baseline", "distill", "export", "bench", "report"} <= set(state["stages"])
    assert not [s for s in state["stages"] if s.startswith("submission")]
    report = (tmp_path / "p" / "report.md").read_text()
    assert "macro_f1" in report and "per class" in report
    assert "| gold \\ predicted | so-so | negative | positive |" in report
    results = json.loads((tmp_path / "p" / "bert_distill" / "results.json").read_text())
    assert np.sum(results["dev_confusion"]) == 90 and len(results["dev_confusion"]) == 3


def test_pipeline_with_an_ensemble_of_student_runs_as_teacher(own_files, tmp_path):
    """--teacher_path with several student runs (no BERT for the language, as for Chinese):
    no teacher stage; the distilled run records the ensemble's dev scores (the mean of the
    members' logits, recomputed here through model_io); the bench measures the student
    alone; the report gives the ensemble's line and the share of the gap closed."""
    import pipeline
    import small
    from conftest import model_logits, tiny_vectors

    data, dev = own_files
    members = [str(tmp_path / f"member-{s}") for s in (1, 2)]
    for s, out in zip((1, 2), members):
        small.main([*data, *STUDENT, "--max_epoch", "3", "--seed", str(s), "--output_dir", out])
    state = pipeline.main([*data, "--preset", "quick", "--teacher_path", *members,
                           "--output_dir", str(tmp_path / "p"), "--embedding_path",
                           tiny_vectors(tmp_path / "v.txt"), "--device", "cpu",
                           "--student_args", "--hidden_size 8 --fc_size 8 --max_epoch 1",
                           "--distill_args", "--n_iter 2 --p_pos 0",
                           "--bench_args", "--n 16 --min_seconds 0.01"])
    assert not {"backbone", "teacher"} & set(state["stages"])
    results = json.loads((tmp_path / "p" / "bert_distill" / "results.json").read_text())
    assert results["teacher_path"] == members
    labels = np.array([sorted(WORDS).index(label) for _, label in dev])
    mean = np.mean([model_logits(m, [(t,) for t, _ in dev]) for m in members], axis=0)
    acc = float(np.mean(mean.argmax(-1) == labels))
    assert results["teacher_dev"]["acc"] == pytest.approx(acc)
    rows = json.loads((tmp_path / "p" / "inference.json").read_text())["rows"]
    assert {r["model"] for r in rows} == {"BiLSTM student"}
    report = (tmp_path / "p" / "report.md").read_text()
    assert (f"Teacher: 2 models (--teacher_path, mean logits), on the dev texts as it labels "
            f"the transfer set: acc {acc:.4f}") in report
    assert "of the gap to the teacher" in report
