"""Scoring events against labelled segments, and the bench's enrolment arguments."""
import json
from pathlib import Path

import pytest

from app.lab.bench import _people
from app.lab.scoring import frames_naming, names_by_frame, read_events, score_segments

LABELS = {"enroll": {"Ann": "ann.png", "Bob": "bob.png"},
          "segments": [{"first": 0, "last": 2, "expect": "Ann"},
                       {"first": 3, "last": 4, "expect": None}]}


def _events(tmp_path: Path, names_per_frame: list[list[str | None]]) -> Path:
    path = tmp_path / "ev.jsonl"
    lines = [json.dumps({"frame": i, "t_ms": i * 33.3,
                         "faces": [{"box": [0, 0, 1, 1], "track": 1, "name": n,
                                    "similarity": 0.6, "landmarks": None} for n in names]})
             for i, names in enumerate(names_per_frame)]
    lines.append(json.dumps({"summary": {"frames": len(names_per_frame)}}))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_segments_count_expected_and_wrong_names(tmp_path):
    events, summary = read_events(_events(tmp_path, [["Ann"], ["Ann", "Bob"], [None], ["Bob"],
                                                     []]))
    assert summary == {"frames": 5}
    named = names_by_frame(events)
    rows = score_segments(named, LABELS)
    assert rows[0] == {"first": 0, "last": 2, "expect": "Ann", "frames": 3,
                       "named_expected": 2, "named_wrong": 1}
    assert rows[1]["named_wrong"] == 1 and rows[1]["named_expected"] == 0
    assert frames_naming(named, "Ann", LABELS["segments"]) == 2


def test_broken_events_line_names_the_file_and_line(tmp_path):
    path = tmp_path / "ev.jsonl"
    path.write_text('{"frame": 0, "faces": []}\n{not json\n')
    with pytest.raises(ValueError, match=r"ev.jsonl:2"):
        read_events(path)


def test_bench_people_from_arguments_or_labels(tmp_path, capsys):
    photo = tmp_path / "ann.png"
    photo.write_bytes(b"x")
    video = tmp_path / "clip.mp4"
    assert _people(["Ann=" + str(photo)], None, video) == {"Ann": photo}
    assert _people(None, {"enroll": {"Ann": "ann.png"}}, video) == {"Ann": photo}
    with pytest.raises(ValueError, match="NAME=PHOTO"):
        _people(["Ann"], None, video)
    with pytest.raises(FileNotFoundError, match="bob.png"):
        _people(["Bob=" + str(tmp_path / "bob.png")], None, video)
    assert _people(None, None, video) == {}   # any clip: nobody enrolled, said so
    assert "--enroll" in capsys.readouterr().err
