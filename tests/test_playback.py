"""Playback pacing (app.sources.playback): frames due on the file's clock, re-anchored after a
pause; --loop plays a real clip again with increasing frame indices."""
from __future__ import annotations

import pytest

from app.sources.capture import open_source
from app.sources.playback import LoopingSource, Pacer
from tests.conftest import shared


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_pacer_spaces_frames_by_the_frame_period():
    clock = Clock()
    pacer = Pacer(25.0, speed=1.0, clock=clock)
    assert pacer.delay(0) == 0.0                      # the first frame anchors
    assert pacer.delay(1) == pytest.approx(0.04)
    clock.now += 0.03                                  # a slow frame is caught up...
    assert pacer.delay(1) == pytest.approx(0.01)
    clock.now += 0.1
    assert pacer.delay(2) == 0.0                       # ...a late one is shown at once


def test_pacer_speed_and_reanchor():
    clock = Clock()
    pacer = Pacer(30.0, speed=2.0, clock=clock)
    pacer.delay(10)
    assert pacer.delay(12) == pytest.approx(2 / 60)
    clock.now += 60.0                                  # paused for a minute
    pacer.reanchor()
    assert pacer.delay(13) == 0.0                      # no racing to catch up
    assert pacer.delay(14) == pytest.approx(1 / 60)
    with pytest.raises(ValueError, match="speed"):
        Pacer(30.0, speed=0)


def test_looping_source_plays_again_with_increasing_indices():
    path = shared("video", "short_hamilton_clip.mp4")
    source = LoopingSource(lambda: open_source(path, progress=False)).start()
    count = source.frame_count
    indices = []
    try:
        while len(indices) < count + 5:
            frame = source.read(timeout=5)
            if frame is not None:
                indices.append(frame.index)
    finally:
        source.stop()
    assert indices == list(range(count + 5)) and source.plays == 2
    assert source.read() is None


def test_stats_leave_paused_time_out_and_average_only_frames_that_ran_a_stage(tmp_path):
    import time

    import numpy as np

    from app.runloop import RunStats, save_screenshot
    from app.types import Face, Frame, FrameResult

    def result(embedded: bool) -> FrameResult:
        face = Face(box=np.zeros(4, np.float32), score=1.0,
                    embedding=np.ones(4, np.float32) if embedded else None)
        return FrameResult(Frame(0, np.zeros((4, 4, 3), np.uint8), 0.0), [face],
                           {"detect": 5.0, "embed": 20.0 if embedded else 0.01})

    stats = RunStats()
    for i in range(4):
        stats.add(result(embedded=i == 0), None)
        time.sleep(0.01)
    time.sleep(0.3)          # paused 0.3 s, then one more frame
    stats.idle(0.3)
    stats.add(result(embedded=False), None)
    summary = stats.summary()
    assert (summary["stage_mean_ms"]["embed"], summary["stage_frames"]["embed"]) == (20.0, 1)
    assert (summary["stage_mean_ms"]["detect"], summary["stage_frames"]["detect"]) == (5.0, 5)
    assert summary["fps"] > 20, "the pause was counted as playing time"
    message = save_screenshot(np.full((8, 8, 3), 7, np.uint8), tmp_path)
    assert message.startswith("screenshot saved: ") and len(list(tmp_path.glob("*.png"))) == 1


def test_clock_rounds_before_it_splits_minutes():
    from app.runloop import _clock

    assert [_clock(t) for t in (0, 3.08, 59.96, 61.25, 600)] == \
        ["0:00.0", "0:03.1", "1:00.0", "1:01.2", "10:00.0"]


def test_status_bar_shows_a_files_position_and_a_cameras_latency():
    from types import SimpleNamespace

    from app.runloop import RunStats, _position

    stats = RunStats()
    stats.latency_ms.append(41.6)

    def source(**given):   # the attributes of app.protocols.Source, with a source's defaults
        return SimpleNamespace(**{"is_live": False, "fps": None, "frame_count": None,
                                  "path": None, "dropped": 0, "ended": False, "error": None,
                                  **given})
    clip = source(frame_count=275, fps=29.97)
    assert _position(stats, clip, 92) == "frame 93 / 275   0:03.1 / 0:09.2"
    assert _position(stats, clip, 275 + 92) == "frame 93 / 275   0:03.1 / 0:09.2"  # --loop
    image = source(frame_count=1)
    assert _position(stats, image, 0) == "frame 1 / 1"
    camera = source(is_live=True, dropped=3)
    assert _position(stats, camera, 7).startswith("latency 42 ms   dropped 3")
