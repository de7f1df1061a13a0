"""Scoring an events file against a clip's labelled segments (``*.labels.json``).

A labels file lists segments ``{"first", "last", "expect"}``: ``expect`` is the name that
should appear in those frames, or null where nobody enrolled is on screen.
"""
from __future__ import annotations

import json
from pathlib import Path


def read_events(path: str | Path) -> tuple[list[dict], dict | None]:
    """(frame events, summary or None) from a JSON-lines events file."""
    frames, summary = [], None
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: not JSON ({exc})") from exc
            if "summary" in obj:
                summary = obj["summary"]
            else:
                frames.append(obj)
    return frames, summary


def names_by_frame(events: list[dict]) -> dict[int, set[str]]:
    return {e["frame"]: {f["name"] for f in e["faces"] if f.get("name")} for e in events}


def score_segments(named: dict[int, set[str]], labels: dict) -> list[dict]:
    """Per segment: frames, frames where the expected name appears, and frames where a
    wrong name appears (any name in a null segment; for a named segment, the names of
    other people from the clip's enrolment list)."""
    enrolled = set(labels.get("enroll", {}))
    rows = []
    for seg in labels["segments"]:
        frames = range(seg["first"], seg["last"] + 1)
        expect = seg["expect"]
        hits = sum(1 for i in frames if expect and expect in named.get(i, set()))
        wrong_names = (enrolled - {expect}) if expect else None
        wrong = sum(1 for i in frames
                    if (named.get(i, set()) & wrong_names if wrong_names is not None
                        else named.get(i, set())))
        rows.append({"first": seg["first"], "last": seg["last"], "expect": expect,
                     "frames": len(frames), "named_expected": hits, "named_wrong": wrong})
    return rows


def frames_naming(named: dict[int, set[str]], name: str, segments: list[dict]) -> int:
    """Frames of the segments expecting ``name`` in which ``name`` appears."""
    return sum(1 for seg in segments if seg["expect"] == name
               for i in range(seg["first"], seg["last"] + 1) if name in named.get(i, set()))


def score_people(named: dict[int, set[str]], labels: dict) -> dict:
    """A labels file's ``people`` (several on screen at once, each ``{"first", "last",
    "expect"}``): per appearance, frames in which its name appears and how many frames
    after its first it was first named (None: never); ``wrong_frames``: frames naming
    someone enrolled who is not on screen (or any name where nobody listed is)."""
    people = labels["people"]
    on_screen: dict[int, set[str]] = {}
    for p in people:
        for i in range(p["first"], p["last"] + 1):
            on_screen.setdefault(i, set()).add(p["expect"])
    rows = []
    for p in people:
        hits = [i for i in range(p["first"], p["last"] + 1) if p["expect"] in named.get(i, ())]
        rows.append({"first": p["first"], "last": p["last"], "expect": p["expect"],
                     "frames": p["last"] - p["first"] + 1, "named_expected": len(hits),
                     "first_named_after": hits[0] - p["first"] if hits else None})
    wrong = sum(1 for i, names in named.items() if names - on_screen.get(i, set()))
    return {"appearances": rows, "named_expected": sum(r["named_expected"] for r in rows),
            "frames": sum(r["frames"] for r in rows), "wrong_frames": wrong,
            "never_named": sum(1 for r in rows if r["first_named_after"] is None)}
