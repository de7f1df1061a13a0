"""Matching embeddings against a gallery's vectors, with numpy.

A vector is only ever compared with vectors of the same ``model_id``. :class:`Matcher`
keeps, per model, the store's vectors as one (M, D) matrix with the person each row belongs
to, rebuilt when the file changes (``PRAGMA data_version``, or a write through the store).
A stored vector that cannot be compared (NaN, infinite, all zero: written by another
program, or damaged) is left out, so no similarity is ever NaN. It also holds vectors that
could not be stored (a gallery in a read-only folder): they are matched against for as
long as it lives, and only while their sample is still stored.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

from ..stages.vectors import unit_rows
from ..types import Match
from .store import check_model_id, ids_and_vectors

if TYPE_CHECKING:
    from .store import GalleryStore

# (person names, person index per vector, (M, D) vectors) of one model
Vectors = tuple[list[str], np.ndarray, np.ndarray]


class Matcher:
    """The best enrolled person for each embedding, from one :class:`GalleryStore`.

    Every call holds the store's lock (:meth:`GalleryStore.reading`), so it is as
    thread-safe as the store."""

    def __init__(self, store: GalleryStore):
        self._store = store
        self._cache: dict[str, Vectors] = {}
        self._cache_version: int | None = None
        # model -> (sample id, its created time) -> vector: ids alone may be reused
        self._held: dict[str, dict[tuple[int, float], np.ndarray]] = {}

    def forget(self) -> None:
        """Drop the cached matrices (the store was written to)."""
        self._cache.clear()

    def held(self, model_id: str) -> dict[tuple[int, float], np.ndarray]:
        """(sample id, created time) -> vector held for ``model_id`` (a checked id)."""
        return self._held.get(model_id, {})

    def hold(self, sample_ids: Sequence[int], embeddings: np.ndarray, model_id: str) -> int:
        """Hold these vectors of stored samples, never writing them; returns how many
        were given (those whose sample is not stored are dropped)."""
        model_id = check_model_id(model_id)
        ids, vectors = ids_and_vectors(sample_ids, embeddings)
        with self._store.reading():
            created = self._store.samples_created(ids)
            held = self._held.setdefault(model_id, {})
            for sample_id, vector in zip(ids, vectors):
                if sample_id in created:
                    held[(sample_id, created[sample_id])] = vector
            self._cache.pop(model_id, None)
        return len(vectors)

    def match(self, embeddings: np.ndarray, model_id: str,
              threshold: float) -> list[Match]:
        """See :meth:`app.people.gallery.Gallery.match`."""
        model_id = check_model_id(model_id)
        queries = unit_rows(embeddings, allow_empty=True)
        names, person_of, vectors = self.vectors(model_id)
        if len(queries) == 0:
            return []
        if len(vectors) == 0:
            return [Match(None, None)] * len(queries)
        if queries.shape[1] != vectors.shape[1]:
            raise ValueError(f"embeddings have {queries.shape[1]} dimensions but {model_id!r} "
                             f"samples in the gallery have {vectors.shape[1]}")
        sims = queries @ vectors.T  # (N, M)
        per_person = np.full((len(queries), len(names)), -np.inf, np.float32)
        np.maximum.at(per_person.T, person_of, sims.T)
        best = per_person.argmax(axis=1)
        results = []
        for row, index in enumerate(best):
            similarity = float(per_person[row, index])
            results.append(Match(names[index] if similarity >= threshold else None,
                                 similarity))
        return results

    def vectors(self, model_id: str) -> Vectors:
        """(person names, person index per vector, (M, D) vectors) for one model, stored
        and held, cached until the file changes."""
        with self._store.reading():
            version = self._store.data_version()
            if version != self._cache_version:
                self._cache.clear()
                self._cache_version = version
            if model_id not in self._cache:
                rows = sorted(self._store.stored_vectors(model_id) + self._held_rows(model_id),
                              key=lambda r: r[:2])
                rows = [(*r[:3], unit) for r in rows if (unit := _usable(r[3])) is not None]
                names: list[str] = []
                person_of = np.zeros(len(rows), np.int64)
                for i, (_, _, name, _) in enumerate(rows):
                    if not names or names[-1] != name:
                        names.append(name)
                    person_of[i] = len(names) - 1
                matrix = (np.stack([r[3] for r in rows]) if rows
                          else np.zeros((0, 0), np.float32))
                self._cache[model_id] = (names, person_of, matrix)
            return self._cache[model_id]

    def _held_rows(self, model_id: str) -> list[tuple]:
        """(person id, sample id, name, vector) of the held vectors whose sample still
        exists (same id and created time)."""
        held = self._held.get(model_id)
        if not held:
            return []
        return [(pid, sid, name, held[(sid, created)])
                for pid, sid, created, name in self._store.sample_owners()
                if (sid, created) in held]


def _usable(vector: np.ndarray) -> np.ndarray | None:
    """``vector`` at unit length, or None for one that cannot be compared (NaN, infinite or
    all zero: written by another program, or damaged), so no similarity is ever NaN."""
    vector = np.asarray(vector, np.float32)
    norm = float(np.linalg.norm(vector)) if np.all(np.isfinite(vector)) else 0.0
    return vector / norm if np.isfinite(norm) and norm > 1e-12 else None
