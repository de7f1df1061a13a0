"""``index``, ``who`` and ``relabel``: the driver side (the composition root of archives).

``index``: find the videos, skip those ``--resume`` finds done, hand the rest to a
backend (:class:`~app.index.pool.LocalPool` or :class:`~app.index.ray_backend.RayPool`),
record each file as it comes back (``app.index.folder``), then name every done file's
rows against the gallery into ``appearances.parquet`` and print a summary. Ctrl-C or
SIGTERM stops the workers; files already done stay done (``--resume`` goes on), and the
appearances of the files done so far are still written.
"""
from __future__ import annotations

import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..config import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_TERMINATED
from .folder import IndexFolder, IndexFolderError, file_id, with_names
from .pool import WorkerStartError
from .worker import FileResult, FileTask, IndexSettings

PROBE_LIMIT = 5000       # more files than this: the bar counts frames with no total
WORKER_MEMORY_MB = 400   # per worker: peaks measured 170 MB (640x360), 197 MB (1080p); room for 4K


@dataclass(frozen=True)
class IndexOptions:
    paths: tuple[str, ...]
    out: Path
    gallery: Path
    settings: IndexSettings = IndexSettings()
    workers: int | None = None        # None: one per core (local), the cluster's CPUs (Ray)
    cluster: str | None = None        # None: local processes; "ray" or "ray://HOST:PORT"
    resume: bool = False
    progress: bool = True


class _Terminated(Exception):
    """SIGTERM, raised in the driver so it stops its workers and records what is done."""


def find_videos(paths) -> list[Path]:
    """Video files named or found (recursively, by suffix) in folders, each once, sorted."""
    from ..sources.capture import VIDEO_EXTENSIONS

    found: dict[Path, None] = {}
    for given in paths:
        path = Path(given).expanduser()
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if child.is_file() and child.suffix.lower() in VIDEO_EXTENSIONS:
                    found[child.resolve()] = None
        elif path.is_file():
            if path.suffix.lower() not in VIDEO_EXTENSIONS:
                raise ValueError(f"{path} is not a video (by its suffix; expected one of "
                                 f"{', '.join(sorted(VIDEO_EXTENSIONS))})")
            found[path.resolve()] = None
        else:
            raise FileNotFoundError(f"no such file or folder: {path}")
    return sorted(found)


def tasks_for(videos: list[Path]) -> list[FileTask]:
    tasks = []
    for video in videos:
        stat = video.stat()
        tasks.append(FileTask(str(video), file_id(video), stat.st_size, stat.st_mtime_ns))
    return tasks


def cap_workers(requested: int | None, per_worker_mb: float = WORKER_MEMORY_MB) -> int:
    """Local workers: as asked (default one per core), at most what memory allows
    (80% of the memory available now, ``per_worker_mb`` each), at least one."""
    wanted = requested or os.cpu_count() or 1
    available = available_memory_mb()
    if available is None:
        return max(1, wanted)
    allowed = max(1, int(available * 0.8 // per_worker_mb))
    if allowed < wanted:
        print(f"note: {wanted} workers would need about {wanted * per_worker_mb:.0f} MB; "
              f"{available:.0f} MB is available, so {allowed} run", file=sys.stderr)
    return max(1, min(wanted, allowed))


def available_memory_mb() -> float | None:
    """Memory available for new processes (Linux: MemAvailable, which counts the page
    cache that can be dropped; elsewhere the free pages), MB; None when unknown."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (ValueError, OSError):
        return None


def backend(options: IndexOptions):
    """The local pool, or Ray for ``--cluster ray[://...]``."""
    if options.cluster is None:
        from .pool import LocalPool
        return LocalPool(options.settings, cap_workers(options.workers))
    from .ray_backend import RayPool
    address = None if options.cluster == "ray" else options.cluster
    return RayPool(options.settings, options.workers, address=address)


def run_index(options: IndexOptions, pool=None) -> int:
    """The ``index`` command; returns the exit code (0 all done, 1 a file failed,
    130/143 interrupted). ``pool``: a backend to use instead of :func:`backend`'s."""
    _check_options(options)
    with IndexFolder(options.out).writing() as folder:
        return _index(options, folder, pool)


def _index(options: IndexOptions, folder: IndexFolder, pool) -> int:
    if folder.exists() and not options.resume:
        raise IndexFolderError(f"{folder.path} already holds an index: add --resume to "
                               f"continue it, or choose another --out")
    tasks = tasks_for(find_videos(options.paths))
    if not tasks:
        print(f"error: no video files in {' '.join(options.paths)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    signature = options.settings.signature
    settled = {t.file_id: s for t in tasks
               if options.resume and (s := folder.settled(t, signature)) is not None}
    todo = [t for t in tasks if t.file_id not in settled]
    pool = pool or backend(options)
    _check_gallery(options, folder)
    tally = Tally(len(tasks), list(settled.values()), time.perf_counter())
    stopped = None
    with _SigtermRaises(), tally.bar(todo, options.progress) as progress:
        try:
            if todo:
                pool.run(
                    todo, lambda r: tally.record(r, folder, signature, progress),
                    progress.frames)
        except KeyboardInterrupt:
            stopped = EXIT_INTERRUPTED
        except WorkerStartError as exc:
            print(f"error: {exc}", file=sys.stderr)
            stopped = EXIT_FAILED
        except _Terminated:
            stopped = EXIT_TERMINATED
    rows = name_rows(folder, options.gallery)
    tally.print_summary(folder, rows, stopped)
    if stopped:
        return stopped
    return EXIT_FAILED if tally.failed or tally.failed_before else EXIT_OK


def _check_options(options: IndexOptions) -> None:
    fps, workers = options.settings.fps, options.workers
    if fps is not None and not fps > 0:
        raise ValueError(f"--fps must be positive, got {fps}")
    if options.settings.detect_every < 0:
        raise ValueError(f"--detect-every must be 0 (the default) or more, got "
                         f"{options.settings.detect_every}")
    if workers is not None and workers < 1:
        raise ValueError(f"--workers must be at least 1, got {workers}")
    if options.cluster is not None and options.cluster != "ray" \
            and not options.cluster.startswith("ray://"):
        raise ValueError(f"--cluster {options.cluster!r}: expected ray or ray://HOST:PORT")


def _check_gallery(options: IndexOptions, folder: IndexFolder) -> None:
    """Open the gallery read-only and load the embedder (a bad gallery or a missing
    model file fails before any worker starts), then write the folder's index.json with
    the model id and threshold its rows are named with."""
    from ..people.gallery import Gallery
    from ..stages.embed import resolve_embedder

    with Gallery(options.gallery, readonly=True):
        pass
    family, _ = resolve_embedder(options.settings.embedder)
    known = folder.info() if folder.exists() else {}
    if known.get("signature") == options.settings.signature:   # --resume, same models
        model_id = known["model_id"]
    else:
        model_id = _model_id(options.settings.embedder)
    folder.create(options.settings, model_id, family.threshold)


def _model_id(embedder: str) -> str:
    from ..factory import build_embedder
    model = build_embedder(embedder, threads=1)
    try:
        return model.model_id
    finally:
        model.close()


def name_rows(folder: IndexFolder, gallery_path: Path):
    """Every done file's rows, named against the gallery, written as appearances.parquet."""
    import numpy as np

    from .appearances import label
    table = folder.done_rows()
    info = folder.info()
    names, sims = [], []
    if table.num_rows:
        vectors = np.stack([np.asarray(v, np.float32)
                            for v in table.column("embedding").to_pylist()])
        with naming_gallery(gallery_path, folder) as gallery:
            if not gallery.people():
                print(f"note: nobody is enrolled in {gallery_path}: every track is unknown "
                      f"(enrol people, then: relabel --index {folder.path})", file=sys.stderr)
            names, sims = label(vectors, table.column("model_id").to_pylist(), gallery,
                                info["threshold"])
    table = with_names(table, names, sims)
    folder.write_appearances(table)
    return table


class naming_gallery:
    """The gallery, read-only, with samples enrolled by another embedder re-embedded
    (for this run) as ``run`` does; the models load only when some are."""

    def __init__(self, path: Path, folder: IndexFolder):
        self.path, self.info = Path(path), folder.info()

    def __enter__(self):
        from ..people.gallery import Gallery
        self.gallery = Gallery(self.path, readonly=True)
        self.pipeline = None
        if self.gallery.missing_sample_ids(self.info["model_id"]):
            from ..config import RunConfig
            from ..factory import build_pipeline
            from ..session import sync_gallery
            config = RunConfig(source="", detector=self.info["detector"],
                               embedder=self.info["embedder"], gallery=self.path,
                               headless=True, progress=False)
            self.pipeline = build_pipeline(config, self.gallery)
            sync_gallery(self.pipeline, progress=False)
        return self.gallery

    def __exit__(self, *exc) -> None:
        if self.pipeline is not None:
            self.pipeline.close()
        self.gallery.close()


class Tally:
    """Counts, the progress bar and the summary of one index run."""

    def __init__(self, total: int, settled: list[dict], started: float):
        self.total, self.skipped, self.started = total, len(settled), started
        self.failed_before = [s for s in settled if s["state"] != "done"]
        self.done: list[FileResult] = []
        self.failed: list[FileResult] = []

    def bar(self, todo: list[FileTask], enabled: bool) -> "_Progress":
        return _Progress(todo, enabled)

    def record(self, result: FileResult, folder: IndexFolder, signature: str,
               progress: "_Progress") -> None:
        folder.record(result, signature)
        (self.done if result.state == "done" else self.failed).append(result)
        progress.file_done(result)

    def print_summary(self, folder: IndexFolder, table, stopped: int | None) -> None:
        wall = time.perf_counter() - self.started
        media = sum(r.duration_s for r in self.done)
        peak = max((r.peak_rss_mb for r in self.done + self.failed), default=0.0)
        for result in self.failed:
            print(f"failed: {result.task.path}: {result.reason}", file=sys.stderr)
        for result in self.done:
            if result.warning:
                print(f"warning: {result.task.path}: {result.warning}", file=sys.stderr)
        for status in self.failed_before:
            print(f"failed before (unchanged, not tried again): {status['path']}: "
                  f"{status['reason']}", file=sys.stderr)
        cpu = sum(r.cpu_s for r in self.done)
        speed = (f", {media / wall:.1f}x real time ({media / cpu:.1f}x per busy core)"
                 if media and wall and cpu else "")
        memory = f"; peak worker memory {peak:.0f} MB" if peak else ""
        print(f"files: {len(self.done)} done, {len(self.failed)} failed, {self.skipped} "
              f"settled before (--resume) of {self.total}; {media / 3600:.3f} h "
              f"({media:.1f} s) of video in {wall:.1f} s{speed}{memory}")
        people = sorted({p for p in table.column("person").to_pylist() if p})
        print(f"appearances: {folder.appearances} ({table.num_rows} tracks; named: "
              f"{', '.join(people) or 'nobody'})")
        if stopped:
            left = self.total - self.skipped - len(self.done) - len(self.failed)
            print(f"stopped: {left} file(s) not indexed; run the same command with --resume "
                  f"to go on", file=sys.stderr)


class _Progress:
    """A tqdm bar of decoded frames against the frame counts the files' headers state
    (so its ETA holds for files of any length), with files done; nothing when disabled.
    Ray's workers report no frames until a file is done."""

    def __init__(self, todo: list[FileTask], enabled: bool):
        self._bar = None
        self._files, self._done = len(todo), 0
        self._expected: dict[str, int] = {}
        self._reported: dict[str, int] = {}
        if enabled and todo:
            from tqdm import tqdm

            from ..sources.pts import probe_frames
            if len(todo) <= PROBE_LIMIT:
                self._expected = {t.file_id: probe_frames(t.path) for t in todo}
            self._bar = tqdm(total=sum(self._expected.values()) or None, unit="frame",
                             unit_scale=True, desc="indexing", file=sys.stderr,
                             dynamic_ncols=True, postfix=f"files 0/{self._files}")

    def frames(self, task: FileTask, count: int) -> None:
        self._reported[task.file_id] = self._reported.get(task.file_id, 0) + count
        if self._bar is not None:
            self._bar.update(count)

    def file_done(self, result: FileResult) -> None:
        """Count the file's frames not yet reported, and make the total what they were."""
        self._done += 1
        if self._bar is None:
            return
        fid = result.task.file_id
        reported = self._reported.get(fid, 0)
        final = max(result.frames, reported)
        if self._bar.total is not None:
            self._bar.total += final - self._expected.get(fid, 0)
        self._bar.set_postfix_str(f"files {self._done}/{self._files}", refresh=False)
        self._bar.update(final - reported)

    def __enter__(self) -> "_Progress":
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.close()


class _SigtermRaises:
    """SIGTERM raises :class:`_Terminated` in the driver for the block (main thread)."""

    def __enter__(self):
        self._previous = signal.signal(signal.SIGTERM, self._raise)
        return self

    def _raise(self, signum, frame):
        raise _Terminated()

    def __exit__(self, *exc) -> None:
        signal.signal(signal.SIGTERM, self._previous)
