"""SASRec (Kang & McAuley 2018) for playlist / session continuation.

The network is a causal Transformer over item embeddings plus learned positions. The context of
each prediction (hour of day, day of week of the predicted event; neutral buckets when unknown)
is added as embeddings to the Transformer's output at that position, so the representation at
position t depends only on items 0..t and on the time of the prediction made there. This keeps
serving simple: a request gives its input items and the current hour and weekday.

Training (trainer.py) follows Klenitskiy & Vasilev (2023), "Turning Dross Into Gold Loss: is
BERT4Rec really better than SASRec?": cross-entropy over the full catalog (label smoothing 0.1 by
default) at every position of every training window, not one prefix per row; `loss="sampled"`
switches to a sampled softmax over uniformly drawn negatives for large catalogs. By default each
position is also trained on the next few items after the next one, with decaying weights
(`target_horizon`, `horizon_decay`; see trainer.NeuralConfig). Early stopping on the validation
metric, deterministic for a seed.

Scores are inner products: score(item) = sequence_vector · output_item_embeddings[item], with
the per-item output bias folded into an extra dimension (the vector gets a trailing 1), so an
inner-product FAISS index over `output_item_embeddings` returns the exact top-K. The serving
object is trainer.NeuralContinuationModel.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mltasks.ml.seq.trainer import (
    ContextOutput,
    NeuralArchitecture,
    NeuralConfig,
    NeuralTrainResult,
    train_neural_model,
)


@dataclass
class SASRecConfig(NeuralConfig):
    """SASRec's network options; the training options are NeuralConfig's."""

    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 2
    ff_multiplier: int = 2
    dropout: float = 0.3
    attention_dropout: float = 0.0  # dropout on attention weights; costly on CPU, rarely needed
    use_context: bool = True
    use_output_bias: bool = True


class _CausalSelfAttentionBlock(nn.Module):
    """Pre-LayerNorm Transformer block with a causal, padding-aware attention mask."""

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        ff_multiplier: int,
        dropout: float,
        attention_dropout: float,
    ):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model {d_model} is not divisible by n_heads {n_heads}")
        self.n_heads = n_heads
        self.attention_norm = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.attention_out = nn.Linear(d_model, d_model)
        self.feed_forward_norm = nn.LayerNorm(d_model)
        self.feed_forward = nn.Sequential(
            nn.Linear(d_model, ff_multiplier * d_model),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(ff_multiplier * d_model, d_model),
        )
        self.dropout = nn.Dropout(dropout)
        self.attention_dropout = attention_dropout

    def forward(self, x: torch.Tensor, attend: torch.Tensor | None) -> torch.Tensor:
        batch, length, d_model = x.shape
        q, k, v = self.qkv(self.attention_norm(x)).chunk(3, dim=-1)
        shape = (batch, length, self.n_heads, d_model // self.n_heads)
        q, k, v = (t.reshape(shape).transpose(1, 2) for t in (q, k, v))
        attended = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=attend,
            dropout_p=self.attention_dropout if self.training else 0.0,
            is_causal=attend is None,
        )
        attended = attended.transpose(1, 2).reshape(batch, length, d_model)
        x = x + self.dropout(self.attention_out(attended))
        return x + self.dropout(self.feed_forward(self.feed_forward_norm(x)))


class SASRecNetwork(nn.Module):
    """Items are tokens 1..n_items (0 = padding); sequences are left-padded to max_seq_len."""

    def __init__(self, n_items: int, config: SASRecConfig):
        super().__init__()
        d_model = config.d_model
        self.max_seq_len = config.max_seq_len
        self.item_embedding = nn.Embedding(n_items + 1, d_model, padding_idx=0)
        self.position_embedding = nn.Embedding(config.max_seq_len, d_model)
        nn.init.normal_(self.item_embedding.weight, std=0.02)
        nn.init.normal_(self.position_embedding.weight, std=0.02)
        with torch.no_grad():
            self.item_embedding.weight[0].zero_()
        self.input_norm = nn.LayerNorm(d_model)
        self.input_dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(
            _CausalSelfAttentionBlock(
                d_model,
                config.n_heads,
                config.ff_multiplier,
                config.dropout,
                config.attention_dropout,
            )
            for _ in range(config.n_layers)
        )
        self.context_output = ContextOutput(d_model, config.use_context)
        self.output_bias = nn.Parameter(torch.zeros(n_items)) if config.use_output_bias else None

    def encode(self, tokens: torch.Tensor, hours: torch.Tensor, dows: torch.Tensor) -> torch.Tensor:
        """(B, L) tokens and target contexts -> (B, L, d) hidden states, causal in L."""
        _, length = tokens.shape
        positions = torch.arange(
            self.max_seq_len - length, self.max_seq_len, device=tokens.device
        )  # left padding: the most recent item always sits at the last position
        x = self.item_embedding(tokens) + self.position_embedding(positions)[None]
        x = self.input_dropout(self.input_norm(x))
        is_padding = tokens == 0
        if bool(is_padding.any()):
            causal = torch.ones(length, length, dtype=torch.bool, device=tokens.device).tril()
            # A real position never attends to padding; a padding position attends to itself
            # only (its output is never used), so no row of the mask is empty.
            attend = causal[None] & ~is_padding[:, None, :]
            attend = attend | torch.eye(length, dtype=torch.bool, device=tokens.device)[None]
            attend = attend[:, None]
        else:
            attend = None  # plain causal attention, the fast path for one request
        for block in self.blocks:
            x = block(x, attend)
        return self.context_output(x, hours, dows)

    def output_weights(self) -> torch.Tensor:
        return self.item_embedding.weight[1:]


SASREC = NeuralArchitecture(
    kind="sasrec", name="SASRec", config_class=SASRecConfig, network_class=SASRecNetwork
)


def train_sasrec(
    *,
    split,
    config: SASRecConfig | None = None,
    seed: int = 2020,
    show_progress: bool | None = None,
    fixed_epochs: int | None = None,
) -> NeuralTrainResult:
    """Train SASRec on a SeqSplit (see trainer.train_neural_model)."""
    return train_neural_model(
        architecture=SASREC,
        split=split,
        config=config or SASRecConfig(),
        seed=seed,
        show_progress=show_progress,
        fixed_epochs=fixed_epochs,
    )
