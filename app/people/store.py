"""The gallery's SQLite file: schema, connections, transactions, errors, and the records.

Schema (version in ``PRAGMA user_version``)::

    people(id, name UNIQUE COLLATE NOCASE, created)   -- one person per name_key(name)
    enrolments(id, person_id, created, created_person)      -- one row per add_samples call
    samples(id, person_id, enrolment_id, created, thumbnail, crop) -- one enrolled face
                                  -- (JPEG crop) and the crop rule that made it (NULL: five-point)
    embeddings(sample_id, model_id, dim, vector, created)    -- float32 unit vector per model

A sample (one enrolled face crop) may carry embeddings from several models. Each thumbnail
records which crop (``app.stages.align.CROPS``) made it, so a model that wants another crop
is never fed it as if it were its own (see ``Pipeline.sync_gallery``). Version 1 files
(before crops had names: all five-point) are upgraded on open.

:class:`GalleryDatabase` opens the file and runs transactions; :class:`GalleryStore` reads
and writes people, enrolments, samples and embeddings. Every write is one transaction
(``BEGIN IMMEDIATE``): it stores everything or nothing. A file that is not a gallery raises
:class:`GalleryError` naming the path and is never modified; a database locked by another
program raises :class:`GalleryLockedError` after ``busy_timeout_s`` instead of hanging.
"""
from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import sys
import tempfile
import threading
import time
import unicodedata
import urllib.parse
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Self, Sequence

import cv2
import numpy as np

from ..stages.vectors import unit_rows

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
# Control, format (zero-width, bidi overrides), separators, surrogates, private use.
_HIDDEN_CATEGORIES = ("Cc", "Cf", "Zl", "Zp", "Cs", "Co")
# Unicode's Default_Ignorable_Code_Point characters outside those categories (they draw
# as nothing: the Hangul fillers, the combining grapheme joiner, variation selectors...)
# and the blank Braille pattern, which draws as a space.
_INVISIBLE_RANGES = ((0x034F, 0x034F), (0x115F, 0x1160), (0x17B4, 0x17B5), (0x180B, 0x180F),
                     (0x2800, 0x2800), (0x3164, 0x3164), (0xFE00, 0xFE0F), (0xFFA0, 0xFFA0),
                     (0xE0000, 0xE0FFF))


class GalleryError(RuntimeError):
    """The gallery file cannot be used (not a gallery, corrupt, newer schema, I/O error)."""


class GalleryLockedError(GalleryError):
    """Another program holds the gallery's write lock."""


class GalleryNotFound(GalleryError, FileNotFoundError):
    """No gallery file where one was expected (reading commands never create one)."""


class PersonNotFound(GalleryError, LookupError):
    """No enrolled person has that name."""


class NameTaken(ValueError):
    """A rename to a name someone else already has."""


@dataclass(frozen=True)
class Person:
    id: int
    name: str
    created: float
    samples: int                                          # enrolled face crops
    embeddings: dict[str, int] = field(default_factory=dict)  # model_id -> vectors


@dataclass(frozen=True)
class Enrolment:
    """What :meth:`Gallery.undo_enrolment` (or ``undo_last_enrolment``) removed."""
    id: int
    name: str
    samples: int
    person_removed: bool


@dataclass(frozen=True)
class Enrolled:
    """What :meth:`Gallery.enrol` stored: its enrolment id is the handle for an undo."""
    enrolment_id: int
    person_id: int
    name: str
    samples: int
    created_person: bool


@dataclass(frozen=True)
class MissingSample:
    """A stored face crop with no embedding for some model (re-embed it, or say so)."""
    sample_id: int
    name: str
    thumbnail: np.ndarray | None  # BGR uint8, None if the sample was stored without one
    crop: str = LEGACY_CROP       # the crop rule that made the thumbnail


def clean_name(name: str) -> str:
    """NFC-normalise, make every space character (no-break, ideographic, ...) a plain
    space, one between words, none around; ValueError for empty, overlong, or holding
    control, format (zero-width, bidi overrides: category Cf) or other invisible
    characters (Hangul fillers, the combining grapheme joiner), which make look-alike
    names.

    Names are one person's when their :func:`name_key` is the same: "émile zola" adds to
    "Émile Zola".
    """
    if not isinstance(name, str):
        raise ValueError(f"a person's name must be text, got {type(name).__name__}")
    words = _spaced(unicodedata.normalize("NFC", name)).strip().split(" ")
    cleaned = " ".join(word for word in words if word)
    if not cleaned:
        raise ValueError("a person's name must not be empty")
    if len(cleaned) > MAX_NAME_LENGTH:
        raise ValueError(f"name too long ({len(cleaned)} > {MAX_NAME_LENGTH} characters)")
    for ch in cleaned:
        if unicodedata.category(ch) in _HIDDEN_CATEGORIES or _invisible(ch):
            what = unicodedata.name(ch, "a control character")
            raise ValueError(f"name {cleaned!r} contains U+{ord(ch):04X} ({what}), an invisible "
                             f"or control character that would make a look-alike of another "
                             f"name; type the name without it")
    return cleaned


def name_key(name: str) -> str:
    """The identity of a name: two names with the same key are one person (NFC, then
    Unicode case folding, so "ÉMILE" is "émile"). Every lookup and the gallery's
    uniqueness use it."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", name).casefold())


def _spaced(text: str) -> str:
    """Space separators (category Zs: no-break, ideographic, thin...) as plain spaces."""
    return "".join(" " if unicodedata.category(ch) == "Zs" else ch for ch in text)


def _invisible(ch: str) -> bool:
    code = ord(ch)
    return any(low <= code <= high for low, high in _INVISIBLE_RANGES)


class GalleryDatabase:
    """One gallery file's SQLite connection: opening (read-only or writable), the schema
    and its upgrades, transactions, and SQLite errors turned into :class:`GalleryError`.

    Usable from any thread: calls are serialised by one re-entrant lock.
    """

    def __init__(self, path: str | Path, busy_timeout_s: float = 2.0, *,
                 readonly: bool = False, create: bool = True):
        """Open ``path``; the modes are described at :class:`~app.people.gallery.Gallery`."""
        self.path = Path(path).expanduser()
        self.busy_timeout_s = float(busy_timeout_s)
        self._lock = threading.RLock()
        self._create = create
        self.writable = False          # a read-write connection, past SQLite's quick_check
        self.warnings: list[str] = []  # for the caller to show (e.g. readable by others)
        if self.path.is_dir():
            raise GalleryError(f"gallery path {self.path} is a folder; expected a file")
        if not self.path.exists() and not create:
            raise GalleryNotFound(
                f"no gallery at {self.path} (check the path; reading it creates nothing). "
                f"Enrol someone there first: python -m app enroll --gallery {self.path} "
                f"--name NAME PHOTO")
        if self.path.exists() and not os.access(self.path, os.R_OK):
            raise GalleryError(_unreadable(self.path))
        if self.path.exists():
            self.warnings += privacy_warnings(self.path)
        self._conn = self._connect_readonly() if readonly else self._connect_writable()

    # -- lifecycle -----------------------------------------------------------------
    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def can_write(self) -> bool:
        """Whether a write could succeed here (the file and its folder are writable; a
        folder not made yet, as on a fresh install, counts as its nearest existing parent,
        where the first write creates it)."""
        if self.writable:
            return True
        folder = self.path.parent
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        if not os.access(folder, os.W_OK):   # False on a read-only file system
            return False
        return not self.path.exists() or os.access(self.path, os.W_OK)

    # -- connections ---------------------------------------------------------------
    def _connect_writable(self) -> sqlite3.Connection:
        """Read-write, creating the folder (0700) and file (0600) when missing."""
        _create_private(self.path)
        if not self.can_write():
            raise GalleryError(f"gallery {self.path} is read-only here (SQLite needs to write "
                               f"the file and its folder {self.path.parent}); reading works, "
                               f"but to change it copy it to a folder you can write to and "
                               f"pass that --gallery")
        try:
            conn = sqlite3.connect(str(self.path), timeout=self.busy_timeout_s,
                                   isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise GalleryError(f"cannot open gallery {self.path}: {exc}") from exc
        self._setup(conn, readonly=False)
        try:
            self._quick_check(conn)  # opened to write: never write into a damaged gallery
        except BaseException:
            conn.close()
            raise
        self.writable = True
        return conn

    def _connect_readonly(self) -> sqlite3.Connection:
        """``mode=ro``; where SQLite cannot make its -shm file (read-only folder) nobody can
        write either, so ``immutable=1`` is safe, unless a -wal file holds committed
        changes, which ``immutable=1`` would ignore: then a private copy with its WAL is
        read into memory (:meth:`_read_with_wal`). A missing or empty file: empty, in
        memory."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
            self._setup(conn, readonly=False)
            return conn
        uri = "file:" + urllib.parse.quote(str(self.path.resolve()))
        last: sqlite3.Error | None = None
        for flags in ("?mode=ro", "?mode=ro&immutable=1"):
            if "immutable" in flags and _has_wal(self.path):
                conn = self._read_with_wal()
                self._setup(conn, readonly=True)
                return conn
            try:
                conn = sqlite3.connect(uri + flags, uri=True, timeout=self.busy_timeout_s,
                                       isolation_level=None, check_same_thread=False)
                conn.execute("PRAGMA user_version").fetchone()
            except sqlite3.DatabaseError as exc:
                last = exc
                if "not a database" in str(exc) or "malformed" in str(exc):
                    break
                continue
            self._setup(conn, readonly=True)
            return conn
        with self._errors("open"):
            raise last  # type: ignore[misc]

    def _read_with_wal(self) -> sqlite3.Connection:
        """The gallery as its -wal file leaves it, in memory: the file and its WAL copied
        into a private temporary folder (0700, removed at once), opened there (SQLite
        applies the WAL) and copied into memory."""
        wal = Path(f"{self.path}-wal")
        try:
            with tempfile.TemporaryDirectory(prefix="facelandmarks-gallery-") as folder:
                copy = Path(folder) / "gallery.sqlite3"
                shutil.copyfile(self.path, copy)
                shutil.copyfile(wal, f"{copy}-wal")
                source = sqlite3.connect(str(copy))
                try:
                    conn = sqlite3.connect(":memory:", isolation_level=None,
                                           check_same_thread=False)
                    source.backup(conn)
                finally:
                    source.close()
        except (OSError, sqlite3.Error) as exc:
            raise GalleryError(
                f"gallery {self.path} has changes in {wal.name} that cannot be read here "
                f"(its folder is read-only and a private copy failed: "
                f"{getattr(exc, 'strerror', None) or exc}); copy {self.path.name} and "
                f"{wal.name} to a folder you can write to and pass that --gallery") from exc
        return conn

    def _setup(self, conn: sqlite3.Connection, readonly: bool) -> None:
        try:
            with self._errors("open"):
                conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_s * 1000)}")
                conn.execute("PRAGMA foreign_keys = ON")
                conn.create_function("name_key", 1, _sql_name_key, deterministic=True)
                self._init_schema(conn, readonly)
        except BaseException:
            conn.close()
            raise

    def _ensure_writable(self) -> None:
        """Before the first write: reopen read-write if opened read-only (the read-write
        connection passes SQLite's quick_check first: never write into a damaged gallery)."""
        if self.writable:
            return
        if not self._create and not self.path.exists():
            raise GalleryNotFound(f"no gallery at {self.path}")
        conn = self._connect_writable()
        self._conn.close()
        self._conn = conn

    def _quick_check(self, conn: sqlite3.Connection) -> None:
        """GalleryError with a way to recover if SQLite finds the file damaged (a 10,000-
        person gallery, 131 MB, takes about 70 ms with the file in the page cache)."""
        try:
            rows = [r[0] for r in conn.execute("PRAGMA quick_check(5)").fetchall()]
        except sqlite3.DatabaseError as exc:
            rows = [str(exc)]
        if rows != ["ok"]:
            raise GalleryError(
                f"gallery {self.path} is damaged (SQLite quick_check: {'; '.join(rows)[:300]}); "
                f"nothing was written to it. {self._salvage()}")

    def _salvage(self) -> str:
        """How to get the people out of a damaged gallery file."""
        return (f"Keep a copy (cp {self.path} {self.path}.bak), then salvage it with the "
                f"sqlite3 tool (sqlite3 {self.path}.bak .recover | sqlite3 NEW.sqlite3, and "
                f"use --gallery NEW.sqlite3) or move it away and enrol the people again")

    def _init_schema(self, conn: sqlite3.Connection, readonly: bool) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        if version > SCHEMA_VERSION and _TABLES <= tables:
            raise GalleryError(f"gallery {self.path} has schema version {version}, newer than "
                               f"this program understands ({SCHEMA_VERSION}); update the app")
        self._crop_column = "s.crop"
        if version == 1 and _TABLES <= tables:
            if readonly:  # read as it is: every thumbnail of schema 1 is five-point
                self._crop_column = "NULL"
            else:
                _upgrade_1_to_2(conn)
            version = SCHEMA_VERSION
        if version == SCHEMA_VERSION and _TABLES <= tables:
            if not readonly and conn.execute("PRAGMA journal_mode").fetchone()[0] not in (
                    "wal", "memory"):
                conn.execute("PRAGMA journal_mode = WAL")
            return
        if version != 0 or tables:
            raise GalleryError(f"{self.path} is an SQLite database but not a face gallery "
                               f"(user_version {version}, tables {sorted(tables)}); "
                               f"pass another --gallery path")
        if readonly:
            raise GalleryError(f"{self.path} is an empty SQLite database, not a gallery")
        conn.execute("PRAGMA journal_mode = WAL")
        with _immediate(conn) as cur:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    cur.execute(statement)
            cur.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    # -- transactions and errors ---------------------------------------------------
    @contextmanager
    def _transaction(self, what: str) -> Iterator[sqlite3.Cursor]:
        """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception."""
        with self._lock, self._errors(what):
            self._ensure_writable()
            try:
                with _immediate(self._conn) as cur:
                    yield cur
            finally:
                self._written()

    def _written(self) -> None:
        """After every transaction, committed or not, still holding the lock: drop what
        was derived from the data (``PRAGMA data_version`` does not change for our own
        commits). Nothing here; subclasses that cache override it."""

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Hold the lock for a series of reads; SQLite errors become GalleryError."""
        with self._lock, self._errors("read"):
            yield

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
            if "malformed" in str(exc):
                raise GalleryError(f"gallery {self.path} is damaged ({exc}); it was left "
                                   f"untouched. {self._salvage()}") from exc
            if "not a database" in str(exc):
                raise GalleryError(f"{self.path} is not a readable gallery database ({exc}); "
                                   f"it was left untouched. Pass another --gallery path, or "
                                   f"move the file away to start a new gallery") from exc
            raise GalleryError(f"gallery {self.path}: {what} failed: {exc}") from exc


class GalleryStore(GalleryDatabase):
    """The records of one gallery file: people, enrolments, samples and embeddings."""

    # -- writes --------------------------------------------------------------------
    def add_samples(self, name: str, embeddings: np.ndarray, model_id: str,
                    thumbnails: Sequence[np.ndarray | bytes | None] | None = None,
                    crop: str = LEGACY_CROP) -> tuple[int, bool]:
        """Enrol face samples for ``name`` in one transaction.

        ``embeddings`` (N, D) made by ``model_id`` (stored as float32 unit vectors);
        ``thumbnails`` one BGR uint8 face crop (or JPEG bytes, or None) per row, kept so
        the samples can be re-embedded by another model, made by the crop rule ``crop``.
        Returns ``(person_id, created_new)``; ``created_new`` is False when the name
        already existed and the samples were added to that person (names match
        case-insensitively).
        """
        done = self.enrol(name, embeddings, model_id, thumbnails, crop)
        return done.person_id, done.created_person

    def enrol(self, name: str, embeddings: np.ndarray, model_id: str,
              thumbnails: Sequence[np.ndarray | bytes | None] | None = None,
              crop: str = LEGACY_CROP, check: Callable[[], object] | None = None) -> Enrolled:
        """:meth:`add_samples`, returning the stored enrolment (its id undoes exactly it).

        ``check`` runs inside the write transaction, before anything is stored, and may
        raise to store nothing (``app.people.enroll``: the same face under another name):
        two enrolments at once cannot both pass it."""
        name = clean_name(name)
        model_id = check_model_id(model_id)
        vectors = unit_rows(embeddings)
        if len(vectors) == 0:
            raise ValueError("no embeddings to enrol")
        thumbs = [None] * len(vectors) if thumbnails is None else list(thumbnails)
        if len(thumbs) != len(vectors):
            raise ValueError(f"got {len(thumbs)} thumbnails for {len(vectors)} embeddings")
        jpegs = [_encode_thumbnail(t) for t in thumbs]
        now = time.time()
        with self._transaction("add samples") as cur:
            self._check_dim(cur, model_id, vectors.shape[1])
            if check is not None:
                check()   # inside the write lock: no other enrolment can slip in between
            row = _find_person(cur, name)
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
            stored = cur.execute("SELECT name FROM people WHERE id = ?",
                                 (person_id,)).fetchone()[0]
        return Enrolled(enrolment_id, person_id, stored, len(vectors), created_new)

    def add_embeddings(self, sample_ids: Sequence[int], embeddings: np.ndarray,
                       model_id: str) -> int:
        """Store re-embedded vectors for existing samples (one transaction); returns how many.

        Replaces any vector the same model made for those samples before.
        """
        model_id = check_model_id(model_id)
        ids, vectors = ids_and_vectors(sample_ids, embeddings)
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
            row = _find_person(cur, new)
            if row is not None and row[0] != person_id:
                raise NameTaken(f"cannot rename {old!r} to {new!r}: {row[1]!r} is already "
                                 f"enrolled (remove it first, or pick another name)")
            cur.execute("UPDATE people SET name = ? WHERE id = ?", (new, person_id))

    def undo_last_enrolment(self) -> Enrolment | None:
        """Remove the samples of the most recent enrolment still stored (None if none).

        The person goes too if that enrolment created them and they have no other samples.
        (The window undoes only its own enrolments, by id: :meth:`undo_enrolment`.)
        """
        with self._transaction("undo") as cur:
            row = cur.execute("SELECT id FROM enrolments ORDER BY id DESC LIMIT 1").fetchone()
            return None if row is None else self._undo(cur, row[0])

    def undo_enrolment(self, enrolment_id: int) -> Enrolment | None:
        """Remove the samples of one enrolment (None if it is no longer stored: removed
        with its person, say). The person goes only if this enrolment created them and
        no other samples remain, so a person who existed before it is never removed."""
        with self._transaction("undo") as cur:
            return self._undo(cur, int(enrolment_id))

    def _undo(self, cur: sqlite3.Cursor, enrolment_id: int) -> Enrolment | None:
        row = cur.execute(
            "SELECT e.person_id, e.created_person, p.name FROM enrolments e "
            "JOIN people p ON p.id = e.person_id WHERE e.id = ?", (enrolment_id,)).fetchone()
        if row is None:
            return None
        person_id, created_person, name = row
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
        with self.reading():
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

    def thumbnail_jpeg(self, name: str) -> bytes | None:
        """JPEG bytes of ``name``'s first stored face crop (None: stored without one);
        :class:`PersonNotFound` for an unknown name."""
        name = clean_name(name)
        with self.reading():
            person_id = self._person_id(self._conn.cursor(), name)
            row = self._conn.execute("SELECT thumbnail FROM samples WHERE person_id = ? AND "
                                     "thumbnail IS NOT NULL ORDER BY id LIMIT 1",
                                     (person_id,)).fetchone()
        return row[0] if row else None

    def models(self) -> dict[str, int]:
        """model_id -> number of stored embeddings made by it."""
        with self.reading():
            return dict(self._conn.execute(
                "SELECT model_id, COUNT(*) FROM embeddings GROUP BY model_id ORDER BY model_id"))

    def unembedded_samples(self, model_id: str) -> list[tuple[int, float]]:
        """(sample id, created time) of the samples with no stored embedding by
        ``model_id`` (a checked id), in id order."""
        with self.reading():
            return self._conn.execute(
                "SELECT s.id, s.created FROM samples s WHERE NOT EXISTS (SELECT 1 FROM "
                "embeddings e WHERE e.sample_id = s.id AND e.model_id = ?) ORDER BY s.id",
                (model_id,)).fetchall()

    def samples_by_id(self, sample_ids: Sequence[int]) -> list[MissingSample]:
        """The stored crops of these samples (decoded), in id order."""
        ids = [int(i) for i in sample_ids]
        if not ids:
            return []
        with self.reading():
            rows = self._conn.execute(
                f"SELECT s.id, p.name, s.thumbnail, {self._crop_column} FROM samples s "
                "JOIN people p "
                f"ON p.id = s.person_id WHERE s.id IN ({','.join('?' * len(ids))}) "
                "ORDER BY s.id", ids).fetchall()
        return [MissingSample(sid, name, _decode_thumbnail(blob), crop or LEGACY_CROP)
                for sid, name, blob, crop in rows]

    def samples_created(self, sample_ids: Sequence[int]) -> dict[int, float]:
        """Sample id -> its created time, for those of ``sample_ids`` that are stored."""
        ids = list(sample_ids)
        created: dict[int, float] = {}
        with self.reading():
            for start in range(0, len(ids), 500):   # under SQLite's parameter limit
                chunk = ids[start:start + 500]
                created.update(self._conn.execute(
                    f"SELECT id, created FROM samples WHERE id IN ({','.join('?' * len(chunk))})",
                    chunk).fetchall())
        return created

    def sample_owners(self) -> list[tuple[int, int, float, str]]:
        """(person id, sample id, sample created time, person name) of every sample."""
        with self.reading():
            return self._conn.execute("SELECT p.id, s.id, s.created, p.name FROM samples s "
                                      "JOIN people p ON p.id = s.person_id").fetchall()

    def stored_vectors(self, model_id: str) -> list[tuple[int, int, str, np.ndarray]]:
        """(person id, sample id, person name, float32 vector) of every embedding stored
        by ``model_id``, in no particular order."""
        with self.reading():
            return [(pid, sid, name, _from_blob(blob, dim, self.path))
                    for pid, sid, name, dim, blob in self._conn.execute(
                        "SELECT p.id, s.id, p.name, e.dim, e.vector FROM embeddings e "
                        "JOIN samples s ON s.id = e.sample_id "
                        "JOIN people p ON p.id = s.person_id WHERE e.model_id = ?",
                        (model_id,))]

    def data_version(self) -> int:
        """SQLite's ``PRAGMA data_version``: changes when another connection commits."""
        with self.reading():
            return self._conn.execute("PRAGMA data_version").fetchone()[0]

    def _person_id(self, cur: sqlite3.Cursor, name: str) -> int:
        row = _find_person(cur, name)
        if row is None:
            raise PersonNotFound(f"no one named {name!r} is enrolled in {self.path}")
        return row[0]

    def _check_dim(self, cur: sqlite3.Cursor, model_id: str, dim: int) -> None:
        row = cur.execute("SELECT dim FROM embeddings WHERE model_id = ? LIMIT 1",
                          (model_id,)).fetchone()
        if row is not None and row[0] != dim:
            raise ValueError(f"{model_id!r} embeddings in {self.path} have {row[0]} dimensions, "
                             f"got {dim}")


def _find_person(cur: sqlite3.Cursor, name: str) -> tuple[int, str] | None:
    """(id, stored name) of the person a cleaned ``name`` names, or None: that exact name
    first (a gallery made before names had one identity may hold two whose keys are the
    same), else the first whose :func:`name_key` is ``name``'s."""
    row = cur.execute("SELECT id, name FROM people WHERE name = ? "
                      "ORDER BY (name = ? COLLATE BINARY) DESC, id LIMIT 1",
                      (name, name)).fetchone()
    if row is not None:
        return row
    return cur.execute("SELECT id, name FROM people WHERE name_key(name) = ? ORDER BY id "
                       "LIMIT 1", (name_key(name),)).fetchone()


def _has_wal(path: Path) -> bool:
    """Whether SQLite's -wal file beside ``path`` holds anything (committed changes that
    are not in the file itself yet)."""
    try:
        return Path(f"{path}-wal").stat().st_size > 0
    except OSError:
        return False


def _sql_name_key(value):
    return name_key(value) if isinstance(value, str) else value


def _upgrade_1_to_2(conn: sqlite3.Connection) -> None:
    """Schema 1 -> 2: samples record their crop (NULL for the old ones: five-point)."""
    with _immediate(conn) as cur:
        cur.execute("ALTER TABLE samples ADD COLUMN crop TEXT")
        cur.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


@contextmanager
def _immediate(conn: sqlite3.Connection) -> Iterator[sqlite3.Cursor]:
    """BEGIN IMMEDIATE ... COMMIT on ``conn``: everything or nothing (rolled back on any
    exception)."""
    cur = conn.cursor()
    cur.execute("BEGIN IMMEDIATE")
    try:
        yield cur
        cur.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def ids_and_vectors(sample_ids: Sequence[int], embeddings: np.ndarray
                    ) -> tuple[list[int], np.ndarray]:
    """Sample ids as ints and their embeddings as unit rows, one row per id."""
    vectors = unit_rows(embeddings)
    ids = [int(i) for i in sample_ids]
    if len(ids) != len(vectors):
        raise ValueError(f"got {len(ids)} sample ids for {len(vectors)} embeddings")
    return ids, vectors


def check_model_id(model_id: str) -> str:
    """``model_id`` stripped; ValueError unless it is a non-empty string."""
    if not isinstance(model_id, str) or not model_id.strip():
        raise ValueError("model_id must be a non-empty string naming the embedder")
    return model_id.strip()


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


def _create_private(path: Path) -> None:
    """Make missing folders 0700 and a missing gallery file 0600: it holds face photos.
    Existing folders keep their mode (the user's choice, or a shared /tmp)."""
    missing = []
    folder = path.parent
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    try:
        for folder in reversed(missing):
            folder.mkdir(mode=0o700)
        if not path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass  # another process made it first
    except OSError as exc:
        raise GalleryError(f"cannot create gallery {path}: {exc.strerror or exc}; pick a "
                           f"--gallery path in a folder you can write to") from exc


def _unreadable(path: Path) -> str:
    """Why a gallery file that exists cannot be read, and what to do."""
    info = path.stat()
    return (f"cannot read gallery {path}: permission denied (mode "
            f"{stat.S_IMODE(info.st_mode):04o}, owner uid {info.st_uid}); it was left "
            f"untouched. If it is yours, make it readable again (chmod 600 {path}); otherwise "
            f"pass another --gallery")


def privacy_warnings(path: Path) -> list[str]:
    """A warning if the gallery file can be read by other users (it holds face photos)."""
    try:
        mode = path.stat().st_mode & 0o777
    except OSError:
        return []
    if mode & 0o077 and sys.platform != "win32":
        return [f"gallery {path} can be read by other users (mode {mode:04o}); it holds face "
                f"photos. Make it private: chmod 600 {path}"]
    return []
