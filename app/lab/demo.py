"""``make demo`` / ``python -m app demo``: the webcam when one opens and a screen exists;
otherwise a demo assembled from real photos any machine can get.

The fallback (settings in ``assets/demo.json``): enrol each of the five people of the
5-celebrity photos (from the PyPI sdist the model toolchain caches) from their
``train/`` photos, build a clip from their ``val/`` photos with slow zoom and pan
(``assets/demo/clip.mp4``, rebuilt only when missing), run the full pipeline on it
(headless when there is no display) and write ``out/demo/annotated.mp4`` and
``out/demo/events.jsonl``, then say how many clip frames named the right person.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np

from ..paths import REPO_ROOT

SETTINGS_FILE = REPO_ROOT / "assets" / "demo.json"


def run_demo(out_dir: Path, headless: bool = False, camera: str = "0") -> int:
    from ..config import RunConfig
    from ..outputs.files import check_writable
    from ..outputs.sinks import display_available
    from ..session import run_session

    if camera != "none" and not headless and display_available() and _camera_opens(camera):
        print(f"camera {camera} opened: running live (press h for keys, e to enrol yourself)")
        return run_session(RunConfig(source=camera))
    print("no camera/display: running the demo built from the 5-celebrity photos")
    settings = json.loads(SETTINGS_FILE.read_text())
    out_dir = Path(out_dir)
    check_writable("--out", out_dir, folder=True)   # before the clip is built and people enrolled
    out_dir.mkdir(parents=True, exist_ok=True)
    photos = _photos()
    clip, truth = build_clip(photos / "val", REPO_ROOT / settings["clip"], settings)
    gallery_path = out_dir / "gallery.sqlite3"
    gallery_path.unlink(missing_ok=True)
    enrol_people(photos / "train", gallery_path, settings["photos_per_person"])
    config = RunConfig(source=str(clip), gallery=gallery_path, headless=True if headless
                       else not display_available(), output=out_dir / "annotated.mp4",
                       events=out_dir / "events.jsonl")
    status = run_session(config)
    if status == 0:
        _report(config.events, truth)
    return status


def _photos() -> Path:
    from .datasets import celebrity_photos
    return celebrity_photos()


def _camera_opens(camera: str) -> bool:
    from ..sources.capture import CameraError, CameraSource
    source = CameraSource(camera, reconnect_attempts=0)
    try:
        source.start()
    except CameraError:
        return False
    source.stop()
    return True


def person_name(folder: str) -> str:
    """``ben_afflek`` -> ``Ben Afflek`` (the dataset's spelling)."""
    return folder.replace("_", " ").title()


def enrol_people(train_dir: Path, gallery_path: Path, per_person: int) -> None:
    """Enrol every person folder from its first ``per_person`` single-face photos."""
    from ..config import RunConfig
    from ..factory import build_pipeline
    from ..people.enroll import EnrolmentError, enroll_photos, photo_face, read_photo
    from ..people.gallery import Gallery

    with Gallery(gallery_path) as gallery:
        pipeline = build_pipeline(RunConfig(source="", gallery=gallery_path), gallery)
        try:
            for folder in sorted(p for p in train_dir.iterdir() if p.is_dir()):
                usable = []
                for photo in sorted(folder.glob("*.jpg")):
                    try:
                        photo_face(read_photo(photo), pipeline.detector,
                                   pipeline.landmarker, photo,
                                   second=pipeline.second_detector)
                    except EnrolmentError:
                        continue  # group photos and misses are skipped, not enrolled
                    usable.append(photo)
                    if len(usable) == per_person:
                        break
                report = enroll_photos(pipeline, person_name(folder.name), usable)
                print(f"enrolled {report.name} from {report.samples} photo(s)")
        finally:
            pipeline.close()


def build_clip(val_dir: Path, clip: Path, settings: dict) -> tuple[Path, list[str]]:
    """The demo clip and the person shown in each of its frames (rebuilt when missing)."""
    width, height = settings["size"]
    frames_per_photo = settings["frames_per_photo"]
    photos = [(person_name(folder.name), photo)
              for folder in sorted(p for p in val_dir.iterdir() if p.is_dir())
              for photo in sorted(folder.glob("*.jpg"))[:settings["photos_per_person_in_clip"]]]
    truth = [name for name, _ in photos for _ in range(frames_per_photo)]
    if clip.exists():
        return clip, truth
    clip.parent.mkdir(parents=True, exist_ok=True)
    partial = clip.with_name(clip.stem + ".partial" + clip.suffix)
    writer = cv2.VideoWriter(str(partial), cv2.VideoWriter_fourcc(*"mp4v"), settings["fps"],
                             (width, height))
    if not writer.isOpened():
        raise ValueError(f"cannot write the demo clip {partial}")
    try:
        for _, photo in photos:
            image = cv2.imread(str(photo))
            if image is None:
                raise ValueError(f"cannot read demo photo {photo}")
            for i in range(frames_per_photo):
                writer.write(ken_burns(image, i / max(frames_per_photo - 1, 1), (width, height)))
    finally:
        writer.release()
    partial.rename(clip)
    print(f"built the demo clip {clip} ({len(truth)} frames)")
    return clip, truth


def ken_burns(image: np.ndarray, t: float, size: tuple[int, int]) -> np.ndarray:
    """The photo letterboxed into ``size``, zoomed from 1.0 to 1.15 and panned as t goes
    0 -> 1 (motion, so the tracker and the detector work on a moving face)."""
    width, height = size
    base = min(width / image.shape[1], height / image.shape[0])
    zoom = base * (1.0 + 0.15 * t)
    dx = (t - 0.5) * 0.08 * width
    matrix = np.float32([[zoom, 0, (width - image.shape[1] * zoom) / 2 + dx],
                         [0, zoom, (height - image.shape[0] * zoom) / 2]])
    return cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT)


def _report(events_path: Path, truth: list[str]) -> None:
    from .scoring import names_by_frame, read_events

    events, _ = read_events(events_path)
    named = names_by_frame(events)
    right = sum(1 for i, name in enumerate(truth) if name in named.get(i, set()))
    wrong = sum(1 for i, name in enumerate(truth) if named.get(i, set()) - {name})
    print(f"demo: the right person named in {right} of {len(truth)} frames, a wrong name in "
          f"{wrong}", file=sys.stderr if wrong > right else sys.stdout)
