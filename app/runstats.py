"""A run's statistics in bounded memory: a day of webcam costs what a minute does.

:class:`Quantiles` keeps a series' exact count, mean, maximum and latest value, and a
uniform sample of at most ``capacity`` values (reservoir sampling, Vitter's Algorithm R,
seeded so a run is repeatable) for its median and percentiles: exact while the series
is shorter than the reservoir, within about a tenth of a percentile beyond it (p99 of
8,192 sampled values). :class:`RunStats` holds one per stage and one for the latency;
:meth:`RunStats.summary` is what the events file, the terminal and the bench read::

    summary["latency_ms"] == {"median": .., "p50": .., "p95": .., "p99": .., "max": ..,
                              "mean": .., "count": ..}
"""
from __future__ import annotations

import math
import random
import statistics
import time
from array import array
from collections import deque
from dataclasses import dataclass, field

RESERVOIR = 8192   # values kept per series: 64 kB each (doubles, allocated at once)


class Quantiles:
    """One series of numbers in bounded memory (module docstring). ``append`` adds one;
    ``len()`` is how many were added, not how many are kept."""

    def __init__(self, capacity: int = RESERVOIR, seed: int = 0):
        self.capacity = int(capacity)
        self.count = 0
        self.total = 0.0
        self.max = -math.inf
        self.last: float | None = None
        self._sample = array("d", bytes(8 * self.capacity))   # all of it now: no growth later
        self._kept = 0
        self._rng = random.Random(seed)

    def append(self, value: float) -> None:
        value = float(value)
        self.count += 1
        self.total += value
        self.max = max(self.max, value)
        self.last = value
        if self._kept < self.capacity:
            self._sample[self._kept] = value
            self._kept += 1
            return
        slot = self._rng.randrange(self.count)   # keep it with probability capacity/count
        if slot < self.capacity:
            self._sample[slot] = value

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> float:
        """``series[-1]``: the latest value (the only one a caller may ask for by place)."""
        if index != -1 or self.last is None:
            raise IndexError("only the latest value ([-1]) is kept")
        return self.last

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else math.nan

    @property
    def median(self) -> float:
        return statistics.median(self._sample[:self._kept]) if self.count else math.nan

    def quantile(self, q: float) -> float:
        """The ``q`` quantile (0..1), nearest rank below, of the kept sample."""
        if not self.count:
            return math.nan
        ordered = sorted(self._sample[:self._kept])
        return ordered[int(q * (len(ordered) - 1))]

    def summary(self, digits: int = 1) -> dict:
        """median (= p50), p95, p99, max, mean and count, rounded to ``digits``."""
        ordered = sorted(self._sample[:self._kept])
        pick = (lambda q: ordered[int(q * (len(ordered) - 1))]) if ordered else (
            lambda q: math.nan)
        median = statistics.median(ordered) if ordered else math.nan
        return {"median": round(median, digits), "p50": round(median, digits),
                "p95": round(pick(0.95), digits), "p99": round(pick(0.99), digits),
                "max": round(self.max, digits), "mean": round(self.mean, digits),
                "count": self.count}


def latency_summary(latency_ms) -> dict:
    """Median (also as p50), p95, p99 (nearest rank below), max, mean and count of
    capture->display latencies: a list, or a :class:`Quantiles` already filled."""
    if isinstance(latency_ms, Quantiles):
        return latency_ms.summary()
    series = Quantiles(capacity=max(1, len(latency_ms)))
    for value in latency_ms:
        series.append(value)
    return series.summary()


@dataclass
class RunStats:
    """Per-frame timings in bounded memory; ``summary()`` is what the events file and
    the terminal get. ``stage_ms``: every frame's time per stage; ``ran_ms``: only the
    frames that ran the stage; ``latency_ms``: capture->display."""
    stage_ms: dict[str, Quantiles] = field(default_factory=dict)
    ran_ms: dict[str, Quantiles] = field(default_factory=dict)
    latency_ms: Quantiles = field(default_factory=Quantiles)
    frames: int = 0
    embedded: int = 0
    started: float | None = None
    finished: float | None = None
    first_frame_unix: float | None = None   # time.time() at the first processed frame
    paused_s: float = 0.0
    _idle_pending: float = 0.0
    _recent: deque = field(default_factory=lambda: deque(maxlen=30))

    def begin(self) -> None:
        """The first frame is processed now (its record may come later: a headless file
        run holds frames back while a name is owed): FPS and first_frame count from here,
        as they would had it been recorded at once."""
        if self.started is None:
            self.started, self.first_frame_unix = time.perf_counter(), time.time()

    def add(self, result, latency_ms: float | None) -> None:
        self._resume()
        self.begin()   # no-op once the run loop has said when the first frame was processed
        now = time.perf_counter()
        self.finished = now
        self.frames += 1
        self._recent.append(now)
        for stage, ms in result.stage_ms.items():
            _series(self.stage_ms, stage).append(ms)
            if _ran(stage, result):
                _series(self.ran_ms, stage).append(ms)
        if latency_ms is not None:
            self.latency_ms.append(latency_ms)
        self.embedded += sum(1 for f in result.faces if f.embedding is not None)

    def idle(self, seconds: float) -> None:
        """Time the window spent paused: FPS (recent and overall) leaves it out once
        frames come again (a pause before quitting never reached the last frame's time)."""
        self._idle_pending += seconds

    def _resume(self) -> None:
        seconds, self._idle_pending = self._idle_pending, 0.0
        self.paused_s += seconds
        if self.started is not None and seconds:
            self.started += seconds
            self._recent = deque((t + seconds for t in self._recent), maxlen=30)

    @property
    def fps(self) -> float:
        """Over the last 30 frames (for the HUD)."""
        if len(self._recent) < 2:
            return 0.0
        return (len(self._recent) - 1) / max(self._recent[-1] - self._recent[0], 1e-9)

    def summary(self, dropped: int = 0) -> dict:
        wall = (self.finished - self.started) if self.frames > 1 else 0.0
        fps = (self.frames - 1) / wall if wall > 0 else 0.0
        out = {"frames": self.frames, "fps": round(fps, 1),
               "stage_ms": {k: round(v.median, 2) for k, v in self.stage_ms.items()},
               "stage_mean_ms": {k: round(v.mean, 2) for k, v in self.ran_ms.items()},
               "stage_frames": {k: len(v) for k, v in self.ran_ms.items()},
               "faces_embedded": self.embedded, "dropped": dropped,
               "first_frame_unix": self.first_frame_unix, "peak_rss_mb": peak_rss_mb()}
        if self.latency_ms:
            out["latency_ms"] = latency_summary(self.latency_ms)
        return out


def _series(table: dict[str, Quantiles], key: str) -> Quantiles:
    series = table.get(key)
    if series is None:
        series = table[key] = Quantiles()
    return series


def _ran(stage: str, result) -> bool:
    """Whether ``stage`` did work on this frame: landmarks need a face, embed and match a
    face due for embedding; a stage the pipeline skipped has no entry at all."""
    if stage == "landmarks":
        return bool(result.faces)
    if stage in ("embed", "match"):
        return any(f.embedding is not None for f in result.faces)
    return True


def rss_mb() -> float | None:
    """This process's resident memory now (Linux: VmRSS), None where it cannot be read."""
    return _status_mb("VmRSS:")


def peak_rss_mb() -> float | None:
    """This process's peak resident memory since it started its program (Linux: VmHWM).
    Not getrusage's ru_maxrss, which also counts the parent's memory when the process was
    forked from a big one (``bench`` starting a run after loading face_recognition)."""
    found = _status_mb("VmHWM:")
    if found is not None:
        return found
    import resource
    return round(ru_maxrss_mb(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss), 1)


def _status_mb(key: str) -> float | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(key):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def ru_maxrss_mb(ru_maxrss: int) -> float:
    """getrusage's / wait4's ru_maxrss in MB (kB on Linux, bytes on macOS)."""
    import sys
    return ru_maxrss / 1024 / (1024 if sys.platform == "darwin" else 1)
