"""Tiny fixtures in the official file layouts, written per test; nothing touches the network."""
from __future__ import annotations

import json
import os
import random
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
SHARED = os.path.join(ROOT, "..", "shared")

import cpu  # noqa: E402,F401  first, as in every entry point: in-process runs on a non-Intel
#             CPU then take the same MKL path as the scripts run in subprocesses

# One math thread for every run, in this process and in the scripts it starts, whatever the
# machine's core count: results the tests compare must not depend on it.
THREADS = "1"
os.environ["OMP_NUM_THREADS"] = THREADS


@pytest.fixture(autouse=True)
def pinned_threads(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", THREADS)


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return {w for line in f if line.startswith("flags") for w in line.split()[2:]}
    except OSError:
        return set()


def needs_bf16() -> None:
    """Skips the test on a CPU without bfloat16 instructions (oneDNN's bf16 kernels)."""
    if not cpu_flags() & {"avx512_bf16", "amx_bf16"}:
        pytest.skip("this CPU lacks bf16 instructions (no avx512_bf16 or amx_bf16 in "
                    "/proc/cpuinfo)")


# .ci/run sets STRICT_SKIPS=1: a test skipped for any reason outside ALLOWED_SKIPS fails the
# run, so that a missing package or data file cannot hide a test.
ALLOWED_SKIPS = ("no GPU",)


def pytest_sessionfinish(session, exitstatus):
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if not os.environ.get("STRICT_SKIPS") or reporter is None:
        return
    reasons = {r.nodeid: r.longrepr[-1] if isinstance(r.longrepr, tuple) else str(r.longrepr)
               for r in reporter.stats.get("skipped", [])}
    bad = {k: v for k, v in reasons.items() if not any(a in v for a in ALLOWED_SKIPS)}
    for nodeid, reason in bad.items():
        reporter.write_line(f"STRICT_SKIPS: {nodeid} skipped ({reason}), which is not in "
                            f"ALLOWED_SKIPS {ALLOWED_SKIPS}", red=True)
    if bad:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


POS = ["good", "great", "fine", "lovely", "superb"]
NEG = ["bad", "awful", "poor", "boring", "dull"]
FILLER = ["the", "movie", "film", "is", "a", "plot", "story", "was", "very", "quite", "and", ","]


def sentiment_examples(n: int, seed: int) -> list[tuple[str, int]]:
    """Sentences whose label is given by one sentiment word among fillers: learnable fast."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        label = rng.randint(0, 1)
        words = rng.choices(FILLER, k=rng.randint(2, 12))
        words.insert(rng.randint(0, len(words)), rng.choice(POS if label else NEG))
        out.append((" ".join(words), label))
    return out


def pair_examples(n: int, seed: int) -> list[tuple[str, str, int]]:
    """Pairs labelled 1 when their two sentiment words have the same polarity."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        label = rng.randint(0, 1)
        pos_a = rng.random() < 0.5
        a = rng.choice(POS if pos_a else NEG)
        b = rng.choice(POS if pos_a == bool(label) else NEG)
        s1 = " ".join(rng.choices(FILLER, k=rng.randint(1, 6)) + [a])
        s2 = " ".join([b] + rng.choices(FILLER, k=rng.randint(1, 8)))
        out.append((s1.capitalize() + ".", s2.capitalize() + "!", label))
    return out


def write_lines(path: str, lines: list[str], bom: bool = False) -> str:
    with open(path, "w", encoding="utf-8-sig" if bom else "utf-8") as f:
        f.write("".join(line + "\n" for line in lines))
    return path


def write_sst2(d, n_train: int = 240, n_dev: int = 60, train_lines: list[str] | None = None):
    """A tiny SST-2 folder (train and dev) of learnable sentences; `train_lines` replaces
    the training examples."""
    os.makedirs(d, exist_ok=True)
    good = [f"{s} \t{l}" for s, l in sentiment_examples(n_train, 0)]
    write_lines(os.path.join(d, "train.tsv"), ["sentence\tlabel"] + (good if train_lines is None else train_lines))
    write_lines(os.path.join(d, "dev.tsv"), ["sentence\tlabel"] + [f"{s} \t{l}" for s, l in sentiment_examples(n_dev, 1)])
    return str(d)


@pytest.fixture
def sst2_dir(tmp_path):
    d = tmp_path / "sst2"
    write_sst2(d)
    write_lines(d / "test.tsv", ["index\tsentence"] + [f"{i}\t{s}" for i, (s, _) in enumerate(sentiment_examples(10, 2))])
    return str(d)


def tiny_vectors(path) -> str:
    """8-d word vectors (word2vec text format) for every word of the fixtures."""
    words = sorted(set(EN_WORDS + POS + NEG + FILLER))
    with open(path, "w") as f:
        f.write(f"{len(words)} 8\n")
        for i, w in enumerate(words):
            f.write(w + " " + " ".join(f"{(i * 7 + j) % 11 / 10 - 0.5:.2f}" for j in range(8)) + "\n")
    return str(path)


MRPC_HEADER = "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String"


@pytest.fixture
def mrpc_dir(tmp_path):
    d = tmp_path / "mrpc"
    d.mkdir()
    for split, n, seed in (("train", 300, 0), ("dev", 60, 1)):
        rows = [f"{l}\t{i}\t{i + 1}\t{a}\t{b}" for i, (a, b, l) in enumerate(pair_examples(n, seed))]
        write_lines(d / f"{split}.tsv", [MRPC_HEADER] + rows, bom=True)  # real MRPC has a BOM
    rows = [f"{i}\t{i}\t{i + 1}\t{a}\t{b}" for i, (a, b, _) in enumerate(pair_examples(12, 2))]
    write_lines(d / "test.tsv", ["index" + MRPC_HEADER[len("Quality"):]] + rows, bom=True)
    return str(d)


ZH_POS = ["很好", "满意", "干净", "推荐"]
ZH_NEG = ["很差", "失望", "肮脏", "糟糕"]
ZH_FILLER = ["酒店", "房间", "服务", "早餐", "位置", "我们", "这次", "，"]


@pytest.fixture
def chnsenticorp_dir(tmp_path):
    rng = random.Random(0)

    def text(label):
        words = rng.choices(ZH_FILLER, k=rng.randint(2, 8))
        words.insert(rng.randint(0, len(words)), rng.choice(ZH_POS if label else ZH_NEG))
        return "".join(words) + "。"

    d = tmp_path / "chnsenticorp"
    d.mkdir()
    labels = [rng.randint(0, 1) for _ in range(300)]
    write_lines(d / "train.tsv", ["label\ttext_a"] + [f"{l}\t{text(l)}" for l in labels[:240]])
    write_lines(d / "dev.tsv", ["qid\tlabel\ttext_a"] + [f"{i}\t{l}\t{text(l)}" for i, l in enumerate(labels[240:])])
    return str(d)


def shared(*parts: str) -> str:
    """A path under ../shared/data (or ../shared/models/...); the test is skipped when it
    is absent."""
    path = os.path.join(SHARED, *parts) if parts[0] == "models" else \
        os.path.join(SHARED, "data", *parts)
    if not os.path.exists(path):
        pytest.skip(f"{path} not available")
    return path


# ------------------------------------------------------ tiny BERT teachers

EN_WORDS = ["the", "movie", "film", "was", "is", "great", "bad", "not", "good", "a", "fun",
            "boring", "and", "it", "!", ",", ".", "very", "dull", "so", "first", "second",
            "story", "plot", "actors", "bland", "fine", "best", "worst", "ever", "lovely", "superb",
            "awful", "poor", "quite"]
ZH_CHARS = list("这个酒店很好不错差服务房间干净一般还可以的了是我们环境太糟糕")
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def write_hf_bert(path, vocab: list[str], seed: int = 0, hidden: int = 16, layers: int = 2):
    """A tiny random BERT in Hugging Face format, weights written with safetensors' numpy API."""
    from safetensors.numpy import save_file

    os.makedirs(path, exist_ok=True)
    rng = np.random.default_rng(seed)
    inter, V = 2 * hidden, len(vocab)
    config = {"architectures": ["BertModel"], "model_type": "bert", "vocab_size": V,
              "hidden_size": hidden, "num_hidden_layers": layers, "num_attention_heads": 2,
              "intermediate_size": inter, "hidden_act": "gelu", "max_position_embeddings": 64,
              "type_vocab_size": 2, "layer_norm_eps": 1e-12, "pad_token_id": 0,
              "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
              "initializer_range": 0.02, "use_cache": True}
    r = lambda *s: (rng.standard_normal(s) * 0.2).astype(np.float32)  # noqa: E731
    w = {"embeddings.word_embeddings.weight": r(V, hidden),
         "embeddings.position_embeddings.weight": r(64, hidden),
         "embeddings.token_type_embeddings.weight": r(2, hidden),
         "embeddings.LayerNorm.weight": 1 + r(hidden), "embeddings.LayerNorm.bias": r(hidden),
         "embeddings.position_ids": np.arange(64, dtype=np.int64)[None],
         "pooler.dense.weight": r(hidden, hidden), "pooler.dense.bias": r(hidden)}
    for i in range(layers):
        p = f"encoder.layer.{i}."
        for n in ("query", "key", "value"):
            w[p + f"attention.self.{n}.weight"] = r(hidden, hidden)
            w[p + f"attention.self.{n}.bias"] = r(hidden)
        w[p + "attention.output.dense.weight"] = r(hidden, hidden)
        w[p + "attention.output.dense.bias"] = r(hidden)
        w[p + "intermediate.dense.weight"] = r(inter, hidden)
        w[p + "intermediate.dense.bias"] = r(inter)
        w[p + "output.dense.weight"] = r(hidden, inter)
        w[p + "output.dense.bias"] = r(hidden)
        for ln in ("attention.output.LayerNorm", "output.LayerNorm"):
            w[p + ln + ".weight"] = 1 + r(hidden)
            w[p + ln + ".bias"] = r(hidden)
    save_file(w, os.path.join(path, "model.safetensors"))
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config, f)
    with open(os.path.join(path, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(vocab) + "\n")
    with open(os.path.join(path, "tokenizer_config.json"), "w") as f:
        json.dump({"do_lower_case": True, "tokenizer_class": "BertTokenizer"}, f)
    return w, config


@pytest.fixture(scope="session")
def tiny_en(tmp_path_factory):
    """(HF source dir, converted Paddle backbone dir, HF weights, config)."""
    from teachers import convert_hf

    root = tmp_path_factory.mktemp("tiny_en")
    w, config = write_hf_bert(root / "hf", SPECIALS + EN_WORDS)
    convert_hf(str(root / "hf"), str(root / "paddle"))
    return root / "hf", root / "paddle", w, config


def _teacher_on(backbone: str, out: str) -> str:
    """A save_pretrained teacher (random classifier head) built on a tiny backbone."""
    import paddle
    from paddlenlp.transformers import AutoModelForSequenceClassification, AutoTokenizer
    from teachers import save_pretrained

    paddle.seed(1)
    with paddle.utils.unique_name.guard():
        model = AutoModelForSequenceClassification.from_pretrained(backbone, num_classes=2)
    save_pretrained(model, AutoTokenizer.from_pretrained(backbone), out)
    return out


@pytest.fixture(scope="session")
def tiny_teacher(tiny_en, tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny_teacher")
    _teacher_on(str(tiny_en[1]), str(out))
    return out


@pytest.fixture(scope="session")
def tiny_zh_backbone(tmp_path_factory):
    """A tiny random Chinese BERT (character vocabulary), converted: no Chinese BERT is
    available offline."""
    from teachers import convert_hf

    root = tmp_path_factory.mktemp("tiny_zh")
    write_hf_bert(root / "hf", SPECIALS + ZH_CHARS, seed=3)
    convert_hf(str(root / "hf"), str(root / "paddle"))
    return root / "paddle"


@pytest.fixture(scope="session")
def tiny_zh_teacher(tiny_zh_backbone, tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny_zh_teacher")
    _teacher_on(str(tiny_zh_backbone), str(out))
    return out


def model_logits(model_dir, texts: list[tuple[str, ...]]) -> np.ndarray:
    """The logits a student run (its best checkpoint) or an export gives `texts`, through
    model_io.load_model: a path independent of the training loop's evaluation."""
    from model_io import load_model

    model = load_model(str(model_dir))
    return np.concatenate([np.asarray(model.run(model.collate([model.encode(t) for t in
                                                               texts[i:i + 64]])))
                           for i in range(0, len(texts), 64)])


def predicted_labels(model_dir, texts: list[tuple[str, ...]]) -> np.ndarray:
    return model_logits(model_dir, texts).argmax(-1)


def sst2_dev(data_dir) -> tuple[list[tuple[str]], np.ndarray]:
    """(texts, labels) of a fixture's dev.tsv."""
    rows = [line.rstrip("\n").split("\t") for line in open(os.path.join(data_dir, "dev.tsv"),
                                                           encoding="utf-8")][1:]
    return [(s,) for s, _ in rows], np.array([int(l) for _, l in rows])


@pytest.fixture(scope="session")
def toy_teacher(tiny_en, tmp_path_factory):
    """(a tiny teacher fine-tuned on the toy sentiment task, its data folder): unlike the
    random-headed tiny_teacher it knows the task (dev accuracy 1.0), so students can be
    seen learning from it."""
    import teacher

    root = tmp_path_factory.mktemp("toy_teacher")
    data = write_sst2(root / "sst2", n_dev=100)
    teacher.main(["--task_name", "sst-2", "--data_dir", data, "--model_name_or_path",
                  str(tiny_en[1]), "--output_dir", str(root / "teacher"), "--max_epoch", "20",
                  "--batch_size", "16", "--lr", "5e-3", "--device", "cpu", "--num_threads", "1"])
    return root / "teacher", data
