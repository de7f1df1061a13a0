"""Detection ahead of the main thread, on one or more worker threads, results in order.

:class:`DetectAhead` reads ``source`` on a reader thread and hands each frame the
detector should see (``wanted``) to the next free detector worker (each with its own
detector: interpreters are not thread safe); any other frame goes from the reader
straight to :meth:`get` with :data:`SKIPPED`. :meth:`get` returns ``(frame,
*detect(frame.image))`` (detections, detect_ms and what else the detect function
returns) in frame order, or None at the end; an exception in any thread is re-raised
there.

One worker keeps a live camera's latency lowest. For files two workers detect two
frames at once: on 2 cores the detector (one thread, ~3.5 ms a frame alone, 6-8 ms beside
the main thread) is what limited the Hamilton clip to ~105 FPS while the main thread sat
idle half of the time. Every frame is still detected, so results are unchanged.

``depth`` bounds the frames in flight (read, not yet taken by :meth:`get`); the reader
reads a frame only when a slot is free, so a live camera's frame is taken as late as
possible (newest) instead of waiting in a buffer while older ones drain.
"""
from __future__ import annotations

import queue
import threading
from typing import Callable, Sequence

_END = object()
SKIPPED = (None, 0.0, None)   # a frame not wanted: no detections (the pipeline follows boxes)


class DetectAhead:
    def __init__(self, source, detects: Callable | Sequence[Callable], depth: int = 1,
                 wanted: Callable | None = None):
        self._source = source
        self._wanted = wanted   # wanted(frame): run the detector on it, else hand back SKIPPED
        self._detects = [detects] if callable(detects) else list(detects)
        self._slots = threading.Semaphore(max(depth, len(self._detects)))
        self._stop = threading.Event()
        self._todo: queue.Queue = queue.Queue()
        self._done: dict[int, tuple] = {}
        self._cond = threading.Condition()
        self._total: int | None = None     # frames read, once the source has ended
        self._error: BaseException | None = None
        self._next = 0
        self._threads = [threading.Thread(target=self._read, name="read-ahead", daemon=True)]
        self._threads += [threading.Thread(target=self._work, args=(detect,), daemon=True,
                                           name=f"detect-ahead-{i}")
                          for i, detect in enumerate(self._detects)]
        for thread in self._threads:
            thread.start()

    def get(self):
        with self._cond:
            while True:
                if self._error is not None:
                    raise self._error
                if self._next in self._done:
                    item = self._done.pop(self._next)
                    self._next += 1
                    self._slots.release()
                    return item
                if self._total is not None and self._next >= self._total:
                    return None
                if not any(t.is_alive() for t in self._threads):
                    return None
                self._cond.wait(0.1)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(1.0)

    def _read(self) -> None:
        count = 0
        try:
            while not self._stop.is_set():
                if not self._slots.acquire(timeout=0.1):
                    continue
                frame = self._source.read(timeout=0.1)
                if frame is None:
                    self._slots.release()
                    if self._source.ended:
                        break
                    continue
                if self._wanted is None or self._wanted(frame):
                    self._todo.put((count, frame))
                else:   # not to be detected: straight to the main thread, no worker hop
                    self._finished(count, (frame, *SKIPPED))
                count += 1
        except BaseException as exc:  # handed to the main thread
            self._fail(exc)
        with self._cond:
            self._total = count
            self._cond.notify_all()
        for _ in self._detects:
            self._todo.put(_END)

    def _work(self, detect: Callable) -> None:
        while not self._stop.is_set():
            try:
                item = self._todo.get(timeout=0.1)
            except queue.Empty:
                continue
            if item is _END:
                return
            seq, frame = item
            try:
                found = detect(frame.image)
            except BaseException as exc:
                self._fail(exc)
                return
            self._finished(seq, (frame, *found))

    def _finished(self, seq: int, item: tuple) -> None:
        with self._cond:
            self._done[seq] = item
            self._cond.notify_all()

    def _fail(self, exc: BaseException) -> None:
        with self._cond:
            if self._error is None:
                self._error = exc
            self._cond.notify_all()
