"""GRU4Rec (Hidasi et al. 2016) baseline with the same losses and interface as SASRec.

A GRU over item embeddings; the prediction-time context is added to its output the same way as
in sasrec.py, and scores are inner products with the (tied) item embeddings plus a bias. Trained
by `trainer.train_neural_model` (full or sampled softmax at every position, early stopping);
served by `trainer.NeuralContinuationModel`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from mltasks.ml.seq.trainer import (
    ContextOutput,
    NeuralArchitecture,
    NeuralConfig,
    NeuralTrainResult,
    train_neural_model,
)


@dataclass
class GRU4RecConfig(NeuralConfig):
    """GRU4Rec's network options; the training options are NeuralConfig's."""

    d_model: int = 64
    n_layers: int = 1
    dropout: float = 0.3
    use_context: bool = True
    use_output_bias: bool = True


class GRU4RecNetwork(nn.Module):
    """Tokens 1..n_items (0 = padding), left-padded like SASRec's input."""

    def __init__(self, n_items: int, config: GRU4RecConfig):
        super().__init__()
        d_model = config.d_model
        self.item_embedding = nn.Embedding(n_items + 1, d_model, padding_idx=0)
        nn.init.normal_(self.item_embedding.weight, std=0.02)
        with torch.no_grad():
            self.item_embedding.weight[0].zero_()
        self.input_dropout = nn.Dropout(config.dropout)
        self.gru = nn.GRU(d_model, d_model, num_layers=config.n_layers, batch_first=True)
        self.output_dropout = nn.Dropout(config.dropout)
        self.context_output = ContextOutput(d_model, config.use_context)
        self.output_bias = nn.Parameter(torch.zeros(n_items)) if config.use_output_bias else None

    def encode(self, tokens: torch.Tensor, hours: torch.Tensor, dows: torch.Tensor) -> torch.Tensor:
        """(B, L) left-padded tokens -> (B, L, d); padding never reaches the GRU state."""
        batch, length = tokens.shape
        lengths = (tokens != 0).sum(dim=1)
        # Left padding -> right padding (so the GRU starts at the first real item) and back.
        shift = length - lengths
        columns = torch.arange(length, device=tokens.device)[None, :]
        to_right = (columns + shift[:, None]) % length
        right_tokens = torch.gather(tokens, 1, to_right)
        x = self.input_dropout(self.item_embedding(right_tokens))
        packed = pack_padded_sequence(
            x, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False
        )
        output, _ = self.gru(packed)
        output, _ = pad_packed_sequence(output, batch_first=True, total_length=length)
        to_left = (columns - shift[:, None]) % length
        output = torch.gather(output, 1, to_left[:, :, None].expand(-1, -1, output.shape[-1]))
        return self.context_output(self.output_dropout(output), hours, dows)

    def output_weights(self) -> torch.Tensor:
        return self.item_embedding.weight[1:]


GRU4REC = NeuralArchitecture(
    kind="gru4rec", name="GRU4Rec", config_class=GRU4RecConfig, network_class=GRU4RecNetwork
)


def train_gru4rec(
    *,
    split,
    config: GRU4RecConfig | None = None,
    seed: int = 2020,
    show_progress: bool | None = None,
    fixed_epochs: int | None = None,
) -> NeuralTrainResult:
    """Train GRU4Rec on a SeqSplit (see trainer.train_neural_model)."""
    return train_neural_model(
        architecture=GRU4REC,
        split=split,
        config=config or GRU4RecConfig(),
        seed=seed,
        show_progress=show_progress,
        fixed_epochs=fixed_epochs,
    )
