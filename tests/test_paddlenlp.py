"""PaddleNLP's distill_lstm users: its README's six commands run unchanged, every flag of its
args.py is accepted, its run_glue teacher folders and word dicts load, and `--preset paper`
is Tang et al.'s student. Nothing touches the network."""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil

import numpy as np
import pytest

import bert_distill
import small
from args import PADDLENLP_FLAGS, parse_config
from conftest import ZH_FILLER, ZH_NEG, ZH_POS, pair_examples, tiny_vectors, write_lines

# PaddleNLP's examples/model_compression/distill_lstm/README.md, its six commands as written.
README = {
    "small-chnsenticorp": r"""CUDA_VISIBLE_DEVICES=0 python small.py \
    --task_name chnsenticorp \
    --max_epoch 20 \
    --vocab_size 1256608 \
    --batch_size 64 \
    --model_name bert-wwm-ext-chinese \
    --optimizer adam \
    --lr 3e-4 \
    --dropout_prob 0.2 \
    --vocab_path senta_word_dict.txt \
    --save_steps 10000 \
    --output_dir small_models/chnsenticorp/""",
    "small-sst-2": r"""CUDA_VISIBLE_DEVICES=0 python small.py \
    --task_name sst-2 \
    --vocab_size 30522 \
    --max_epoch 10 \
    --batch_size 64 \
    --lr 1.0 \
    --dropout_prob 0.4 \
    --output_dir small_models/SST-2 \
    --save_steps 10000 \
    --embedding_name w2v.google_news.target.word-word.dim300.en""",
    "small-qqp": r"""CUDA_VISIBLE_DEVICES=0 python small.py \
    --task_name qqp \
    --vocab_size 30522 \
    --max_epoch 35 \
    --batch_size 256 \
    --lr 2.0 \
    --dropout_prob 0.4 \
    --output_dir small_models/QQP \
    --save_steps 10000 \
    --embedding_name w2v.google_news.target.word-word.dim300.en""",
    "distill-chnsenticorp": r"""CUDA_VISIBLE_DEVICES=0 python bert_distill.py \
    --task_name chnsenticorp \
    --vocab_size 1256608 \
    --max_epoch 6 \
    --lr 1.0 \
    --dropout_prob 0.1 \
    --batch_size 64 \
    --model_name bert-wwm-ext-chinese \
    --teacher_path pretrained_models/chnsenticorp/best_bert_wwm_ext_model_880/model_state.pdparams \
    --vocab_path senta_word_dict.txt \
    --output_dir distilled_models/chnsenticorp \
    --save_steps 10000 \
""",
    "distill-sst-2": r"""CUDA_VISIBLE_DEVICES=0 python bert_distill.py \
    --task_name sst-2 \
    --vocab_size 30522 \
    --max_epoch 6 \
    --lr 1.0 \
    --task_name sst-2 \
    --dropout_prob 0.2 \
    --batch_size 128 \
    --model_name bert-base-uncased \
    --output_dir distilled_models/SST-2 \
    --teacher_path pretrained_models/SST-2/best_model_610/model_state.pdparams \
    --save_steps 10000 \
    --embedding_name w2v.google_news.target.word-word.dim300.en \
""",
    "distill-qqp": r"""CUDA_VISIBLE_DEVICES=0 python bert_distill.py \
    --task_name qqp \
    --vocab_size 30522 \
    --max_epoch 6 \
    --lr 1.0 \
    --dropout_prob 0.2 \
    --batch_size 256 \
    --model_name bert-base-uncased \
    --n_iter 10 \
    --output_dir distilled_models/QQP \
    --teacher_path pretrained_models/QQP/best_model_17000/model_state.pdparams \
    --save_steps 10000 \
    --embedding_name w2v.google_news.target.word-word.dim300.en \
""",
}

# Every flag of PaddleNLP's args.py (commit 0025c3d) with a value of its type.
THEIR_ARGS = {
    "task_name": "sst-2", "optimizer": "adadelta", "lr": "1.0", "num_layers": "1",
    "emb_dim": "8", "output_dim": "2", "hidden_size": "16", "batch_size": "16",
    "max_epoch": "1", "max_seq_length": "128", "n_iter": "2", "dropout_prob": "0.2",
    "init_scale": "0.1", "log_freq": "10", "save_steps": "100", "padding_idx": "0",
    "model_name": "bert-base-uncased", "teacher_dir": "teacher", "vocab_path": "dict.txt",
    "output_dir": "out", "init_from_ckpt": "ckpt", "whole_word_mask": None,
    "embedding_name": "w2v", "vocab_size": "100", "alpha": "0.0", "seed": "2021",
    "device": "cpu",
}
SCRIPTS = {"small.py": small, "bert_distill.py": bert_distill}
# Appended to every command: tiny sizes. --p_pos 0: PaddleNLP's augmentation has no POS step
# (and spaCy's English model is not installed offline).
TINY = ["--hidden_size", "16", "--fc_size", "16", "--batch_size", "16", "--max_epoch", "1",
        "--num_threads", "1"]
TINY_DISTILL = ["--n_iter", "2", "--p_pos", "0"]

# The BERT settings PaddleNLP 2.0 kept in a model's init_args.
BERT_ARGS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
             "intermediate_size", "hidden_act", "hidden_dropout_prob",
             "attention_probs_dropout_prob", "max_position_embeddings", "type_vocab_size",
             "initializer_range", "pad_token_id")


def run_glue_teacher(teacher, out) -> str:
    """`teacher` (a save_pretrained folder) re-saved as PaddleNLP 2.0's run_glue.py left a
    teacher (the folder PaddleNLP's distill_lstm README names): model_config.json in the
    old init_args / init_class form, model_state.pdparams, tokenizer_config.json and
    vocab.txt; no config.json."""
    os.makedirs(out)
    config = json.load(open(os.path.join(teacher, "config.json")))
    bert = {k: config[k] for k in BERT_ARGS}
    with open(os.path.join(out, "model_config.json"), "w") as f:
        json.dump({"init_args": [{**bert, "init_class": "BertModel"}],
                   "init_class": "BertForSequenceClassification", "num_classes": 2}, f)
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump({"do_lower_case": True, "unk_token": "[UNK]", "sep_token": "[SEP]",
                   "pad_token": "[PAD]", "cls_token": "[CLS]", "mask_token": "[MASK]",
                   "init_class": "BertTokenizer"}, f)
    for name in ("vocab.txt", "model_state.pdparams"):
        shutil.copy(os.path.join(teacher, name), out)
    return str(out)


def write_qqp(d) -> str:
    """A tiny QQP folder in GLUE's layout."""
    os.makedirs(d)
    header = "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate"
    for split, n, seed in (("train", 240, 0), ("dev", 60, 1)):
        rows = [f"{i}\t{2 * i}\t{2 * i + 1}\t{a}\t{b}\t{l}"
                for i, (a, b, l) in enumerate(pair_examples(n, seed))]
        write_lines(os.path.join(d, f"{split}.tsv"), [header] + rows)
    return str(d)


def command(text: str) -> tuple[str, list[str]]:
    """(script, argv) of a README command: continuation lines joined, the environment
    variable and `python` dropped."""
    words = shlex.split(text.replace("\\\n", " "))
    assert words[0] == "CUDA_VISIBLE_DEVICES=0" and words[1] == "python"
    return words[2], words[3:]


def with_fixtures(argv: list[str], vectors: str) -> list[str]:
    """The vector name of a command made our fixture's file (the only flag changed)."""
    out = list(argv)
    if "--embedding_name" in out:
        i = out.index("--embedding_name")
        out[i:i + 2] = ["--embedding_path", vectors]
    return out


@pytest.fixture
def paddlenlp_folder(tmp_path, monkeypatch, sst2_dir, chnsenticorp_dir, tiny_teacher,
                     tiny_zh_teacher):
    """A working folder as PaddleNLP's README expects it: teachers under pretrained_models/
    in run_glue's layout and senta_word_dict.txt; then the data folder of each task."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    for task, name, teacher in (("SST-2", "best_model_610", tiny_teacher),
                                ("QQP", "best_model_17000", tiny_teacher),
                                ("chnsenticorp", "best_bert_wwm_ext_model_880", tiny_zh_teacher)):
        run_glue_teacher(str(teacher), tmp_path / "pretrained_models" / task / name)
    # PaddleNLP's word dict: one word per line, [PAD] and [UNK] among them.
    write_lines(tmp_path / "senta_word_dict.txt", ["[PAD]", "[UNK]", *ZH_POS, *ZH_NEG, *ZH_FILLER])
    return {"sst-2": sst2_dir, "qqp": write_qqp(tmp_path / "qqp"),
            "chnsenticorp": chnsenticorp_dir}


@pytest.mark.parametrize("name", list(README))
def test_paddlenlp_readme_command_runs_as_written(name, paddlenlp_folder, tmp_path, capsys):
    script, argv = command(README[name])
    task = argv[argv.index("--task_name") + 1]
    extra = ["--data_dir", paddlenlp_folder[task], *TINY,
             *(["--emb_dim", "16"] if "--embedding_name" not in argv else []),
             *(TINY_DISTILL if script == "bert_distill.py" else [])]
    results = SCRIPTS[script].main(with_fixtures(argv, tiny_vectors(tmp_path / "v.txt")) + extra)

    out = tmp_path / argv[argv.index("--output_dir") + 1]
    assert {"config.json", "results.json", "best.ckpt", "model_state.pdparams",
            "metrics.jsonl"} <= set(os.listdir(out))
    assert json.load(open(out / "results.json"))["dev"] == results["dev"]
    config = json.load(open(out / "config.json"))
    their = dict(zip(argv[::2], argv[1::2]))
    assert config["student"]["dropout"] == float(their["--dropout_prob"])
    assert config["data"]["max_vocab_size"] == int(their["--vocab_size"])
    # their optimizer: AdaDelta unless the command names another
    assert config["train"]["optimizer"] == their.get("--optimizer", "adadelta")
    assert config["train"]["lr"] == float(their["--lr"])
    err = capsys.readouterr().err
    assert "notice: --vocab_size: is --max_vocab_size here" in err
    assert "notice: --dropout_prob: is --dropout here" in err
    if script == "bert_distill.py":
        assert results["transfer_examples"] > 240
        assert config["distill"]["teacher_path"] == [their["--teacher_path"]]


@pytest.mark.parametrize("script", ["small", "bert_distill"])
def test_every_paddlenlp_flag_is_accepted_with_its_meaning_or_a_notice(script, tmp_path,
                                                                       monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dict.txt").write_text("good\nbad\n")
    assert set(PADDLENLP_FLAGS) == set(THEIR_ARGS) | {"teacher_path"}  # the table is theirs
    for name, value in THEIR_ARGS.items():
        cfg = parse_config(script, [f"--{name}", *([value] if value else [])]).to_dict()
        ours = {k: v for g in cfg.values() if isinstance(g, dict) for k, v in g.items()}
        their = PADDLENLP_FLAGS[name]
        notices = [l for l in capsys.readouterr().err.splitlines()
                   if l.startswith(f"notice: --{name}:")]
        if their.ours in ours:  # the same flag, or an alias: the value is ours
            got = ours[their.ours][0] if isinstance(ours[their.ours], list) else ours[their.ours]
            assert got == type(got)(value), name
            assert len(notices) == (their.ours != name and bool(their.notice)), name
        else:  # no meaning here (or bert_distill.py's alone): one line says what we do
            assert len(notices) == 1, name


def test_their_command_gets_their_optimizer_unless_it_names_one(capsys):
    assert parse_config("small", ["--lr", "1.0", "--dropout_prob", "0.4"]).train.optimizer \
        == "adadelta"
    assert "notice: --optimizer: adadelta, PaddleNLP's default" in capsys.readouterr().err
    assert parse_config("small", ["--optimizer", "adam", "--dropout_prob", "0.4"]).train.optimizer \
        == "adam"
    assert parse_config("small", []).train.optimizer == "adam"  # ours keep our default
    cfg = parse_config("bert_distill", ["--teacher_dir", "a", "b"])  # an alias, as ours
    assert cfg.distill.teacher_path == ["a", "b"] and cfg.train.optimizer == "adadelta"


@pytest.mark.parametrize("argv, message", [
    (["--task_name", "qqp", "--output_dim", "3"], r"--output_dim: qqp has 2 labels, not 3"),
    (["--padding_idx", "1"], r"--padding_idx: \[PAD\] is id 0 of our vocabulary"),
    (["--dropout_prob", "1.5"], r"--dropout: must be in \[0, 1\)"),
    (["--device", "xpu"], r"--device: invalid choice: 'xpu'"),
    (["--vocab_size", "x"], r"--vocab_size: invalid int value: 'x'"),
])
def test_bad_paddlenlp_values_stop_naming_the_flag(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        small.main(argv)
    assert e.value.code == 2
    assert re.search(message, capsys.readouterr().err.splitlines()[-1])


def test_run_glue_teacher_distils_as_folder_and_as_its_pdparams(tiny_teacher, sst2_dir,
                                                                  tmp_path):
    """The run_glue folder given as --teacher_path (the folder, its weights) or --teacher_dir
    labels the transfer set exactly as the same weights saved by us."""
    from teachers import load_teacher

    folder = run_glue_teacher(str(tiny_teacher), tmp_path / "best_model_610")
    assert "config.json" not in os.listdir(folder)
    model, tokenizer = load_teacher(os.path.join(folder, "model_state.pdparams"), 2)
    assert tokenizer.tokenize("the film was great") == ["the", "film", "was", "great"]

    def distil(out: str, *teacher: str) -> np.ndarray:
        bert_distill.main(["--task_name", "sst-2", "--data_dir", sst2_dir, *teacher,
                           "--output_dir", str(tmp_path / out), "--n_iter", "2", "--p_pos", "0",
                           "--emb_dim", "16", *TINY, "--optimizer", "adam", "--lr", "0.01"])
        [logits] = (tmp_path / out / "cache").glob("logits-*/logits.npy")
        return np.load(logits)

    ours = distil("ours", "--teacher_path", str(tiny_teacher))
    for out, flags in (("folder", ["--teacher_path", folder]),
                       ("weights", ["--teacher_path", os.path.join(folder, "model_state.pdparams")]),
                       ("teacher_dir", ["--teacher_dir", folder])):
        np.testing.assert_allclose(distil(out, *flags), ours, atol=1e-5)
        assert os.path.isfile(tmp_path / out / "model_state.pdparams")

    # the folder exports and predicts as a teacher of ours does
    from export import main as export
    from predict import main as predict

    texts = tmp_path / "texts.txt"
    texts.write_text("a great film\nso dull and boring\n")
    for name, src in (("theirs", folder), ("ours", str(tiny_teacher))):
        export([src, str(tmp_path / f"exp-{name}")])
        predict([str(tmp_path / f"exp-{name}"), "--input", str(texts), "--output",
                 str(tmp_path / f"{name}.jsonl"), "--device", "cpu"])
    assert (tmp_path / "theirs.jsonl").read_text() == (tmp_path / "ours.jsonl").read_text()


def test_word_dict_in_paddlenlp_format(tmp_path):
    """senta_word_dict.txt's lines: a word, optionally its id after a tab or a space."""
    from data import read_word_list

    p = tmp_path / "senta_word_dict.txt"
    p.write_bytes("\ufeff[PAD]\n[UNK]\t1\n酒店 2\r\n很好\n2021 4\nnew york\n\n".encode())
    assert read_word_list(str(p)) == {"[PAD]", "[UNK]", "酒店", "很好", "2021", "new york"}


def test_paper_preset_is_tang_et_al():
    """--preset paper trains the student as Tang et al. 2019 (Sec. 4.2) do; where the paper
    names nothing (dropout, epochs), as the authors' code does."""
    from args import check_flags
    from stages import GOOGLE_NEWS, PRESETS, as_flags
    from tasks import TASKS

    paper = PRESETS["paper"]
    sst2, qqp = paper.student_for(TASKS["sst-2"]), paper.student_for(TASKS["qqp"])
    assert sst2 == {"optimizer": "adadelta", "lr": 1.0, "rho": 0.95, "lr_schedule": "constant",
                    "hidden_size": 150, "fc_size": 200, "batch_size": 50, "dropout": 0.1,
                    "max_epoch": 30}
    assert qqp == {**sst2, "batch_size": 256}
    assert paper.embedding_name == {"en": GOOGLE_NEWS}  # 300-d word2vec on Google News
    assert paper.distill == {"alpha": 0.0, "kd_loss": "mse"}
    for student in (sst2, qqp):
        cfg = check_flags("bert_distill", as_flags(student) + as_flags(paper.distill))
        assert (cfg.train.optimizer, cfg.train.lr, cfg.train.rho) == ("adadelta", 1.0, 0.95)
        # the transfer set of Sec. 4.2: p_mask = p_pos = 0.1, p_ng = 0.25
        assert (cfg.augment.p_mask, cfg.augment.p_pos, cfg.augment.p_ng) == (0.1, 0.1, 0.25)
        check_flags("small", as_flags(student))
    assert (TASKS["sst-2"].n_iter, TASKS["qqp"].n_iter) == (20, 10)  # Sec. 4.2


def test_docs_list_every_paddlenlp_flag():
    from conftest import ROOT

    text = open(os.path.join(ROOT, "docs", "paddlenlp.md"), encoding="utf-8").read()
    assert [f for f in PADDLENLP_FLAGS if f"`--{f}`" not in text] == []
