"""The Ray backend (``--cluster ray[://HOST:PORT]``): the same :class:`IndexWorker` as Ray
actors, one CPU each.

With no address (and no ``RAY_ADDRESS``) a local Ray is started for the run with one CPU
per worker and a small object store, and shut down after; with one, the run joins that
cluster (``ray start --head`` on one machine, ``ray start --address=HEAD:6379`` on the
others) and uses as many actors as ``--workers`` asks (default: the cluster's CPUs). An
actor loads the models once and takes many files; ``max_restarts`` and
``max_task_retries`` make a crashed worker a restarted actor and a retried file, not a
lost one. Rows come back to the driver, which writes the index, so only the *videos*
must be readable at the same path on every node (a shared mount); no node needs the
gallery or the output folder.
"""
from __future__ import annotations

import os
from typing import Callable

from ..paths import REPO_ROOT
from .worker import FileResult, FileTask, IndexSettings

RETRIES = 2
LOCAL_OBJECT_STORE_BYTES = 200 * 2**20   # rows are small: thumbnails and one vector each


class RayPool:
    """``run(tasks, on_result, on_frames)`` on Ray actors (module docstring)."""

    def __init__(self, settings: IndexSettings, workers: int | None, address: str | None = None,
                 retries: int = RETRIES):
        self.settings = settings
        self.workers = workers
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        self.retries = retries

    def run(self, tasks: list[FileTask], on_result: Callable[[FileResult], None],
            on_frames: Callable[[FileTask, int], None] | None = None) -> None:
        """``on_frames`` is not called: an actor's frames count when its file is done."""
        import ray

        started = self._connect(ray)
        actors = []
        try:
            count = max(1, min(len(tasks), self.workers or int(ray.cluster_resources()
                                                                 .get("CPU", 1))))
            worker_class = ray.remote(num_cpus=1, max_restarts=self.retries,
                                      max_task_retries=self.retries)(_worker_class())
            actors = [worker_class.remote(self.settings) for _ in range(count)]
            self._map(ray, actors, tasks, on_result, on_frames)
        finally:
            for actor in actors:
                ray.kill(actor, no_restart=True)
            if started:
                ray.shutdown()

    def _connect(self, ray) -> bool:
        """Join the cluster (or start a local Ray); True when this run started it."""
        if ray.is_initialized():
            return False
        env = {"env_vars": {"PYTHONPATH": os.pathsep.join(
            p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p)}}
        if self.address:
            ray.init(address=self.address, runtime_env=env, log_to_driver=False)
        else:
            ray.init(num_cpus=self.workers or os.cpu_count(), include_dashboard=False,
                     object_store_memory=LOCAL_OBJECT_STORE_BYTES, runtime_env=env,
                     log_to_driver=False)
        return True

    def _map(self, ray, actors, tasks, on_result, on_frames) -> None:
        """One file per idle actor until all are done; a file whose actor failed past
        its retries is reported failed."""
        pending = list(reversed(tasks))
        running: dict = {}   # object ref -> (actor, task)
        idle = list(actors)
        while pending or running:
            while idle and pending:
                actor, task = idle.pop(), pending.pop()
                running[actor.index_file.remote(task)] = (actor, task)
            done, _ = ray.wait(list(running), num_returns=1)
            actor, task = running.pop(done[0])
            idle.append(actor)
            try:
                result = ray.get(done[0])
            except (ray.exceptions.RayError, OSError) as exc:
                result = FileResult(task, "failed", reason=f"its Ray worker failed "
                                    f"{self.retries + 1} times: {_first_line(exc)}",
                                    attempts=self.retries + 1, transient=True)
            on_result(result)


def _worker_class():
    from .worker import IndexWorker
    return IndexWorker


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
