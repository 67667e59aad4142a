"""LightGCN (He et al. 2020) with PyTorch Geometric's model and BPR loss.

Propagation uses one pre-normalised sparse CSR adjacency, D^-1/2 A D^-1/2, built once with scipy
and passed to `torch_geometric.nn.models.LightGCN` built with `normalize=False` (its LGConv then
does one `torch.sparse.mm` per layer instead of re-normalising an edge_index every step).

The graph is the user-item bipartite graph, optionally extended with friend edges (user-user) and
tag nodes linked to the items they describe; only user and item embeddings are scored, so the
trained model is `user_vectors @ item_vectors.T`.

Speed on 2 CPU cores: the paper's batch 2048 / lr 0.001 needs several hundred epochs on HetRec;
`FAST_CONFIG` (tuned on HetRec validation) reaches its best validation nDCG@20 in about 80 epochs,
under a minute (docs/benchmarks/cf.md).

`LightGCNConfig.device` ("cpu", "cuda" or "auto"; mltasks.ml.device) is where the model, the
adjacency and the batches live while training; negatives are sampled with numpy on the CPU either
way, and the returned vectors are numpy arrays on the CPU.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np
import scipy.sparse as sp
import torch
from torch_geometric.nn.models import LightGCN
from tqdm import tqdm

from mltasks.ml.data.interactions import training_weights
from mltasks.ml.device import resolve_device
from mltasks.ml.eval.ranking import evaluate_scorer
from mltasks.ml.eval.topk import keep_top_per_row

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LightGCNConfig:
    """Hyper-parameters. Defaults are the LightGCN paper's (Gowalla) except where noted."""

    embedding_dim: int = 64
    num_layers: int = 3
    lr: float = 0.001
    lr_decay: float = 1.0  # per-epoch multiplicative decay: a high lr early, a fine one late
    lambda_reg: float = 1e-4  # L2 on the layer-0 embeddings of a batch (PyG's BPR loss)
    batch_size: int = 2048
    # Each batch propagates over the whole graph, so an epoch of n_edges / batch_size batches
    # costs time quadratic in the interactions. With a cap, a larger graph gets larger batches
    # (n_edges / max_batches_per_epoch) and an epoch costs time linear in them. None = no cap.
    max_batches_per_epoch: int | None = None
    n_negatives: int = 1  # sampled negatives per positive: more signal per (costly) propagation
    max_epochs: int = 1000
    max_seconds: float | None = None  # wall-clock budget for training, None = no limit
    eval_every: int = 1  # epochs between validation passes
    patience: int = 10  # validation passes without improvement before stopping
    min_delta: float = 1e-4
    edge_weighting: str = "binary"  # adjacency values: "binary" or "log" play counts
    friend_weight: float = 0.0  # value of a user-user friend edge, 0 = no friend edges
    tag_weight: float = 0.0  # value of an item-tag edge (tf-idf scaled), 0 = no tag nodes
    max_tags_per_item: int = 20
    num_threads: int | None = None  # torch intra-op threads while training, None = leave as is
    show_progress: bool = True
    device: str = "cpu"  # where training runs: "cpu", "cuda" or "auto" (mltasks.ml.device)

    def __post_init__(self):
        if self.max_batches_per_epoch is not None and self.max_batches_per_epoch < 1:
            raise ValueError(
                f"max_batches_per_epoch must be at least 1 (got {self.max_batches_per_epoch})"
            )

    def to_dict(self) -> dict:
        return asdict(self)


# Tuned on HetRec validation: lr 0.02 and batch 8192 instead of the paper's 0.001 / 2048 for
# speed on CPU, 4 negatives per positive for more signal per (costly) propagation, L2 1e-3, and
# log play counts as edge weights of the propagation graph. One torch thread: on 2 cores a second
# thread saves ~10% per epoch when the machine is idle (0.49 s vs 0.55 s on HetRec) but makes
# epochs ~25x slower as soon as another process holds a core (small sparse kernels spend their
# time synchronising threads). At most 32 batches an epoch: HetRec (8 batches) and the demo world
# at scale 1 (19) are unaffected; at scale 10 (1.5M training edges) the batch grows to 47k and an
# epoch takes 32 propagations instead of 184.
FAST_CONFIG = LightGCNConfig(
    lr=0.02,
    batch_size=8192,
    max_batches_per_epoch=32,
    n_negatives=4,
    lambda_reg=1e-3,
    edge_weighting="log",
    max_epochs=300,
    eval_every=3,
    patience=5,
    num_threads=1,
)


@dataclass
class LightGCNResult:
    """A trained model as plain arrays, plus what happened while training it."""

    user_vectors: np.ndarray  # n_users x d
    item_vectors: np.ndarray  # n_items x d
    config: LightGCNConfig
    history: list[dict] = field(default_factory=list)  # one dict per epoch
    # The epochs that gave the kept vectors: a whole number, or with a fraction when the time
    # budget cut the last one (e.g. 0.28: the first 28% of the first epoch's batches); refits
    # train as many (`fixed_epochs`).
    best_epoch: float = 0
    best_valid_ndcg: float | None = None
    train_seconds: float = 0.0
    time_to_quality: dict = field(default_factory=dict)

    def score(self, user_indices: np.ndarray) -> np.ndarray:
        return self.user_vectors[user_indices] @ self.item_vectors.T


def normalized_adjacency(
    train_csr: sp.csr_matrix,
    *,
    edge_weighting: str = "binary",
    friends: sp.csr_matrix | None = None,
    friend_weight: float = 0.0,
    item_tags: sp.csr_matrix | None = None,
    tag_weight: float = 0.0,
    max_tags_per_item: int = 20,
) -> sp.csr_matrix:
    """Symmetric D^-1/2 A D^-1/2 over nodes [users | items | tags] (tags only if tag_weight > 0)."""
    n_users, n_items = train_csr.shape
    ratings = sp.csr_matrix(train_csr, dtype=np.float64, copy=True)
    ratings.data = training_weights(ratings.data, edge_weighting)
    user_user = sp.csr_matrix((n_users, n_users))
    if friends is not None and friend_weight > 0:
        user_user = friends.astype(np.float64) * friend_weight
    blocks = [[user_user, ratings], [ratings.T, None]]
    if item_tags is not None and tag_weight > 0:
        item_tag = tag_weight * _tfidf_rows(item_tags, max_tags_per_item)
        blocks = [
            [user_user, ratings, None],
            [ratings.T, None, item_tag],
            [None, item_tag.T, None],
        ]
    adjacency = sp.bmat(blocks, format="csr")
    degree = np.asarray(adjacency.sum(axis=1)).ravel()
    inverse_sqrt = np.zeros_like(degree)
    inverse_sqrt[degree > 0] = degree[degree > 0] ** -0.5
    scaling = sp.diags(inverse_sqrt)
    normalized = (scaling @ adjacency @ scaling).tocsr().astype(np.float32)
    normalized.sort_indices()
    return normalized


def _tfidf_rows(counts: sp.csr_matrix, max_per_row: int) -> sp.csr_matrix:
    """Row-normalised tf-idf of tag counts, keeping each item's `max_per_row` strongest tags."""
    counts = sp.csr_matrix(counts, dtype=np.float64)
    n_rows = counts.shape[0]
    document_frequency = np.diff(counts.tocsc().indptr)
    idf = np.log((1 + n_rows) / (1 + document_frequency)) + 1.0
    tfidf = sp.csr_matrix(counts.multiply(idf[None, :]))
    tfidf.data = np.log1p(tfidf.data)
    strongest = keep_top_per_row(tfidf, max_per_row)
    totals = np.asarray(strongest.sum(axis=1)).ravel()
    inverse_totals = np.divide(1.0, totals, out=np.zeros_like(totals), where=totals > 0)
    return (sp.diags(inverse_totals) @ strongest).tocsr()


def _torch_csr(matrix: sp.csr_matrix) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(
            torch.from_numpy(matrix.indptr.astype(np.int64)),
            torch.from_numpy(matrix.indices.astype(np.int64)),
            torch.from_numpy(matrix.data.astype(np.float32)),
            size=matrix.shape,
            check_invariants=False,
        )


def _sample_negatives(
    rng: np.random.Generator, users: np.ndarray, train_csr: sp.csr_matrix, n_items: int
) -> np.ndarray:
    """Uniform items, resampled (a few rounds) where they hit the user's training items."""
    negatives = rng.integers(0, n_items, size=len(users))
    for _ in range(5):
        collide = np.asarray(train_csr[users, negatives]).ravel() > 0
        if not collide.any():
            break
        negatives[collide] = rng.integers(0, n_items, size=int(collide.sum()))
    return negatives


def train_lightgcn(
    train_csr: sp.csr_matrix,
    *,
    config: LightGCNConfig = FAST_CONFIG,
    valid_csr: sp.csr_matrix | None = None,
    seed: int = 2020,
    friends: sp.csr_matrix | None = None,
    item_tags: sp.csr_matrix | None = None,
    fixed_epochs: float | None = None,
) -> LightGCNResult:
    """Train with BPR on `train_csr` (raw weights; positives are its stored entries).

    With `valid_csr`, validation nDCG@20 (training items excluded) is measured every
    `config.eval_every` epochs, training stops after `config.patience` passes without improvement,
    and the best epoch's embeddings are returned. Without it, training runs `fixed_epochs` (or
    `config.max_epochs`) epochs, as when refitting on train+valid with the epoch count found first;
    `config.max_seconds` does not cut a `fixed_epochs` run. A fractional `fixed_epochs` (a
    budget that ended the first epoch, see `best_epoch`) trains that share of an epoch's
    batches (at least one).

    The budget is checked after every batch: on a large graph one epoch can take minutes
    (214 s at demo scale 30 against a 60 s search budget), so a run stops within one batch of
    its budget, and a first epoch cut short is validated where it stopped.
    Raises ValueError when `config.device` is "cuda" and torch has no CUDA.
    """
    resolve_device(config.device)  # a bad or unavailable device fails before any work
    previous_threads = torch.get_num_threads()
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    try:
        return _train(train_csr, config, valid_csr, seed, friends, item_tags, fixed_epochs)
    finally:
        torch.set_num_threads(previous_threads)


def epoch_batch_size(n_edges: int, config: LightGCNConfig) -> int:
    """Positives per batch: `config.batch_size`, raised so that an epoch over `n_edges` takes
    at most `config.max_batches_per_epoch` batches."""
    if config.max_batches_per_epoch is None:
        return config.batch_size
    return max(config.batch_size, -(-n_edges // config.max_batches_per_epoch))


def _over_budget(config: LightGCNConfig, started: float) -> bool:
    """Whether the run has spent its time budget (`max_seconds`; None: no budget)."""
    return config.max_seconds is not None and time.perf_counter() - started > config.max_seconds


def _train(train_csr, config, valid_csr, seed, friends, item_tags, fixed_epochs) -> LightGCNResult:
    device = resolve_device(config.device)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    n_users, n_items = train_csr.shape
    train_csr = sp.csr_matrix(train_csr, dtype=np.float32)
    adjacency = normalized_adjacency(
        train_csr,
        edge_weighting=config.edge_weighting,
        friends=friends,
        friend_weight=config.friend_weight,
        item_tags=item_tags,
        tag_weight=config.tag_weight,
        max_tags_per_item=config.max_tags_per_item,
    )
    adjacency_tensor = _torch_csr(adjacency).to(device)
    # Built (and seeded) on the CPU, then moved: the initial weights do not depend on the device.
    model = LightGCN(adjacency.shape[0], config.embedding_dim, config.num_layers, normalize=False)
    model = model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=config.lr_decay)
    coo = train_csr.tocoo()
    edge_users, edge_items = coo.row.astype(np.int64), coo.col.astype(np.int64)
    n_epochs = math.ceil(fixed_epochs) if fixed_epochs is not None else config.max_epochs
    batch_size = epoch_batch_size(len(edge_users), config)
    batches_per_epoch = -(-len(edge_users) // batch_size)
    # A fractional refit's last epoch: that share of its batches.
    last_epoch_batches = batches_per_epoch
    if fixed_epochs is not None and fixed_epochs != n_epochs:
        partial = fixed_epochs - (n_epochs - 1)
        last_epoch_batches = min(batches_per_epoch, max(1, round(partial * batches_per_epoch)))

    def embeddings() -> tuple[np.ndarray, np.ndarray]:
        model.eval()
        with torch.no_grad():
            out = model.get_embedding(adjacency_tensor).cpu().numpy()
        model.train()
        return out[:n_users].copy(), out[n_users : n_users + n_items].copy()

    history: list[dict] = []
    best = {"ndcg": -np.inf, "epoch": 0, "vectors": None}
    passes_without_gain = 0
    trained_epochs: float = 0
    start = time.perf_counter()
    progress = tqdm(
        range(1, n_epochs + 1), desc="LightGCN", disable=not config.show_progress, leave=False
    )
    for epoch in progress:
        epoch_start = time.perf_counter()
        order = rng.permutation(len(edge_users))
        total_loss, n_batches = 0.0, 0
        epoch_batches = last_epoch_batches if epoch == n_epochs else batches_per_epoch
        for batch_start in range(0, len(order), batch_size):
            if n_batches >= epoch_batches or (
                fixed_epochs is None and n_batches and _over_budget(config, start)
            ):
                break
            batch = order[batch_start : batch_start + batch_size]
            users, positives = edge_users[batch], edge_items[batch]
            if config.n_negatives > 1:
                users = np.repeat(users, config.n_negatives)
                positives = np.repeat(positives, config.n_negatives)
            negatives = _sample_negatives(rng, users, train_csr, n_items)
            users_t = torch.from_numpy(users).to(device)
            positives_t = torch.from_numpy(positives + n_users).to(device)
            negatives_t = torch.from_numpy(negatives + n_users).to(device)
            out = model.get_embedding(adjacency_tensor)
            user_emb = out[users_t]
            positive_rank = (user_emb * out[positives_t]).sum(dim=-1)
            negative_rank = (user_emb * out[negatives_t]).sum(dim=-1)
            node_ids = torch.cat([users_t, positives_t, negatives_t]).unique()
            # PyG divides the L2 term by the number of pairs; keep it per positive.
            loss = model.recommendation_loss(
                positive_rank,
                negative_rank,
                node_id=node_ids,
                lambda_reg=config.lambda_reg * config.n_negatives,
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total_loss += float(loss.detach())
            n_batches += 1
        record = {
            "epoch": epoch,
            "loss": total_loss / max(n_batches, 1),
            "lr": scheduler.get_last_lr()[0],
            "batch_size": batch_size,
            "epoch_seconds": time.perf_counter() - epoch_start,
        }
        # The epochs trained so far, with a fraction when this one stopped short (the budget,
        # or a fractional refit's last epoch).
        trained_epochs = epoch
        if n_batches < batches_per_epoch:
            record["batches"] = f"{n_batches}/{batches_per_epoch}"
            trained_epochs = epoch - 1 + round(n_batches / batches_per_epoch, 4)
        out_of_time = _over_budget(config, start)
        # A run whose budget ends before its first scheduled validation pass (a large graph,
        # a search trial) is validated where it stopped, so that it has a score.
        evaluate_now = valid_csr is not None and (
            epoch % config.eval_every == 0
            or epoch == n_epochs
            or (out_of_time and best["vectors"] is None)
        )
        if evaluate_now:
            user_vectors, item_vectors = embeddings()
            metrics = evaluate_scorer(
                lambda u, uv=user_vectors, iv=item_vectors: uv[u] @ iv.T,
                target=valid_csr,
                exclude=train_csr,
                metric_names=("Recall@20", "nDCG@20"),
            )
            record.update({f"valid_{name}": value for name, value in metrics.items()})
            if metrics["nDCG@20"] > best["ndcg"] + config.min_delta:
                best = {
                    "ndcg": metrics["nDCG@20"],
                    "epoch": trained_epochs,
                    "vectors": (user_vectors, item_vectors),
                }
                passes_without_gain = 0
            else:
                passes_without_gain += 1
        scheduler.step()
        record["elapsed_seconds"] = time.perf_counter() - start
        history.append(record)
        logger.info(
            "LightGCN epoch %d loss %.4f valid nDCG@20 %s recall@20 %s (%.2fs, total %.1fs)",
            epoch,
            record["loss"],
            _format(record.get("valid_nDCG@20")),
            _format(record.get("valid_Recall@20")),
            record["epoch_seconds"],
            record["elapsed_seconds"],
        )
        progress.set_postfix(
            loss=f"{record['loss']:.4f}", ndcg=_format(record.get("valid_nDCG@20"))
        )
        if evaluate_now and passes_without_gain >= config.patience:
            logger.info("LightGCN early stop at epoch %d (best epoch %d)", epoch, best["epoch"])
            break
        # A refit trains the epochs chosen on validation whatever the budget: cut short, the
        # test and served models would be other models than the one selected.
        if fixed_epochs is None and _over_budget(config, start):
            logger.info(
                "LightGCN stopped by its %.0fs budget at epoch %d", config.max_seconds, epoch
            )
            break
    train_seconds = time.perf_counter() - start
    if best["vectors"] is not None:
        user_vectors, item_vectors = best["vectors"]
        best_epoch = best["epoch"]
    else:
        user_vectors, item_vectors = embeddings()
        best_epoch = trained_epochs if fixed_epochs is None else fixed_epochs
    result = LightGCNResult(
        user_vectors=user_vectors,
        item_vectors=item_vectors,
        config=config,
        history=history,
        best_epoch=best_epoch,
        best_valid_ndcg=None if best["vectors"] is None else float(best["ndcg"]),
        train_seconds=train_seconds,
        time_to_quality=time_to_quality(history, best=result_best(best)),
    )
    if result.time_to_quality:
        logger.info("LightGCN time to quality: %s", result.time_to_quality)
    return result


def result_best(best: dict) -> float | None:
    return None if best["vectors"] is None else float(best["ndcg"])


def time_to_quality(
    history: list[dict], fractions=(0.95, 0.99, 1.0), best: float | None = None
) -> dict:
    """Seconds (and epochs) until validation nDCG@20 first reached each fraction of `best`
    (the kept epoch's value; default the highest value in `history`)."""
    scored = [r for r in history if "valid_nDCG@20" in r]
    if not scored:
        return {}
    best = best if best is not None else max(r["valid_nDCG@20"] for r in scored)
    result = {"best_valid_nDCG@20": best}
    for fraction in fractions:
        first = next(r for r in scored if r["valid_nDCG@20"] >= fraction * best)
        result[f"{fraction:.0%}"] = {
            "seconds": round(first["elapsed_seconds"], 2),
            "epoch": first["epoch"],
        }
    return result


def _format(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
