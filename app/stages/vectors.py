"""Embedding vectors: the one place they are checked and scaled to unit length."""
from __future__ import annotations

import numpy as np


def unit_rows(embeddings: np.ndarray, allow_empty: bool = False) -> np.ndarray:
    """(N, D) finite float -> float32 rows of unit length; ValueError for anything else
    (a 1-D vector, NaN, an all-zero row). ``allow_empty`` lets (0, ...) through."""
    arr = np.asarray(embeddings, dtype=np.float32)
    if arr.ndim == 1 and arr.size:
        raise ValueError("expected embeddings of shape (N, D); wrap one vector as v[None]")
    if arr.ndim != 2 or (arr.shape[1] == 0 and len(arr)):
        if not (allow_empty and arr.size == 0):
            raise ValueError(f"expected embeddings of shape (N, D), got {arr.shape}")
        return np.zeros((0, 0), np.float32)
    if not np.all(np.isfinite(arr)):
        raise ValueError("embeddings contain NaN or infinity")
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    if np.any(norms < 1e-12):
        raise ValueError("an embedding is all zeros")
    return arr / norms
