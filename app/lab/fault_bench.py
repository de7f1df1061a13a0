"""Measurements behind issue 12's closing note (not on the run path).

``python -m app.lab.fault_bench switch --people 10000``: builds a gallery of N people
(one real 160x160 face crop each, from LFW's photos, embedded by a made-up "old" model)
through the gallery API, then times the embedder switch (``Pipeline.sync_gallery``:
each crop re-cut by the detector and landmarks, then embedded, batches of 64) in a fresh
child process and reports its peak resident memory and how many samples it re-embedded;
``--run`` also measures the whole ``run`` command (all models loaded) on one photo.

``python -m app.lab.fault_bench codec``: ms per frame to encode the Hamilton clip's 275
frames with the annotated-video writer (H.264 fragmented mp4, ``app.outputs.video``) and with
``cv2.VideoWriter`` mp4v (the old writer), median of ``--repeat`` runs, and file sizes.
Run both under ``flock /tmp/bench.lock``. The kill -9 measurement is the fault test:
``FAULT_KILL_TRIES=20 pytest -s tests/test_faults.py -k kill_9``.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from ..paths import REPO_ROOT, SHARED_DATA
from ..runloop import peak_rss_mb, ru_maxrss_mb

OLD_MODEL = "synthetic-old-model:v1"
CLIP = SHARED_DATA / "video" / "short_hamilton_clip.mp4"
PHOTO = SHARED_DATA / "video" / "lin-manuel-miranda.png"
LFW = SHARED_DATA / "identities" / "lfw-view1"


def face_crops(count: int):
    """``count`` real 160x160 face crops: the middle of LFW's deep-funneled photos (a face
    centred in each), the n-th round of them mirrored and shifted a little so no two
    crops are the same picture."""
    photos = sorted(LFW.rglob("*.jpg"))
    if not photos:
        raise SystemExit(f"no LFW photos under {LFW} (the shared test data)")
    for i in range(count):
        image = cv2.imread(str(photos[i % len(photos)]), cv2.IMREAD_COLOR)
        turn = i // len(photos)
        if turn % 2:
            image = cv2.flip(image, 1)
        shift = (turn // 2) % 5 * 3   # 0, 3, ... 12 pixels
        top = (image.shape[0] - 160) // 2 + shift
        left = (image.shape[1] - 160) // 2 + shift
        yield image[top:top + 160, left:left + 160]


def build_gallery(path: Path, people: int, seed: int = 0) -> None:
    """``people`` persons with one real face crop each (:func:`face_crops`), embedded by a
    made-up "old" model under the legacy crop rule, as a gallery from an older version:
    the switch re-cuts each crop (detector, landmarks) and embeds it, as it would a real
    one. (Random crops, as this used before, hold no face: most were just left out.)"""
    from ..people.gallery import Gallery
    rng = np.random.default_rng(seed)
    with Gallery(path) as gallery:
        for i, crop in enumerate(face_crops(people)):
            gallery.add_samples(f"person {i:05d}", rng.normal(size=(1, 128)), OLD_MODEL, [crop])


def switch_child(gallery_path: str, embedder_name: str) -> dict:
    """In this process: sync the gallery to ``embedder_name``; seconds and peak RSS."""
    from ..config import RunConfig, max_threads
    from ..factory import build_pipeline
    from ..people.gallery import Gallery

    config = RunConfig(source="", gallery=gallery_path, embedder=embedder_name,
                       threads=min(2, max_threads()))   # --threads is bounded by the cores
    with Gallery(gallery_path, readonly=True) as gallery:
        # the whole pipeline: a sample cut by another crop is re-cut with its models
        pipe = build_pipeline(config, gallery)
        rss_before = peak_rss_mb()
        start = time.perf_counter()
        with contextlib.redirect_stdout(sys.stderr):
            done, lost = pipe.sync_gallery()
        seconds = time.perf_counter() - start
        models = gallery.models()
        pipe.close()
    return {"seconds": round(seconds, 1), "peak_rss_mb": round(peak_rss_mb()),
            "peak_rss_mb_before_sync": round(rss_before), "embeddings": models,
            "re_embedded": done, "left_out": lost}


def _child_peak_mb(command: list[str]) -> tuple[float, float, int]:
    """(seconds, peak RSS MB, exit code) of one child process (os.wait4: its own rusage)."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - start, ru_maxrss_mb(usage.ru_maxrss), proc.returncode


def cmd_switch(args) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.sqlite3"
        start = time.perf_counter()
        build_gallery(path, args.people)
        print(f"built {args.people} people in {time.perf_counter() - start:.0f} s "
              f"({path.stat().st_size / 1e6:.0f} MB)", file=sys.stderr)
        if args.run:
            for_run = Path(tmp) / "for_run.sqlite3"
            for_run.write_bytes(path.read_bytes())
        done = subprocess.run([sys.executable, "-m", f"{__package__}.fault_bench", "switch-child",
                               str(path), args.embedder], cwd=REPO_ROOT,
                              stdout=subprocess.PIPE, text=True, check=True)
        result = {"people": args.people, **json.loads(done.stdout)}
        if args.run:
            seconds, peak, code = _child_peak_mb(
                [sys.executable, "-m", "app", "run", "--headless", "--no-progress",
                 "--source", str(PHOTO), "--gallery", str(for_run), "--embedder", args.embedder])
            result["run_command"] = {"seconds": round(seconds, 1), "peak_rss_mb": round(peak),
                                     "exit": code}
    print(json.dumps(result))
    return 0


def cmd_codec(args) -> int:
    from ..outputs.video import VideoEncoder

    cap = cv2.VideoCapture(str(CLIP))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    h, w = frames[0].shape[:2]
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("h264-fragmented-mp4", "mp4v-cv2", "mjpeg-avi"):
            times, size = [], 0
            for _ in range(args.repeat):
                path = Path(tmp) / ("o.avi" if name == "mjpeg-avi" else "o.mp4")
                start = time.perf_counter()
                if name == "mp4v-cv2":
                    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 29.97,
                                             (w, h))
                    for frame in frames:
                        writer.write(frame)
                    writer.release()
                else:
                    encoder = VideoEncoder(path, w, h, 29.97)
                    for frame in frames:
                        encoder.write(frame)
                    encoder.close()
                times.append((time.perf_counter() - start) * 1000 / len(frames))
                size = path.stat().st_size
            rows[name] = {"ms_per_frame": round(statistics.median(times), 2),
                          "bytes": size, "frames": len(frames), "size": f"{w}x{h}"}
    print(json.dumps(rows))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.lab.fault_bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    switch = sub.add_parser("switch", help="embedder switch on a synthetic big gallery")
    switch.add_argument("--people", type=int, default=10000)
    switch.add_argument("--embedder", default="keras-int8")
    switch.add_argument("--run", action="store_true", help="also the whole run command")
    child = sub.add_parser("switch-child")
    child.add_argument("gallery")
    child.add_argument("embedder")
    codec = sub.add_parser("codec", help="video writer ms per frame")
    codec.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    if args.what == "switch-child":
        print(json.dumps(switch_child(args.gallery, args.embedder)))
        return 0
    return cmd_switch(args) if args.what == "switch" else cmd_codec(args)


if __name__ == "__main__":
    sys.exit(main())
