"""The BiLSTM student of Tang et al. 2019, "Distilling Task-Specific Knowledge from BERT
into Simple Neural Networks" (Sec. 3.2): embedding -> one BiLSTM layer -> concatenated final
forward and backward states -> ReLU fully connected layer -> dropout -> logits.
Pair tasks run both sentences through the same encoder and classify on
[h1, h2, h1 * h2, |h1 - h2|] (the paper's siamese variant)."""
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
    hidden_size: int = 150  # per direction
    fc_size: int = 200  # the paper's ReLU layer
    num_layers: int = 1
    dropout: float = 0.5
    pair: bool = False
    padding_idx: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


class BiLSTMStudent(nn.Layer):
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
        self.lstm = nn.LSTM(config.emb_dim, config.hidden_size, num_layers=config.num_layers,
                            direction="bidirect")
        features = 2 * config.hidden_size * (4 if config.pair else 1)
        self.fc = nn.Linear(features, config.fc_size)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.fc_size, config.num_labels)

    def encode(self, input_ids: paddle.Tensor, lengths: paddle.Tensor) -> paddle.Tensor:
        """[B, L] ids, [B] true lengths -> [B, 2H] final forward and backward states.
        `sequence_length` makes the LSTM stop at each true length, so padding never
        changes the result."""
        _, (h, _) = self.lstm(self.embedding(input_ids), sequence_length=lengths)
        return paddle.concat([h[-2], h[-1]], axis=-1)  # last layer's two directions

    def forward(self, input_ids: paddle.Tensor, lengths: paddle.Tensor,
                input_ids_b: paddle.Tensor | None = None,
                lengths_b: paddle.Tensor | None = None) -> paddle.Tensor:
        """-> [B, num_labels] logits. Pairs: both sentences (padded to one width) are
        encoded in a single LSTM call over the 2B rows."""
        if self.config.pair:
            both = self.encode(paddle.concat([input_ids, input_ids_b]),
                               paddle.concat([lengths, lengths_b]))
            h1, h2 = paddle.split(both, 2)
            features = paddle.concat([h1, h2, h1 * h2, paddle.abs(h1 - h2)], axis=-1)
        else:
            features = self.encode(input_ids, lengths)
        return self.classifier(self.dropout(F.relu(self.fc(features))))
