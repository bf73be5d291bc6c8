"""Bad input, as a table: each case feeds one bad thing (a data, vocabulary, word-vector,
teacher, cache or run file, a flag, a predict input) and checks that the message names the
culprit (file and line, or flag) and what was expected. README.md lists every case."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from conftest import ROOT, write_lines, write_sst2

SMALL = ["--emb_dim", "16", "--hidden_size", "16", "--fc_size", "16", "--batch_size", "32",
         "--max_steps", "2", "--device", "cpu", "--num_threads", "1"]


class Ctx:
    """Per-case scratch space with good inputs to spoil."""

    def __init__(self, tmp_path, student, teacher, backbone):
        self.tmp, self.student, self.teacher, self.backbone = tmp_path, student, teacher, backbone

    def path(self, name: str) -> str:
        return str(self.tmp / name)

    def data(self, train_lines: list[str] | None = None) -> str:
        return write_sst2(self.tmp / "sst2", 40, 10, train_lines)

    def small(self, *extra: str, data_dir: str | None = None, out: str = "run"):
        import small

        return small.main(["--task_name", "sst-2", "--data_dir", data_dir or self.data(),
                           "--output_dir", self.path(out), *SMALL, *extra])

    def distill(self, *extra: str, teacher: str | None = None, out: str = "d"):
        """bert_distill.py on good data; teacher "" means no --teacher_path."""
        import bert_distill

        return bert_distill.main(["--task_name", "sst-2", "--data_dir", self.data(),
                                  *(["--teacher_path", teacher or str(self.teacher)]
                                    if teacher != "" else []),
                                  "--output_dir", self.path(out), "--cache_dir", self.path("cache"),
                                  "--n_iter", "1", "--p_pos", "0", *SMALL, *extra])

    def own(self, train: str, dev: str | None = None, *extra: str, name: str = "train.csv"):
        """small.py on the user's own files: `train` is the training file's content (dev: a
        good 3-class CSV unless given), written as `name`."""
        train_path, dev_path = self.path(name), self.path("dev" + os.path.splitext(name)[1])
        good = 'text,label\n"a good film",pos\n"a bad film",neg\n"a film",meh\n'
        with open(train_path, "w", encoding="utf-8") as f:
            f.write(train)
        with open(dev_path, "w", encoding="utf-8") as f:
            f.write(good if dev is None else dev)
        return self.small_own("--train_file", train_path, "--dev_file", dev_path, *extra)

    def small_own(self, *extra: str):
        import small

        return small.main(["--output_dir", self.path("run"), *SMALL, *extra])

    def with_logits(self, spoil, name: str = "logits.jsonl"):
        """Distils from a logits file for the exported transfer set, spoiled by `spoil`
        (JSONL rows, one per example -> the file's lines)."""
        self.distill("--export_transfer_set", self.path("transfer.tsv"))
        n = len(open(self.path("transfer.tsv"), encoding="utf-8").readlines()) - 1
        rows = [f'{{"id": {i}, "logits": [0.5, -0.5]}}' for i in range(n)]
        path = self.vectors("\n".join(spoil(rows)) + "\n", name)
        return self.distill("--teacher_logits", path, teacher="")

    def vectors(self, text: str | bytes, name: str = "vec.txt") -> str:
        path = self.path(name)
        with open(path, "wb") as f:
            f.write(text.encode("utf-8") if isinstance(text, str) else text)
        return path

    def predict(self, model: str, lines: bytes, *extra: str):
        from predict import main

        path = self.path("in.txt")
        with open(path, "wb") as f:
            f.write(lines)
        return main([model, "--input", path, "--output", self.path("out.jsonl"), "--strict",
                     *extra])

    def predict_file(self, model: str, content: str, *extra: str):
        """predict.py --test_file on a CSV with `content`; its --output must not appear."""
        from predict import main

        path, out = self.path("test.csv"), self.path("preds.jsonl")
        with open(path, "w", encoding="utf-8") as f:
            f.write(content)
        try:
            return main([model, "--test_file", path, "--output", out, *extra])
        finally:
            assert not os.path.exists(out)

    def export(self, name: str = "exp") -> str:
        """A copy of the tiny student's export, to spoil."""
        dst = self.path(name)
        shutil.copytree(self.student["export"], dst)
        return dst

    def teacher_copy(self) -> str:
        dst = self.path("teacher")
        shutil.copytree(self.teacher, dst)
        return dst


def _w2v_bin(ctx: Ctx, header: bytes, vectors: list[tuple[str, np.ndarray]], cut: int = 0) -> str:
    body = header + b"".join(w.encode() + b" " + v.astype(np.float32).tobytes() + b"\n"
                             for w, v in vectors)
    return ctx.vectors(body[:len(body) - cut], "vec.bin")


def _load_teacher(path: str, num_labels: int | None = 2, model_name: str | None = None):
    from teachers import load_teacher

    return load_teacher(path, num_labels, model_name)


def _corrupt_cache(ctx: Ctx, pattern: str, damage) -> None:
    """A finished distillation, then one cache file damaged, then the same run again."""
    ctx.distill()
    [path] = list((ctx.tmp / "cache").glob(pattern))
    damage(str(path))
    ctx.distill("--overwrite_output_dir")


def _labelled_in_chunks(ctx: Ctx) -> None:
    """Labelling killed after its first chunk, the chunk then damaged, the run again."""
    import logits

    real = logits.teacher_logits
    calls = []

    def stop_after_one(*a, **kw):
        if calls:
            raise KeyboardInterrupt
        calls.append(1)
        return real(*a, **kw)

    logits.teacher_logits = stop_after_one
    try:
        with pytest.raises(KeyboardInterrupt):
            ctx.distill("--label_chunk_size", "20")
    finally:
        logits.teacher_logits = real
    [chunk] = list((ctx.tmp / "cache").glob("logits-*/chunk-00000.npy"))
    chunk.write_bytes(b"\x93NUMPY garbage")
    ctx.distill("--label_chunk_size", "20", "--overwrite_output_dir")


def _disk_full(ctx: Ctx) -> None:
    """The disk fills up after the checkpoint of step 1, while step 2's are written."""
    import errno

    import model_io

    real, saved = model_io.atomic_save, []

    def fills_up(obj, path):
        if saved:
            raise OSError(errno.ENOSPC, "No space left on device", path)
        saved.append(path)
        real(obj, path)

    model_io.atomic_save = fills_up
    try:
        ctx.small("--save_steps", "1")
    finally:
        model_io.atomic_save = real


def _torn_metrics(ctx: Ctx) -> None:
    ctx.small()
    with open(ctx.path("run/metrics.jsonl"), "a") as f:
        f.write("{oops\n{\"step\": 1}\n")
    ctx.small("--resume")


def _unwritable(ctx: Ctx) -> None:
    open(ctx.path("taken"), "w").close()
    ctx.small(out="taken/run")


# A good 3-class CSV of the user's own task, and one without a header (label in column 1).
OWN = 'text,label\n"a good film",pos\n"a bad film",neg\n"a film",meh\n'
OWN_BARE = '"a good film",pos\n"a bad film",neg\n"a film",meh\n'

# (id, what is bad, the action, a regex the message must match). Messages name the file
# and line, or the flag, and say what was expected.
CASES = [
    # the user's own files (--train_file ...)
    ("own-column-name", "own files: --text_column names no column of the header",
     lambda c: c.own(OWN, None, "--text_column", "body"), r"train\.csv:1: no column 'body' in the header \(text, label\); --text_column"),
    ("own-column-number", "own files: a column number past a row's fields",
     lambda c: c.own(OWN_BARE, OWN_BARE, "--text_column", "0", "--label_column", "2"), r"train\.csv:1: 2 field\(s\), expected at least 3"),
    ("own-few-fields", "own files: a row with too few fields",
     lambda c: c.own(OWN_BARE + '"no label here"\n', OWN_BARE, "--text_column", "0", "--label_column", "1"), r"train\.csv:4: 1 field\(s\), expected at least 2"),
    ("own-empty-text", "own files: an empty text",
     lambda c: c.own(OWN + '"  ",pos\n'), r"train\.csv:5: empty text in column 'text'"),
    ("own-unclosed-quote", "own files: a CSV quote never closed",
     lambda c: c.own(OWN + '"an open quote,pos\n"more",neg\n'), r"train\.csv:5: not valid CSV .*quoted field never closed"),
    ("own-jsonl-not-object", "own files: a JSONL line that is not an object",
     lambda c: c.own('{"text": "a good film", "label": "pos"}\n["a list"]\n', '{"text": "a film", "label": "pos"}\n', name="train.jsonl"), r"train\.jsonl:2: a JSON list, expected an object"),
    ("own-jsonl-no-key", "own files: a JSONL line without the label key",
     lambda c: c.own('{"text": "a good film", "label": "pos"}\n{"text": "a film", "stars": 3}\n', '{"text": "a film", "label": "pos"}\n', name="train.jsonl"), r"train\.jsonl:2: no key 'label' \(keys: 'text', 'stars'\)"),
    ("own-unseen-label", "own files: a dev label not in the training labels",
     lambda c: c.own(OWN, OWN + '"great",superb\n'), r"dev\.csv:5: label 'superb' is not one of the 3 labels of the training file \(meh, neg, pos\)"),
    ("own-one-class", "own files: only one class in training",
     lambda c: c.own('text,label\n"a good film",pos\n"a great film",pos\n'), r"train\.csv: only one label \('pos'\) in the training file"),
    ("own-labels-miss", "own files: --labels misses a label of the training file",
     lambda c: c.own(OWN, None, "--labels", "pos", "neg"), r"--labels pos neg: misses 'meh', a label of .*train\.csv"),
    ("own-label-names", "own files: --label_names of another length than the labels",
     lambda c: c.own(OWN, None, "--label_names", "good", "bad"), r"--label_names: 2 names for the 3 labels \(meh, neg, pos\)"),
    ("own-extension", "own files: an unknown extension without --file_format",
     lambda c: c.own(OWN, None, name="train.dat"), r"train\.dat: unknown extension; give --file_format"),
    ("own-flag-without-train", "own files: --dev_file without --train_file",
     lambda c: c.small_own("--dev_file", c.path("x.csv")), r"--dev_file: describes your own files: give --train_file too"),
    ("own-flag-both", "own files: --task_name and --train_file together",
     lambda c: c.own(OWN, None, "--task_name", "sst-2"), r"--task_name: give a built-in --task_name or your own --train_file, not both"),
    # data files
    ("data-missing", "data: the split's file is missing",
     lambda c: c.small(data_dir=str(c.tmp)), r"train\.tsv: file not found"),
    ("data-header", "data: wrong header",
     lambda c: c.small(data_dir=_header(c)), r"train\.tsv:1: header is \['text', 'label'\], expected \['sentence', 'label'\]"),
    ("data-columns", "data: a line with too many columns",
     lambda c: c.small(data_dir=c.data(["good film\t1", "a bad film\t0\textra"])), r"train\.tsv:3: 3 tab-separated columns, expected 2"),
    ("data-label-range", "data: label out of range",
     lambda c: c.small(data_dir=c.data(["good film\t1", "a film\t7"])), r"train\.tsv:3: label 7 is out of range \(expected 0\.\.1\)"),
    ("data-label-text", "data: label is not an integer",
     lambda c: c.small(data_dir=c.data(["good film\t1", "a film\tpositive"])), r"train\.tsv:3: label 'positive' is not an integer"),
    ("data-encoding", "data: a line that is not UTF-8",
     lambda c: c.small(data_dir=_latin1(c)), r"train\.tsv:2: not UTF-8 text"),
    ("data-empty", "data: header and no examples",
     lambda c: c.small(data_dir=c.data([])), r"train\.tsv: no examples after the header"),
    ("data-empty-text", "data: an empty text",
     lambda c: c.small(data_dir=c.data(["good film\t1", " \t0"])), r"train\.tsv:3: empty text in column 1 \('sentence'\)"),
    ("data-dir-flag", "data: --data_dir is not a directory",
     lambda c: c.small(data_dir=c.path("nowhere")), r"--data_dir: .*nowhere is not a directory"),
    # vocabulary files
    ("vocab-missing", "vocab: --vocab_path does not exist",
     lambda c: c.small("--vocab_path", c.path("nope.txt")), r"--vocab_path: .*nope\.txt: file not found"),
    ("vocab-empty", "vocab: --vocab_path is empty",
     lambda c: c.small("--vocab_path", c.vectors("\n\n", "words.txt")), r"--vocab_path .*words\.txt: no words in file"),
    ("vocab-encoding", "vocab: --vocab_path is not UTF-8",
     lambda c: c.small("--vocab_path", c.vectors(b"good\n\xe9t\xe9\n", "words.txt")), r"--vocab_path .*words\.txt: not UTF-8"),
    ("vocab-no-overlap", "vocab: no word of --vocab_path occurs in the data",
     lambda c: c.small("--vocab_path", c.vectors("zebra\nquark\n", "words.txt")), r"--vocab_path .*words\.txt: none of its 2 words occurs in the training data"),
    ("vocab-saved", "vocab: an export's vocab.txt is damaged",
     lambda c: c.predict(_spoil(c.export(), "vocab.txt", b"good\nbad\n"), b"a film\n"), r"exp/vocab\.txt: vocabulary must start with"),
    # word vectors
    ("vectors-missing", "vectors: --embedding_path does not exist",
     lambda c: c.small("--embedding_path", c.path("nope.txt")), r"--embedding_path: .*nope\.txt: file not found"),
    ("vectors-dims", "vectors: a text line with the wrong number of values",
     lambda c: c.small("--embedding_path", c.vectors("good 1 2 3\nbad 1 2\n")), r"vec\.txt:2: 2 values, expected 3"),
    ("vectors-number", "vectors: a non-numeric value",
     lambda c: c.small("--embedding_path", c.vectors("good 1 2 x\n")), r"vec\.txt:1: vector of 'good' has a non-numeric value"),
    ("vectors-no-vectors", "vectors: a file with no vectors",
     lambda c: c.small("--embedding_path", c.vectors("\n")), r"vec\.txt: no vectors in file"),
    ("vectors-binary-as-text", "vectors: a binary file not named .bin",
     lambda c: c.small("--embedding_path", c.vectors(b"2 3\ngood \xff\xfe\x00\x01\n")), r"vec\.txt:2: not UTF-8 text .*must end in \.bin"),
    ("vectors-binary-header", "vectors: binary word2vec without its 'count dim' line",
     lambda c: c.small("--embedding_path", _w2v_bin(c, b"", [("good", np.ones(3))])), r"vec\.bin: binary word2vec must start with a 'count dim' line"),
    ("vectors-binary-truncated", "vectors: binary word2vec cut short",
     lambda c: c.small("--embedding_path", _w2v_bin(c, b"2 3\n", [("good", np.ones(3)), ("bad", np.ones(3))], cut=6)), r"vec\.bin: file ends inside vector 2 of 2"),
    ("vectors-dim-flag", "vectors: --emb_dim contradicts the file",
     lambda c: c.small("--embedding_path", c.vectors("good 1 2 3\n")), r"--emb_dim 16 contradicts the 3-dimensional vectors"),
    ("vectors-both", "vectors: --embedding_path and --embedding_name together",
     lambda c: c.small("--embedding_path", c.vectors("good 1 2 3\n"), "--embedding_name", "w2v"), r"--embedding_path: give --embedding_path or --embedding_name, not both"),
    # teachers
    ("teacher-missing", "teacher: --teacher_path does not exist",
     lambda c: c.distill(teacher=c.path("no/teacher")), r"--teacher_path: .*no/teacher: no such directory or file"),
    ("teacher-backbone", "teacher: a backbone, not fine-tuned",
     lambda c: _load_teacher(str(c.backbone)), r"backbone, not a fine-tuned teacher"),
    ("teacher-labels", "teacher: wrong number of labels for the task",
     lambda c: _load_teacher(str(c.teacher), 3), r"has 2 labels but the task has 3"),
    ("teacher-hf-format", "teacher: a Hugging Face directory not yet converted",
     lambda c: _load_teacher(_hf_dir(c)), r"missing model_state\.pdparams.*convert\.py"),
    ("teacher-weights", "teacher: unreadable weights file",
     lambda c: _load_teacher(_spoil(c.teacher_copy(), "model_state.pdparams", b"junk")), r"model_state\.pdparams: not a readable Paddle state file"),
    ("teacher-bare-weights", "teacher: a bare .pdparams without --model_name",
     lambda c: _load_teacher(shutil.copy(os.path.join(str(c.teacher), "model_state.pdparams"),
                                         c.path("bare.pdparams"))), r"needs --model_name"),
    ("logits-missing", "teacher logits file: a transfer example without logits",
     lambda c: c.with_logits(lambda r: r[:-1]), r"logits\.jsonl: no logits for 1 of \d+ transfer examples \(ids \d+\)"),
    ("logits-extra", "teacher logits file: an id that is not a transfer example",
     lambda c: c.with_logits(lambda r: r + ['{"id": 99999, "logits": [0, 0]}']), r"logits\.jsonl:\d+: id 99999 is not a transfer example \(ids 0\.\.\d+\)"),
    ("logits-duplicate", "teacher logits file: an id given twice",
     lambda c: c.with_logits(lambda r: r + r[:1]), r"logits\.jsonl:\d+: id 0 again \(first on line 1\)"),
    ("logits-width", "teacher logits file: a row of the wrong width",
     lambda c: c.with_logits(lambda r: ['{"id": 0, "logits": [1, 2, 3]}'] + r[1:]), r"logits\.jsonl:1: 3 logits, expected 2 \(one per label of the task\)"),
    ("logits-json", "teacher logits file: a line that is not a JSON record",
     lambda c: c.with_logits(lambda r: ['{"id": 0, "logits": [1,'] + r[1:]), r'logits\.jsonl:1: expected \{"id": <int>, "logits": \[<float>, \.\.\.\]\}'),
    ("logits-number", "teacher logits file: a TSV value that is not a number",
     lambda c: c.with_logits(lambda r: ["id\tneg\tpos", "0\t0.5\thigh"], "logits.tsv"), r"logits\.tsv:2: expected an integer id and numbers"),
    ("logits-nan", "teacher logits file: a logit that is not finite",
     lambda c: c.with_logits(lambda r: ['{"id": 0, "logits": [NaN, 0]}'] + r[1:]), r"logits\.jsonl:1: logits must be finite numbers"),
    ("logits-and-teacher", "teacher logits file: given with --teacher_path",
     lambda c: c.distill("--teacher_logits", c.vectors("{}\n", "l.jsonl")), r"--teacher_logits: give --teacher_logits or --teacher_path, not both"),
    ("transfer-file-empty", "transfer file: no texts in --transfer_file",
     lambda c: c.distill("--transfer_file", c.vectors("\n\n", "unlabeled.txt")), r"unlabeled\.txt: no texts"),
    ("convert-no-weights", "convert.py: a Hugging Face directory without weights",
     lambda c: _convert_empty(c), r"missing model\.safetensors or pytorch_model\.bin"),
    # caches and runs
    ("cache-transfer", "cache: a damaged transfer-set file (rebuilt)",
     lambda c: _corrupt_cache(c, "transfer-*/ids-0.npy", lambda p: _truncate(p)), r"transfer-\w+/ids-0\.npy: corrupt cache file .*rebuilding it"),
    ("cache-logits", "cache: logits that do not match their record (relabelled)",
     lambda c: _corrupt_cache(c, "logits-*/logits.npy", lambda p: np.save(p, np.zeros((3, 2), np.float32))), r"logits\.npy: does not match .*meta\.json; labelling again"),
    ("cache-chunk", "cache: a damaged logits chunk of an interrupted labelling (relabelled)",
     _labelled_in_chunks, r"chunk-00000\.npy: corrupt chunk; labelling it again"),
    ("run-checkpoint", "run: --resume from a damaged last.ckpt",
     lambda c: (c.small(), _spoil(c.path("run"), "last.ckpt", b"junk"), c.small("--resume")), r"run/last\.ckpt: not a readable checkpoint"),
    ("run-settings", "run: --resume with different settings",
     lambda c: (c.small("--max_steps", "1"), c.small("--resume", "--hidden_size", "32")), r"--resume: settings differ .*--hidden_size: 16 -> 32"),
    ("run-exists", "run: --output_dir holds a finished run",
     lambda c: (c.small("--max_steps", "1"), c.small()), r"/run already holds a finished run .*pass --overwrite_output_dir"),
    ("run-metrics", "run: --resume with a damaged metrics.jsonl",
     _torn_metrics, r"run/metrics\.jsonl:\d+: not a JSON record"),
    ("run-unwritable", "run: --output_dir cannot be created",
     _unwritable, r"--output_dir .*taken/run: cannot create it"),
    ("run-disk-full", "run: the disk fills up while a checkpoint is written",
     _disk_full, r"run/(best|last)\.ckpt: cannot write the checkpoint \(No space left on device\); the previous one is intact"),
    ("run-baseline", "run: --baseline_dir is not a finished small.py run",
     lambda c: c.distill("--baseline_dir", str(c.tmp)), r"--baseline_dir .*: no results\.json"),
    # flags
    ("flag-probability", "flags: a probability outside [0, 1]",
     lambda c: c.distill("--p_mask", "1.5"), r"--p_mask: must be in \[0, 1\]"),
    ("flag-probabilities", "flags: --p_mask + --p_pos above 1",
     lambda c: c.distill("--p_mask", "0.6", "--p_pos", "0.6"), r"--p_pos: p_mask \+ p_pos must be <= 1"),
    ("flag-temperature", "flags: --temperature without --kd_loss soft_ce",
     lambda c: c.distill("--temperature", "2"), r"--temperature: only --kd_loss soft_ce uses a temperature"),
    ("flag-task", "flags: unknown --task_name",
     lambda c: c.small("--task_name", "imdb"), r"--task_name: invalid choice: 'imdb'"),
    ("flag-batch", "flags: --batch_size 0",
     lambda c: c.small("--batch_size", "0"), r"--batch_size: must be >= 1"),
    ("teacher-student-task", "teacher: --teacher_path a student run of another task",
     lambda c: c.distill(teacher=c.student["pair_run"]), r"--teacher_path .*pair: a student of another task \(mrpc\)"),
    ("flag-amp-cpu", "flags: --amp bf16 for a student on the CPU",
     lambda c: c.small("--amp", "bf16"), r"--amp: bf16 on CPU trains the teacher only \(teacher\.py\)"),
    ("flag-amp-fp16-cpu", "flags: --amp fp16 on the CPU",
     lambda c: __import__("teacher").main(["--amp", "fp16", "--device", "cpu"]), r"--amp: fp16 needs a GPU: Paddle has no fp16 training kernels on CPU"),
    ("flag-label-precision", "flags: --label_precision fp16 on the CPU",
     lambda c: c.distill("--label_precision", "fp16"), r"--label_precision: fp16 labels on a GPU, but --device is cpu"),
    ("flag-teacher-mask", "flags: --teacher_mask unk with --teacher_logits",
     lambda c: c.distill("--teacher_mask", "unk", "--teacher_logits", __file__, teacher=""), r"--teacher_mask: --teacher_logits come from a teacher outside this project"),
    # predict inputs (--strict: otherwise each bad line is reported and the rest predicted)
    ("predict-empty-line", "predict: an empty line",
     lambda c: c.predict(c.student["export"], b"a good film\n\n"), r"in\.txt line 2: empty line"),
    ("predict-encoding", "predict: a line that is not UTF-8",
     lambda c: c.predict(c.student["export"], b"a good film\n\xe9t\xe9\n"), r"in\.txt line 2: not UTF-8"),
    ("predict-pair", "predict: a pair task line without its tab",
     lambda c: c.predict(c.student["pair_run"], b"one sentence only\n"), r"in\.txt line 1: expected 2 non-empty tab-separated text\(s\), got 1"),
    ("predict-file-id", "predict --test_file: --id_column names no column of the header",
     lambda c: c.predict_file(c.student["export"], "text,label\na film,1\n", "--id_column", "qid"), r"test\.csv:1: no column 'qid' in the header \(text, label\); .*--id_column name its columns"),
    ("predict-file-pair", "predict --test_file: one --text_column for a pair model",
     lambda c: c.predict_file(c.student["pair_run"], "text\na film\n"), r"--text_column: 1 column\(s\) given, the model reads 2 text\(s\) per example"),
    ("predict-file-empty", "predict --test_file: an empty text (nothing written)",
     lambda c: c.predict_file(c.student["export"], "text,label\na film,1\n,1\n"), r"test\.csv:3: empty text in column 'text'"),
    ("predict-model", "predict: a folder that is neither an export nor a run",
     lambda c: c.predict(str(c.tmp), b"a film\n"), r"neither an export \(export\.json\), a student run \(config\.json and best\.ckpt\) nor a teacher"),
    ("predict-teacher-dir", "predict: a teacher directory instead of its export",
     lambda c: c.predict(str(c.teacher), b"a film\n"), r"a teacher directory; export it first \(python export\.py"),
    ("predict-export-info", "predict: a damaged export.json",
     lambda c: c.predict(_spoil(c.export(), "export.json", b"{"), b"a film\n"), r"exp/export\.json: not an export\.json written by export\.py"),
    ("predict-incomplete", "predict: an export missing model.onnx",
     lambda c: c.predict(_remove(c.export(), "model.onnx"), b"a film\n", "--backend", "onnxruntime"), r"incomplete export, model\.onnx missing"),
    ("predict-int8", "predict: --backend onnxruntime-int8 on an export made without --int8",
     lambda c: c.predict(c.export(), b"a film\n", "--backend", "onnxruntime-int8"), r"no int8 model in this export; export it with export\.py --int8"),
    ("export-int8-teacher", "export: --int8 on a teacher",
     lambda c: __import__("export").main([str(c.teacher), c.path("t8"), "--int8"]), r"--int8 quantizes students; a teacher exports in fp32"),
    ("predict-input", "predict: --input does not exist",
     lambda c: __import__("predict").main([c.student["export"], "--input", c.path("nope.txt")]), r"--input .*nope\.txt: file not found"),
    ("glue-test-missing", "predict --format glue: no test.tsv in --data_dir",
     lambda c: __import__("predict").main([c.student["export"], "--format", "glue", "--task_name", "sst-2", "--data_dir", c.data(), "--output", c.path("sub")]), r"sst2/test\.tsv: file not found"),
    ("glue-task", "predict --format glue: a model of another task",
     lambda c: __import__("predict").main([c.student["export"], "--format", "glue", "--task_name", "mrpc", "--output", c.path("sub")]), r"a sst-2 model, not mrpc"),
    ("pipeline-seeds", "pipeline: --seeds repeats a seed",
     lambda c: __import__("pipeline").main(["--seeds", "1", "2", "1"]), r"--seeds: \[1, 2, 1\] repeats a seed"),
]


def _header(c: Ctx) -> str:
    d = c.data()
    lines = open(os.path.join(d, "train.tsv"), encoding="utf-8").read().splitlines()
    write_lines(os.path.join(d, "train.tsv"), ["text\tlabel"] + lines[1:])
    return d


def _latin1(c: Ctx) -> str:
    d = c.data()
    with open(os.path.join(d, "train.tsv"), "wb") as f:
        f.write(b"sentence\tlabel\nun film \xe9mouvant\t1\n")
    return d


def _spoil(folder: str, name: str, content: bytes) -> str:
    with open(os.path.join(folder, name), "wb") as f:
        f.write(content)
    return folder


def _remove(folder: str, name: str) -> str:
    os.remove(os.path.join(folder, name))
    return folder


def _truncate(path: str) -> None:
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])


def _hf_dir(c: Ctx) -> str:
    from conftest import EN_WORDS, SPECIALS, write_hf_bert

    write_hf_bert(c.path("hf"), SPECIALS + EN_WORDS)
    return c.path("hf")


def _convert_empty(c: Ctx):
    from teachers import convert_hf

    os.makedirs(c.path("src"))
    with open(c.path("src/config.json"), "w") as f:
        json.dump({"model_type": "bert"}, f)
    return convert_hf(c.path("src"), c.path("dst"))


@pytest.fixture(scope="module")
def student(tmp_path_factory, mrpc_rows):
    """A tiny trained student (single sentence, exported) and a tiny pair run."""
    import small
    from model_io import export_model

    root = tmp_path_factory.mktemp("bad_input_student")
    d = write_sst2(root / "sst2", 40, 10)
    small.main(["--task_name", "sst-2", "--data_dir", d, "--output_dir", str(root / "run"), *SMALL])
    export_model(str(root / "run"), str(root / "export"))
    small.main(["--task_name", "mrpc", "--data_dir", mrpc_rows, "--output_dir", str(root / "pair"), *SMALL])
    return {"export": str(root / "export"), "pair_run": str(root / "pair")}


@pytest.fixture(scope="module")
def mrpc_rows(tmp_path_factory):
    from conftest import MRPC_HEADER, pair_examples

    d = tmp_path_factory.mktemp("bad_input_mrpc")
    for split, n in (("train", 40), ("dev", 10)):
        rows = [f"{l}\t{i}\t{i + 1}\t{a}\t{b}" for i, (a, b, l) in enumerate(pair_examples(n, 0))]
        write_lines(d / f"{split}.tsv", [MRPC_HEADER] + rows)
    return str(d)


def message_of(action, ctx: Ctx, capsys) -> str:
    """The error message the user sees: the exception's, argparse's usage error, or (for
    damaged caches, which are rebuilt) the warnings in the run's train.log."""
    try:
        action(ctx)
    except SystemExit as e:
        return f"{e.code} {capsys.readouterr().err}"
    except Exception as e:  # noqa: BLE001 - the message is what is checked
        return f"{type(e).__name__}: {e}"
    logs = [p.read_text() for p in ctx.tmp.glob("*/train.log")]
    return "no error; log: " + "".join(l for log in logs for l in log.splitlines(True)
                                       if " WARNING " in l)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input_names_the_culprit(case, student, tiny_teacher, tiny_en, tmp_path, capsys):
    _, _, action, expected = case
    ctx = Ctx(tmp_path, student, tiny_teacher, tiny_en[1])
    message = message_of(action, ctx, capsys)
    assert message and __import__("re").search(expected, message), message


def test_disk_full_keeps_the_previous_checkpoint(student, tiny_teacher, tiny_en, tmp_path):
    import paddle

    ctx = Ctx(tmp_path, student, tiny_teacher, tiny_en[1])
    with pytest.raises(Exception):
        _disk_full(ctx)
    assert paddle.load(ctx.path("run/last.ckpt"))["state"]["step"] == 1


def test_readme_lists_every_case():
    readme = open(os.path.join(ROOT, "docs", "robustness.md"), encoding="utf-8").read()
    missing = [what for _, what, _, _ in CASES if what not in readme]
    assert len(CASES) >= 30 and not missing, missing
