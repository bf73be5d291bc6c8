"""export.py and predict.py: exported predictions equal the eager model's; bad lines are
reported per line (or stop the file with --strict)."""
import io
import json

import numpy as np
import pytest

import small
from data import LineError
from inference import predict
from model_io import export_model

TINY = ["--emb_dim", "16", "--hidden_size", "16", "--fc_size", "16", "--batch_size", "16",
        "--lr", "0.01", "--dropout", "0.1", "--device", "cpu", "--max_epoch", "6"]


def run_predict(model, lines: list[bytes], **kw) -> list[dict]:
    out = io.StringIO()
    predict(str(model), io.BytesIO(b"".join(l + b"\n" for l in lines)), out, "in.txt", **kw)
    return [json.loads(line) for line in out.getvalue().splitlines()]


@pytest.fixture
def student_run(sst2_dir, tmp_path):
    small.main(["--task_name", "sst-2", "--data_dir", sst2_dir, "--output_dir",
                str(tmp_path / "run"), *TINY])
    return tmp_path / "run"


@pytest.fixture(params=["bilstm", "cnn"])
def any_student_run(request, sst2_dir, tmp_path):
    """A small.py run of each student kind."""
    small.main(["--task_name", "sst-2", "--data_dir", sst2_dir, "--output_dir",
                str(tmp_path / "run"), *TINY, "--student", request.param, "--num_filters", "8"])
    return tmp_path / "run"


def student_run_results(run_dir):
    return json.load(open(run_dir / "results.json"))


def test_exported_student_predicts_like_the_eager_checkpoint(any_student_run, sst2_dir, tmp_path):
    """Both student kinds: the export reads the kind from the run, and the static graph and
    ONNX Runtime give the eager checkpoint's predictions and its dev accuracy."""
    student_run = any_student_run
    info = export_model(str(student_run), str(tmp_path / "exp"))
    assert info["kind"] == "student" and info["task"] == "sst-2"
    lines = [l.split(b"\t")[0] for l in open(f"{sst2_dir}/dev.tsv", "rb").read().splitlines()[1:]]
    eager = run_predict(student_run, lines, batch_size=60)
    for backend in ("paddle", "onnxruntime"):
        fast = run_predict(tmp_path / "exp", lines, num_threads=1, batch_size=7, backend=backend)
        assert [r["line"] for r in fast] == list(range(1, len(lines) + 1))
        assert [r["label"] for r in fast] == [r["label"] for r in eager]
        np.testing.assert_allclose([r["probs"] for r in fast], [r["probs"] for r in eager],
                                   atol=1e-5)
    labels = [int(l.split(b"\t")[1]) for l in open(f"{sst2_dir}/dev.tsv", "rb").read().splitlines()[1:]]
    accuracy = np.mean([r["label"] == y for r, y in zip(fast, labels)])
    assert accuracy == pytest.approx(student_run_results(student_run)["dev"]["acc"])


def test_int8_export_predicts_close_to_fp32(any_student_run, sst2_dir, tmp_path):
    """export.py --int8, both student kinds: ONNX Runtime on the int8 graph stays within 0.05
    of the fp32 graph's probabilities and gives the same label for at least 90% of the dev
    texts; an export without it says how to get one."""
    from runs import RunError

    lines = [l.split(b"\t")[0] for l in open(f"{sst2_dir}/dev.tsv", "rb").read().splitlines()[1:]]
    export_model(str(any_student_run), str(tmp_path / "exp"), int8=True)
    fp32, int8 = (run_predict(tmp_path / "exp", lines, num_threads=1, backend=b)
                  for b in ("onnxruntime", "onnxruntime-int8"))
    np.testing.assert_allclose([r["probs"] for r in int8], [r["probs"] for r in fp32], atol=0.05)
    assert np.mean([a["label"] == b["label"] for a, b in zip(int8, fp32)]) >= 0.9
    export_model(str(any_student_run), str(tmp_path / "plain"))
    with pytest.raises(RunError, match=r"no int8 model in this export; export it with export\.py --int8"):
        run_predict(tmp_path / "plain", lines[:1], backend="onnxruntime-int8")


def test_bad_lines_are_reported_in_order_and_strict_stops(student_run, tmp_path):
    lines = [b"a great film", b"", b"\xff\xfe broken", b"the plot was dull", b"   ", b"!!! ???"]
    out = run_predict(student_run, lines)
    assert [r["line"] for r in out] == [1, 2, 3, 4, 5, 6]
    assert out[1]["error"] == "empty line" and "not UTF-8" in out[2]["error"]
    assert "label" in out[0] and "label" in out[3] and "label" in out[5]
    with pytest.raises(LineError, match=r"in.txt line 2: empty line"):
        run_predict(student_run, lines, strict=True)


def test_pair_task_needs_two_fields(mrpc_dir, tmp_path):
    small.main(["--task_name", "mrpc", "--data_dir", mrpc_dir, "--output_dir", str(tmp_path / "m"),
                *TINY])
    export_model(str(tmp_path / "m"), str(tmp_path / "exp"), int8=True)
    lines = [b"A good film.\tA great movie!", b"only one text", b"Dull plot.\tA very dull and boring story, really."]
    eager = run_predict(tmp_path / "m", lines)
    for backend, atol in (("paddle", 1e-5), ("onnxruntime", 1e-5), ("onnxruntime-int8", 0.05)):
        out = run_predict(tmp_path / "exp", lines, num_threads=1, backend=backend)
        assert len(out[0]["probs"]) == 2
        assert "expected 2 non-empty tab-separated" in out[1]["error"]
        np.testing.assert_allclose([out[0]["probs"], out[2]["probs"]],
                                   [eager[0]["probs"], eager[2]["probs"]], atol=atol)


def test_onnxruntime_is_for_students_on_cpu(tiny_teacher, tmp_path):
    from runs import RunError

    export_model(str(tiny_teacher), str(tmp_path / "t"), max_seq_length=32)
    with pytest.raises(RunError, match=r"--backend onnxruntime runs exported students"):
        run_predict(tmp_path / "t", [b"fine"], backend="onnxruntime")
    with pytest.raises(RunError, match=r"--int8 quantizes students; a teacher exports in fp32"):
        export_model(str(tiny_teacher), str(tmp_path / "t8"), int8=True)


def test_exported_teacher_predicts_like_eager(tiny_teacher, tmp_path):
    import paddle

    from teachers import encode_for_teacher, load_teacher, teacher_forward

    export_model(str(tiny_teacher), str(tmp_path / "t"), max_seq_length=32)
    texts = [b"the movie was great !", b"so bland and dull"]
    out = run_predict(tmp_path / "t", texts, num_threads=1)
    model, tok = load_teacher(str(tiny_teacher), 2)
    enc = encode_for_teacher(tok, [(t.decode(),) for t in texts], 32)
    with paddle.no_grad():
        for r, ids, types in zip(out, enc.input_ids, enc.token_type_ids):
            logits = teacher_forward(model, {"input_ids": paddle.to_tensor(ids[None]),
                                             "token_type_ids": paddle.to_tensor(types[None])}).numpy()[0]
            p = np.exp(logits - logits.max())
            np.testing.assert_allclose(r["probs"], p / p.sum(), atol=1e-5)


def read_submission(path):
    lines = open(path, encoding="utf-8").read().splitlines()
    return lines[0], [line.split("\t") for line in lines[1:]]


def test_glue_submission_files_for_single_sentences_and_pairs(student_run, sst2_dir, mrpc_dir,
                                                             tmp_path):
    """predict.py --format glue writes GLUE's file for the test split: its name (SST-2.tsv,
    MRPC.tsv), `index<TAB>prediction`, one line per test example in order, labels equal to
    the model's predictions of those texts."""
    import predict as predict_cli

    predict_cli.main([str(student_run), "--format", "glue", "--task_name", "sst-2", "--data_dir",
                      sst2_dir, "--output", str(tmp_path / "sub")])
    header, rows = read_submission(tmp_path / "sub" / "SST-2.tsv")
    test = [l.split("\t") for l in open(f"{sst2_dir}/test.tsv").read().splitlines()[1:]]
    assert header == "index\tprediction" and [r[0] for r in rows] == [t[0] for t in test]
    direct = run_predict(student_run, [t[1].encode() for t in test])
    assert [int(r[1]) for r in rows] == [d["label"] for d in direct]

    small.main(["--task_name", "mrpc", "--data_dir", mrpc_dir, "--output_dir", str(tmp_path / "m"),
                *TINY, "--max_epoch", "1"])
    predict_cli.main([str(tmp_path / "m"), "--format", "glue", "--task_name", "mrpc",
                      "--data_dir", mrpc_dir, "--output", str(tmp_path / "sub")])
    header, rows = read_submission(tmp_path / "sub" / "MRPC.tsv")
    assert header == "index\tprediction"
    assert [r[0] for r in rows] == [str(i) for i in range(12)] and {r[1] for r in rows} <= {"0", "1"}
    with pytest.raises(SystemExit):
        predict_cli.main([str(student_run), "--format", "glue", "--output", str(tmp_path / "x")])
    from runs import RunError
    with pytest.raises(RunError, match="a sst-2 model, not mrpc"):
        predict_cli.main([str(student_run), "--format", "glue", "--task_name", "mrpc",
                          "--data_dir", mrpc_dir, "--output", str(tmp_path / "x")])
