"""When each face was first found and first named, one run against another (``bench
--reference`` / ``--baseline``), read from two events files of the same clip.

The reference run (every-frame detection, synchronous embedding; or an earlier commit)
defines the faces: each of its tracks, from the frame it was first found to its last
frame, is a face on screen. A face of the compared run *covers* it in a frame when their
boxes overlap with IoU >= ``IOU_MIN``; the compared run's track ids need not agree with
the reference's (one reference track may be followed by two of ours, or the reverse).
For every reference track (``found``/``last``: its first and last frame, ``frames``: in how
many it was seen):

* ``found_delay``: the first frame of its life in which the compared run covers it, less
  the frame the reference first found it (>= 0; ``None``: never covered);
* ``named_delay``: the first frame of its life in which a covering face carries a name,
  less the frame the reference first named it (negative: named earlier than the
  reference; ``None``: the reference never named it or the compared run never did);
* ``wrong_names``: names the compared run gave a covering face that the reference never
  gave this track (a name where the reference kept the face unknown counts too).

Compared tracks that never cover any reference face are counted as ``extra_tracks``, and
the compared run's faces that cover none in their frame as ``extra_faces`` (``frames``;
``named``: those carrying a name, e.g. a box that stayed, named, after its face left).
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field

IOU_MIN = 0.3


@dataclass
class Track:
    """One track of an events file: its boxes and names by frame."""
    track: int
    boxes: dict[int, tuple] = field(default_factory=dict)
    names: dict[int, str | None] = field(default_factory=dict)

    @property
    def found(self) -> int:
        return min(self.boxes)

    @property
    def named(self) -> int | None:
        return min((i for i, name in self.names.items() if name), default=None)

    @property
    def name_set(self) -> set[str]:
        return {name for name in self.names.values() if name}


def iou(a, b) -> float:
    """Intersection over union of two ``x1, y1, x2, y2`` boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def tracks(events: list[dict]) -> dict[int, Track]:
    """Every track of the frame events (faces without a track id are left out)."""
    out: dict[int, Track] = {}
    for event in events:
        for face in event.get("faces", []):
            if face.get("track") is None or not face.get("box"):
                continue
            track = out.setdefault(face["track"], Track(face["track"]))
            track.boxes[event["frame"]] = tuple(face["box"])
            track.names[event["frame"]] = face.get("name")
    return out


def faces_by_frame(events: list[dict]) -> dict[int, list[dict]]:
    return {e["frame"]: [f for f in e.get("faces", []) if f.get("box")] for e in events}


def covering(face_box, faces: list[dict]) -> dict | None:
    """The face of ``faces`` that overlaps ``face_box`` most, if by IoU >= IOU_MIN."""
    best, best_iou = None, IOU_MIN
    for face in faces:
        overlap = iou(face_box, face["box"])
        if overlap >= best_iou:
            best, best_iou = face, overlap
    return best


def follow(ref: Track, ours: dict[int, list[dict]]) -> dict:
    """One reference track against the compared run's faces (module docstring)."""
    found = named = None
    names: set[str] = set()
    wrong_frames = 0
    for frame in sorted(ref.boxes):
        face = covering(ref.boxes[frame], ours.get(frame, []))
        if face is None:
            continue
        found = frame if found is None else found
        if face.get("name"):
            named = frame if named is None else named
            names.add(face["name"])
            wrong_frames += face["name"] not in ref.name_set
    ref_named = ref.named
    return {"track": ref.track, "found": ref.found, "last": max(ref.boxes),
            "frames": len(ref.boxes), "named": ref_named,
            "name": sorted(ref.name_set), "ours_found": found, "ours_named": named,
            "found_delay": None if found is None else found - ref.found,
            "named_delay": None if named is None or ref_named is None else named - ref_named,
            "wrong_names": sorted(names - ref.name_set), "wrong_name_frames": wrong_frames}


def compare(reference: list[dict], ours: list[dict]) -> dict:
    """Every reference track's delays in ``ours`` (module docstring) and their summary."""
    ref_tracks = tracks(reference)
    ours_faces = faces_by_frame(ours)
    rows = [follow(t, ours_faces) for _, t in sorted(ref_tracks.items())]
    return {**summarise(rows), "extra_tracks": extra_tracks(reference, ours),
            "extra_faces": extra_faces(reference, ours), "rows": rows}


def summarise(rows: list[dict]) -> dict:
    found = [r["found_delay"] for r in rows if r["found_delay"] is not None]
    named = [r["named_delay"] for r in rows if r["named_delay"] is not None]
    return {"tracks": len(rows), "found_delay": spread(found), "named_delay": spread(named),
            "never_found": [r["track"] for r in rows if r["found_delay"] is None],
            "never_named": [r["track"] for r in rows
                            if r["named"] is not None and r["ours_named"] is None],
            "wrong_names": sum(1 for r in rows if r["wrong_names"]),
            "wrong_name_frames": sum(r["wrong_name_frames"] for r in rows)}


def spread(delays: list[int]) -> dict:
    """max and mean of some delays in frames (None when there are none), and how many."""
    if not delays:
        return {"max": None, "mean": None, "count": 0}
    return {"max": max(delays), "mean": round(statistics.fmean(delays), 2),
            "count": len(delays)}


def extra_tracks(reference: list[dict], ours: list[dict]) -> int:
    """Tracks of ``ours`` that never overlap a face of the reference."""
    ref_faces = faces_by_frame(reference)
    return sum(1 for t in tracks(ours).values()
               if not any(covering(box, ref_faces.get(i, [])) for i, box in t.boxes.items()))


def extra_faces(reference: list[dict], ours: list[dict]) -> dict:
    """Faces of ``ours`` (one per frame) where the reference has none: ``frames`` of them,
    ``named`` of those with a name (a box left behind by a face that went, still named)."""
    ref_faces = faces_by_frame(reference)
    extra = [face for event in ours for face in event.get("faces", []) if face.get("box")
             and covering(face["box"], ref_faces.get(event["frame"], [])) is None]
    return {"frames": len(extra), "named": sum(1 for face in extra if face.get("name"))}


def pooled(comparisons: list[dict]) -> dict:
    """Several run pairs' comparisons as one: delays' max and mean over every pair's
    tracks, the most tracks never found / never named / wrongly named in any pair, the
    rows of the pair with the longest delay, and each pair's summary."""
    def pool(key):
        values = [r[key] for c in comparisons for r in c["rows"] if r[key] is not None]
        return spread(values)

    def worst(c):
        return tuple(-10**9 if c[k]["max"] is None else c[k]["max"]
                     for k in ("named_delay", "found_delay"))

    worst_pair = max(comparisons, key=worst)
    compact = [{k: v for k, v in c.items() if k != "rows"} for c in comparisons]
    return {"tracks": worst_pair["tracks"], "found_delay": pool("found_delay"),
            "named_delay": pool("named_delay"),
            "never_found": max((c["never_found"] for c in comparisons), key=len),
            "never_named": max((c["never_named"] for c in comparisons), key=len),
            "wrong_names": max(c["wrong_names"] for c in comparisons),
            "wrong_name_frames": max(c["wrong_name_frames"] for c in comparisons),
            "extra_tracks": max(c["extra_tracks"] for c in comparisons),
            "extra_faces": max((c["extra_faces"] for c in comparisons),
                               key=lambda e: (e["named"], e["frames"])),
            "runs": compact, "rows": worst_pair["rows"]}


def table(label: str, comparison: dict) -> str:
    """The per-track rows as text (bench prints it to stderr beside its JSON line)."""
    lines = [f"tracks vs {label}: found delay max {comparison['found_delay']['max']} mean "
             f"{comparison['found_delay']['mean']}; named delay max "
             f"{comparison['named_delay']['max']} mean {comparison['named_delay']['mean']}; "
             f"never found {len(comparison['never_found'])}, never named "
             f"{len(comparison['never_named'])}, wrong names {comparison['wrong_names']}; "
             f"faces where the {label} has none {comparison['extra_faces']['frames']} "
             f"({comparison['extra_faces']['named']} named)",
             f"  {'track':>5} {'found':>5} {'ours':>5} {'named':>5} {'ours':>5} "
             f"{'last':>5} {'seen':>5}  name"]
    for r in comparison["rows"]:
        cells = [r["track"], r["found"], r["ours_found"], r["named"], r["ours_named"],
                 r["last"], r["frames"]]
        text = " ".join(f"{'-' if c is None else c:>5}" for c in cells)
        wrong = f"  WRONG: {', '.join(r['wrong_names'])}" if r["wrong_names"] else ""
        lines.append(f"  {text}  {', '.join(r['name']) or '-'}{wrong}")
    return "\n".join(lines)
