"""serve as a process, as a team runs it: the MJPEG stream under several watchers, the
enrolment round trip over HTTP, SIGTERM with streams open, the public-address rules."""
from __future__ import annotations

import socket
import statistics
import threading
import time

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")

from tests.conftest import shared  # noqa: E402
from tests.serving import ServeProcess, serving_clip, two_people_png  # noqa: E402

CLIP_FPS = 29.97
LIN = "Lin-Manuel Miranda"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("serve-process")
    with serving_clip(folder, "--events", str(folder / "events.jsonl"),
                      "--events-on", "change") as process:
        yield process


class StreamReader:
    """Reads /api/stream.mjpg on a thread, counting parts and their capture ages."""

    def __init__(self, url: str):
        self.parts: list[float] = []       # arrival times (monotonic s)
        self.ages: list[float] = []        # X-Capture-Age-Ms of each part
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, args=(url,), daemon=True)
        self._thread.start()

    def _read(self, url: str) -> None:
        with httpx.stream("GET", f"{url}/api/stream.mjpg", timeout=10) as response:
            assert response.headers["content-type"].startswith("multipart/x-mixed-replace")
            buffer = b""
            for chunk in response.iter_bytes():
                buffer += chunk
                while (end := buffer.find(b"\r\n\r\n")) >= 0 and b"Content-Length" in buffer:
                    head = buffer[:end].decode("latin-1")
                    fields = dict(line.split(": ", 1) for line in head.splitlines()
                                  if ": " in line)
                    size = int(fields["Content-Length"])
                    if len(buffer) < end + 4 + size + 2:
                        break
                    jpeg = buffer[end + 4:end + 4 + size]
                    assert jpeg[:2] == b"\xff\xd8"
                    self.parts.append(time.monotonic())
                    self.ages.append(float(fields["X-Capture-Age-Ms"]))
                    buffer = buffer[end + 4 + size + 2:]
                if self._stop.is_set():
                    return

    def count_between(self, start: float, end: float) -> int:
        return sum(start <= t < end for t in self.parts)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)


def test_stream_delivers_the_clips_rate_and_a_stalled_client_slows_nobody(server):
    reader = StreamReader(server.url)
    try:
        time.sleep(3.5)
        start = time.monotonic() - 3.0
        assert reader.count_between(start, start + 3.0) >= 20
        # a second client that stops reading for 2 s (its socket buffers fill up)
        stalled = socket.create_connection(("127.0.0.1", server.port))
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.sendall(f"GET /api/stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1:{server.port}"
                        f"\r\n\r\n".encode())
        stall_start = time.monotonic()
        time.sleep(2.0)
        during = reader.count_between(stall_start, stall_start + 2.0)
        stalled.close()
        assert during >= 0.6 * CLIP_FPS * 2.0, f"{during} parts in 2 s beside a stalled client"
        ages = sorted(reader.ages)
        p95 = ages[int(0.95 * (len(ages) - 1))]
        print(f"\nstream: {len(reader.parts)} parts, capture-to-delivery median "
              f"{statistics.median(ages):.1f} ms, p95 {p95:.1f} ms")
    finally:
        reader.close()


def test_connecting_and_leaving_50_times_leaves_the_thread_count_flat(server):
    def one_visit():
        with httpx.stream("GET", f"{server.url}/api/stream.mjpg", timeout=10) as response:
            next(response.iter_bytes())
    for _ in range(5):   # the worker threads asyncio keeps for encoding start here
        one_visit()
    before = server.threads()
    for _ in range(50):
        one_visit()
    time.sleep(0.5)
    assert server.threads() <= before + 1
    assert httpx.get(f"{server.url}/api/status").json()["watchers"] == 0


def test_upload_names_him_on_the_live_picture_and_people_can_be_managed(server, tmp_path):
    api = f"{server.url}/api"
    two = httpx.post(f"{api}/people/Two/photos",
                     files={"photos": ("two.png", two_people_png(tmp_path).read_bytes(),
                                       "image/png")})
    assert two.status_code == 422 and len(two.json()["faces"]) == 2
    assert httpx.get(f"{api}/people").json() == []        # nothing stored
    lin = shared("video", "lin-manuel-miranda.png").read_bytes()
    added = httpx.post(f"{api}/people/Lin-Manuel%20Miranda/photos",
                       files={"photos": ("lin.png", lin, "image/png")})
    assert added.status_code == 201 and added.json()["added"] == 1
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if any(f["name"] == LIN for f in httpx.get(f"{api}/faces").json()["faces"]):
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"{LIN} not named on the live picture within 30 s")
    assert httpx.patch(f"{api}/people/Lin-Manuel%20Miranda",
                       json={"name": "LMM"}).status_code == 200
    assert [p["name"] for p in httpx.get(f"{api}/people").json()] == ["LMM"]
    assert httpx.delete(f"{api}/people/LMM").status_code == 204
    assert httpx.delete(f"{api}/people/LMM").status_code == 404
    assert httpx.get(f"{api}/people").json() == []


def test_sigterm_with_streams_open_ends_in_seconds_without_a_traceback(tmp_path):
    with serving_clip(tmp_path, "--events", str(tmp_path / "e.jsonl")) as process:
        readers = [StreamReader(process.url) for _ in range(2)]
        time.sleep(1.0)
        code, took = process.terminate()
        for reader in readers:
            reader.close()
    log = process.log()
    assert code == 0 and took < 8, f"exit {code} after {took:.1f} s:\n{log}"
    assert "Traceback" not in log and "stopped after" in log
    lines = (tmp_path / "e.jsonl").read_text().splitlines()
    assert lines and '"summary"' in lines[-1]     # the events file was finished


def test_public_address_needs_a_token(tmp_path):
    clip = str(shared("video", "short_hamilton_clip.mp4"))
    refused = ServeProcess(["--source", clip, "--host", "0.0.0.0",
                            "--gallery", str(tmp_path / "g.sqlite3")], tmp_path)
    assert refused.process.wait(60) == 2
    assert "--token" in refused.log()
    token = "s3cret-token-for-tests"
    guarded = ServeProcess(["--source", clip, "--loop", "--host", "0.0.0.0", "--token", token,
                            "--gallery", str(tmp_path / "g.sqlite3")], tmp_path)
    try:
        guarded.wait_ready(headers={"Authorization": f"Bearer {token}"})
        assert httpx.get(f"{guarded.url}/api/people").status_code == 401
        assert httpx.get(f"{guarded.url}/api/people",
                         headers={"Authorization": f"Bearer {token}"}).status_code == 200
    finally:
        guarded.stop()
