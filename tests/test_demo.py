"""The make-demo fallback: its clip is built from real photos, with motion."""
import cv2
import numpy as np

from app.lab.demo import build_clip, ken_burns, person_name
from tests.conftest import shared


def test_ken_burns_moves_and_keeps_the_size():
    image = np.random.default_rng(0).integers(0, 255, (120, 90, 3), np.uint8)
    first, last = ken_burns(image, 0.0, (160, 90)), ken_burns(image, 1.0, (160, 90))
    assert first.shape == last.shape == (90, 160, 3)
    assert not np.array_equal(first, last)


def test_clip_from_val_photos_has_one_label_per_frame(tmp_path):
    val = shared("identities", "5-celebrity", "val")
    settings = {"size": [160, 96], "frames_per_photo": 2, "photos_per_person_in_clip": 1,
                "fps": 10}
    clip, truth = build_clip(val, tmp_path / "clip.mp4", settings)
    assert truth[:2] == ["Ben Afflek", "Ben Afflek"] and len(truth) == 10
    cap = cv2.VideoCapture(str(clip))
    frames = 0
    while cap.read()[0]:
        frames += 1
    assert frames == 10
    assert person_name("mindy_kaling") == "Mindy Kaling"
