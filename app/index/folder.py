"""The index folder (``--out DIR``): what is in it and how each part is written.

::

    DIR/index.json            the settings and model id of the index (written first)
    DIR/files/<id>.json       per-file status: done / failed (reason), size, mtime, settings,
                              frames, media seconds, wall seconds, worker, peak memory
    DIR/parts/<id>.parquet    a done file's rows (no names: see app.index.appearances)
    DIR/appearances.parquet   every done file's rows, named against the gallery (the index
                              ``who`` reads; rewritten at the end of each run and by relabel)

``<id>`` is a hash of the file's absolute path. Every file is written under a temporary
name and renamed into place when complete, the part before its status, so a run killed
at any moment leaves each file either done (part and status) or to do again; a part
whose status is missing or not "done" is never read, and a file's part is one file,
replaced whole, so nothing is ever counted twice.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .worker import FileResult, FileTask, IndexSettings

COLUMNS = ("file", "track", "start_s", "end_s", "best_s", "frames", "embedded", "person",
           "similarity", "thumbnail", "embedding", "model_id")
INDEX_VERSION = 1


class IndexFolderError(ValueError):
    """DIR is not an index (who, relabel), or holds one that --resume was not given for."""


def file_id(path: str | Path) -> str:
    return hashlib.sha1(str(Path(path).resolve()).encode()).hexdigest()[:20]


def schema():
    import pyarrow as pa
    return pa.schema([("file", pa.string()), ("track", pa.int32()), ("start_s", pa.float64()),
                      ("end_s", pa.float64()), ("best_s", pa.float64()),
                      ("frames", pa.int32()), ("embedded", pa.int32()),
                      ("person", pa.string()), ("similarity", pa.float32()),
                      ("thumbnail", pa.binary()), ("embedding", pa.list_(pa.float32())),
                      ("model_id", pa.string())])


class IndexFolder:
    """Reads and writes one index folder (module docstring)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.files = self.path / "files"
        self.parts = self.path / "parts"
        self.appearances = self.path / "appearances.parquet"
        self.settings_file = self.path / "index.json"

    def exists(self) -> bool:
        return self.settings_file.exists()

    @contextmanager
    def writing(self):
        """Hold DIR/.lock for the block: a second run on the same folder is refused."""
        import fcntl

        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / ".lock", "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                raise IndexFolderError(f"another index or relabel run is writing {self.path}; "
                                       f"wait for it to end") from None
            yield self

    def create(self, settings: IndexSettings, model_id: str, threshold: float) -> None:
        self.files.mkdir(parents=True, exist_ok=True)
        self.parts.mkdir(exist_ok=True)
        info = {"version": INDEX_VERSION, "detector": settings.detector,
                "embedder": settings.embedder, "fps": settings.fps, "model_id": model_id,
                "threshold": threshold, "signature": settings.signature}
        write_atomic(self.settings_file, json.dumps(info, indent=1).encode())

    def info(self) -> dict:
        if not self.exists():
            raise IndexFolderError(f"{self.path} is not an index (no index.json): make one "
                                   f"with: index PATH... --out {self.path}")
        return json.loads(self.settings_file.read_text())

    # -- per file ------------------------------------------------------------------------
    def status(self, fid: str) -> dict | None:
        try:
            return json.loads((self.files / f"{fid}.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def settled(self, task: FileTask, signature: str) -> dict | None:
        """``--resume``: the file's status when it needs no new try: unchanged (size,
        mtime), with these settings, and done (its part there) or failed for the file's
        own sake (not a worker that died). None: index it."""
        status = self.status(task.file_id)
        if (status is None or status["size"] != task.size or status["mtime_ns"] != task.mtime_ns
                or status["signature"] != signature):
            return None
        if status["state"] == "done":
            return status if (self.parts / f"{task.file_id}.parquet").exists() else None
        return None if status.get("transient", True) else status

    def record(self, result: FileResult, signature: str) -> None:
        """A file's part (when done), then its status, each renamed into place."""
        task = result.task
        if result.state == "done":
            write_atomic(self.parts / f"{task.file_id}.parquet", table_bytes(result.rows))
        else:
            (self.parts / f"{task.file_id}.parquet").unlink(missing_ok=True)
        status = {"path": task.path, "state": result.state, "reason": result.reason,
                  "size": task.size, "mtime_ns": task.mtime_ns, "signature": signature,
                  "frames": result.frames, "processed": result.processed,
                  "duration_s": round(result.duration_s, 3), "wall_s": round(result.wall_s, 3),
                  "cpu_s": round(result.cpu_s, 3),
                  "appearances": len(result.rows), "worker": result.worker,
                  "peak_rss_mb": round(result.peak_rss_mb, 1), "attempts": result.attempts,
                  "transient": result.transient, "warning": result.warning}
        write_atomic(self.files / f"{task.file_id}.json", json.dumps(status).encode())

    def statuses(self) -> list[dict]:
        found = []
        for path in sorted(self.files.glob("*.json")):
            status = self.status(path.stem)
            if status is not None:
                found.append({**status, "file_id": path.stem})
        return found

    # -- the appearances -----------------------------------------------------------------
    def done_rows(self):
        """One table of every done file's part (unnamed rows), in file then track order."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        tables = [pq.read_table(self.parts / f"{s['file_id']}.parquet", schema=schema())
                  for s in sorted(self.statuses(), key=lambda s: s["path"])
                  if s["state"] == "done" and (self.parts / f"{s['file_id']}.parquet").exists()]
        return pa.concat_tables(tables) if tables else schema().empty_table()

    def write_appearances(self, table) -> None:
        import pyarrow.parquet as pq
        with _temporary(self.appearances) as temporary:
            pq.write_table(table, temporary)

    def read_appearances(self, columns=None):
        import pyarrow.parquet as pq
        self.info()
        if not self.appearances.exists():
            raise IndexFolderError(f"{self.path} has no appearances.parquet yet (its first "
                                   f"run did not finish: run index again with --resume)")
        return pq.read_table(self.appearances, columns=columns)


def table_bytes(rows: list[dict]) -> bytes:
    """Rows (dicts with the COLUMNS but person and similarity) as parquet bytes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = {name: [row.get(name) for row in rows] for name in COLUMNS}
    columns["embedding"] = [np.asarray(v, np.float32) for v in columns["embedding"]]
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table(columns, schema=schema()), sink)
    return sink.getvalue().to_pybytes()


def with_names(table, names: list, similarities: list):
    """``table`` with its person and similarity columns replaced."""
    import pyarrow as pa
    table = table.set_column(table.schema.get_field_index("person"), "person",
                             pa.array(names, pa.string()))
    return table.set_column(table.schema.get_field_index("similarity"), "similarity",
                            pa.array(similarities, pa.float32()))


def write_atomic(path: Path, data: bytes) -> None:
    with _temporary(path) as temporary:
        temporary.write_bytes(data)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


class _temporary:
    """A temporary path beside ``path``, renamed onto it when the block ends normally
    (after an fsync), removed otherwise."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def __enter__(self) -> Path:
        fd, name = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".partial",
                                    dir=self.path.parent)
        os.close(fd)
        os.chmod(name, 0o666 & ~_umask())   # as a plain open() would make it
        self.temporary = Path(name)
        return self.temporary

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.temporary.unlink(missing_ok=True)
            return
        with open(self.temporary, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(self.temporary, self.path)
