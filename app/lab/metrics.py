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


# -- verification protocol: a pair that could not be scored (NaN: a photo without a face)
# -- is always wrong, never dropped ---------------------------------------------------------
def accuracy_at(scores: np.ndarray, is_positive: np.ndarray, threshold: float) -> float:
    """Share of pairs decided right when a pair is accepted at score >= ``threshold``;
    an unscored pair (NaN) counts as wrong whatever its label."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(is_positive, dtype=bool)
    scored = ~np.isnan(scores)
    right = (scores[scored] >= threshold) == labels[scored]
    return float(right.sum() / len(scores))


def best_threshold(scores: np.ndarray, is_positive: np.ndarray) -> float:
    """The threshold with the highest :func:`accuracy_at` on these pairs: midway between
    two neighbouring scores (so it does not sit on a seen score), the lowest on ties."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(is_positive, dtype=bool)
    seen = np.unique(scores[~np.isnan(scores)])
    if len(seen) == 0:
        raise ValueError("no scored pairs to choose a threshold on")
    candidates = np.concatenate([[seen[0] - 1e-6], (seen[:-1] + seen[1:]) / 2, [seen[-1] + 1e-6]])
    accuracies = [accuracy_at(scores, labels, t) for t in candidates]
    return float(candidates[int(np.argmax(accuracies))])


def fold_accuracy(scores: np.ndarray, is_positive: np.ndarray, folds: np.ndarray
                  ) -> tuple[float, float, list[float]]:
    """LFW's protocol: for each fold, the threshold chosen on the other folds decides its
    pairs. Returns (mean accuracy over folds, their standard deviation, thresholds)."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(is_positive, dtype=bool)
    folds = np.asarray(folds)
    names = np.unique(folds)
    if len(names) < 2:
        raise ValueError("the fold protocol needs at least two folds")
    accuracies, thresholds = [], []
    for fold in names:
        test = folds == fold
        threshold = best_threshold(scores[~test], labels[~test])
        accuracies.append(accuracy_at(scores[test], labels[test], threshold))
        thresholds.append(threshold)
    return float(np.mean(accuracies)), float(np.std(accuracies)), thresholds


def worst_for_missing(scores: np.ndarray, is_positive: np.ndarray) -> np.ndarray:
    """Scores with each unscored pair (NaN) set to the worst value for its label (a same
    pair below every score, a different pair above), so ROC AUC and TAR@FAR count it wrong."""
    scores = np.array(scores, dtype=np.float64)
    labels = np.asarray(is_positive, dtype=bool)
    missing = np.isnan(scores)
    low, high = (np.nanmin(scores) - 1, np.nanmax(scores) + 1) if (~missing).any() else (-1, 1)
    scores[missing & labels] = low
    scores[missing & ~labels] = high
    return scores
