"""The students. The BiLSTM of Tang et al. 2019, "Distilling Task-Specific Knowledge from
BERT into Simple Neural Networks" (Sec. 3.1): embedding -> one BiLSTM layer -> concatenated
final forward and backward states -> ReLU fully connected layer -> dropout -> logits; and a
CNN (Kim 2014) with the same embedding and head. Pair tasks run both sentences through the
same encoder and classify on [h1, h2, h1 * h2, |h1 - h2|] (the paper's siamese variant)."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F


@dataclass
class StudentConfig:
    vocab_size: int
    num_labels: int
    emb_dim: int = 300
    hidden_size: int = 150  # BiLSTM: per direction
    fc_size: int = 200  # the paper's ReLU layer
    num_layers: int = 1
    dropout: float = 0.5
    pair: bool = False
    padding_idx: int = 0
    kind: str = "bilstm"  # or "cnn"
    filter_sizes: tuple[int, ...] = (3, 4, 5)  # CNN: convolution widths (Kim 2014)
    num_filters: int = 100  # CNN: feature maps per width

    def __post_init__(self):
        self.filter_sizes = tuple(self.filter_sizes)  # a list when read back from JSON

    def to_dict(self) -> dict:
        return asdict(self)


class Student(nn.Layer):
    """Word embedding -> encoder (the subclass's) -> ReLU layer -> dropout -> logits; pair
    tasks classify on [h1, h2, h1 * h2, |h1 - h2|] of one shared encoder."""

    def __init__(self, config: StudentConfig, embedding: np.ndarray | None = None,
                 freeze_embedding: bool = False):
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.emb_dim,
                                      padding_idx=config.padding_idx)
        if embedding is not None:
            if embedding.shape != (config.vocab_size, config.emb_dim):
                raise ValueError(f"embedding matrix {embedding.shape} does not match "
                                 f"({config.vocab_size}, {config.emb_dim})")
            self.embedding.weight.set_value(embedding.astype("float32"))
        self.embedding.weight.stop_gradient = freeze_embedding
        # layers are created (and drawn from the seed) in the order embedding, encoder, head
        features = self.build_encoder()
        self.fc = nn.Linear(features * (4 if config.pair else 1), config.fc_size)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.fc_size, config.num_labels)

    def build_encoder(self) -> int:
        """Creates the encoder's layers; returns the size of its output per text."""
        raise NotImplementedError

    def encode(self, input_ids: paddle.Tensor, lengths: paddle.Tensor) -> paddle.Tensor:
        raise NotImplementedError

    def forward(self, input_ids: paddle.Tensor, lengths: paddle.Tensor,
                input_ids_b: paddle.Tensor | None = None,
                lengths_b: paddle.Tensor | None = None) -> paddle.Tensor:
        """-> [B, num_labels] logits. Pairs: both sentences (padded to one width) are
        encoded in a single call over the 2B rows."""
        if self.config.pair:
            both = self.encode(paddle.concat([input_ids, input_ids_b]),
                               paddle.concat([lengths, lengths_b]))
            h1, h2 = paddle.split(both, 2)
            features = paddle.concat([h1, h2, h1 * h2, paddle.abs(h1 - h2)], axis=-1)
        else:
            features = self.encode(input_ids, lengths)
        return self.classifier(self.dropout(F.relu(self.fc(features))))


class BiLSTMStudent(Student):
    """Tang et al.: one BiLSTM layer, its final forward and backward states."""

    def build_encoder(self) -> int:
        c = self.config
        self.lstm = nn.LSTM(c.emb_dim, c.hidden_size, num_layers=c.num_layers, direction="bidirect")
        return 2 * c.hidden_size

    def encode(self, input_ids: paddle.Tensor, lengths: paddle.Tensor) -> paddle.Tensor:
        """[B, L] ids, [B] true lengths -> [B, 2H] final forward and backward states.
        `sequence_length` makes the LSTM stop at each true length, so padding never
        changes the result."""
        _, (h, _) = self.lstm(self.embedding(input_ids), sequence_length=lengths)
        return paddle.concat([h[-2], h[-1]], axis=-1)  # last layer's two directions


class CNNStudent(Student):
    """Kim 2014: 1-D convolutions of several widths over the word vectors, ReLU, max over
    time, dropout; then the BiLSTM's ReLU layer and classifier."""

    def build_encoder(self) -> int:
        config = self.config
        # 2-D convolutions of height 1 over [B, E, 1, L]: Paddle's Conv1D squeezes its output,
        # which Paddle Inference's oneDNN passes mis-fuse on the exported graph
        self.convs = nn.LayerList([nn.Conv2D(config.emb_dim, config.num_filters, (1, w))
                                   for w in config.filter_sizes])
        self.conv_dropout = nn.Dropout(config.dropout)
        return config.num_filters * len(config.filter_sizes)

    def encode(self, input_ids: paddle.Tensor, lengths: paddle.Tensor) -> paddle.Tensor:
        """[B, L] ids, [B] true lengths -> [B, maps x widths]. Vectors past each length are
        zeroed and the text right-padded with (widest - 1) zeros, so every width has a
        window even on a one-word text; a width-w map is maxed over its first
        max(length - w + 1, 1) windows: padding never changes the result.

        All widths run as one matmul over widest-width windows (narrower filters padded with
        zero taps), and the max is an argmax gather: much faster, forward and backward, than
        per-width convolutions and Paddle's max, whose backward is slow on CPU."""
        config = self.config
        widest = max(config.filter_sizes)
        steps = paddle.arange(paddle.shape(input_ids)[1], dtype=lengths.dtype)
        inside = (steps.unsqueeze(0) < lengths.unsqueeze(1)).unsqueeze(-1).astype("float32")
        x = (self.embedding(input_ids) * inside).transpose([0, 2, 1]).unsqueeze(2)  # [B,E,1,L]
        if widest > 1:
            x = F.pad(x, [0, widest - 1, 0, 0])
        windows = F.unfold(x, [1, widest])  # [B, E x widest, L]: channel-major, tap-minor
        weight = paddle.concat([F.pad(conv.weight.squeeze(2), [0, widest - w], data_format="NCL")
                                for w, conv in zip(config.filter_sizes, self.convs)])
        bias = paddle.concat([conv.bias for conv in self.convs])
        maps = F.relu(paddle.matmul(weight.reshape([weight.shape[0], -1]), windows)
                      + bias.unsqueeze(-1))  # [B, maps x widths, L], >= 0
        width = paddle.to_tensor(np.repeat(config.filter_sizes, config.num_filters),
                                 dtype=lengths.dtype)
        last = paddle.clip(lengths.unsqueeze(1) - width.unsqueeze(0) + 1, min=1)  # [B, maps]
        maps = maps * (steps.reshape([1, 1, -1]) < last.unsqueeze(-1)).astype("float32")
        pooled = paddle.take_along_axis(maps, maps.argmax(axis=-1, keepdim=True), -1)
        return self.conv_dropout(pooled.squeeze(-1))


STUDENTS = {"bilstm": BiLSTMStudent, "cnn": CNNStudent}


def make_student(config: StudentConfig, embedding: np.ndarray | None = None,
                 freeze_embedding: bool = False) -> Student:
    """The student network of config.kind."""
    return STUDENTS[config.kind](config, embedding, freeze_embedding)


def student_inputs(pair: bool) -> dict[str, int]:
    """The student's named inputs and their ranks, in the order forward() takes them."""
    names = {"input_ids": 2, "lengths": 1}
    return {**names, "input_ids_b": 2, "lengths_b": 1} if pair else names
