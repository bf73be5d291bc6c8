"""Tiny fixtures in the official file layouts, written per test; nothing touches the network."""
from __future__ import annotations

import os
import random
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
SHARED_DATA = os.path.join(ROOT, "..", "shared", "data")

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


@pytest.fixture
def sst2_dir(tmp_path):
    d = tmp_path / "sst2"
    d.mkdir()
    write_lines(d / "train.tsv", ["sentence\tlabel"] + [f"{s} \t{l}" for s, l in sentiment_examples(240, 0)])
    write_lines(d / "dev.tsv", ["sentence\tlabel"] + [f"{s} \t{l}" for s, l in sentiment_examples(60, 1)])
    write_lines(d / "test.tsv", ["index\tsentence"] + [f"{i}\t{s}" for i, (s, _) in enumerate(sentiment_examples(10, 2))])
    return str(d)


MRPC_HEADER = "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String"


@pytest.fixture
def mrpc_dir(tmp_path):
    d = tmp_path / "mrpc"
    d.mkdir()
    for split, n, seed in (("train", 300, 0), ("dev", 60, 1)):
        rows = [f"{l}\t{i}\t{i + 1}\t{a}\t{b}" for i, (a, b, l) in enumerate(pair_examples(n, seed))]
        write_lines(d / f"{split}.tsv", [MRPC_HEADER] + rows, bom=True)  # real MRPC has a BOM
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
    """A path under ../shared/data; the test is skipped when it is absent."""
    path = os.path.join(SHARED_DATA, *parts)
    if not os.path.exists(path):
        pytest.skip(f"{path} not available")
    return path
