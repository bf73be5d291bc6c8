import numpy as np
import paddle
import pytest

from model import BiLSTMStudent, CNNStudent, StudentConfig, make_student
from utils import count_parameters

KINDS = [{"kind": "bilstm"}, {"kind": "bilstm", "num_layers": 2},
         {"kind": "cnn", "filter_sizes": (3, 4, 5), "num_filters": 4},
         {"kind": "cnn", "filter_sizes": (1, 2), "num_filters": 3}]


def _model(pair=False, **kw):
    paddle.seed(0)
    m = make_student(StudentConfig(vocab_size=30, num_labels=3, emb_dim=8, hidden_size=6,
                                   fc_size=5, pair=pair, **kw))
    m.eval()
    return m


def _t(x):
    return paddle.to_tensor(np.asarray(x, dtype=np.int64))


@pytest.mark.parametrize("kw", KINDS)
def test_padding_never_changes_the_output(kw):
    """Any padding and whatever ids sit past a text's length leave its logits alone (the
    CNN's widest filter, 5, is wider than the 2-word text)."""
    m = _model(**kw)
    ids = [[5, 6, 7, 8], [9, 10, 0, 0]]
    logits = m(_t(ids), _t([4, 2])).numpy()
    alone = m(_t([[9, 10]]), _t([2])).numpy()
    wider = m(_t([[9, 10, 0, 0, 0, 0, 0]]), _t([2])).numpy()
    garbage = m(_t([[9, 10, 3, 4, 5]]), _t([2])).numpy()  # whatever sits past the length
    np.testing.assert_allclose(logits[1], alone[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(wider, alone, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(garbage, alone, rtol=1e-5, atol=1e-6)


def test_encoder_uses_both_directions_final_states():
    m = _model()
    h = m.encode(_t([[5, 6, 7]]), _t([3])).numpy()
    assert h.shape == (1, 12)
    # The backward half must depend on the first word (it is the backward LSTM's last input).
    h2 = m.encode(_t([[4, 6, 7]]), _t([3])).numpy()
    assert not np.allclose(h[0, 6:], h2[0, 6:])


@pytest.mark.parametrize("kw", [KINDS[0], KINDS[2]], ids=["bilstm", "cnn"])
def test_pair_features_are_h1_h2_product_and_difference(kw):
    m = _model(pair=True, **kw)
    a, la = _t([[5, 6, 0], [7, 8, 9]]), _t([2, 3])
    b, lb = _t([[9, 0, 0], [5, 6, 7]]), _t([1, 3])
    logits = m(a, la, b, lb)
    assert logits.shape == [2, 3]
    h1, h2 = m.encode(a, la), m.encode(b, lb)
    feats = paddle.concat([h1, h2, h1 * h2, paddle.abs(h1 - h2)], axis=-1)
    expected = m.classifier(paddle.nn.functional.relu(m.fc(feats)))
    np.testing.assert_allclose(logits.numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)
    assert m.fc.weight.shape == [4 * h1.shape[-1], 5] and h1.shape[-1] == (
        12 if kw["kind"] == "bilstm" else 3 * 4)


def test_parameter_count_matches_the_architecture():
    m = _model()
    e, h = 8, 6
    lstm = 2 * (4 * h * (e + h) + 2 * 4 * h)  # two directions, W_ih, W_hh and two biases
    assert count_parameters(m) == 30 * e + lstm + (2 * h * 5 + 5) + (5 * 3 + 3)


def test_pretrained_matrix_is_loaded_and_can_be_frozen():
    w = np.random.default_rng(0).normal(size=(30, 8)).astype("float32")
    m = BiLSTMStudent(StudentConfig(vocab_size=30, num_labels=2, emb_dim=8), w, freeze_embedding=True)
    np.testing.assert_array_equal(m.embedding.weight.numpy(), w)
    assert m.embedding.weight.stop_gradient
    with pytest.raises(ValueError, match=r"embedding matrix \(30, 8\) does not match \(30, 9\)"):
        BiLSTMStudent(StudentConfig(vocab_size=30, num_labels=2, emb_dim=9), w)


@pytest.mark.parametrize("pair", [False, True])
@pytest.mark.parametrize("kw", KINDS)
def test_onnx_export_equals_the_eager_model(pair, kw, tmp_path):
    """The hand-built ONNX graph (BiLSTM: gate order, directions, layers, sequence lengths;
    CNN: masks, widths wider than a text; pair features) computes exactly what the Paddle
    model does, padding included, on ragged batches."""
    from engines import OnnxPredictor
    from model_io import export_student_onnx

    m = _model(pair=pair, **kw)
    export_student_onnx(m, str(tmp_path / "m.onnx"))
    rng = np.random.default_rng(0)
    batch = {"input_ids": rng.integers(3, 30, size=(4, 7)), "lengths": np.array([7, 3, 1, 5]),
             "input_ids_b": rng.integers(3, 30, size=(4, 7)), "lengths_b": np.array([2, 7, 4, 1])}
    names = ["input_ids", "lengths"] + (["input_ids_b", "lengths_b"] if pair else [])
    ref = m(*[_t(batch[n]) for n in names]).numpy()
    np.testing.assert_allclose(OnnxPredictor(str(tmp_path / "m.onnx"), 1)(batch), ref,
                               rtol=1e-5, atol=1e-6)


def test_cnn_maxes_each_width_over_its_windows():
    """CNN encoding by hand: ReLU(conv) of each width, max over the windows inside the text
    (one window, partly padding, when the text is shorter than the width)."""
    m = _model(kind="cnn", filter_sizes=(2, 4), num_filters=3)
    ids, length = [5, 6, 7], 3
    x = m.embedding(_t([ids])).numpy()[0]  # [3, E]
    x = np.concatenate([x, np.zeros((3, 8), np.float32)])  # right-padded by widest - 1
    want = []
    for w, conv in zip((2, 4), m.convs):
        W, b = conv.weight.numpy()[:, :, 0], conv.bias.numpy()  # [maps, E, (1,) w]
        windows = max(length - w + 1, 1)
        maps = [np.maximum(np.einsum("mew,we->m", W, x[t:t + w]) + b, 0) for t in range(windows)]
        want.append(np.max(maps, axis=0))
    np.testing.assert_allclose(m.encode(_t([ids]), _t([length])).numpy()[0],
                               np.concatenate(want), rtol=1e-5, atol=1e-6)
    assert isinstance(m, CNNStudent) and m.fc.weight.shape == [2 * 3, 5]
