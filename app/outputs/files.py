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

import errno
import os
import stat
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
        self.errno = getattr(exc, "errno", None)

    @property
    def advice(self) -> str:
        """What to do about it, by its cause (a full disk is not a closed pipe)."""
        if self.errno in (errno.ENOSPC, errno.EDQUOT):
            return "Free some space or choose another folder, then run again"
        if self.errno == errno.EPIPE:
            return (f"The program reading {self.target} stopped reading (broken pipe); keep "
                    f"it reading to the end, or write {self.label} to a file")
        if self.errno == errno.EIO:
            return "The disk reported an I/O error: check it, or choose another disk"
        return "Choose another folder, then run again"


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
        _check_name_length(path, label)
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


def check_writable(label: str, path: str | Path | None, folder: bool = False,
                   suffixes: tuple[str, ...] = ()) -> None:
    """OutputError unless ``path`` could be written now: a file (``folder``: a folder)
    that is writable, or a new one whose nearest existing parent folder is; checked before
    a long measurement, so it never fails at the end. ``suffixes``: the ones allowed.
    Nothing is created."""
    if not path:
        return
    path = Path(path).expanduser()
    _check_name_length(path, label)
    if suffixes and not folder and path.suffix.lower() not in suffixes:
        raise OutputError(f"{label} {path}: give a name ending in {' or '.join(suffixes)}")
    if path.exists() and path.is_dir() != folder:
        raise OutputError(f"{label} {path} is a {'file' if folder else 'folder'}; give "
                          f"{'a folder' if folder else 'a file name'} there instead")
    where = path if path.exists() else _existing(path.parent)
    if not where.is_dir() and where != path:
        raise OutputError(f"{label} {path}: {where} is a file, so no folder can be made there")
    if not os.access(where, os.W_OK | (os.X_OK if where.is_dir() else 0)):
        why = "read-only file system" if _read_only_fs(where) else "permission denied"
        raise OutputError(f"cannot write {label} {path}: {where} is not writable here "
                          f"({why}); pick a folder you can write to. Nothing was done")


def _read_only_fs(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        return False


def _example_suffix(label: str) -> str:
    return ".jsonl" if "events" in label else ".mp4"


class PendingFile:
    """A file written beside ``target`` and moved into place by :meth:`commit`."""

    def __init__(self, target: str | Path, label: str, in_place: bool = False):
        """``in_place``: write the target itself (a live run's log that others follow);
        special files (/dev/null, a FIFO) always are."""
        self.target = Path(target).expanduser()
        self.label = label
        _check_name_length(self.target, label)
        self.in_place = in_place or (self.target.exists() and not self.target.is_file())
        if self.in_place:
            self.path = self.target
            return
        parent = self.target.parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=parent, prefix=_partial_prefix(self.target),
                                        suffix=self.target.suffix)
            os.close(fd)
        except OSError as exc:
            raise OutputError(f"cannot write {label} {self.target}: {exc.strerror or exc} "
                              f"(folder {parent}); {_remedy(exc)}. Nothing was written") from exc
        self.path = Path(name)
        # a replaced file keeps its mode and owner (a 0600 file never becomes 0644, not
        # even while it is written); a new one gets what a plain open() would have made
        self._mode, self._owner = _mode_and_owner(self.target)
        self._keep_mode()

    def commit(self) -> None:
        """Move the finished file over the target (atomic on one file system)."""
        if self.in_place or not self.path.exists():
            return
        with open(self.path, "rb") as f:
            os.fsync(f.fileno())
        self._keep_mode()   # again: a writer may have made the file anew
        os.replace(self.path, self.target)
        _fsync_dir(self.target.parent)

    def discard(self) -> None:
        if not self.in_place:
            self.path.unlink(missing_ok=True)

    def _keep_mode(self) -> None:
        try:
            os.chmod(self.path, self._mode)
            if self._owner is not None:
                os.chown(self.path, *self._owner)
        except OSError:
            pass   # another owner's file: only root may give it back; the mode is kept


def _mode_and_owner(target: Path) -> tuple[int, tuple[int, int] | None]:
    """The mode (and owner, where it is not ours) of the file ``target`` replaces; for a
    new file, what a plain open() would make."""
    try:
        info = target.stat()
    except OSError:
        return 0o666 & ~_umask(), None
    if not stat.S_ISREG(info.st_mode):
        return 0o666 & ~_umask(), None
    owner = (info.st_uid, info.st_gid)
    mine = (os.geteuid(), os.getegid()) if hasattr(os, "geteuid") else owner
    return stat.S_IMODE(info.st_mode), (owner if owner != mine else None)


_PARTIAL = ".partial-"
_RANDOM_CHARS = 8   # what tempfile.mkstemp adds


def _name_limit(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        return 255


def _check_name_length(target: Path, label: str) -> None:
    """OutputError for a file name longer than its file system takes (checked before
    anything else: even asking whether it exists fails)."""
    limit = _name_limit(_existing(target.parent))
    if len(os.fsencode(target.name)) > limit:
        raise OutputError(f"{label} {target.name[:40]}... is {len(os.fsencode(target.name))} "
                          f"bytes long, over this file system's limit of {limit} for a file "
                          f"name; choose a shorter name. Nothing was written")


def _existing(folder: Path) -> Path:
    """``folder``, or its nearest parent that exists (where the limit is asked)."""
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def _partial_prefix(target: Path) -> str:
    """``NAME.partial-``, NAME cut short where the partial file's whole name (with
    mkstemp's random characters and the target's suffix) would pass the folder's limit."""
    room = (_name_limit(target.parent) - len(os.fsencode(_PARTIAL + target.suffix))
            - _RANDOM_CHARS)
    stem = target.stem
    while stem and len(os.fsencode(stem)) > room:
        stem = stem[:-1]
    return stem + _PARTIAL


def _remedy(exc: OSError) -> str:
    if exc.errno == errno.ENAMETOOLONG:
        return "choose a shorter name"
    if exc.errno == errno.ENOSPC:
        return "free some space or pick another folder"
    return "pick a folder you can write to"


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
