"""``python -m app`` commands, called in-process (``app.cli.main``) with real models, real
photos and the real clip. Every call passes ``--gallery`` under tmp_path, and
XDG_DATA_HOME points there too, so nothing touches the user's own gallery."""
from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest

from app.cli import main
from app.lab import scoring
from app.people.gallery import Gallery
from tests.conftest import REPO_ROOT, shared

LIN = "Lin-Manuel Miranda"


@pytest.fixture(autouse=True)
def _private_data_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))


@pytest.fixture
def gallery_path(tmp_path):
    return tmp_path / "people.sqlite3"


def lin() -> str:
    return str(shared("video", "lin-manuel-miranda.png"))


def alex() -> str:
    return str(shared("video", "alex-lacamoire.png"))


def people_in(path) -> dict[str, int]:
    with Gallery(path) as gallery:
        return {p.name: p.samples for p in gallery.people()}


def enroll(gallery, name, *photos) -> int:
    return main(["enroll", "--name", name, *map(str, photos), "--gallery", str(gallery)])


@pytest.fixture(scope="module")
def two_faces(tmp_path_factory):
    """The two enrolment photos side by side, as one PNG."""
    left = cv2.imread(lin(), cv2.IMREAD_COLOR)
    right = cv2.imread(alex(), cv2.IMREAD_COLOR)
    height = min(left.shape[0], right.shape[0])
    scaled = [cv2.resize(im, (round(im.shape[1] * height / im.shape[0]), height))
              for im in (left, right)]
    path = tmp_path_factory.mktemp("photos") / "two-people.png"
    assert cv2.imwrite(str(path), np.concatenate(scaled, axis=1))
    return path


@pytest.fixture(scope="module")
def no_face(tmp_path_factory):
    """A landscape-ish picture: sky gradient, a green field, a sun, some texture."""
    height, width = 360, 640
    image = np.zeros((height, width, 3), np.uint8)
    sky = np.linspace(255, 150, height // 2, dtype=np.float32)[:, None]
    image[:height // 2, :, 0] = 230
    image[:height // 2, :, 1] = sky.astype(np.uint8)
    image[:height // 2, :, 2] = (sky * 0.6).astype(np.uint8)
    image[height // 2:] = (40, 140, 60)
    rng = np.random.default_rng(0)
    image[height // 2:] = np.clip(image[height // 2:].astype(np.int16)
                                  + rng.integers(-25, 25, image[height // 2:].shape),
                                  0, 255).astype(np.uint8)
    cv2.circle(image, (520, 70), 35, (60, 220, 255), -1)
    path = tmp_path_factory.mktemp("photos") / "landscape.png"
    assert cv2.imwrite(str(path), image)
    return path


# -- enroll ------------------------------------------------------------------------------
def test_enroll_then_enroll_the_same_name_again_adds_samples(gallery_path, capsys):
    assert enroll(gallery_path, LIN, lin()) == 0
    out = capsys.readouterr().out
    assert f"enrolled {LIN}: 1 sample(s)" in out
    assert people_in(gallery_path) == {LIN: 1}

    assert enroll(gallery_path, LIN.lower(), lin()) == 0  # names match ignoring case
    out = capsys.readouterr().out
    assert "already enrolled" in out and "added 1 sample(s)" in out
    assert people_in(gallery_path) == {LIN: 2}


def test_photo_without_a_face_is_refused_naming_the_file(gallery_path, no_face, capsys):
    assert enroll(gallery_path, "Nobody", no_face) == 2
    err = capsys.readouterr().err
    assert str(no_face) in err and "no face" in err
    assert people_in(gallery_path) == {}


def test_photo_with_two_faces_stores_nothing_even_after_a_good_photo(gallery_path, two_faces,
                                                                     capsys):
    assert enroll(gallery_path, LIN, two_faces) == 2
    err = capsys.readouterr().err
    assert str(two_faces) in err and "2 faces" in err
    assert people_in(gallery_path) == {}

    assert enroll(gallery_path, LIN, lin(), two_faces) == 2  # a good photo first
    err = capsys.readouterr().err
    assert str(two_faces) in err and "Nothing was enrolled" in err
    assert people_in(gallery_path) == {}


def test_unreadable_photo_is_refused_naming_the_file(gallery_path, tmp_path, capsys):
    garbage = tmp_path / "holiday.jpg"
    garbage.write_bytes(np.random.default_rng(1).integers(0, 256, 4096, np.uint8).tobytes())
    assert enroll(gallery_path, LIN, lin(), garbage) == 2
    err = capsys.readouterr().err
    assert str(garbage) in err
    assert people_in(gallery_path) == {}

    missing = tmp_path / "missing.jpg"
    assert enroll(gallery_path, LIN, missing) == 2
    assert str(missing) in capsys.readouterr().err


@pytest.mark.parametrize("name", ["", "   "])
def test_empty_name_is_refused(gallery_path, name, capsys):
    assert enroll(gallery_path, name, lin()) == 2
    assert "name must not be empty" in capsys.readouterr().err
    assert people_in(gallery_path) == {}


def test_corrupt_gallery_is_reported_and_left_untouched(tmp_path, capsys):
    path = tmp_path / "gallery.sqlite3"
    garbage = np.random.default_rng(2).integers(0, 256, 8192, np.uint8).tobytes()
    path.write_bytes(garbage)
    assert enroll(path, LIN, lin()) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "not a readable gallery" in err and "untouched" in err
    assert main(["people", "list", "--gallery", str(path)]) == 2
    assert str(path) in capsys.readouterr().err
    assert path.read_bytes() == garbage
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gallery.sqlite3"]  # no -wal/-shm


# -- people ------------------------------------------------------------------------------
def test_people_list_rename_remove_round_trip(gallery_path, capsys):
    def people(*args) -> tuple[int, str, str]:
        code = main(["people", *args, "--gallery", str(gallery_path)])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    assert people("list")[:2] == (0, f"nobody enrolled in {gallery_path}\n")
    assert enroll(gallery_path, LIN, lin()) == 0
    capsys.readouterr()
    assert people("list")[:2] == (0, f"{LIN}\t1 sample(s)\n")
    assert people("rename", LIN, "Lin")[:2] == (0, f"renamed {LIN} to Lin\n")
    assert people("list")[1] == "Lin\t1 sample(s)\n"
    code, _, err = people("remove", "Nobody Here")
    assert code == 2 and "Nobody Here" in err
    code, _, err = people("rename", "Nobody Here", "X")
    assert code == 2 and "Nobody Here" in err
    assert people("remove", "Lin")[:2] == (0, "removed Lin (1 sample(s))\n")
    assert people("list")[1] == f"nobody enrolled in {gallery_path}\n"
    code, _, err = people("remove")
    assert code == 2 and "usage" in err


# -- run -----------------------------------------------------------------------------------
def test_run_missing_source_names_the_file(tmp_path, gallery_path, capsys):
    missing = tmp_path / "missing.mp4"
    assert main(["run", "--source", str(missing), "--headless",
                 "--gallery", str(gallery_path)]) == 2
    assert str(missing) in capsys.readouterr().err


def test_run_corrupt_video_is_refused(tmp_path, gallery_path, capsys):
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(np.random.default_rng(3).integers(0, 256, 50_000, np.uint8).tobytes())
    assert main(["run", "--source", str(corrupt), "--headless",
                 "--gallery", str(gallery_path)]) == 2
    assert str(corrupt) in capsys.readouterr().err


def test_run_on_a_photo_writes_one_frame_event_and_a_summary(tmp_path, gallery_path, capsys):
    assert enroll(gallery_path, LIN, lin()) == 0
    events = tmp_path / "photo.jsonl"
    assert main(["run", "--source", lin(), "--headless", "--events", str(events),
                 "--gallery", str(gallery_path)]) == 0
    assert "frames: 1" in capsys.readouterr().out
    frames, summary = scoring.read_events(events)
    assert len(frames) == 1 and frames[0]["frame"] == 0 and frames[0]["t_ms"] == 0.0
    assert [f["name"] for f in frames[0]["faces"]] == [LIN]
    assert summary is not None and summary["frames"] == 1
    assert len(events.read_text().splitlines()) == 2


def test_run_on_the_clip_writes_a_playable_video_and_events(tmp_path, gallery_path, capsys):
    clip = shared("video", "short_hamilton_clip.mp4")
    out, events = tmp_path / "out.mp4", tmp_path / "ev.jsonl"
    assert main(["run", "--source", str(clip), "--headless", "--max-frames", "10",
                 "--output", str(out), "--events", str(events), "--no-progress",
                 "--gallery", str(gallery_path)]) == 0
    stdout = capsys.readouterr().out
    assert "frames: 10" in stdout and str(out) in stdout and str(events) in stdout

    video = cv2.VideoCapture(str(out))
    assert video.isOpened()
    sizes = []
    while True:
        ok, image = video.read()
        if not ok:
            break
        sizes.append(image.shape)
    video.release()
    assert sizes == [(360, 640, 3)] * 10

    frames, summary = scoring.read_events(events)
    assert [e["frame"] for e in frames] == list(range(10))
    assert summary["frames"] == 10


def test_run_video_py_help_exits_0():
    done = subprocess.run([sys.executable, "run_video.py", "--help"], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "--source" in done.stdout and "--headless" in done.stdout


def test_enroll_gives_a_face_the_video_detector_misses_a_second_chance(gallery_path, capsys):
    # BlazeFace full-range finds nothing in this close face; the short range does
    photo = shared("identities", "lfw-view1", "Alex_Barros", "Alex_Barros_0002.jpg")
    assert enroll(gallery_path, "Alex Barros", photo) == 0
    assert "enrolled Alex Barros: 1 sample(s)" in capsys.readouterr().out
