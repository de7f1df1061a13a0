"""``python -m app bench``: our pipeline on a video file, every frame, no display, N times;
optionally against face_recognition (dlib HOG + ResNet) on the same frames, alternating
A B A B. Prints one JSON line.

Each run of ours is a fresh ``python -m app run --headless`` process, as a user starts
it, so per run we report: seconds from process start to the first processed frame
(``first_frame_s``), the process's peak RSS and CPU seconds (``cpu_s``: user + system,
start-up included; less moved than FPS by other work on the machine), FPS, per-stage ms
(the median over all frames, and ``stage_mean_ms``: the mean over the frames that ran
the stage, with their count in ``stage_frames``; ``detector_frames`` is how many frames
ran the detector).
Any clip works: with nobody to enrol, the gallery is empty.

``--realtime`` plays the file through the camera path instead (frames arrive at the file's
frame rate; those a busy consumer did not take are dropped, as with a webcam) and adds
capture->display latency p50/p95 and dropped frames for each side.

People to enrol come from ``--enroll NAME=PHOTO`` or, when absent, from the clip's
``<video stem>.labels.json`` ("enroll" map, photos next to the video). With a labels
file the naming is also scored per labelled segment.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import DEFAULT_EMBEDDER
from ..runloop import peak_rss_mb, ru_maxrss_mb

PEER_TOLERANCE = 0.6      # face_recognition's default compare_faces tolerance
PEER_UPSAMPLE = 1         # face_locations' default


@dataclass(frozen=True)
class Side:
    """One configuration of our pipeline that bench runs: ``run``'s extra options (file
    runs, a fresh process in ``cwd`` with ``python``) or RunConfig fields (--realtime)."""
    name: str
    args: tuple[str, ...] = ()
    config: dict = field(default_factory=dict)
    cwd: Path | None = None       # None: this checkout
    python: str = sys.executable


OURS = Side("ours")
REFERENCE = Side("reference", ("--detect-every", "1", "--sync-embed"),
                 {"detect_every": 1, "sync_embed": True})


def main(args) -> int:
    print(json.dumps(measure(args.source, gallery=args.gallery, enroll=args.enroll, vs=args.vs,
                             repeat=args.repeat, embedder=args.embedder,
                             realtime=args.realtime, reference=args.reference,
                             baseline=args.baseline)))
    return 0


def measure(source: str | Path, *, gallery: str | Path | None = None,
            enroll: list[str] | None = None, vs: str | None = None, repeat: int = 3,
            embedder: str = DEFAULT_EMBEDDER, realtime: bool = False,
            reference: bool = False, baseline: str | Path | None = None) -> dict:
    """What ``main`` prints: see the module docstring (``make results`` calls it too)."""
    video = Path(source)
    if not video.is_file():
        raise FileNotFoundError(f"video not found: {video}")
    if repeat < 1:
        raise ValueError(f"--repeat must be at least 1, got {repeat}")
    sides = [OURS, *_other_sides(reference, baseline, realtime)]
    labels = _labels(video)
    people = _people(enroll, labels, video)
    results: dict[str, list[dict]] = {side.name: [] for side in sides}
    with tempfile.TemporaryDirectory() as tmp:
        gallery_path = Path(gallery) if gallery else Path(tmp) / "gallery.sqlite3"
        if not gallery:
            _enrol_ours(people, gallery_path, embedder)
        peer = _Peer(people) if vs == "face_recognition" else None
        if peer:
            results["face_recognition"] = []
        for i in range(repeat):
            for side in sides:
                results[side.name].append(_run_side(
                    side, video, gallery_path, embedder,
                    Path(tmp) / f"{side.name}{i}.jsonl", labels, realtime))
            if peer:
                results["face_recognition"].append(peer.run(video, labels, realtime))
    events = {name: [r.pop("events", None) for r in runs] for name, runs in results.items()}
    out = {**_summarise(results, realtime), "embedder": embedder}
    _compare_sides(out, events, [side.name for side in sides[1:]])
    return out


def _other_sides(reference: bool, baseline: str | Path | None, realtime: bool) -> list[Side]:
    """The sides compared with ours: the reference configuration, an earlier checkout."""
    sides = []
    if reference:
        from dataclasses import fields

        from ..config import RunConfig
        if not {"detect_every", "sync_embed"} <= {f.name for f in fields(RunConfig)}:
            raise ValueError("--reference needs run's --detect-every and --sync-embed, "
                             "which this checkout does not have")
        sides.append(REFERENCE)
    if baseline:
        root = Path(baseline).resolve()
        if not (root / "app" / "__main__.py").is_file():
            raise FileNotFoundError(f"--baseline {baseline}: not a checkout of this project "
                                    "(no app/__main__.py)")
        if realtime:
            raise ValueError("--baseline runs the other checkout as a process: not with "
                             "--realtime (run that checkout's own bench --realtime)")
        venv = root / ".venv" / "bin" / "python"
        sides.append(Side("baseline", cwd=root,
                          python=str(venv) if venv.exists() else sys.executable))
    return sides


def _compare_sides(out: dict, events: dict[str, list], names: list[str]) -> None:
    """Each compared side's tracks against ours, run by run; ours' speed-up over it."""
    from .tracks import compare, pooled, table

    for name in names:
        pairs = [compare(theirs, ours) for theirs, ours in zip(events[name], events["ours"])
                 if theirs is not None and ours is not None]
        if pairs:
            out[name]["tracks"] = pooled(pairs)
            print(table(name, out[name]["tracks"]), file=sys.stderr)
        if out[name]["fps_median"] > 0 and not out["realtime"]:
            out.setdefault("speedup", {})[name] = round(
                out["ours"]["fps_median"] / out[name]["fps_median"], 2)


# -- ours ---------------------------------------------------------------------------------
def _enrol_ours(people: dict[str, Path], gallery: Path, embedder: str) -> None:
    from ..config import RunConfig
    from ..factory import build_pipeline
    from ..people.enroll import enroll_photos
    from ..people.gallery import Gallery

    with Gallery(gallery) as g:
        pipeline = build_pipeline(RunConfig(source="", gallery=gallery, embedder=embedder), g)
        try:
            for name, photo in people.items():
                enroll_photos(pipeline, name, [photo])
        finally:
            pipeline.close()


def _run_side(side: Side, video: Path, gallery_path: Path, embedder: str, events_path: Path,
              labels: dict | None, realtime: bool) -> dict:
    if realtime:
        return _run_ours_in_process(video, gallery_path, embedder, events_path, labels, True,
                                    side.config)
    return _run_ours_process(video, gallery_path, embedder, events_path, labels, side)


def _run_ours_process(video: Path, gallery_path: Path, embedder: str, events_path: Path,
                      labels: dict | None, side: Side = OURS) -> dict:
    """One ``python -m app run --headless`` process: its own start-up, memory and summary."""
    from ..paths import REPO_ROOT
    from .scoring import names_by_frame, read_events

    command = [side.python, "-m", "app", "run", "--source", str(video.resolve()),
               "--headless", "--no-progress", "--gallery", str(gallery_path.resolve()),
               "--embedder", embedder, "--events", str(events_path.resolve()), *side.args]
    log = events_path.with_suffix(".log")
    with open(log, "wb") as out:
        started = time.time()
        child = subprocess.Popen(command, cwd=side.cwd or REPO_ROOT, stdout=out,
                                 stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({child.returncode}):\n"
                           f"{log.read_text(errors='replace')[-2000:]}")
    frames, summary = read_events(events_path)
    first = summary.get("first_frame_unix")
    return {"fps": summary["fps"], "stage_ms": summary["stage_ms"],
            "stage_mean_ms": summary.get("stage_mean_ms", {}),
            "stage_frames": summary.get("stage_frames", {}), "frames": summary["frames"],
            "first_frame_s": round(first - started, 3) if first else float("nan"),
            "peak_rss_mb": summary.get("peak_rss_mb") or round(ru_maxrss_mb(usage.ru_maxrss), 1),
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
            "named": _named(names_by_frame(frames), labels),
            "latency_ms": summary.get("latency_ms"), "dropped": summary["dropped"],
            "events": frames}


def _run_ours_in_process(video: Path, gallery_path: Path, embedder: str, events_path: Path,
                         labels: dict | None, realtime: bool, config: dict | None = None) -> dict:
    from ..config import RunConfig
    from ..factory import build_pipeline
    from ..outputs.sinks import EventsWriter
    from ..people.gallery import Gallery
    from ..runloop import LoopOptions, Outputs, run
    from .scoring import names_by_frame, read_events

    start = time.perf_counter()
    with Gallery(gallery_path) as gallery:
        pipeline = build_pipeline(RunConfig(source=str(video), gallery=gallery_path,
                                            embedder=embedder, **(config or {})), gallery)
        pipeline.warm_up(1 if realtime else 2)   # as run does, before the camera path starts
        source = _open_video(video, realtime)
        events = EventsWriter(events_path)
        first_frame = {}

        def on_first(result):
            first_frame.setdefault("s", time.perf_counter() - start)

        try:
            summary, _ = run(pipeline, source, Outputs(events=events),
                             LoopOptions(on_result=on_first))
        finally:
            events.close()
            source.stop()
            pipeline.close()
    frames, _ = read_events(events_path)
    named = names_by_frame(frames)
    return {"fps": summary["fps"], "stage_ms": summary["stage_ms"], "frames": summary["frames"],
            "stage_mean_ms": summary.get("stage_mean_ms", {}),
            "stage_frames": summary.get("stage_frames", {}),
            "first_frame_s": round(first_frame.get("s", float("nan")), 2),
            "peak_rss_mb": peak_rss_mb(), "named": _named(named, labels),
            "latency_ms": summary.get("latency_ms"), "dropped": summary["dropped"],
            "dropped_at": _missing([e["frame"] for e in frames],
                                   summary["frames"] + summary["dropped"]),
            "events": frames}


def _missing(shown: list[int], total: int) -> list[int]:
    """The frame numbers below ``total`` that were not shown (the dropped ones)."""
    return sorted(set(range(total)) - set(shown))


def _open_video(video: Path, realtime: bool):
    """Every frame as fast as the consumer takes them, or (realtime) the camera path: frames
    at the file's frame rate, the ones not taken in time dropped. Started."""
    from ..sources.capture import VideoFileSource, realtime_video

    return (realtime_video(video) if realtime else VideoFileSource(video, progress=False)).start()


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
        self.known = np.stack(encodings) if encodings else np.zeros((0, 128))

    def run(self, video: Path, labels: dict | None, realtime: bool = False) -> dict:
        from ..runloop import latency_summary
        from ..sources.capture import now_ms

        named, times, latencies = {}, [], []
        start = time.perf_counter()
        source = _open_video(video, realtime)
        try:
            for frame in source:
                named[frame.index] = self._names(np.ascontiguousarray(frame.image[:, :, ::-1]))
                times.append(time.perf_counter())
                latencies.append(now_ms() - frame.timestamp_ms)
        finally:
            source.stop()
        fps = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
        return {"fps": round(fps, 2), "frames": len(named),
                "seconds": round(time.perf_counter() - start, 1),
                "named": _named(named, labels), "dropped": getattr(source, "dropped", 0),
                "latency_ms": latency_summary(latencies) if latencies else None}

    def _names(self, rgb: np.ndarray) -> set[str]:
        fr = self._fr
        locations = fr.face_locations(rgb, number_of_times_to_upsample=PEER_UPSAMPLE)
        names = set()
        for encoding in fr.face_encodings(rgb, locations):
            if not len(self.known):
                continue
            distances = fr.face_distance(self.known, encoding)
            best = int(np.argmin(distances))
            if distances[best] <= PEER_TOLERANCE:
                names.add(self.names[best])
        return names


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
        print(f"note: nobody to enrol (no --enroll NAME=PHOTO and no {video.stem}.labels.json "
              "with an 'enroll' map): the gallery is empty", file=sys.stderr)
        people = {}
    for photo in people.values():
        if not photo.is_file():
            raise FileNotFoundError(f"enrolment photo not found: {photo}")
    return people


def _named(named: dict[int, set[str]], labels: dict | None) -> dict:
    from .scoring import score_people, score_segments

    counts: dict[str, int] = {}
    for names in named.values():
        for name in names:
            counts[name] = counts.get(name, 0) + 1
    out = {"frames_naming": dict(sorted(counts.items()))}
    if labels and labels.get("segments") is not None:
        out["segments"] = score_segments(named, labels)
    if labels and labels.get("people"):
        out["people"] = score_people(named, labels)
    return out


def _summarise(results: dict[str, list[dict]], realtime: bool = False) -> dict:
    out = {"machine": machine(), "realtime": realtime}
    for who, runs in results.items():
        fps = [r["fps"] for r in runs]
        entry = {"fps_median": round(statistics.median(fps), 2), "fps_runs": fps,
                 "frames": runs[0]["frames"], "named": runs[-1]["named"]}
        if who != "face_recognition":
            entry.update(_ours_medians(runs))
        if realtime:  # only here is the latency what a viewer sees (files are read ahead)
            entry.update(_realtime(runs))
        out[who] = entry
    # Played in real time ours is capped at the file's frame rate: no throughput ratio then.
    if not realtime and "face_recognition" in out and out["face_recognition"]["fps_median"] > 0:
        out["fps_ratio"] = round(out["ours"]["fps_median"]
                                 / out["face_recognition"]["fps_median"], 1)
    return out


def _ours_medians(runs: list[dict]) -> dict:
    """Medians over runs of every per-run number, and the per-run lists of the headline ones."""
    def median(key: str, stage: str):
        return round(statistics.median(r[key].get(stage, 0.0) for r in runs), 2)

    means = [r.get("stage_mean_ms", {}) for r in runs]
    out = {"stage_ms": {k: median("stage_ms", k) for k in runs[0]["stage_ms"]},
           "stage_mean_ms": {k: median("stage_mean_ms", k) for k in means[0]},
           "stage_frames": {k: median("stage_frames", k)
                            for k in runs[0].get("stage_frames", {})},
           "peak_rss_mb": round(statistics.median(r["peak_rss_mb"] for r in runs), 1),
           "peak_rss_mb_runs": [r["peak_rss_mb"] for r in runs],
           "first_frame_s": round(statistics.median(r["first_frame_s"] for r in runs), 3),
           "first_frame_s_runs": [r["first_frame_s"] for r in runs]}
    if all("cpu_s" in r for r in runs):   # a process's CPU seconds: less moved by a busy machine
        out["cpu_s"] = round(statistics.median(r["cpu_s"] for r in runs), 2)
        out["cpu_s_runs"] = [r["cpu_s"] for r in runs]
    out["detector_frames"] = out["stage_frames"].get("detect")
    return out


def _realtime(runs: list[dict]) -> dict:
    """Medians over runs of capture->display latency p50/p95/p99/max (those a run's summary
    has), frames shown and frames dropped; per run: p99, dropped and (ours) which frames."""
    def median(values):
        return round(statistics.median(values), 1)

    latency = [r["latency_ms"] for r in runs if r["latency_ms"]]
    summary = None
    if latency:
        summary = {"p50": median([l.get("p50", l["median"]) for l in latency])}
        for key in ("p95", "p99", "max"):
            values = [l[key] for l in latency if l.get(key) is not None]
            if values:
                summary[key] = median(values)
    return {"latency_ms": summary, "latency_p99_runs": [l.get("p99") for l in latency],
            "shown": median([r["frames"] for r in runs]),
            "dropped": median([r["dropped"] for r in runs]),
            "dropped_runs": [r["dropped"] for r in runs],
            **({"dropped_at_runs": [r["dropped_at"] for r in runs]}
               if all("dropped_at" in r for r in runs) else {})}




def machine() -> str:
    """CPU model (from /proc/cpuinfo where there is one), architecture, cores, OS."""
    import os
    import platform

    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                model = line.partition(":")[2].strip()
                break
    return f"{model}, {platform.machine()}, {os.cpu_count()} CPU cores, {platform.system()}"
