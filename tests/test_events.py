"""Events for a service: --events - (JSON lines on stdout), --events-on change, and a live
run's file followed at its own path while it is written."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from app.outputs.sinks import EventsWriter, TrackChanges
from app.types import Face, Frame, FrameResult
from tests.conftest import REPO_ROOT, shared

FPS = 30.0


def result(index: int, *faces: tuple[int, str | None]) -> FrameResult:
    """Frame ``index`` with faces given as (track, name)."""
    return FrameResult(Frame(index, np.zeros((4, 4, 3), np.uint8), 0.0),
                       [Face(box=np.array([10, 10, 50, 50], np.float32), score=0.9,
                             track_id=track, name=name,
                             similarity=None if name is None else 0.8)
                        for track, name in faces], {})


def events_of(changes: TrackChanges, frames: list[FrameResult]) -> list[tuple]:
    seen = []
    for r in frames:
        seen += [(e["frame"], e["event"], e["track"], e["name"])
                 for e in changes.see(r, r.frame.index * 1000 / FPS)]
    return seen + [(e["frame"], e["event"], e["track"], e["name"]) for e in changes.close()]


def test_changes_report_appear_name_rename_unname_and_end():
    frames = [result(0, (1, None)), result(1, (1, None)), result(2, (1, "Ada")),
              result(3, (1, "Ada"), (2, None)), result(4, (1, "Grace"), (2, None)),
              result(5, (1, None))]
    assert events_of(TrackChanges(ended_after=10), frames) == [
        (0, "appeared", 1, None), (2, "named", 1, "Ada"), (3, "appeared", 2, None),
        (4, "renamed", 1, "Grace"), (5, "unnamed", 1, None),
        (5, "ended", 1, None), (5, "ended", 2, None)]


def test_a_track_missed_for_a_few_frames_has_not_ended():
    """The tracker keeps a face through ``max_missed`` frames without a detection; only
    after that is it gone."""
    frames = [result(0, (1, "Ada")), *[result(i) for i in range(1, 4)], result(4, (1, "Ada")),
              *[result(i) for i in range(5, 9)]]
    changes = TrackChanges(ended_after=3)
    seen = events_of(changes, frames)
    assert seen == [(0, "appeared", 1, "Ada"), (8, "ended", 1, "Ada")]


def test_ended_event_says_when_the_track_was_last_seen():
    changes = TrackChanges(ended_after=1)
    changes.see(result(0, (7, "Ada")), 0.0)
    (ended,) = changes.see(result(2), 2000 / FPS)
    assert ended["event"] == "ended" and ended["last_t_ms"] == 0.0
    assert ended["t_ms"] == pytest.approx(66.667, abs=1e-3) and ended["name"] == "Ada"


def test_live_events_are_followed_at_their_path_and_appended_across_runs(tmp_path):
    path = tmp_path / "live.jsonl"
    first = EventsWriter(path, live=True)
    first.write(result(0, (1, None)), 0.0)
    assert json.loads(path.read_text())["frame"] == 0      # there before the run ends
    assert not list(tmp_path.glob("*.partial*"))            # no temporary name to chase
    first.write_summary({"frames": 1})
    first.close()
    second = EventsWriter(path, live=True, on="change")
    second.write(result(0, (3, "Ada")), 0.0)
    second.write_summary({"frames": 1})
    second.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [next(iter(line)) for line in lines] == ["frame", "summary", "event", "event",
                                                    "summary"]
    assert lines[2]["event"] == "appeared" and lines[3]["event"] == "ended"


def test_events_on_must_be_known(tmp_path):
    with pytest.raises(ValueError, match="--events-on"):
        EventsWriter(tmp_path / "x.jsonl", on="sometimes")


@pytest.fixture(scope="module")
def enrolled_gallery(tmp_path_factory):
    gallery = tmp_path_factory.mktemp("events") / "g.sqlite3"
    done = subprocess.run([sys.executable, "-m", "app", "enroll", "--gallery", str(gallery),
                           "--name", "Lin-Manuel Miranda",
                           str(shared("video", "lin-manuel-miranda.png"))],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return gallery


def test_run_events_to_stdout_on_change_only(enrolled_gallery):
    """--events - --events-on change: stdout holds only JSON lines (the track events and
    the summary), the human summary is on stderr; Lin-Manuel is named in the clip."""
    done = subprocess.run([sys.executable, "-m", "app", "run", "--headless",
                           "--source", str(shared("video", "short_hamilton_clip.mp4")),
                           "--gallery", str(enrolled_gallery), "--events", "-",
                           "--events-on", "change"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]   # every line is JSON
    events, summary = lines[:-1], lines[-1]
    assert summary["summary"]["frames"] == 275
    assert {e["event"] for e in events} <= {"appeared", "named", "renamed", "unnamed", "ended"}
    assert [e["frame"] for e in events] == sorted(e["frame"] for e in events)
    named = {e["track"] for e in events if e["name"] is not None}
    assert len(named) >= 2      # his wide shot and his close-up (frames 0-19, 82-210)
    assert {e["name"] for e in events} == {"Lin-Manuel Miranda", None}
    assert len(events) < 100        # a line per change, not per frame (275 frames)
    opened = {e["track"] for e in events if e["event"] == "appeared"}
    assert opened == {e["track"] for e in events if e["event"] == "ended"}
    assert "frames: 275" in done.stderr and not (REPO_ROOT / "-").exists()


def test_no_nan_reaches_the_events(tmp_path):
    path = tmp_path / "nan.jsonl"
    events = EventsWriter(path)
    frame = result(0, (1, "Ada"))
    frame.faces[0].similarity = float("nan")
    events.write(frame, 0.0)
    events.write_summary({"fps": float("inf"), "latency_ms": {"median": float("nan")}})
    events.close()
    lines = [json.loads(line, parse_constant=pytest.fail) for line in path.read_text().splitlines()]
    assert lines[0]["faces"][0]["similarity"] is None
    assert lines[1]["summary"] == {"fps": None, "latency_ms": {"median": None}}
