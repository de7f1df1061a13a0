"""Small, dependency-free metrics shared by the model toolchain and the evaluators."""
from __future__ import annotations

import numpy as np


def roc_auc(scores: np.ndarray, is_positive: np.ndarray) -> float:
    """Area under the ROC curve: P(score of a positive > score of a negative), ties count 1/2."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(is_positive, dtype=bool)
    n_pos, n_neg = labels.sum(), (~labels).sum()
    if n_pos == 0 or n_neg == 0:
        raise ValueError("ROC AUC needs at least one positive and one negative pair")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    # average ranks over ties (1-based)
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    for start, count in zip(first, counts):
        ranks[order[start:start + count]] = start + (count + 1) / 2
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def pair_scores(embeddings: np.ndarray, labels) -> tuple[np.ndarray, np.ndarray]:
    """Cosine similarity and same-identity flag for every unordered pair of unit vectors."""
    embeddings = np.asarray(embeddings, dtype=np.float32)
    labels = np.asarray(labels)
    sims = embeddings @ embeddings.T
    i, j = np.triu_indices(len(embeddings), k=1)
    return sims[i, j], labels[i] == labels[j]


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two (N, D) arrays."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def tar_at_far(scores: np.ndarray, is_positive: np.ndarray, far: float) -> tuple[float, float]:
    """(true accept rate, threshold) at the lowest threshold whose false accept rate is
    <= ``far``: a pair is accepted when its score is strictly above the threshold."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(is_positive, dtype=bool)
    negatives = np.sort(scores[~labels])[::-1]
    if len(negatives) == 0 or labels.sum() == 0:
        raise ValueError("TAR@FAR needs positive and negative pairs")
    allowed = int(np.floor(far * len(negatives)))  # negatives that may be accepted
    threshold = negatives[allowed] if allowed < len(negatives) else -np.inf
    return float((scores[labels] > threshold).mean()), float(threshold)


def best_accuracy(scores: np.ndarray, is_positive: np.ndarray) -> tuple[float, float]:
    """(best accuracy, its threshold) over thresholds at every score; accept = score >= t."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(is_positive, dtype=bool)
    best, best_t = -1.0, float("nan")
    for t in np.unique(scores):
        accuracy = float(((scores >= t) == labels).mean())
        if accuracy > best:
            best, best_t = accuracy, float(t)
    return best, best_t


def rank1(embeddings: np.ndarray, labels, enrolled: np.ndarray) -> float:
    """Share of queries (rows not ``enrolled``) whose most similar enrolled row has the
    same label."""
    embeddings = np.asarray(embeddings, dtype=np.float32)
    labels = np.asarray(labels)
    enrolled = np.asarray(enrolled, dtype=bool)
    if enrolled.all() or not enrolled.any():
        raise ValueError("rank-1 needs both enrolled rows and query rows")
    sims = embeddings[~enrolled] @ embeddings[enrolled].T
    best = labels[enrolled][sims.argmax(axis=1)]
    return float((best == labels[~enrolled]).mean())
