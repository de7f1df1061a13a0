"""Enrolled people in a SQLite file, and matching embeddings against them.

:class:`Gallery` is what callers use: the records and the file are kept by
:class:`~app.people.store.GalleryStore` (schema, transactions, errors: see
:mod:`app.people.store`), matching by a :class:`~app.people.match.Matcher`
(:mod:`app.people.match`). Every name callers import (the errors, the records,
:func:`clean_name`, :func:`name_key`, :func:`default_gallery_path`, :func:`privacy_warnings`, the
constants) is importable from here.

A sample (one enrolled face crop) may carry embeddings from several models; a vector
is only ever compared with vectors of the same ``model_id``. When the embedder changes,
:meth:`Gallery.samples_missing_model` returns the stored crops that lack an embedding
for the new model, and :meth:`Gallery.add_embeddings` stores the re-embedded vectors
(or, where the file cannot be written, :meth:`Gallery.hold_embeddings` holds them).

Every write is one transaction (``BEGIN IMMEDIATE``): it stores everything or nothing.
A file that is not a gallery raises :class:`GalleryError` naming the path and is never
modified; a database locked by another program raises :class:`GalleryLockedError`
after ``busy_timeout_s`` instead of hanging.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

# re-exported: callers and tests take these from here
from ..paths import default_gallery_path  # noqa: F401
from ..types import Match
from .match import Matcher, Vectors
from .store import (  # noqa: F401
    _SCHEMA,
    LEGACY_CROP,
    MAX_NAME_LENGTH,
    SCHEMA_VERSION,
    THUMBNAIL_JPEG_QUALITY,
    Enrolled,
    Enrolment,
    GalleryError,
    GalleryLockedError,
    GalleryNotFound,
    GalleryStore,
    MissingSample,
    NameTaken,
    Person,
    PersonNotFound,
    check_model_id,
    clean_name,
    name_key,
    privacy_warnings,
)


class Gallery(GalleryStore):
    """Enrolled people, their face samples and embeddings, in one SQLite file.

    Usable from any thread (calls are serialised); use as a context manager or call
    :meth:`close`.
    """

    def __init__(self, path: str | Path, busy_timeout_s: float = 2.0, *,
                 readonly: bool = False, create: bool = True):
        """``readonly``: open for reading only (``people list``, ``run``): works in a
        read-only folder, and a missing file is an empty gallery, created (0600 in a 0700
        folder) only by a first write if ``create``. ``create=False``: a missing file raises
        :class:`GalleryNotFound` (a mistyped path never makes a new gallery)."""
        self._matcher = Matcher(self)
        super().__init__(path, busy_timeout_s, readonly=readonly, create=create)

    def hold_embeddings(self, sample_ids: Sequence[int], embeddings: np.ndarray,
                        model_id: str) -> int:
        """Like :meth:`add_embeddings` for a gallery that cannot be written (a read-only
        folder): the vectors are matched against for as long as this object lives, never
        stored. Returns how many."""
        return self._matcher.hold(sample_ids, embeddings, model_id)

    def samples_missing_model(self, model_id: str) -> list[MissingSample]:
        """Samples with no embedding by ``model_id``: their crops, to re-embed (or report).
        Holds every crop at once: for big galleries page with :meth:`missing_sample_ids`
        and :meth:`samples_by_id`."""
        return self.samples_by_id(self.missing_sample_ids(model_id))

    def missing_sample_ids(self, model_id: str) -> list[int]:
        """Ids of the samples with no embedding by ``model_id`` (stored or held), in order."""
        model_id = check_model_id(model_id)
        held = self._matcher.held(model_id)
        return [sid for sid, created in self.unembedded_samples(model_id)
                if (sid, created) not in held]

    def match(self, embeddings: np.ndarray, model_id: str,
              threshold: float) -> list[Match]:
        """Best enrolled person for each row of ``embeddings`` (N, D) from ``model_id``.

        Similarity is the cosine (dot of unit vectors) with the person's closest sample;
        only samples embedded by ``model_id`` are compared. Returns a
        :class:`~app.types.Match` per row, its name None when the best similarity is
        below ``threshold``, and ``Match(None, None)`` when the gallery holds nothing from
        this model. ``threshold``
        depends on the model's family (``app.stages.embed.FAMILIES``).
        """
        return self._matcher.match(embeddings, model_id, threshold)

    def _vectors(self, model_id: str) -> Vectors:
        """(person names, person index per vector, (M, D) vectors) for one model, cached."""
        return self._matcher.vectors(model_id)

    def _written(self) -> None:
        self._matcher.forget()  # data_version does not change for our own commits
