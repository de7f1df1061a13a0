"""Enrolled people in a SQLite file, and matching embeddings against them.

Schema (version in ``PRAGMA user_version``)::

    people(id, name UNIQUE COLLATE NOCASE, created)
    enrolments(id, person_id, created, created_person)      -- one row per add_samples call
    samples(id, person_id, enrolment_id, created, thumbnail, crop) -- one enrolled face
                                  -- (JPEG crop) and the crop rule that made it (NULL: five-point)
    embeddings(sample_id, model_id, dim, vector, created)    -- float32 unit vector per model

A sample (one enrolled face crop) may carry embeddings from several models; a vector
is only ever compared with vectors of the same ``model_id``. When the embedder changes,
:meth:`Gallery.samples_missing_model` returns the stored crops that lack an embedding
for the new model, and :meth:`Gallery.add_embeddings` stores the re-embedded vectors.
Each thumbnail records which crop (``app.align.CROPS``) made it, so a model that wants
another crop is never fed it as if it were its own (see ``Pipeline.sync_gallery``).
Version 1 files (before crops had names: all five-point) are upgraded on open.

Every write is one transaction (``BEGIN IMMEDIATE``): it stores everything or nothing.
A file that is not a gallery raises :class:`GalleryError` naming the path and is never
modified; a database locked by another program raises :class:`GalleryLockedError`
after ``busy_timeout_s`` instead of hanging.
"""
from __future__ import annotations

import os
import sqlite3
import sys
import threading
import time
import unicodedata
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np

APP_NAME = "facelandmarks"
SCHEMA_VERSION = 2
LEGACY_CROP = "five-point"  # the only crop before samples recorded theirs (schema 1)
MAX_NAME_LENGTH = 100
THUMBNAIL_JPEG_QUALITY = 95

_SCHEMA = """
CREATE TABLE people (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE COLLATE NOCASE,
    created REAL NOT NULL
);
CREATE TABLE enrolments (
    id INTEGER PRIMARY KEY,
    person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    created REAL NOT NULL,
    created_person INTEGER NOT NULL
);
CREATE TABLE samples (
    id INTEGER PRIMARY KEY,
    person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
    enrolment_id INTEGER NOT NULL REFERENCES enrolments(id) ON DELETE CASCADE,
    created REAL NOT NULL,
    thumbnail BLOB,
    crop TEXT
);
CREATE TABLE embeddings (
    sample_id INTEGER NOT NULL REFERENCES samples(id) ON DELETE CASCADE,
    model_id TEXT NOT NULL,
    dim INTEGER NOT NULL,
    vector BLOB NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (sample_id, model_id)
);
CREATE INDEX embeddings_model ON embeddings(model_id);
CREATE INDEX samples_person ON samples(person_id);
CREATE INDEX samples_enrolment ON samples(enrolment_id);
CREATE INDEX enrolments_person ON enrolments(person_id);
"""
_TABLES = {"people", "enrolments", "samples", "embeddings"}


class GalleryError(RuntimeError):
    """The gallery file cannot be used (not a gallery, corrupt, newer schema, I/O error)."""


class GalleryLockedError(GalleryError):
    """Another program holds the gallery's write lock."""


class PersonNotFound(GalleryError, LookupError):
    """No enrolled person has that name."""


@dataclass(frozen=True)
class Person:
    id: int
    name: str
    created: float
    samples: int                                          # enrolled face crops
    embeddings: dict[str, int] = field(default_factory=dict)  # model_id -> vectors


@dataclass(frozen=True)
class Enrolment:
    """What :meth:`Gallery.undo_last_enrolment` removed."""
    id: int
    name: str
    samples: int
    person_removed: bool


@dataclass(frozen=True)
class MissingSample:
    """A stored face crop with no embedding for some model (re-embed it, or say so)."""
    sample_id: int
    name: str
    thumbnail: np.ndarray | None  # BGR uint8, None if the sample was stored without one
    crop: str = LEGACY_CROP       # the crop rule that made the thumbnail


def default_gallery_path() -> Path:
    """``$XDG_DATA_HOME/facelandmarks/gallery.sqlite3`` (``~/.local/share`` when unset).

    On Windows ``%LOCALAPPDATA%``, on macOS ``~/Library/Application Support``.
    Nothing is created here; :class:`Gallery` creates the folder when it opens the file.
    """
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        xdg = os.environ.get("XDG_DATA_HOME", "")
        base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".local" / "share"
    return base / APP_NAME / "gallery.sqlite3"


def clean_name(name: str) -> str:
    """Strip surrounding whitespace; ValueError for empty, overlong or control characters.

    Names are unique ignoring ASCII case (SQLite NOCASE): "alice" adds to "Alice".
    """
    if not isinstance(name, str):
        raise ValueError(f"a person's name must be text, got {type(name).__name__}")
    cleaned = unicodedata.normalize("NFC", name).strip()
    if not cleaned:
        raise ValueError("a person's name must not be empty")
    if len(cleaned) > MAX_NAME_LENGTH:
        raise ValueError(f"name too long ({len(cleaned)} > {MAX_NAME_LENGTH} characters)")
    if any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") for ch in cleaned):
        raise ValueError(f"name {cleaned!r} contains control characters")
    return cleaned


class Gallery:
    """Enrolled people, their face samples and embeddings, in one SQLite file.

    Usable from any thread (calls are serialised); use as a context manager or call
    :meth:`close`.
    """

    def __init__(self, path: str | Path, busy_timeout_s: float = 2.0):
        self.path = Path(path).expanduser()
        self.busy_timeout_s = float(busy_timeout_s)
        self._lock = threading.RLock()
        self._cache: dict[str, tuple[list[str], np.ndarray, np.ndarray]] = {}
        self._cache_version: int | None = None
        if self.path.is_dir():
            raise GalleryError(f"gallery path {self.path} is a folder; expected a file")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise GalleryError(f"cannot create the folder for gallery {self.path}: {exc}") from exc
        try:
            self._conn = sqlite3.connect(str(self.path), timeout=self.busy_timeout_s,
                                         isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise GalleryError(f"cannot open gallery {self.path}: {exc}") from exc
        try:
            with self._errors("open"):
                self._conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_s * 1000)}")
                self._conn.execute("PRAGMA foreign_keys = ON")
                self._init_schema()
        except BaseException:
            self._conn.close()
            raise

    # -- lifecycle -----------------------------------------------------------------
    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> "Gallery":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- writes --------------------------------------------------------------------
    def add_samples(self, name: str, embeddings: np.ndarray, model_id: str,
                    thumbnails: Sequence[np.ndarray | bytes | None] | None = None,
                    crop: str = LEGACY_CROP) -> tuple[int, bool]:
        """Enrol face samples for ``name`` in one transaction.

        ``embeddings`` (N, D) made by ``model_id`` (stored as float32 unit vectors);
        ``thumbnails`` one BGR uint8 face crop (or JPEG bytes, or None) per row, kept so
        the samples can be re-embedded by another model, made by the crop rule ``crop``.
        Returns ``(person_id,
        created_new)``; ``created_new`` is False when the name already existed and the
        samples were added to that person (names match case-insensitively).
        """
        name = clean_name(name)
        model_id = _check_model_id(model_id)
        vectors = _unit_rows(embeddings)
        if len(vectors) == 0:
            raise ValueError("no embeddings to enrol")
        thumbs = [None] * len(vectors) if thumbnails is None else list(thumbnails)
        if len(thumbs) != len(vectors):
            raise ValueError(f"got {len(thumbs)} thumbnails for {len(vectors)} embeddings")
        jpegs = [_encode_thumbnail(t) for t in thumbs]
        now = time.time()
        with self._transaction("add samples") as cur:
            self._check_dim(cur, model_id, vectors.shape[1])
            row = cur.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()
            created_new = row is None
            if created_new:
                person_id = cur.execute("INSERT INTO people(name, created) VALUES (?, ?)",
                                        (name, now)).lastrowid
            else:
                person_id = row[0]
            enrolment_id = cur.execute(
                "INSERT INTO enrolments(person_id, created, created_person) VALUES (?, ?, ?)",
                (person_id, now, int(created_new))).lastrowid
            for vector, jpeg in zip(vectors, jpegs):
                sample_id = cur.execute(
                    "INSERT INTO samples(person_id, enrolment_id, created, thumbnail, crop) "
                    "VALUES (?, ?, ?, ?, ?)", (person_id, enrolment_id, now, jpeg, crop)).lastrowid
                cur.execute("INSERT INTO embeddings(sample_id, model_id, dim, vector, created) "
                            "VALUES (?, ?, ?, ?, ?)",
                            (sample_id, model_id, len(vector), _to_blob(vector), now))
        return person_id, created_new

    def add_embeddings(self, sample_ids: Sequence[int], embeddings: np.ndarray,
                       model_id: str) -> int:
        """Store re-embedded vectors for existing samples (one transaction); returns how many.

        Replaces any vector the same model made for those samples before.
        """
        model_id = _check_model_id(model_id)
        vectors = _unit_rows(embeddings)
        ids = [int(i) for i in sample_ids]
        if len(ids) != len(vectors):
            raise ValueError(f"got {len(ids)} sample ids for {len(vectors)} embeddings")
        if not ids:
            return 0
        now = time.time()
        with self._transaction("add embeddings") as cur:
            self._check_dim(cur, model_id, vectors.shape[1])
            for sample_id, vector in zip(ids, vectors):
                if cur.execute("SELECT 1 FROM samples WHERE id = ?", (sample_id,)).fetchone() \
                        is None:
                    raise LookupError(f"no sample with id {sample_id} in {self.path}")
                cur.execute("INSERT OR REPLACE INTO embeddings"
                            "(sample_id, model_id, dim, vector, created) VALUES (?, ?, ?, ?, ?)",
                            (sample_id, model_id, len(vector), _to_blob(vector), now))
        return len(ids)

    def remove(self, name: str) -> int:
        """Delete a person and all their samples; returns the number of samples removed."""
        name = clean_name(name)
        with self._transaction("remove") as cur:
            person_id = self._person_id(cur, name)
            count = cur.execute("SELECT COUNT(*) FROM samples WHERE person_id = ?",
                                (person_id,)).fetchone()[0]
            cur.execute("DELETE FROM people WHERE id = ?", (person_id,))
        return count

    def rename(self, old: str, new: str) -> None:
        """Rename a person. ValueError if ``new`` already belongs to someone else."""
        old, new = clean_name(old), clean_name(new)
        with self._transaction("rename") as cur:
            person_id = self._person_id(cur, old)
            row = cur.execute("SELECT id, name FROM people WHERE name = ?", (new,)).fetchone()
            if row is not None and row[0] != person_id:
                raise ValueError(f"cannot rename {old!r} to {new!r}: {row[1]!r} is already "
                                 f"enrolled (remove it first, or pick another name)")
            cur.execute("UPDATE people SET name = ? WHERE id = ?", (new, person_id))

    def undo_last_enrolment(self) -> Enrolment | None:
        """Remove the samples of the most recent enrolment still stored (None if none).

        The person goes too if that enrolment created them and they have no other samples.
        """
        with self._transaction("undo") as cur:
            row = cur.execute(
                "SELECT e.id, e.person_id, e.created_person, p.name FROM enrolments e "
                "JOIN people p ON p.id = e.person_id ORDER BY e.id DESC LIMIT 1").fetchone()
            if row is None:
                return None
            enrolment_id, person_id, created_person, name = row
            count = cur.execute("SELECT COUNT(*) FROM samples WHERE enrolment_id = ?",
                                (enrolment_id,)).fetchone()[0]
            cur.execute("DELETE FROM enrolments WHERE id = ?", (enrolment_id,))
            others = cur.execute("SELECT COUNT(*) FROM samples WHERE person_id = ?",
                                 (person_id,)).fetchone()[0]
            person_removed = bool(created_person) and others == 0
            if person_removed:
                cur.execute("DELETE FROM people WHERE id = ?", (person_id,))
        return Enrolment(enrolment_id, name, count, person_removed)

    # -- reads ---------------------------------------------------------------------
    def people(self) -> list[Person]:
        """Everyone enrolled, by name, with sample counts and embedding counts per model."""
        with self._lock, self._errors("read"):
            rows = self._conn.execute(
                "SELECT p.id, p.name, p.created, "
                "(SELECT COUNT(*) FROM samples s WHERE s.person_id = p.id) "
                "FROM people p ORDER BY p.name").fetchall()
            per_model: dict[int, dict[str, int]] = {}
            for person_id, model_id, count in self._conn.execute(
                    "SELECT s.person_id, e.model_id, COUNT(*) FROM embeddings e "
                    "JOIN samples s ON s.id = e.sample_id GROUP BY s.person_id, e.model_id"):
                per_model.setdefault(person_id, {})[model_id] = count
        return [Person(pid, name, created, n, per_model.get(pid, {}))
                for pid, name, created, n in rows]

    def models(self) -> dict[str, int]:
        """model_id -> number of stored embeddings made by it."""
        with self._lock, self._errors("read"):
            return dict(self._conn.execute(
                "SELECT model_id, COUNT(*) FROM embeddings GROUP BY model_id ORDER BY model_id"))

    def samples_missing_model(self, model_id: str) -> list[MissingSample]:
        """Samples with no embedding by ``model_id``: their crops, to re-embed (or report)."""
        model_id = _check_model_id(model_id)
        with self._lock, self._errors("read"):
            rows = self._conn.execute(
                "SELECT s.id, p.name, s.thumbnail, s.crop FROM samples s JOIN people p "
                "ON p.id = s.person_id WHERE NOT EXISTS (SELECT 1 FROM embeddings e "
                "WHERE e.sample_id = s.id AND e.model_id = ?) ORDER BY s.id",
                (model_id,)).fetchall()
        return [MissingSample(sid, name, _decode_thumbnail(blob), crop or LEGACY_CROP)
                for sid, name, blob, crop in rows]

    def match(self, embeddings: np.ndarray, model_id: str,
              threshold: float) -> list[tuple[str | None, float | None]]:
        """Best enrolled person for each row of ``embeddings`` (N, D) from ``model_id``.

        Similarity is the cosine (dot of unit vectors) with the person's closest sample;
        only samples embedded by ``model_id`` are compared. Returns ``(name, similarity)``
        per row, with name None when the best similarity is below ``threshold``, and
        ``(None, None)`` when the gallery holds nothing from this model. ``threshold``
        depends on the model's family (``app.embed.FAMILIES``).
        """
        model_id = _check_model_id(model_id)
        queries = _unit_rows(embeddings, allow_empty=True)
        names, person_of, vectors = self._vectors(model_id)
        if len(queries) == 0:
            return []
        if len(vectors) == 0:
            return [(None, None)] * len(queries)
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
            results.append((names[index] if similarity >= threshold else None, similarity))
        return results

    # -- internals -----------------------------------------------------------------
    def _vectors(self, model_id: str) -> tuple[list[str], np.ndarray, np.ndarray]:
        """(person names, person index per vector, (M, D) vectors) for one model, cached."""
        with self._lock, self._errors("read"):
            version = self._conn.execute("PRAGMA data_version").fetchone()[0]
            if version != self._cache_version:
                self._cache.clear()
                self._cache_version = version
            if model_id not in self._cache:
                rows = self._conn.execute(
                    "SELECT p.name, e.dim, e.vector FROM embeddings e "
                    "JOIN samples s ON s.id = e.sample_id JOIN people p ON p.id = s.person_id "
                    "WHERE e.model_id = ? ORDER BY p.id, s.id", (model_id,)).fetchall()
                names: list[str] = []
                person_of = np.zeros(len(rows), np.int64)
                vectors = []
                for i, (name, dim, blob) in enumerate(rows):
                    if not names or names[-1] != name:
                        names.append(name)
                    person_of[i] = len(names) - 1
                    vectors.append(_from_blob(blob, dim, self.path))
                matrix = np.stack(vectors) if vectors else np.zeros((0, 0), np.float32)
                self._cache[model_id] = (names, person_of, matrix)
            return self._cache[model_id]

    def _init_schema(self) -> None:
        version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in self._conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        if version > SCHEMA_VERSION:
            raise GalleryError(f"gallery {self.path} has schema version {version}, newer than "
                               f"this program understands ({SCHEMA_VERSION}); update the app")
        if version == 1 and _TABLES <= tables:
            with self._transaction("upgrade schema 1 -> 2") as cur:
                cur.execute("ALTER TABLE samples ADD COLUMN crop TEXT")  # NULL: five-point
                cur.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            version = SCHEMA_VERSION
        if version == SCHEMA_VERSION and _TABLES <= tables:
            if self._conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                self._conn.execute("PRAGMA journal_mode = WAL")
            return
        if version != 0 or tables:
            raise GalleryError(f"{self.path} is an SQLite database but not a face gallery "
                               f"(user_version {version}, tables {sorted(tables)}); "
                               f"pass another --gallery path")
        self._conn.execute("PRAGMA journal_mode = WAL")
        with self._transaction("create schema") as cur:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    cur.execute(statement)
            cur.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @contextmanager
    def _transaction(self, what: str) -> Iterator[sqlite3.Cursor]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception."""
        with self._lock, self._errors(what):
            cur = self._conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                yield cur
                cur.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
            finally:
                self._cache.clear()  # data_version does not change for our own commits

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """Turn sqlite3 errors into GalleryError / GalleryLockedError naming the file."""
        try:
            yield
        except sqlite3.OperationalError as exc:
            message = str(exc).lower()
            if "locked" in message or "busy" in message:
                raise GalleryLockedError(
                    f"gallery {self.path} is locked by another program (another copy of this "
                    f"app?); waited {self.busy_timeout_s:g} s. Close it and try again") from exc
            raise GalleryError(f"gallery {self.path}: {what} failed: {exc}") from exc
        except sqlite3.DatabaseError as exc:  # includes "file is not a database", corruption
            if "not a database" in str(exc) or "malformed" in str(exc):
                raise GalleryError(f"{self.path} is not a readable gallery database ({exc}); "
                                   f"it was left untouched. Pass another --gallery path, or "
                                   f"move the file away to start a new gallery") from exc
            raise GalleryError(f"gallery {self.path}: {what} failed: {exc}") from exc

    def _person_id(self, cur: sqlite3.Cursor, name: str) -> int:
        row = cur.execute("SELECT id FROM people WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise PersonNotFound(f"no one named {name!r} is enrolled in {self.path}")
        return row[0]

    def _check_dim(self, cur: sqlite3.Cursor, model_id: str, dim: int) -> None:
        row = cur.execute("SELECT dim FROM embeddings WHERE model_id = ? LIMIT 1",
                          (model_id,)).fetchone()
        if row is not None and row[0] != dim:
            raise ValueError(f"{model_id!r} embeddings in {self.path} have {row[0]} dimensions, "
                             f"got {dim}")


def _check_model_id(model_id: str) -> str:
    if not isinstance(model_id, str) or not model_id.strip():
        raise ValueError("model_id must be a non-empty string naming the embedder")
    return model_id.strip()


def _unit_rows(embeddings: np.ndarray, allow_empty: bool = False) -> np.ndarray:
    """(N, D) finite float -> float32 rows of unit length."""
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


def _to_blob(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


def _from_blob(blob: bytes, dim: int, path: Path) -> np.ndarray:
    if len(blob) != 4 * dim:
        raise GalleryError(f"gallery {path} holds a damaged embedding "
                           f"({len(blob)} bytes for {dim} dimensions)")
    return np.frombuffer(blob, dtype="<f4").astype(np.float32)


def _encode_thumbnail(thumbnail: np.ndarray | bytes | None) -> bytes | None:
    if thumbnail is None:
        return None
    if isinstance(thumbnail, (bytes, bytearray, memoryview)):
        return bytes(thumbnail)
    image = np.asarray(thumbnail)
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or image.size == 0:
        raise ValueError(f"a thumbnail must be a BGR uint8 image, got {image.dtype} "
                         f"{image.shape}")
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, THUMBNAIL_JPEG_QUALITY])
    if not ok:
        raise ValueError(f"cannot encode a thumbnail of shape {image.shape} as JPEG")
    return buf.tobytes()


def _decode_thumbnail(blob: bytes | None) -> np.ndarray | None:
    if blob is None:
        return None
    return cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_COLOR)
