"""Frame sources. The camera is a fake (no physical camera here) that produces numbered
frames at 30 FPS; the video and image sources read real files from ../shared/data."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from app.sources.capture import (
    CameraError,
    CameraSource,
    FrameClock,
    ImageSource,
    VideoFileSource,
    now_ms,
    open_source,
    realtime_video,
)
from tests.conftest import shared

CLIP = ("video", "short_hamilton_clip.mp4")
CLIP_FRAMES = 275


class FakeCamera:
    """cv2.VideoCapture look-alike: numbered frames on a 30 FPS schedule.

    The frame number is written into the first two pixels so a test can tell frames apart.
    ``fail_after``: read() fails (camera unplugged) once that many frames were served.
    ``block``: read() waits on this event (a driver stuck inside read()).
    """

    def __init__(self, fps: float = 30.0, opened: bool = True, fail_after: int | None = None,
                 block: threading.Event | None = None, start_number: int = 0):
        self.clock = FrameClock(fps)
        self.opened = opened
        self.fail_after = fail_after
        self.block = block
        self.number = start_number
        self.served = 0
        self.released = False

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
        return self.opened and not self.released

    def read(self):
        if self.block is not None:
            self.block.wait()
            return False, None
        if self.released or (self.fail_after is not None and self.served >= self.fail_after):
            time.sleep(0.005)
            return False, None
        self.clock.wait()
        image = np.zeros((36, 48, 3), np.uint8)
        image[0, 0, 0], image[0, 0, 1] = self.number % 256, self.number // 256
        self.number += 1
        self.served += 1
        return True, image

    def release(self) -> None:
        self.released = True


def number_of(frame) -> int:
    return int(frame.image[0, 0, 0]) + 256 * int(frame.image[0, 0, 1])


def opener(*cameras: FakeCamera):
    """open_fn returning the given cameras in turn (then unopenable ones); records calls."""
    queue = list(cameras)

    def open_fn(source):
        open_fn.calls.append(source)
        return queue.pop(0) if queue else FakeCamera(opened=False)

    open_fn.calls = []
    return open_fn


# -- camera -------------------------------------------------------------------------------
def test_slow_consumer_gets_newest_frames_never_twice_and_drops_are_counted():
    camera = FakeCamera(fps=30)
    source = CameraSource(0, open_fn=opener(camera))
    numbers, latencies = [], []
    with source:
        deadline = time.monotonic() + 1.2
        while time.monotonic() < deadline:
            frame = source.read(timeout=1.0)
            assert frame is not None
            latencies.append(now_ms() - frame.timestamp_ms)
            numbers.append(number_of(frame))
            assert frame.index == numbers[-1]
            time.sleep(0.06)  # ~16 FPS consumer: slower than the camera
        started = time.monotonic()
        source.stop()
        stop_s = time.monotonic() - started

    assert all(b > a for a, b in zip(numbers, numbers[1:])), "a frame was served twice"
    assert source.dropped > 0
    # every captured frame was either served, dropped, or is the one left in the slot
    assert len(numbers) + source.dropped <= source.captured <= len(numbers) + source.dropped + 1
    assert np.percentile(latencies, 95) < 50.0
    assert stop_s < 1.0
    assert camera.released
    assert source.read(timeout=0.1) is None and source.ended and source.error is None


def test_fast_consumer_waits_for_a_new_frame_instead_of_repeating_one():
    source = CameraSource(0, open_fn=opener(FakeCamera(fps=30)))
    with source:
        frames = [source.read(timeout=1.0) for _ in range(12)]
    numbers = [number_of(f) for f in frames]
    assert all(b > a for a, b in zip(numbers, numbers[1:]))
    assert source.dropped <= 2  # a waiting reader takes each frame as it lands


def test_stop_returns_within_a_second_even_when_the_driver_is_stuck_in_read():
    unblock = threading.Event()
    camera = FakeCamera(block=unblock)
    source = CameraSource(0, open_fn=opener(camera)).start()
    started = time.monotonic()
    source.stop()
    assert time.monotonic() - started < 1.0
    assert source.read(timeout=0.05) is None
    unblock.set()  # the driver returns: the capture thread releases the device itself
    source._thread.join(1.0)
    assert not source._thread.is_alive() and camera.released


def test_camera_that_will_not_open_names_the_index_and_how_to_list_devices():
    camera = FakeCamera(opened=False)
    with pytest.raises(CameraError) as info:
        CameraSource(3, open_fn=opener(camera)).start()
    message = str(info.value)
    assert "camera index 3" in message
    assert "v4l2-ctl --list-devices" in message and "/dev/video" in message
    assert camera.released


def test_stream_url_error_hides_the_password():
    with pytest.raises(CameraError) as info:
        CameraSource("rtsp://admin:secret@10.0.0.5/stream", open_fn=opener()).start()
    assert "rtsp://admin:***@10.0.0.5/stream" in str(info.value)
    assert "secret" not in str(info.value) and "URL" in str(info.value)


def test_camera_lost_mid_stream_retries_then_ends_cleanly():
    open_fn = opener(FakeCamera(fps=200, fail_after=5))
    source = CameraSource(0, open_fn=open_fn, reconnect_attempts=3, reconnect_delay_s=0.01)
    with source:
        frames = list(source)  # ends instead of hanging
    assert 1 <= len(frames) <= 5
    assert len(open_fn.calls) == 1 + 3
    assert source.ended
    assert "3 reconnect attempts failed" in source.error and "camera index 0" in source.error
    assert source.read(timeout=0.05) is None


def test_camera_lost_then_back_reconnects_and_keeps_counting():
    first = FakeCamera(fps=200, fail_after=3)
    second = FakeCamera(fps=200, start_number=3)
    source = CameraSource(0, open_fn=opener(first, second), reconnect_delay_s=0.01)
    with source:
        numbers = []
        while len(numbers) < 8:
            frame = source.read(timeout=1.0)
            assert frame is not None
            numbers.append(frame.index)
    assert source.reconnects == 1 and source.error is None
    assert first.released and second.released
    assert all(b > a for a, b in zip(numbers, numbers[1:]))


def test_reconnect_forever_backs_off_then_resumes(capsys):
    """--reconnect / serve: a camera gone for a while is waited for with growing gaps
    (0.02, 0.04, 0.08, 0.08 s: doubled, capped), not given up on."""
    attempts: list[float] = []
    cameras = [FakeCamera(fps=200, fail_after=3), *[FakeCamera(opened=False)] * 4,
               FakeCamera(fps=200, start_number=3)]

    def open_fn(source):
        attempts.append(time.monotonic())
        return cameras.pop(0)

    source = CameraSource(0, open_fn=open_fn, reconnect_attempts=None, reconnect_delay_s=0.02,
                          max_delay_s=0.08)
    with source:
        numbers = []
        while len(numbers) < 6:
            frame = source.read(timeout=2.0)
            assert frame is not None, source.error
            numbers.append(frame.index)
    gaps = [b - a for a, b in zip(attempts[1:], attempts[2:])]
    assert len(attempts) == 6 and source.reconnects == 1 and source.error is None
    assert [round(g, 2) >= d * 0.9 for g, d in zip(gaps, (0.04, 0.08, 0.08, 0.08))] == [True] * 4
    assert gaps[1] > gaps[0] * 1.5    # backing off, not a fixed rhythm
    err = capsys.readouterr().err
    assert "stopped delivering frames after 3 frames; reopening it" in err
    assert "reopened after" in err and "(5 attempt(s))" in err


# -- video file ---------------------------------------------------------------------------
def test_video_file_serves_every_frame_in_order_then_ends(capsys):
    path = shared(*CLIP)
    reference = cv2.VideoCapture(str(path))
    with VideoFileSource(path, progress=True) as source:
        assert source.frame_count == CLIP_FRAMES
        assert source.fps == pytest.approx(29.97, abs=0.01)
        count = 0
        for frame in source:
            ok, expected = reference.read()
            assert ok and frame.index == count
            assert np.array_equal(frame.image, expected)
            count += 1
        assert source.read() is None and source.read() is None and source.ended
    reference.release()
    assert count == CLIP_FRAMES
    assert f"{CLIP_FRAMES}/{CLIP_FRAMES}" in capsys.readouterr().err  # the progress bar


def test_video_file_stops_early_without_hanging():
    source = VideoFileSource(shared(*CLIP), progress=False, queue_size=4).start()
    assert [source.read().index for _ in range(10)] == list(range(10))
    time.sleep(0.2)  # let the reader fill the queue and block on it
    started = time.monotonic()
    source.stop()
    assert time.monotonic() - started < 1.0
    assert source.read() is None


def test_missing_video_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.mp4"):
        VideoFileSource(tmp_path / "missing.mp4")


def test_corrupt_video_raises_value_error_naming_the_path(tmp_path):
    path = tmp_path / "broken.mp4"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, np.uint8).tobytes())
    with pytest.raises(ValueError, match="broken.mp4"):
        VideoFileSource(path, progress=False)


def test_truncated_video_fails_clearly_or_ends_early(tmp_path):
    path = tmp_path / "truncated.mp4"
    path.write_bytes(shared(*CLIP).read_bytes()[:60_000])
    try:
        source = VideoFileSource(path, progress=False)
    except ValueError as exc:
        assert "truncated.mp4" in str(exc)
        return
    with source:
        assert len(list(source)) < CLIP_FRAMES


# -- video file played as a camera (bench --realtime) -------------------------------------------
def clip_head(folder, frames: int) -> Path:
    """The first ``frames`` frames of the real Hamilton clip as a short mp4 (same frame rate)."""
    reader = cv2.VideoCapture(str(shared(*CLIP)))
    fps = reader.get(cv2.CAP_PROP_FPS)
    path = Path(folder) / f"hamilton_head{frames}.mp4"
    writer = None
    for _ in range(frames):
        ok, image = reader.read()
        assert ok
        if writer is None:
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps,
                                     (image.shape[1], image.shape[0]))
        writer.write(image)
    writer.release()
    reader.release()
    return path


def file_frames(path) -> list[np.ndarray]:
    reader = cv2.VideoCapture(str(path))
    frames = []
    while (item := reader.read())[0]:
        frames.append(item[1])
    reader.release()
    return frames


def test_video_as_a_camera_keeps_the_file_rate_and_ends_without_an_error(tmp_path):
    path = clip_head(tmp_path, 20)
    source = realtime_video(path)
    assert source.is_live and source.fps == pytest.approx(29.97, abs=0.01)
    started = time.monotonic()
    with source:
        frames = list(source)
    elapsed = time.monotonic() - started
    assert elapsed >= 19 / 29.97 * 0.9, "frames came faster than the file's frame rate"
    assert source.captured == 20 and source.error is None and source.ended
    assert len(frames) + source.dropped == 20
    reference = file_frames(path)
    assert all(np.array_equal(f.image, reference[f.index]) for f in frames)


def test_slow_consumer_of_a_video_as_a_camera_loses_frames_and_they_are_counted(tmp_path):
    path = clip_head(tmp_path, 20)
    reference = file_frames(path)
    served = []
    with realtime_video(path) as source:
        for frame in source:
            served.append(frame)
            time.sleep(0.1)  # ~10 FPS consumer of a 30 FPS file
    indices = [f.index for f in served]
    assert all(b > a for a, b in zip(indices, indices[1:]))
    assert source.dropped >= 5 and len(served) + source.dropped == source.captured == 20
    assert all(np.array_equal(f.image, reference[f.index]) for f in served)


def test_video_as_a_camera_refuses_a_missing_or_corrupt_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.mp4"):
        realtime_video(tmp_path / "missing.mp4")
    path = tmp_path / "broken.mp4"
    path.write_bytes(b"not a video" * 100)
    with pytest.raises(ValueError, match="broken.mp4"):
        realtime_video(path)


# -- image and open_source ------------------------------------------------------------------
def test_image_source_serves_one_frame():
    path = shared("video", "lin-manuel-miranda.png")
    with ImageSource(path) as source:
        frame = source.read()
        assert frame.index == 0 and frame.image.ndim == 3 and frame.image.dtype == np.uint8
        assert source.read() is None and source.ended


def test_unreadable_photo_raises_value_error_naming_the_file(tmp_path):
    path = tmp_path / "photo.jpg"
    path.write_bytes(b"not a jpeg at all")
    with pytest.raises(ValueError, match="photo.jpg"):
        ImageSource(path)
    with pytest.raises(FileNotFoundError, match="nope.png"):
        ImageSource(tmp_path / "nope.png")


def test_open_source_picks_the_right_kind(tmp_path):
    assert isinstance(open_source(0), CameraSource)
    camera = open_source(" 1 ")
    assert isinstance(camera, CameraSource) and camera.source == 1  # nothing opened yet
    assert isinstance(open_source("rtsp://cam.local/stream"), CameraSource)
    assert isinstance(open_source("/dev/video2"), CameraSource)
    video = open_source(str(shared(*CLIP)), progress=False)
    assert isinstance(video, VideoFileSource)
    video.stop()
    assert isinstance(open_source(shared("video", "alex-lacamoire.png")), ImageSource)
    with pytest.raises(FileNotFoundError):
        open_source(tmp_path / "nothing.mp4")
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    with pytest.raises(ValueError, match="extension"):
        open_source(notes)


# -- camera through the main loop ---------------------------------------------------------
class SlowScreen:
    """Window look-alike (the consumer of the camera): ``show()`` takes ``show_s``, and
    once, at the ``stall_at``-th frame, freezes for ``stall_s`` (a display hiccup)."""

    def __init__(self, show_s: float = 0.010, stall_at: int = 20, stall_s: float = 0.2):
        self.show_s, self.stall_at, self.stall_s = show_s, stall_at, stall_s
        self.shown = 0
        self.closed = False

    def show(self, image) -> None:
        assert image.ndim == 3
        self.shown += 1
        time.sleep(self.stall_s if self.shown == self.stall_at else self.show_s)

    def key(self, wait_ms: int = 1) -> int:
        return -1


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    from tests.conftest import built_pipeline

    with built_pipeline(tmp_path_factory.mktemp("camera-run") / "gallery.sqlite3") as pipe:
        yield pipe


def test_camera_through_the_main_loop_shows_fresh_frames_once_and_counts_drops(pipeline,
                                                                               tmp_path):
    from app.lab import scoring
    from app.outputs.sinks import EventsWriter
    from app.runloop import LoopOptions, Outputs, run

    # The detect-ahead thread and the camera slot buffer about 3 frames, so the 200 ms
    # hiccup (6 camera frames) must cost frames; the few frames shown late right after
    # it stay above the 95th percentile of 110 frames.
    frames_wanted = 110
    camera = FakeCamera(fps=30)
    source = CameraSource(0, open_fn=opener(camera)).start()
    screen = SlowScreen(show_s=0.010, stall_at=20, stall_s=0.2)
    events = EventsWriter(tmp_path / "camera.jsonl")
    try:
        summary, stop_reason = run(pipeline, source, Outputs(window=screen, events=events),
                                   LoopOptions(max_frames=frames_wanted))
    finally:
        events.close()
        started = time.monotonic()
        source.stop()
        stop_s = time.monotonic() - started
    assert stop_s < 1.0
    assert camera.released and source.error is None

    frames, written = scoring.read_events(tmp_path / "camera.jsonl")
    shown = [e["frame"] for e in frames]
    assert len(shown) == frames_wanted == summary["frames"] == screen.shown
    assert all(b > a for a, b in zip(shown, shown[1:])), "a frame was shown twice"
    skipped = (shown[-1] + 1) - len(shown)  # indices before the last shown one never shown
    assert skipped >= 1, "the hiccup should have cost frames"
    # Every skipped index was dropped by the source; later drops can only come after it.
    assert skipped <= summary["dropped"] <= source.dropped
    assert source.dropped <= skipped + (source.captured - shown[-1] - 1)
    assert written["dropped"] == summary["dropped"]
    assert summary["latency_ms"]["p95"] < 50.0, summary
    assert stop_reason is None
