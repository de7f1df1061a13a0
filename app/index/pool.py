"""The local backend: N spawned worker processes, one :class:`IndexWorker` each.

Each process is *spawned* (a fresh interpreter: no forked model or thread state), loads
the models once and then takes one file at a time over its own pipe, reporting frames
as it goes and the :class:`FileResult` at the end. A worker that dies (killed, out of
memory, a native crash) is replaced and its file is given again, up to ``retries`` more
times, then reported failed; a worker that cannot even load its models stops the run.
Workers ignore Ctrl-C (the driver stops them) and die with the driver (Linux).
"""
from __future__ import annotations

import multiprocessing
import signal
import threading
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from typing import Callable

from .worker import FileResult, FileTask, IndexSettings

RETRIES = 2
STOP_GRACE_S = 2.0


class WorkerStartError(RuntimeError):
    """A worker could not load its models (the same would happen to every worker)."""


@dataclass
class _Slot:
    process: multiprocessing.Process
    conn: object
    ready: bool = False
    task: FileTask | None = None
    attempts: dict = field(default_factory=dict)


class LocalPool:
    """``run(tasks, on_result, on_frames)``: every task indexed once (module docstring)."""

    def __init__(self, settings: IndexSettings, workers: int, retries: int = RETRIES):
        self.settings = settings
        self.workers = max(1, int(workers))
        self.retries = retries
        self._context = multiprocessing.get_context("spawn")
        self._slots: list[_Slot] = []
        self.on_started: Callable[[FileTask, int], None] | None = None   # (task, pid)

    def run(self, tasks: list[FileTask], on_result: Callable[[FileResult], None],
            on_frames: Callable[[FileTask, int], None] | None = None) -> None:
        pending = deque(tasks)
        attempts: dict[str, int] = {}
        try:
            self._slots = [self._start() for _ in range(min(self.workers, len(tasks)))]
            while pending or any(s.task for s in self._slots):
                for slot in self._slots:
                    if slot.ready and slot.task is None and pending:
                        slot.task = pending.popleft()
                        attempts[slot.task.file_id] = attempts.get(slot.task.file_id, 0) + 1
                        slot.conn.send(slot.task)
                        if self.on_started is not None:
                            self.on_started(slot.task, slot.process.pid)
                ready = wait([s.conn for s in self._slots]
                             + [s.process.sentinel for s in self._slots])
                for index, slot in enumerate(self._slots):
                    talking = slot.conn in ready and self._receive(slot, on_result, on_frames,
                                                                   attempts)
                    if talking and slot.process.sentinel not in ready:
                        continue
                    if slot.conn in ready or slot.process.sentinel in ready:
                        slot.process.join(1.0)   # the pipe closed: the process is ending
                        if not slot.process.is_alive():
                            self._slots[index] = self._replace(slot, pending, attempts,
                                                               on_result)
        finally:
            self.stop()

    def _receive(self, slot: _Slot, on_result, on_frames, attempts) -> bool:
        """Handle one message; False when the pipe is closed (the worker died)."""
        try:
            kind, value = slot.conn.recv()
        except (EOFError, OSError):
            return False
        if kind == "ready":
            slot.ready = True
        elif kind == "start-failed":
            raise WorkerStartError(f"an index worker could not start: {value}")
        elif kind == "frames" and on_frames is not None and slot.task is not None:
            on_frames(slot.task, value)
        elif kind == "result":
            value.attempts = attempts.get(value.task.file_id, 1)
            slot.task = None
            on_result(value)
        return True

    def _replace(self, slot: _Slot, pending: deque, attempts: dict, on_result) -> _Slot:
        """A dead worker's file goes back to the front of the queue (or fails after
        ``retries``); a new worker takes its place."""
        slot.conn.close()
        code = slot.process.exitcode
        task = slot.task
        if task is not None:
            if attempts[task.file_id] <= self.retries:
                pending.appendleft(task)
            else:
                on_result(FileResult(task, "failed", reason=f"its worker died {attempts[task.file_id]} "
                                     f"times (exit code {code})",
                                     attempts=attempts[task.file_id], transient=True))
        elif not slot.ready:
            raise WorkerStartError(f"an index worker died while loading models "
                                   f"(exit code {code})")
        return self._start()

    def _start(self) -> _Slot:
        """A new worker process. It starts with Ctrl-C ignored (an ignored signal stays
        ignored across exec), so a Ctrl-C in the terminal, which reaches the whole
        process group, never kills a worker while it loads: the driver stops them."""
        mine, theirs = self._context.Pipe()
        process = self._context.Process(target=serve, args=(theirs, self.settings),
                                        name="facelandmarks-index", daemon=True)
        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
        try:
            process.start()
        finally:
            if main:
                signal.signal(signal.SIGINT, previous)
        theirs.close()
        return _Slot(process, mine)

    def pids(self) -> list[int]:
        return [s.process.pid for s in self._slots]

    def stop(self) -> None:
        """Ask every worker to finish, then terminate those still busy."""
        for slot in self._slots:
            try:
                slot.conn.send(None)
            except (OSError, ValueError):
                pass
        for slot in self._slots:
            slot.process.join(STOP_GRACE_S if slot.task is None else 0.1)
            if slot.process.is_alive():
                slot.process.terminate()
                slot.process.join(STOP_GRACE_S)
            if slot.process.is_alive():
                slot.process.kill()
                slot.process.join()
            slot.conn.close()
        self._slots = []


def serve(conn, settings: IndexSettings) -> None:
    """A worker process: load the models, then index each file sent until None."""
    from .worker import IndexWorker

    signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C is the driver's to handle
    _die_with_parent()
    try:
        worker = IndexWorker(settings)
    except Exception as exc:  # noqa: BLE001 -- reported, and the run stops
        conn.send(("start-failed", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready", None))
    try:
        while True:
            try:
                task = conn.recv()
            except EOFError:
                return
            if task is None:
                return
            result = worker.index_file(task, on_frames=lambda n: conn.send(("frames", n)))
            conn.send(("result", result))
    finally:
        worker.close()


def _die_with_parent() -> None:
    """Linux: SIGTERM this process when the driver dies (even by kill -9)."""
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)   # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
