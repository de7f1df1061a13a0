"""A real ``python -m app serve`` process for the tests that need one (the stream, signals,
the browser): started on a free port, waited for, stopped, its log kept."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import cv2
import httpx
import numpy as np

from tests.conftest import REPO_ROOT, shared

START_TIMEOUT_S = 120   # models load in a few seconds; CI machines can be slow and busy


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServeProcess:
    """``python -m app serve ARGS --port P``; ``url`` once :meth:`wait_ready` returned."""

    def __init__(self, args: list[str], log_dir: Path, env: dict | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.out_path, self.err_path = log_dir / "serve.out", log_dir / "serve.err"
        command = [sys.executable, "-m", "app", "serve", *args, "--port", str(self.port)]
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=out, stderr=err,
                                            env={**os.environ, **(env or {})})

    def wait_ready(self, timeout: float = START_TIMEOUT_S, headers: dict | None = None) -> dict:
        """The first answer of /api/status with a frame; fails with the log if it dies."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited {self.process.returncode}:\n{self.log()}")
            try:
                status = httpx.get(f"{self.url}/api/status", headers=headers, timeout=2).json()
                if status.get("frames"):
                    return status
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.2)
        raise AssertionError(f"serve did not answer within {timeout} s:\n{self.log()}")

    def threads(self) -> int:
        """The server process's thread count (Linux /proc)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("Threads:"):
                return int(line.split()[1])
        raise AssertionError("no Threads line in /proc")

    def terminate(self, timeout: float = 15) -> tuple[int, float]:
        """SIGTERM; (exit code, seconds it took)."""
        start = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout)
        return code, time.monotonic() - start

    def log(self) -> str:
        return (self.out_path.read_text(errors="replace")
                + self.err_path.read_text(errors="replace"))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@contextmanager
def serving_clip(folder: Path, *extra: str):
    """``serve`` on the Hamilton clip, looping, with a fresh gallery in ``folder``; ready."""
    process = ServeProcess(["--source", str(shared("video", "short_hamilton_clip.mp4")),
                            "--loop", "--gallery", str(folder / "g.sqlite3"), *extra], folder)
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()


def two_people_png(folder: Path) -> Path:
    """The two enrolment photos side by side (Lin-Manuel left, Alex right), as one PNG."""
    left = cv2.imread(str(shared("video", "lin-manuel-miranda.png")))
    right = cv2.imread(str(shared("video", "alex-lacamoire.png")))
    height = min(left.shape[0], right.shape[0])
    path = folder / "two-people.png"
    assert cv2.imwrite(str(path), np.concatenate(
        [cv2.resize(im, (round(im.shape[1] * height / im.shape[0]), height))
         for im in (left, right)], axis=1))
    return path
