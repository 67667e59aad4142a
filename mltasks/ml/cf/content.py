"""Content vectors from tags, their mapping into CF space, and content-only scoring.

Content vectors (`fit_tag_content`):
1. Tag counts per item (n_items x n_tags; how many times each tag was applied to the item). For
   tracks, `with_artist_tags` first adds the track's artist's tag counts, scaled, so a track
   nobody tagged still inherits its artist's description.
2. TF-IDF: tf = 1 + log(count) (sublinear, so one tag spammed 100 times does not dominate),
   idf = log((1 + n_items) / (1 + df)) + 1, each row L2-normalised.
3. Truncated SVD (scipy.sparse.linalg.svds) to `dim` components: item vector = row of U * S,
   then L2-normalised, so cosine similarity is a dot product. An item without tags gets the zero
   vector. A tag set folds into the same space as tfidf(tags) @ V (`ContentModel.embed_tags`).

Cold items (`ContentToCF`): ridge regression from content vectors to a CF model's item vectors,
fitted on the items that have interactions, predicts CF vectors for items that have none.

Cold users (`ContentModel.score_cold_user`): profile = mean content vector of the liked items plus
the folded-in chosen tags; score = cosine with every item.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as sla

from mltasks.ml.eval.topk import top_k_indices


def top_tag_features(counts: sp.csr_matrix, max_tags: int = 3000) -> sp.csr_matrix:
    """TF-IDF rows over the `max_tags` tags found on the most items (n_items x max_tags)."""
    document_frequency = np.diff(sp.csc_matrix(counts).indptr)
    keep = np.sort(top_k_indices(document_frequency, max_tags))
    return tfidf(sp.csr_matrix(counts)[:, keep])[0]


def with_artist_tags(
    track_tags: sp.csr_matrix,
    track_artist: np.ndarray,
    artist_tags: sp.csr_matrix,
    artist_weight: float = 0.5,
) -> sp.csr_matrix:
    """Track tag counts plus `artist_weight` x the tag counts of each track's artist.

    `track_artist[t]` is the artist row of track t (-1 for none); both matrices share tag columns.
    """
    track_artist = np.asarray(track_artist)
    has_artist = track_artist >= 0
    selector = sp.csr_matrix(
        (
            np.full(int(has_artist.sum()), artist_weight, dtype=np.float64),
            (np.flatnonzero(has_artist), track_artist[has_artist]),
        ),
        shape=(track_tags.shape[0], artist_tags.shape[0]),
    )
    return (sp.csr_matrix(track_tags, dtype=np.float64) + selector @ artist_tags).tocsr()


def tfidf(counts: sp.csr_matrix, idf: np.ndarray | None = None) -> tuple[sp.csr_matrix, np.ndarray]:
    """Row-L2-normalised sublinear TF-IDF of a count matrix, and the idf used."""
    counts = sp.csr_matrix(counts, dtype=np.float64, copy=True)
    if idf is None:
        document_frequency = np.diff(counts.tocsc().indptr)
        idf = np.log((1 + counts.shape[0]) / (1 + document_frequency)) + 1.0
    weights = counts.copy()
    weights.data = 1.0 + np.log(np.maximum(weights.data, 1e-12))
    weights.data = np.maximum(weights.data, 0.0)
    weights = sp.csr_matrix(weights.multiply(idf[None, :]))
    norms = np.sqrt(np.asarray(weights.multiply(weights).sum(axis=1)).ravel())
    norms[norms == 0] = 1.0
    return sp.csr_matrix(sp.diags(1.0 / norms) @ weights), idf


def _normalize_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)


@dataclass
class ContentModel:
    """Item content vectors (n_items x dim, unit length or zero) and what folds tags in."""

    item_vectors: np.ndarray
    components: np.ndarray  # n_tags x dim: V of the SVD
    idf: np.ndarray
    tag_names: list[str]

    @property
    def dim(self) -> int:
        return self.item_vectors.shape[1]

    @property
    def has_content(self) -> np.ndarray:
        return np.linalg.norm(self.item_vectors, axis=1) > 0

    def embed_tags(self, tag_names: list[str]) -> np.ndarray:
        """Unit vector of a set of tags (unknown tags are ignored; zero vector if none is known)."""
        positions = {name.lower(): i for i, name in enumerate(self.tag_names)}
        columns = sorted({positions[t.lower()] for t in tag_names if t.lower() in positions})
        query = np.zeros(len(self.tag_names))
        query[columns] = self.idf[columns]
        vector = query @ self.components
        norm = np.linalg.norm(vector)
        return vector / norm if norm > 0 else vector

    def user_profiles(self, user_items: sp.csr_matrix) -> np.ndarray:
        """Per user, the mean content vector of the items in their row, L2-normalised."""
        counts = np.asarray((user_items > 0).sum(axis=1)).ravel()
        binary = sp.csr_matrix(user_items > 0, dtype=np.float64)
        profiles = binary @ self.item_vectors / np.maximum(counts, 1)[:, None]
        return _normalize_rows(profiles)

    def score_cold_user(
        self,
        *,
        liked_items: np.ndarray | None = None,
        tag_names: list[str] | None = None,
        tag_weight: float = 1.0,
    ) -> np.ndarray:
        """Content-only scores over every item for a user with no history but likes or tags."""
        profile = np.zeros(self.dim)
        if liked_items is not None and len(liked_items):
            profile += _normalize_rows(self.item_vectors[np.asarray(liked_items)].mean(0)[None])[0]
        if tag_names:
            profile += tag_weight * self.embed_tags(tag_names)
        return self.item_vectors @ profile


def fit_tag_content(
    tag_counts: sp.csr_matrix, tag_names: list[str], *, dim: int = 64, seed: int = 2020
) -> ContentModel:
    """TF-IDF + truncated SVD content vectors (see the module docstring)."""
    weights, idf = tfidf(tag_counts)
    k = max(1, min(dim, min(weights.shape) - 1))
    rng = np.random.default_rng(seed)
    start = rng.standard_normal(min(weights.shape))
    left, singular, right_t = sla.svds(weights, k=k, v0=start, random_state=seed)
    order = np.argsort(-singular)
    left, singular, right_t = left[:, order], singular[order], right_t[order]
    # svds' signs are arbitrary: fix them so the largest-magnitude loading is positive.
    signs = np.sign(right_t[np.arange(k), np.abs(right_t).argmax(axis=1)])
    signs[signs == 0] = 1.0
    left, right_t = left * signs, right_t * signs[:, None]
    item_vectors = _normalize_rows(left * singular)
    if item_vectors.shape[1] < dim:  # tiny catalogs: pad so callers get the dim they asked for
        pad = np.zeros((item_vectors.shape[0], dim - item_vectors.shape[1]))
        item_vectors = np.hstack([item_vectors, pad])
        right_t = np.vstack([right_t, np.zeros((dim - k, right_t.shape[1]))])
    return ContentModel(
        item_vectors=item_vectors.astype(np.float32),
        components=right_t.T.astype(np.float32),
        idf=idf,
        tag_names=list(tag_names),
    )


class ContentToCF:
    """Ridge regression content vector -> CF item vector, to place cold items in CF space."""

    def __init__(self, alpha: float = 1.0):
        self.alpha = alpha
        self.coefficients: np.ndarray | None = None

    def fit(self, content: np.ndarray, cf_vectors: np.ndarray, mask: np.ndarray) -> ContentToCF:
        """Fit on the rows selected by `mask` (warm items that also have content)."""
        x = np.hstack([content[mask], np.ones((int(mask.sum()), 1))]).astype(np.float64)
        y = cf_vectors[mask].astype(np.float64)
        regulariser = self.alpha * np.eye(x.shape[1])
        regulariser[-1, -1] = 0.0  # do not shrink the intercept
        self.coefficients = np.linalg.solve(x.T @ x + regulariser, x.T @ y)
        return self

    def predict(self, content: np.ndarray) -> np.ndarray:
        x = np.hstack([content, np.ones((len(content), 1))])
        return (x @ self.coefficients).astype(np.float32)


def fill_cold_items(
    item_vectors: np.ndarray,
    content: ContentModel,
    warm_items: np.ndarray,
    *,
    alpha: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """CF item vectors with every cold item (no interactions) that has tags predicted from content.

    Returns the new vectors and the indices of the items that were filled.
    """
    warm = np.zeros(len(item_vectors), dtype=bool)
    warm[warm_items] = True
    has_content = content.has_content
    cold = ~warm & has_content
    result = item_vectors.copy()
    if cold.any() and (warm & has_content).sum() > content.dim:
        mapping = ContentToCF(alpha).fit(content.item_vectors, item_vectors, warm & has_content)
        result[cold] = mapping.predict(content.item_vectors[cold])
    return result, np.flatnonzero(cold)
