"""``python -m app bench``: our pipeline on a video file, every frame, no display, N times;
optionally against face_recognition (dlib HOG + ResNet) on the same frames, alternating
A B A B in one process. Prints one JSON line.

People to enrol come from ``--enroll NAME=PHOTO`` or, when absent, from the clip's
``<video stem>.labels.json`` ("enroll" map, photos next to the video). With a labels
file the naming is also scored per labelled segment.
"""
from __future__ import annotations

import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

PEER_TOLERANCE = 0.6      # face_recognition's default compare_faces tolerance
PEER_UPSAMPLE = 1         # face_locations' default


def main(args) -> int:
    video = Path(args.source)
    if not video.is_file():
        raise FileNotFoundError(f"video not found: {video}")
    labels = _labels(video)
    people = _people(args.enroll, labels, video)
    results: dict[str, list[dict]] = {"ours": []}
    with tempfile.TemporaryDirectory() as tmp:
        gallery = Path(args.gallery) if args.gallery else Path(tmp) / "gallery.sqlite3"
        if not args.gallery:
            _enrol_ours(people, gallery, args.embedder)
        peer = _Peer(people) if args.vs == "face_recognition" else None
        if peer:
            results["face_recognition"] = []
        for i in range(args.repeat):
            results["ours"].append(_run_ours(video, gallery, args.embedder, Path(tmp) / f"{i}.jsonl",
                                             labels))
            if peer:
                results["face_recognition"].append(peer.run(video, labels))
    print(json.dumps(_summarise(results, labels)))
    return 0


# -- ours ---------------------------------------------------------------------------------
def _enrol_ours(people: dict[str, Path], gallery: Path, embedder: str) -> None:
    from app.config import RunConfig
    from app.enroll import enroll_photos
    from app.factory import build_pipeline
    from app.gallery import Gallery

    with Gallery(gallery) as g:
        pipeline = build_pipeline(RunConfig(source="", gallery=gallery, embedder=embedder), g)
        try:
            for name, photo in people.items():
                enroll_photos(pipeline, name, [photo])
        finally:
            pipeline.close()


def _run_ours(video: Path, gallery_path: Path, embedder: str, events_path: Path,
              labels: dict | None) -> dict:
    from app.capture import VideoFileSource
    from app.config import RunConfig
    from app.factory import build_pipeline
    from app.gallery import Gallery
    from app.runloop import run
    from app.scoring import names_by_frame, read_events
    from app.sinks import EventsWriter

    start = time.perf_counter()
    with Gallery(gallery_path) as gallery:
        pipeline = build_pipeline(RunConfig(source=str(video), gallery=gallery_path,
                                            embedder=embedder), gallery)
        source = VideoFileSource(video, progress=False).start()
        events = EventsWriter(events_path)
        first_frame = {}

        def on_first(result):
            first_frame.setdefault("s", time.perf_counter() - start)

        try:
            summary, _ = run(pipeline, source, events=events, on_result=on_first)
        finally:
            events.close()
            source.stop()
            pipeline.close()
    frames, _ = read_events(events_path)
    named = names_by_frame(frames)
    return {"fps": summary["fps"], "stage_ms": summary["stage_ms"], "frames": summary["frames"],
            "first_frame_s": round(first_frame.get("s", float("nan")), 2),
            "peak_rss_mb": round(_peak_rss_mb(), 1), "named": _named(named, labels)}


# -- face_recognition ------------------------------------------------------------------------
class _Peer:
    """face_recognition's own pipeline: HOG (upsample 1) -> encodings -> compare at 0.6."""

    def __init__(self, people: dict[str, Path]):
        try:
            import face_recognition
        except ImportError as exc:
            raise ValueError("--vs face_recognition needs the peer installed: "
                             "make bench-deps") from exc
        self._fr = face_recognition
        self.names, encodings = [], []
        for name, photo in people.items():
            image = face_recognition.load_image_file(str(photo))
            found = face_recognition.face_encodings(image)
            if len(found) != 1:
                raise ValueError(f"face_recognition finds {len(found)} faces in {photo}")
            self.names.append(name)
            encodings.append(found[0])
        self.known = np.stack(encodings)

    def run(self, video: Path, labels: dict | None) -> dict:
        fr = self._fr
        cap = cv2.VideoCapture(str(video))
        named, times, index = {}, [], 0
        start = time.perf_counter()
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            rgb = np.ascontiguousarray(frame[:, :, ::-1])
            locations = fr.face_locations(rgb, number_of_times_to_upsample=PEER_UPSAMPLE)
            names = set()
            for encoding in fr.face_encodings(rgb, locations):
                distances = fr.face_distance(self.known, encoding)
                best = int(np.argmin(distances))
                if distances[best] <= PEER_TOLERANCE:
                    names.add(self.names[best])
            named[index] = names
            index += 1
            times.append(time.perf_counter())
        cap.release()
        fps = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
        return {"fps": round(fps, 2), "frames": index,
                "seconds": round(time.perf_counter() - start, 1),
                "named": _named(named, labels)}


# -- helpers ----------------------------------------------------------------------------------
def _labels(video: Path) -> dict | None:
    path = video.with_suffix(".labels.json")
    return json.loads(path.read_text()) if path.is_file() else None


def _people(enroll: list[str] | None, labels: dict | None, video: Path) -> dict[str, Path]:
    if enroll:
        people = {}
        for item in enroll:
            name, sep, photo = item.partition("=")
            if not sep or not name.strip() or not photo:
                raise ValueError(f"--enroll expects NAME=PHOTO, got {item!r}")
            people[name.strip()] = Path(photo)
    elif labels and labels.get("enroll"):
        people = {name: video.parent / photo for name, photo in labels["enroll"].items()}
    else:
        raise ValueError("say who to enrol: --enroll NAME=PHOTO (or put a "
                         f"{video.stem}.labels.json with an 'enroll' map next to the video)")
    for photo in people.values():
        if not photo.is_file():
            raise FileNotFoundError(f"enrolment photo not found: {photo}")
    return people


def _named(named: dict[int, set[str]], labels: dict | None) -> dict:
    from app.scoring import score_segments

    counts: dict[str, int] = {}
    for names in named.values():
        for name in names:
            counts[name] = counts.get(name, 0) + 1
    out = {"frames_naming": dict(sorted(counts.items()))}
    if labels:
        out["segments"] = score_segments(named, labels)
    return out


def _summarise(results: dict[str, list[dict]], labels: dict | None) -> dict:
    out = {"machine": _machine()}
    for who, runs in results.items():
        fps = [r["fps"] for r in runs]
        entry = {"fps_median": round(statistics.median(fps), 2), "fps_runs": fps,
                 "named": runs[-1]["named"]}
        if who == "ours":
            stages = {k: round(statistics.median(r["stage_ms"].get(k, 0.0) for r in runs), 2)
                      for k in runs[0]["stage_ms"]}
            entry.update(stage_ms=stages, peak_rss_mb=max(r["peak_rss_mb"] for r in runs),
                         first_frame_s=runs[0]["first_frame_s"], frames=runs[0]["frames"])
        out[who] = entry
    if "face_recognition" in out and out["face_recognition"]["fps_median"] > 0:
        out["fps_ratio"] = round(out["ours"]["fps_median"]
                                 / out["face_recognition"]["fps_median"], 1)
    return out


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024 / (1024 if sys.platform == "darwin" else 1)


def _machine() -> str:
    import os
    import platform
    return f"{platform.machine()}, {os.cpu_count()} CPU cores, {platform.system()}"
