"""Output files that can neither clobber an input nor be left half-written in place.

* :func:`check_outputs` compares every output path with every input (the source, the
  gallery and its -wal/-shm files) and with each other, by resolved path and by inode,
  and refuses (:class:`OutputError`) before anything is opened for writing.
* :class:`PendingFile` is where a writer writes: a new file beside the target
  (``NAME.partial-XXXX.EXT``) that :meth:`PendingFile.commit` moves over the target
  only once it is complete. A failed or killed run leaves the previous target untouched
  and its partial file beside it (a fragmented mp4 there plays up to the kill).
  Special files (``/dev/null``, a FIFO) are written in place.
* A write error (full disk, I/O error) becomes :class:`WriteFailed`, which stops the run;
  the CLI then reports it and exits non-zero (:func:`exit_code`).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..config import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_TERMINATED


class OutputError(ValueError):
    """An output that would overwrite an input or another output, or cannot be created."""


class WriteFailed(RuntimeError):
    """Writing an output failed mid-run; ``partial`` is the file that holds what was written."""

    def __init__(self, label: str, target: Path, partial: Path | None, exc: BaseException):
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        super().__init__(f"cannot write {label} {target}: {reason}")
        self.label, self.target, self.partial, self.reason = label, target, partial, reason


def same_file(a: Path, b: Path) -> bool:
    """True when ``a`` and ``b`` name one file (same resolved path, or same inode)."""
    try:
        if Path(a).expanduser().resolve() == Path(b).expanduser().resolve():
            return True
    except (OSError, RuntimeError):
        pass
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def gallery_files(gallery: Path | None) -> dict[str, Path]:
    """The gallery and the files SQLite keeps beside it, as named inputs."""
    if gallery is None:
        return {}
    gallery = Path(gallery).expanduser()
    return {"--gallery": gallery, "--gallery (its -wal file)": Path(f"{gallery}-wal"),
            "--gallery (its -shm file)": Path(f"{gallery}-shm")}


def check_outputs(outputs: dict[str, Path | None], inputs: dict[str, Path | None]) -> None:
    """OutputError unless every output is a new or replaceable file distinct from every
    input and every other output. Nothing is opened or created here."""
    outs = {label: Path(p).expanduser() for label, p in outputs.items() if p}
    ins = {label: Path(p).expanduser() for label, p in inputs.items() if p}
    seen: dict[str, Path] = {}
    for label, path in outs.items():
        if path.is_dir():
            raise OutputError(f"{label} {path} is a folder; give a file name inside it, "
                              f"e.g. {path / ('out' + _example_suffix(label))}")
        for in_label, in_path in ins.items():
            if same_file(path, in_path):
                raise OutputError(
                    f"{label} {path} is the same file as {in_label} {in_path}: writing it would "
                    f"destroy that input. Nothing was written; give {label} another file name")
        for other_label, other in seen.items():
            if same_file(path, other):
                raise OutputError(f"{label} and {other_label} both name {path}; give each its "
                                  f"own file. Nothing was written")
        seen[label] = path


def _example_suffix(label: str) -> str:
    return ".jsonl" if "events" in label else ".mp4"


class PendingFile:
    """A file written beside ``target`` and moved into place by :meth:`commit`."""

    def __init__(self, target: str | Path, label: str, in_place: bool = False):
        """``in_place``: write the target itself (a live run's log that others follow);
        special files (/dev/null, a FIFO) always are."""
        self.target = Path(target).expanduser()
        self.label = label
        self.in_place = in_place or (self.target.exists() and not self.target.is_file())
        if self.in_place:
            self.path = self.target
            return
        parent = self.target.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=parent, prefix=f"{self.target.stem}.partial-",
                                        suffix=self.target.suffix)
            os.close(fd)
        except OSError as exc:
            raise OutputError(f"cannot write {label} {self.target}: {exc.strerror or exc} "
                              f"(folder {parent}); pick a folder you can write to. "
                              f"Nothing was written") from exc
        self.path = Path(name)
        os.chmod(self.path, 0o666 & ~_umask())  # what a plain open() would have made

    def commit(self) -> None:
        """Move the finished file over the target (atomic on one file system)."""
        if self.in_place or not self.path.exists():
            return
        with open(self.path, "rb") as f:
            os.fsync(f.fileno())
        os.replace(self.path, self.target)
        _fsync_dir(self.target.parent)

    def discard(self) -> None:
        if not self.in_place:
            self.path.unlink(missing_ok=True)


def exit_code(stop_reason: str | None, failed: bool) -> int:
    """0 done, 1 an output failed, 130 Ctrl-C, 143 SIGTERM."""
    if failed:
        return EXIT_FAILED
    if stop_reason and stop_reason.startswith("interrupted"):
        return EXIT_INTERRUPTED
    if stop_reason and stop_reason.startswith("terminated"):
        return EXIT_TERMINATED
    return EXIT_OK


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
