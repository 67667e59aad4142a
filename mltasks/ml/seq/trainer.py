"""The neural continuation machinery that SASRec and GRU4Rec share (no ORM).

- `NeuralConfig`: the training options of both models (and the input length); each model's
  config adds its network's options.
- `NeuralArchitecture`: what the trainer and the loader need to know of one model (its kind,
  display name, config and network classes). `sasrec.SASREC` and `gru4rec.GRU4REC` are the two;
  this module imports neither, the callers pass the one they want.
- `ContextOutput`: the prediction-time context layer both networks end with.
- `NeuralContinuationModel`: the serving object (exact scores, sequence vectors, save/load).
- `train_neural_model`: cross-entropy over the full catalog (or a sampled softmax) at every
  position of every training window, with multi-horizon targets and early stopping on the
  validation metric; deterministic for a seed. See sasrec.py for the references.
  `NeuralConfig.device` ("cpu", "cuda" or "auto"; mltasks.ml.device) is where the network and
  the batches live while training; the trained model comes back on the CPU, and everything the
  serving object returns (vectors, scores, saved weights) is on the CPU whatever its device.

A network is an `nn.Module` built as `network_class(n_items, config)` with
`encode(tokens, hours, dows) -> (B, L, d)` (tokens 1..n_items, 0 = left padding),
`output_weights() -> (n_items, d)` and an `output_bias` parameter of n_items (or None).
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from mltasks.ml.data.sequences import N_DOW_BUCKETS, N_HOUR_BUCKETS, NEUTRAL_DOW, NEUTRAL_HOUR
from mltasks.ml.device import resolve_device
from mltasks.ml.eval.seq_metrics import evaluate_rankings, rank_cases
from mltasks.ml.eval.topk import exclude_items, top_k_indices

logger = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.pt"
NUMPY_PRODUCT_MIN_INPUTS = 64  # score_batch: from this many inputs on, the product is numpy's


@dataclass
class NeuralConfig:
    """Input length and training options shared by SASRecConfig and GRU4RecConfig."""

    max_seq_len: int = 50
    loss: str = "full"  # "full" softmax over the catalog, or "sampled"
    n_sampled_negatives: int = 1024
    label_smoothing: float = 0.1
    mask_seen_in_loss: bool = False  # leave the window's earlier items out of the softmax
    # Also train each position on the 2nd..target_horizon-th next items, the j-th weighted by
    # horizon_decay ** (j - 1): a multi-horizon target in the spirit of PinnerFormer's dense
    # all-action loss, for data whose order within a session is partly arbitrary (HetRec tags of
    # one day are in artist-id order). 1 = next item only. 5 / 0.5 won on HetRec validation.
    target_horizon: int = 5
    horizon_decay: float = 0.5
    learning_rate: float = 3e-3
    weight_decay: float = 0.0
    batch_size: int = 128
    max_epochs: int = 200
    patience: int = 10  # epochs without a better validation metric before stopping
    selection_metric: str = "Recall@20"
    max_train_seconds: float | None = None
    # Intra-op threads while training (None = torch's default). One thread is the default: the
    # model is small, and on a shared 2-core machine two threads made an epoch 5x slower.
    num_threads: int | None = 1
    # Where training runs: "cpu", "cuda" or "auto" (mltasks.ml.device). Not saved with a model:
    # a saved model loads on the CPU whatever trained it.
    device: str = "cpu"


@dataclass(frozen=True)
class NeuralArchitecture:
    """One trainable, servable network family, as the trainer and the loader see it."""

    kind: str  # stored in a saved model's config.json
    name: str  # in reports, logs and progress bars
    config_class: type[NeuralConfig]
    network_class: type[nn.Module]  # network_class(n_items, config)

    def build(self, n_items: int, config_values: dict) -> tuple[nn.Module, NeuralConfig]:
        """A fresh network and its config from JSON config values (unknown keys ignored)."""
        known = {f.name for f in fields(self.config_class)}
        config = self.config_class(**{k: v for k, v in config_values.items() if k in known})
        return self.network_class(n_items, config), config


def _over_budget(config: NeuralConfig, started: float) -> bool:
    budget = config.max_train_seconds
    return budget is not None and time.perf_counter() - started > budget


@contextlib.contextmanager
def torch_threads(num_threads: int | None):
    """Run the block with `num_threads` intra-op threads, then restore the previous setting."""
    previous = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class ContextOutput(nn.Module):
    """Adds hour-of-day and day-of-week embeddings of the prediction time, then LayerNorm."""

    def __init__(self, d_model: int, use_context: bool):
        super().__init__()
        self.use_context = use_context
        self.hour_embedding = nn.Embedding(N_HOUR_BUCKETS, d_model)
        self.dow_embedding = nn.Embedding(N_DOW_BUCKETS, d_model)
        nn.init.normal_(self.hour_embedding.weight, std=0.02)
        nn.init.normal_(self.dow_embedding.weight, std=0.02)
        self.norm = nn.LayerNorm(d_model)

    def forward(
        self, hidden: torch.Tensor, hours: torch.Tensor, dows: torch.Tensor
    ) -> torch.Tensor:
        if self.use_context:
            hidden = hidden + self.hour_embedding(hours) + self.dow_embedding(dows)
        return self.norm(hidden)


def make_training_windows(
    train_items: Sequence[np.ndarray],
    train_hours: Sequence[np.ndarray],
    train_dows: Sequence[np.ndarray],
    max_seq_len: int,
) -> dict[str, np.ndarray]:
    """Cut every training sequence into left-padded windows of (input, next item) pairs.

    A sequence of T items gives T-1 (input position, target) pairs; they are cut from the end
    into windows of at most max_seq_len positions, so every transition is trained exactly once.
    `targets` is -1 at padding, `hours`/`dows` are the contexts of the targets.
    """
    windows_tokens, windows_targets, windows_hours, windows_dows = [], [], [], []
    for items, hours, dows in zip(train_items, train_hours, train_dows, strict=True):
        n_pairs = len(items) - 1
        stop = n_pairs
        while stop > 0:
            start = max(0, stop - max_seq_len)
            windows_tokens.append(items[start:stop] + 1)
            windows_targets.append(items[start + 1 : stop + 1])
            windows_hours.append(hours[start + 1 : stop + 1])
            windows_dows.append(dows[start + 1 : stop + 1])
            stop = start
    n_windows = len(windows_tokens)
    tokens = np.zeros((n_windows, max_seq_len), dtype=np.int64)
    targets = np.full((n_windows, max_seq_len), -1, dtype=np.int64)
    hours_out = np.full((n_windows, max_seq_len), NEUTRAL_HOUR, dtype=np.int64)
    dows_out = np.full((n_windows, max_seq_len), NEUTRAL_DOW, dtype=np.int64)
    for row in range(n_windows):
        length = len(windows_tokens[row])
        tokens[row, -length:] = windows_tokens[row]
        targets[row, -length:] = windows_targets[row]
        hours_out[row, -length:] = windows_hours[row]
        dows_out[row, -length:] = windows_dows[row]
    return {"tokens": tokens, "targets": targets, "hours": hours_out, "dows": dows_out}


def _pad_inputs(inputs: Sequence[np.ndarray], max_seq_len: int) -> np.ndarray:
    length = max(1, min(max_seq_len, max((len(s) for s in inputs), default=1)))
    tokens = np.zeros((len(inputs), length), dtype=np.int64)
    for row, items in enumerate(inputs):
        items = np.asarray(items, dtype=np.int64)[-length:]
        if len(items):
            tokens[row, -len(items) :] = items + 1
    return tokens


class NeuralContinuationModel:
    """Serving object for SASRec and GRU4Rec: exact scores, sequence vectors, save/load."""

    def __init__(
        self,
        *,
        network: nn.Module,
        config: NeuralConfig,
        n_items: int,
        architecture: NeuralArchitecture,
    ):
        self.network = network.eval()
        self.config = config
        self.n_items = n_items
        self.architecture = architecture
        self.kind = architecture.kind
        self.name = architecture.name
        self._item_vectors: np.ndarray | None = None
        self._device_item_vectors: torch.Tensor | None = None  # off-CPU networks only

    # -- inference -------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        """Where the network is: the CPU when served, the training device while training."""
        return next(self.network.parameters()).device

    def _hidden_last(self, inputs, hours, dows) -> torch.Tensor:
        device = self.device
        tokens = torch.from_numpy(_pad_inputs(inputs, self.config.max_seq_len)).to(device)
        length = tokens.shape[1]
        shape = (len(inputs), length)
        hour_tensor = torch.full(shape, NEUTRAL_HOUR, dtype=torch.long, device=device)
        dow_tensor = torch.full(shape, NEUTRAL_DOW, dtype=torch.long, device=device)
        hour_tensor[:, -1] = torch.as_tensor(np.asarray(hours, dtype=np.int64), device=device)
        dow_tensor[:, -1] = torch.as_tensor(np.asarray(dows, dtype=np.int64), device=device)
        return self.network.encode(tokens, hour_tensor, dow_tensor)[:, -1]

    def sequence_vectors(self, inputs, hours, dows) -> np.ndarray:
        """(B, d [+1]) vectors; with an output bias the last coordinate is 1."""
        self.network.eval()
        with torch.inference_mode():
            hidden = self._hidden_last(inputs, hours, dows).cpu().numpy().astype(np.float32)
        if self.network.output_bias is not None:
            hidden = np.hstack([hidden, np.ones((len(hidden), 1), dtype=np.float32)])
        return hidden

    def sequence_vector(
        self, input_item_indices: Sequence[int], hour: int = NEUTRAL_HOUR, dow: int = NEUTRAL_DOW
    ) -> np.ndarray:
        """The final hidden state for one input (oldest item first) at the prediction time."""
        inputs = [np.asarray(input_item_indices, dtype=np.int64)]
        return self.sequence_vectors(inputs, [hour], [dow])[0]

    @property
    def output_item_embeddings(self) -> np.ndarray:
        """(n_items, d [+1]) float32; score = sequence_vector @ output_item_embeddings.T."""
        if self._item_vectors is None:
            with torch.no_grad():
                weights = self.network.output_weights().detach().cpu().numpy().astype(np.float32)
                if self.network.output_bias is not None:
                    bias = self.network.output_bias.detach().cpu().numpy().astype(np.float32)
                    weights = np.hstack([weights, bias[:, None]])
            self._item_vectors = np.ascontiguousarray(weights)
        return self._item_vectors

    def score_batch(self, inputs, hours, dows, *, train_rows=None) -> np.ndarray:
        # torch rather than numpy for the product of a few inputs: it follows torch's thread
        # setting, while a multi-threaded BLAS under numpy made single requests 10x slower at
        # the tail. An evaluation block goes to numpy's BLAS: 512 inputs x 83,000 items took
        # 0.35 s in torch and 0.13 s in numpy.
        vectors = self.sequence_vectors(inputs, hours, dows)
        if self.device.type != "cpu":  # validation while training on a GPU: score there
            if self._device_item_vectors is None:
                self._device_item_vectors = torch.from_numpy(self.output_item_embeddings).to(
                    self.device
                )
            scores = torch.from_numpy(vectors).to(self.device) @ self._device_item_vectors.T
            return scores.cpu().numpy()
        if len(vectors) >= NUMPY_PRODUCT_MIN_INPUTS:
            return vectors @ self.output_item_embeddings.T
        return (torch.from_numpy(vectors) @ torch.from_numpy(self.output_item_embeddings).T).numpy()

    def score(
        self, input_item_indices: Sequence[int], hour: int = NEUTRAL_HOUR, dow: int = NEUTRAL_DOW
    ) -> np.ndarray:
        """Scores of every catalog item for one input sequence (oldest item first)."""
        vector = torch.from_numpy(self.sequence_vector(input_item_indices, hour, dow))
        return torch.mv(torch.from_numpy(self.output_item_embeddings), vector).numpy()

    def recommend(
        self,
        input_item_indices: Sequence[int],
        k: int = 20,
        hour: int = NEUTRAL_HOUR,
        dow: int = NEUTRAL_DOW,
        exclude: Sequence[int] | None = None,
    ) -> np.ndarray:
        """Top-k item indices by exact scoring, excluding `exclude` (default: the input)."""
        scores = self.score(input_item_indices, hour, dow)[None]
        excluded = np.asarray(input_item_indices if exclude is None else exclude, dtype=np.int64)
        return top_k_indices(exclude_items(scores, [excluded]), k)[0]

    def invalidate_cache(self) -> None:
        self._item_vectors = None
        self._device_item_vectors = None

    # -- persistence -----------------------------------------------------------------------
    def save(self, directory: str | Path) -> None:
        """state_dict (CPU tensors only) + JSON config; no pickled modules.

        The config is saved without its training `device`: a saved model loads on the CPU.
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        network = self.network
        if self.device.type != "cpu":
            network = copy.deepcopy(network).cpu()
        torch.save(network.state_dict(), directory / WEIGHTS_FILE)
        config = asdict(self.config)
        config.pop("device", None)
        payload = {"kind": self.kind, "n_items": self.n_items, "config": config}
        (directory / CONFIG_FILE).write_text(json.dumps(payload, indent=2))

    @classmethod
    def load(
        cls, directory: str | Path, *, architectures: Iterable[NeuralArchitecture]
    ) -> NeuralContinuationModel:
        """Read what `save` wrote; its kind must be one of `architectures`."""
        directory = Path(directory)
        payload = json.loads((directory / CONFIG_FILE).read_text())
        by_kind = {architecture.kind: architecture for architecture in architectures}
        if payload["kind"] not in by_kind:
            raise ValueError(f"unknown model kind {payload['kind']!r}")
        architecture = by_kind[payload["kind"]]
        network, config = architecture.build(payload["n_items"], payload["config"])
        state = torch.load(directory / WEIGHTS_FILE, map_location="cpu", weights_only=True)
        network.load_state_dict(state)
        return cls(
            network=network, config=config, n_items=payload["n_items"], architecture=architecture
        )


# -- training -------------------------------------------------------------------------------
@dataclass
class NeuralTrainResult:
    model: NeuralContinuationModel
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    best_valid: dict = field(default_factory=dict)
    train_seconds: float = 0.0


def _seen_mask(tokens: torch.Tensor, valid_positions: torch.Tensor, n_items: int) -> torch.Tensor:
    """(n valid positions, n_items) bool: items in the window up to and including each position."""
    rows, columns = valid_positions.nonzero(as_tuple=True)
    width = tokens.shape[1]
    prefix = tokens[rows] * (torch.arange(width, device=tokens.device)[None, :] <= columns[:, None])
    mask = torch.zeros(len(rows), n_items + 1, dtype=torch.bool, device=tokens.device)
    mask.scatter_(1, prefix, True)
    return mask[:, 1:]


def _future_targets(targets: torch.Tensor, horizon: int) -> torch.Tensor:
    """(B, W) next items -> (B, W, horizon): the 1st..horizon-th next item, -1 past the window."""
    shifted = [targets]
    for step in range(1, horizon):
        pad = torch.full(
            (targets.shape[0], min(step, targets.shape[1])),
            -1,
            dtype=targets.dtype,
            device=targets.device,
        )
        shifted.append(torch.cat([targets[:, step:], pad], dim=1))
    return torch.stack(shifted, dim=-1)


def _loss(
    network: nn.Module,
    hidden: torch.Tensor,
    targets: torch.Tensor,
    config: NeuralConfig,
    n_items: int,
    generator: torch.Generator,
    seen: torch.Tensor | None = None,
) -> torch.Tensor:
    """Label-smoothed cross-entropy of hidden states against their targets.

    `targets` is (N,) next items or (N, horizon) next items first, -1 where absent; the
    horizon-th next item weighs `horizon_decay ** (horizon - 1)` relative to the next one.
    `seen` (full loss only): items already in the sequence, left out of the softmax the way
    evaluation and serving leave them out of the ranking.
    """
    if targets.dim() == 1:
        targets = targets[:, None]
    weights = network.output_weights()
    bias = network.output_bias
    smoothing = config.label_smoothing
    if config.loss == "full":
        logits = F.linear(hidden, weights, bias)
        if targets.shape[1] == 1 and seen is None:
            return F.cross_entropy(logits, targets[:, 0], label_smoothing=smoothing)
        present = targets >= 0
        safe_targets = targets.clamp(min=0)
        if seen is not None:
            seen = seen.clone()
            rows = torch.arange(len(targets), device=targets.device)[:, None].expand_as(targets)
            seen[rows[present], safe_targets[present]] = False  # a target is never masked
            logits = logits.masked_fill(seen, float("-inf"))
        log_probs = torch.log_softmax(logits, dim=-1)
        step_weights = config.horizon_decay ** torch.arange(
            targets.shape[1], dtype=log_probs.dtype, device=log_probs.device
        )
        step_weights = step_weights[None, :] * present
        nll = -(log_probs.gather(1, safe_targets) * step_weights).sum(1) / step_weights.sum(1)
        if seen is None:
            smooth = -log_probs.mean(dim=1)
        else:
            allowed = (~seen).sum(dim=1).clamp(min=1)
            smooth = -log_probs.masked_fill(seen, 0.0).sum(dim=1) / allowed
        return ((1.0 - smoothing) * nll + smoothing * smooth).mean()
    if config.loss != "sampled":
        raise ValueError(f"unknown loss {config.loss!r}; expected 'full' or 'sampled'")
    targets = targets[:, 0]  # the sampled softmax trains on the next item only
    n_negatives = min(config.n_sampled_negatives, n_items)
    # Drawn with the (CPU) generator, then moved: the same negatives on every device.
    negatives = torch.randint(0, n_items, (n_negatives,), generator=generator).to(hidden.device)
    positive_logits = (hidden * weights[targets]).sum(-1, keepdim=True)
    negative_logits = hidden @ weights[negatives].T
    if bias is not None:
        positive_logits = positive_logits + bias[targets][:, None]
        negative_logits = negative_logits + bias[negatives][None]
    # Uniform sampling: the log-Q correction is a constant; accidental hits are masked out.
    negative_logits = negative_logits.masked_fill(negatives[None] == targets[:, None], -1e9)
    logits = torch.cat([positive_logits, negative_logits], dim=1)
    labels = torch.zeros(len(targets), dtype=torch.long, device=hidden.device)
    return F.cross_entropy(logits, labels, label_smoothing=smoothing)


def _shuffled_batches(
    n_windows: int, batch_size: int, rng: np.random.Generator
) -> list[np.ndarray]:
    # Plain random batches: length-bucketed ones train faster per epoch but overweight short
    # sequences (every batch gets one Adam step whatever its number of positions) and lost
    # about a quarter of validation Recall@20 on HetRec.
    order = rng.permutation(n_windows)
    return [order[start : start + batch_size] for start in range(0, n_windows, batch_size)]


def train_neural_model(
    *,
    architecture: NeuralArchitecture,
    split,
    config: NeuralConfig,
    seed: int = 2020,
    show_progress: bool | None = None,
    fixed_epochs: int | None = None,
) -> NeuralTrainResult:
    """Train a network of `architecture` (sasrec.SASREC, gru4rec.GRU4REC) on `split`.

    `split` is a sequences.SeqSplit. Without `fixed_epochs`: trains on its training parts,
    evaluates `split.valid` after every epoch (full ranking, history excluded), stops after
    `config.patience` epochs without improvement and keeps the best epoch's weights. With
    `fixed_epochs`: trains exactly that many epochs, whatever `config.max_train_seconds`, and
    evaluates nothing (a refit whose epoch count was chosen on validation before). Trains on
    `config.device` (ValueError when that is "cuda" and torch has no CUDA); the returned model
    is on the CPU.
    """
    resolve_device(config.device)  # a bad or unavailable device fails before any work
    with torch_threads(config.num_threads):
        return _train_neural_model(architecture, split, config, seed, show_progress, fixed_epochs)


def _train_neural_model(
    architecture: NeuralArchitecture,
    split,
    config: NeuralConfig,
    seed: int,
    show_progress: bool | None,
    fixed_epochs: int | None,
) -> NeuralTrainResult:
    device = resolve_device(config.device)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    n_items = split.n_items
    network, _ = architecture.build(n_items, asdict(config))
    # Built (and seeded) on the CPU, then moved: the initial weights do not depend on the device.
    network = network.to(device)
    model = NeuralContinuationModel(
        network=network, config=config, n_items=n_items, architecture=architecture
    )
    windows = make_training_windows(
        split.train_items, split.train_hours, split.train_dows, config.max_seq_len
    )
    n_windows = len(windows["tokens"])
    if n_windows == 0:
        raise ValueError("no training sequence has two items; nothing to learn from")
    window_lengths = (windows["tokens"] != 0).sum(axis=1)
    optimizer = torch.optim.AdamW(
        network.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    tensors = {key: torch.from_numpy(value).to(device) for key, value in windows.items()}
    metric = config.selection_metric
    validate = fixed_epochs is None and len(split.valid) > 0
    max_epochs = fixed_epochs if fixed_epochs is not None else config.max_epochs
    history: list[dict] = []
    best_value, best_epoch, best_state, best_valid = -math.inf, 0, None, {}
    started = time.perf_counter()
    # tqdm's disable=None shows the bar only on a terminal.
    disable = None if show_progress is None else not show_progress
    for epoch in tqdm(range(1, max_epochs + 1), desc=model.name, disable=disable):
        epoch_started = time.perf_counter()
        network.train()
        total_loss, total_pairs = 0.0, 0
        for batch in _shuffled_batches(n_windows, config.batch_size, rng):
            if total_pairs and fixed_epochs is None and _over_budget(config, started):
                break  # the budget ends the epoch early; validation still picks the best state
            rows = torch.from_numpy(batch).to(device)
            width = int(window_lengths[batch].max())  # drop the all-padding leading columns
            targets = tensors["targets"][rows, -width:]
            tokens = tensors["tokens"][rows, -width:]
            hidden = network.encode(
                tokens,
                tensors["hours"][rows, -width:],
                tensors["dows"][rows, -width:],
            )
            valid_positions = targets >= 0
            seen = None
            if config.mask_seen_in_loss and config.loss == "full":
                seen = _seen_mask(tokens, valid_positions, n_items)
            if config.target_horizon > 1:
                targets = _future_targets(targets, config.target_horizon)
            loss = _loss(
                network,
                hidden[valid_positions],
                targets[valid_positions],
                config,
                n_items,
                generator,
                seen,
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            pairs = int(valid_positions.sum())
            total_loss += float(loss.detach()) * pairs
            total_pairs += pairs
        model.invalidate_cache()
        train_seconds = time.perf_counter() - epoch_started
        valid_metrics = {}
        if validate:
            top_items, _ = rank_cases(model, split.valid, k=100)
            valid_metrics = evaluate_rankings(
                top_items=top_items,
                cases=split.valid,
                n_items=n_items,
                metric_names=("Recall@20", "nDCG@10", "Coverage@100"),
            )
            valid_metrics.pop("Repetition@20", None)
        entry = {
            "epoch": epoch,
            "loss": total_loss / max(total_pairs, 1),
            **{f"valid_{name}": value for name, value in valid_metrics.items()},
            "train_seconds": train_seconds,
            "seconds": time.perf_counter() - epoch_started,
        }
        history.append(entry)
        logger.info(
            "%s epoch %d loss %.4f valid Recall@20 %.4f nDCG@10 %.4f (%.1fs)",
            model.name,
            epoch,
            entry["loss"],
            valid_metrics.get("Recall@20", float("nan")),
            valid_metrics.get("nDCG@10", float("nan")),
            entry["seconds"],
        )
        if not validate:
            best_epoch = epoch
            continue
        value = valid_metrics[metric]
        if value > best_value:
            best_value, best_epoch, best_valid = value, epoch, valid_metrics
            best_state = copy.deepcopy(network.state_dict())
        if epoch - best_epoch >= config.patience:
            logger.info(
                "%s: no better validation %s for %d epochs, stopping",
                model.name,
                metric,
                config.patience,
            )
            break
        if _over_budget(config, started):
            logger.info(
                "%s: time budget of %.0fs reached, stopping", model.name, config.max_train_seconds
            )
            break
    if best_state is not None:
        network.load_state_dict(best_state)
    network.cpu().eval()  # what callers evaluate, time and save is the CPU model serving loads
    model.invalidate_cache()
    return NeuralTrainResult(
        model=model,
        history=history,
        best_epoch=best_epoch,
        best_valid=best_valid,
        train_seconds=time.perf_counter() - started,
    )
