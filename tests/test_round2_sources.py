"""Issue 20 ("Nothing lost, nothing exposed, round 2"), the sources, the main loop and its
outputs: defects 2, 3, 6, 7, 8, 9, 10, 13, 17 and 23, one test (or more) each, failing at
d697870 and passing since. The defect's number is in each test's comment block.

Fast: made-up clips of a few frames (MJPEG/H.264 written here with PyAV or OpenCV), a
stub pipeline where the models add nothing to what is tested; the end-to-end runs
stop after a few frames.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO_ROOT, cut_short_clip, shared

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
CLIP = ("video", "short_hamilton_clip.mp4")


def app(*args, env: dict | None = None, timeout: float = 180,
        **kwargs) -> subprocess.CompletedProcess:
    args = [a if isinstance(a, (str, bytes)) else os.fspath(a) if isinstance(a, os.PathLike)
            else str(a) for a in args]   # bytes stay bytes: a file name that is not UTF-8
    return subprocess.run([sys.executable, "-m", "app", *args],
                          cwd=REPO_ROOT, env=env or ENV, capture_output=True, text=True,
                          timeout=timeout, **kwargs)


# -- 2: no stream credential reaches any output ------------------------------------------------
SECRET_URLS = [   # (url, the secrets in it)
    ("rtsp://admin:p%40ss%2Fw0rd@127.0.0.1:9/live", ["p%40ss%2Fw0rd", "p@ss/w0rd"]),
    ("rtsp://admin:p@ss/w0rd@127.0.0.1:9/live", ["p@ss/w0rd", "ss/w0rd"]),
    ("http://127.0.0.1:9/video.mjpg?user=admin&pwd=hunter22", ["hunter22"]),
    ("rtsp://127.0.0.1:9/live?password=sesame99&channel=1", ["sesame99"]),
    ("https://cam.invalid:9/s?token=abcdef123&x=1", ["abcdef123"]),
    ("rtsp://onlyatoken12@127.0.0.1:9/live", ["onlyatoken12"]),
]


@pytest.mark.parametrize("url,secrets", SECRET_URLS)
def test_a_stream_password_never_reaches_stderr_in_any_spelling(capfd, url, secrets):
    from app.sources.capture import CameraError, CameraSource, describe_source
    with pytest.raises(CameraError) as caught:   # nothing listens on port 9: OpenCV fails
        CameraSource(url, reconnect_attempts=0).start()
    out, err = capfd.readouterr()
    said = "\n".join([out, err, str(caught.value), describe_source(url)])
    for secret in secrets:
        assert secret not in said, said
    assert "127.0.0.1" in str(caught.value) or "cam.invalid" in str(caught.value)


def test_a_stream_password_never_reaches_the_run_s_output_or_events(tmp_path):
    url, secrets = "rtsp://admin:p@ss/w0rd@127.0.0.1:9/live?token=tok3n99", ["ss/w0rd",
                                                                           "tok3n99"]
    done = app("run", "--headless", "--no-progress", "--source", url, "--gallery",
               tmp_path / "g.sqlite3", "--events", tmp_path / "e.jsonl")
    events = (tmp_path / "e.jsonl").read_text() if (tmp_path / "e.jsonl").exists() else ""
    assert done.returncode == 2 and "cannot open camera rtsp://admin:***@" in done.stderr, \
        done.stderr
    for secret in secrets:
        assert secret not in done.stdout + done.stderr + events, done.stderr


# -- shared: a stub pipeline (the main loop's side of it) and small clips -----------------------
class StubPipeline:
    """What the main loop and the window's controller use of a pipeline, with no models:
    one face a frame, a new track every 40 frames, every stage timed."""

    model_id, crop, threshold = "stub", "stub", 0.5
    landmarks = requested_landmarks = "cnn"
    embedding = None   # FaceNet's thread: none (nothing is held back)

    def __init__(self, fail_at: int | None = None):
        from types import SimpleNamespace
        self.gallery = None
        self.tracker = SimpleNamespace(forget_names=lambda *a: None, max_missed=10)
        self.fail_at = fail_at

    def embed_faces(self, *args):
        return []

    def detect_functions(self, count: int):
        return [lambda image: ([], 1.0, None)]

    def relandmark(self, result):
        return result

    def detect_wanted(self, frame) -> bool:
        return True

    def video_mode(self, **kwargs):
        import contextlib
        return contextlib.nullcontext(self)

    def process(self, frame, detections=None, detect_ms=None, early=None):
        from app.types import Face, FrameResult
        if self.fail_at is not None and frame.index >= self.fail_at:
            raise ValueError("gallery vector 3 is damaged (stub)")
        face = Face(box=np.array([1, 2, 30, 40], np.float32), score=0.9,
                    landmarks=np.zeros((68, 2), np.float32), track_id=frame.index // 40,
                    name=None if frame.index % 80 < 40 else "Ann", similarity=0.7,
                    embedding=np.ones(4, np.float32) if frame.index % 10 == 0 else None)
        return FrameResult(frame, [face], {"detect": detect_ms or 1.0, "landmarks": 2.0,
                                           "track": 0.1, "embed": 3.0, "match": 0.2})


def write_clip(path: Path, frames: int = 10, size=(64, 48), rates=None) -> Path:
    """A small clip of numbered grey frames written with PyAV (MJPEG .avi or H.264 .mp4).
    ``rates``: the frame durations in seconds (a variable frame rate), else 10 fps."""
    import av
    from fractions import Fraction
    with av.open(str(path), "w") as out:
        codec = "mjpeg" if path.suffix == ".avi" else "libx264"
        stream = out.add_stream(codec, rate=10)
        stream.width, stream.height = size
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        base = Fraction(1, 1000) if rates else Fraction(1, 10)   # AVI: one tick a frame
        stream.codec_context.time_base = base
        t = 0.0
        for i in range(frames):
            image = np.full((size[1], size[0], 3), (i * 20) % 250, np.uint8)
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts, frame.time_base = round(t / base), base
            t += rates[i] if rates else 0.1
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


# -- 9: a long run's memory stays flat ----------------------------------------------------------
def test_the_main_loop_s_memory_stays_flat_over_a_long_loop(tmp_path):
    import tracemalloc

    from app.outputs.sinks import EventsWriter
    from app.runloop import LoopOptions, Outputs, run
    from app.sources.capture import open_source
    from app.sources.playback import LoopingSource
    clip = write_clip(tmp_path / "c.avi", frames=20)
    source = LoopingSource(lambda: open_source(clip, progress=False))
    events = EventsWriter(tmp_path / "e.jsonl", on="change")
    seen: dict[int, int] = {}

    def measure(result) -> None:
        if result.frame.index == 500:
            tracemalloc.start()
            seen[500] = tracemalloc.get_traced_memory()[0]
        elif result.frame.index == 3499:
            seen[3499] = tracemalloc.get_traced_memory()[0]
    try:
        summary, _ = run(StubPipeline(), source.start(), Outputs(events=events),
                         LoopOptions(max_frames=3500, on_result=measure))
    finally:
        tracemalloc.stop()
        source.stop()
        events.close()
    grown = seen[3499] - seen[500]
    assert summary["frames"] == 3500 and grown < 100_000, \
        f"{grown} bytes more after 3,000 more frames ({grown / 3000:.0f} B a frame)"
    assert set(summary["latency_ms"]) >= {"p50", "p95", "p99", "max"}


def test_running_quantiles_are_exact_for_short_series_and_close_for_long_ones():
    from app.runstats import Quantiles, latency_summary
    values = list(np.random.default_rng(0).exponential(10.0, 100_000))
    series = Quantiles()
    for value in values:
        series.append(value)
    exact = np.percentile(values, [50, 95, 99])
    got = series.summary(digits=3)
    assert got["count"] == 100_000 and got["max"] == round(max(values), 3)
    assert np.allclose([got["p50"], got["p95"], got["p99"]], exact, rtol=0.05)
    assert latency_summary([3.0, 1.0, 2.0])["median"] == 2.0
    assert series.summary()["mean"] == round(float(np.mean(values)), 1)


# -- 8: a failure mid-run: exit 1, the summary says "stopped", the message names the partials ----
def last_summary(path: Path) -> dict:
    return json.loads(path.read_text().splitlines()[-1])["summary"]


def test_a_loop_source_deleted_mid_run_stops_with_exit_1_and_names_the_partial_files(
        capsys, tmp_path, monkeypatch):
    import app.sources.capture as capture
    from app.cli import main
    clip = write_clip(tmp_path / "clip.avi", frames=4, size=(320, 240))
    real_open, opened = capture.open_source, []

    def open_until_deleted(source, *args, **kwargs):
        opened.append(source)
        if len(opened) == 3:   # the first open, the first play, then the next play
            Path(clip).unlink()
        return real_open(source, *args, **kwargs)

    monkeypatch.setattr(capture, "open_source", open_until_deleted)
    code = main(["run", "--headless", "--no-progress", "--loop", "--source", str(clip),
                 "--gallery", str(tmp_path / "g.sqlite3"), "--events", str(tmp_path / "e.jsonl"),
                 "--output", str(tmp_path / "o.mp4")])
    out, err = capsys.readouterr()
    partials = sorted(tmp_path.glob("*.partial-*"))
    assert code == 1 and "frames: 4" in out and "stopped: failed:" in out, (out, err)
    assert len(partials) == 2 and all(str(p) in err for p in partials), (partials, err)
    assert not (tmp_path / "e.jsonl").exists() and not (tmp_path / "o.mp4").exists()
    events = next(p for p in partials if p.suffix == ".jsonl")
    assert "not found" in last_summary(events)["stopped"]


def test_a_damaged_gallery_vector_at_the_first_match_stops_with_exit_1(tmp_path):
    import sqlite3

    from app.people.gallery import Gallery
    gallery = tmp_path / "g.sqlite3"
    vector = np.ones((1, 128), np.float32) / np.sqrt(128)
    with Gallery(gallery) as people:
        people.add_samples("Alice", vector, "facenet-keras128:facenet_int8@five-point-tight")
    with sqlite3.connect(gallery) as db:
        db.execute("UPDATE embeddings SET vector = substr(vector, 1, 100)")
    done = app("run", "--headless", "--no-progress", "--source", shared(*CLIP), "--gallery",
               gallery, "--events", tmp_path / "e.jsonl", "--max-frames", 20)
    partials = list(tmp_path.glob("e.partial-*.jsonl"))
    assert done.returncode == 1 and "stopped: failed: " in done.stdout, done.stdout + done.stderr
    assert "damaged embedding" in done.stderr and len(partials) == 1, done.stderr
    assert str(partials[0]) in done.stderr and "damaged" in last_summary(partials[0])["stopped"]


# -- 17: a camera lost mid-run: exit 1 and both summaries say "stopped" ---------------------------
def test_a_camera_lost_mid_run_says_stopped_in_both_summaries(capsys, tmp_path, monkeypatch):
    import app.sources.capture as capture
    from app.cli import main
    from tests.test_capture import FakeCamera, opener

    def fake_camera(spec, *args, **kwargs):
        return capture.CameraSource(0, open_fn=opener(FakeCamera(fail_after=15)),
                                    reconnect_attempts=1, reconnect_delay_s=0.01)

    monkeypatch.setattr(capture, "open_source", fake_camera)
    code = main(["run", "--headless", "--no-progress", "--source", "0", "--gallery",
                 str(tmp_path / "g.sqlite3"), "--events", str(tmp_path / "e.jsonl")])
    out, err = capsys.readouterr()
    assert code == 1 and "stopped: failed: camera index 0 stopped delivering" in out, (out, err)
    assert "stopped delivering" in last_summary(tmp_path / "e.jsonl")["stopped"]


# -- 3: a damaged or cut video: decoded past the damage, or "stopped" with exit 1
def test_random_bytes_in_the_middle_of_a_video_are_decoded_past_with_a_warning(tmp_path, capfd):
    from app.sources.capture import VideoFileSource
    data = shared(*CLIP).read_bytes()
    middle = len(data) // 2
    noise = np.random.default_rng(0).integers(0, 256, 50_000, np.uint8).tobytes()
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(data[:middle] + noise + data[middle + 50_000:])
    with VideoFileSource(damaged, progress=False) as source:
        frames = list(source)
    err = capfd.readouterr().err
    assert len(frames) >= 240 and source.error is None, len(frames)   # OpenCV read 88 of 275
    assert "damaged.mp4 is damaged at frame 137" in err, err
    assert f"{275 - len(frames)} of the 275 frames" in err, err


def test_a_video_cut_short_stops_the_run_with_exit_1_naming_the_frame(tmp_path):
    cut = cut_short_clip(shared(*CLIP), tmp_path / "cut.mp4")
    done = app("run", "--headless", "--no-progress", "--source", cut, "--gallery",
               tmp_path / "g.sqlite3", "--events", tmp_path / "e.jsonl")
    partial = next(tmp_path.glob("e.partial-*.jsonl"))
    stopped = last_summary(partial)["stopped"]
    assert done.returncode == 1 and "frames: 160 " in done.stdout, done.stdout + done.stderr
    assert "ended at frame 160" in stopped and "115 of the 275 frames" in stopped, stopped
    assert "ended at frame 160" in done.stderr and str(partial) in done.stderr, done.stderr


# -- 6: a variable frame rate is timed by the file's timestamps ------------------------------------
VFR = [1 / 29.97] * 60 + [0.2] * 10   # 60 frames at 29.97 fps, then 10 at 5 fps


def test_a_variable_frame_rate_is_timed_by_pts_in_events_output_and_pacing(tmp_path):
    import av

    from app.outputs.sinks import EventsWriter, VideoSink
    from app.runloop import LoopOptions, Outputs, run
    from app.sources.capture import open_source
    from app.sources.playback import Pacer
    clip = write_clip(tmp_path / "vfr.mp4", frames=70, rates=VFR)
    times = np.cumsum([0.0] + VFR[:-1]) * 1000
    events, video = EventsWriter(tmp_path / "e.jsonl"), VideoSink(tmp_path / "o.mp4", 10.0)
    source = open_source(clip, progress=False).start()
    try:
        run(StubPipeline(), source, Outputs(events=events, video=video), LoopOptions())
    finally:
        source.stop()
        events.close()
        video.close()
    t_ms = [json.loads(line)["t_ms"] for line in (tmp_path / "e.jsonl").read_text().splitlines()
            if '"frame"' in line]
    assert np.allclose(t_ms, times, atol=1.5), (t_ms[59], times[59])   # 1969, not 6808
    with av.open(str(tmp_path / "o.mp4")) as written:
        shown = [float(f.time) * 1000 for f in written.decode(video=0)]
    assert np.allclose(np.array(shown) - shown[0], times, atol=1.5), shown[-3:]
    now = [0.0]
    pacer = Pacer(29.97, 1.0, clock=lambda: now[0])
    assert pacer.delay(0, times[0]) == 0.0
    assert pacer.delay(65, times[65]) == pytest.approx(times[65] / 1000, abs=1e-6)
    from types import SimpleNamespace

    from app.runloop import RunStats, _position
    clip_info = SimpleNamespace(is_live=False, frame_count=70, fps=70 / 3.8)
    assert "0:03.0 / 0:03.8" in _position(RunStats(), clip_info, 65, times[65])  # 65: 3.0 s


# -- 7: a file name that is not UTF-8 (Latin-1) plays, never a segfault
def test_a_latin_1_file_name_as_source_plays(tmp_path):
    clip = write_clip(tmp_path / "clip.avi", frames=5, size=(320, 240))
    latin = os.path.join(os.fsencode(tmp_path), "caf\xe9 r\xe9sum\xe9.avi".encode("latin-1"))
    os.rename(clip, latin)
    done = app("run", "--headless", "--no-progress", "--source", latin, "--gallery",
               tmp_path / "g.sqlite3")
    assert done.returncode == 0 and "frames: 5 " in done.stdout, (done.returncode, done.stderr)


# -- 10: video frames over the image pixel limit are refused from the header
def test_video_frames_over_the_pixel_limit_are_refused_before_decoding(tmp_path):
    import av
    big = tmp_path / "huge.avi"
    with av.open(str(big), "w") as out:   # one flat 7100x7100 frame: 50.4 MP
        stream = out.add_stream("mjpeg", rate=1)
        stream.width = stream.height = 7100
        stream.pix_fmt = "yuvj420p"
        frame = av.VideoFrame(7100, 7100, "yuvj420p")
        for plane in frame.planes:
            plane.update(bytes(plane.buffer_size))
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    done = app("run", "--headless", "--no-progress", "--source", big, "--gallery",
               tmp_path / "g.sqlite3")
    assert done.returncode == 2 and "7100x7100, 50.4 megapixels, over the limit of 50" in \
        done.stderr, done.stderr
    from app.sources.decode import FileDecoder, VideoTooLarge
    with pytest.raises(VideoTooLarge, match="640x360"):
        FileDecoder(shared(*CLIP), max_pixels=640 * 360 - 1)   # from the header: no frame read


# -- 13: --events on a FIFO nobody reads: says it waits, then fails clearly
def test_events_on_a_fifo_with_no_reader_says_it_waits_then_fails_clearly(tmp_path, capfd,
                                                                          monkeypatch):
    import threading

    import app.outputs.sinks as sinks
    monkeypatch.setattr(sinks, "FIFO_WAIT_S", 1.0, raising=False)
    fifo = tmp_path / "events.fifo"
    os.mkfifo(fifo)
    outcome: list = []

    def open_writer() -> None:
        try:
            outcome.append(sinks.EventsWriter(fifo))
        except Exception as exc:   # noqa: BLE001 - the test looks at it
            outcome.append(exc)
    opener = threading.Thread(target=open_writer, daemon=True)
    opener.start()
    opener.join(6)
    if opener.is_alive():   # blocked in open(): let it go before failing
        os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
    err = capfd.readouterr().err
    assert outcome and isinstance(outcome[0], ValueError), "blocked with no message"
    assert "no program opened for reading within 1 s" in str(outcome[0])
    assert "waiting up to 1 s for a program to read it" in err, err
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)   # with a reader it just works
    try:
        writer = sinks.EventsWriter(fifo)
        writer.write_summary({"frames": 0})
        writer.close()
        assert b'{"summary":{"frames":0}}' in os.read(reader, 1000)
    finally:
        os.close(reader)


# -- 23: the switch bench re-embeds real face crops (random crops held no face) -------------------
def test_the_switch_bench_re_embeds_every_one_of_its_real_face_crops(tmp_path):
    from app.lab import fault_bench
    shared("identities", "lfw-view1")
    gallery = tmp_path / "big.sqlite3"
    fault_bench.build_gallery(gallery, 24)
    result = fault_bench.switch_child(str(gallery), "keras-int8")
    assert (result["re_embedded"], result["left_out"]) == (24, 0), result


def test_the_mp4_writer_keeps_no_per_frame_index_in_memory(tmp_path):
    """FFmpeg's mp4 muxer keeps a 40-byte entry per fragment (one a frame here) for the
    mfra index it writes at the end: 100 MB a day of webcam. The writer skips that
    trailer (fragmented mp4 plays and seeks without it, as a killed run's file does)."""
    import av

    from app.outputs.video import VideoEncoder
    path = tmp_path / "o.mp4"
    encoder = VideoEncoder(path, 64, 48, 30.0)
    for i in range(60):
        encoder.write(np.full((48, 64, 3), i, np.uint8), i / 30)
    encoder.close()
    assert b"mfra" not in path.read_bytes()
    with av.open(str(path)) as video:
        video.seek(1_000_000)
        assert float(next(video.decode(video=0)).time) == pytest.approx(1.0, abs=0.04)
