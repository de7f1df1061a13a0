"""The public API (``import facelandmarks``; ``app`` in the checkout) on real photos and video:
image mode carries no state, video mode tracks and votes, enrolment refuses what the CLI
refuses, the one-off functions agree with the Recognizer."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import shared

import app as facelandmarks

LIN, ALEX = "Lin-Manuel Miranda", "Alex Lacamoire"


def photo(name: str) -> np.ndarray:
    image = cv2.imread(str(shared("video", name)), cv2.IMREAD_COLOR)
    assert image is not None
    return image


@pytest.fixture(scope="module")
def recognizer(tmp_path_factory):
    gallery = tmp_path_factory.mktemp("api") / "g.db"
    with facelandmarks.Recognizer(gallery=gallery) as rec:
        rec.enroll(LIN, [shared("video", "lin-manuel-miranda.png")])
        rec.enroll(ALEX, [shared("video", "alex-lacamoire.png")])
        yield rec


def test_faces_names_the_enrolled_person_with_68_points(recognizer):
    faces = recognizer.faces(photo("lin-manuel-miranda.png"))
    assert len(faces) == 1
    face = faces[0]
    assert face.name == LIN and face.similarity > 0.9
    assert face.landmarks.shape == (68, 2) and face.landmarks.dtype == np.float32
    assert len(face.box) == 4 and face.box[0] < face.box[2] and face.box[1] < face.box[3]
    x1, y1, x2, y2 = face.box   # the points lie on the face
    assert (face.landmarks[:, 0].min() > x1 - 20) and (face.landmarks[:, 0].max() < x2 + 20)
    assert abs(float(np.linalg.norm(face.embedding)) - 1.0) < 1e-3
    assert face.track is None


def test_image_mode_carries_nothing_between_calls(recognizer):
    """The same picture gives the same answer whatever came before it: no track, no vote,
    no smoothing from the previous (unrelated) image."""
    lin, alex = photo("lin-manuel-miranda.png"), photo("alex-lacamoire.png")
    first = recognizer.faces(lin)[0]
    for _ in range(3):
        recognizer.faces(alex)
    again = recognizer.faces(lin)[0]
    assert again.name == first.name == LIN
    np.testing.assert_array_equal(again.landmarks, first.landmarks)
    np.testing.assert_allclose(again.embedding, first.embedding, atol=1e-6)
    assert recognizer.faces(alex)[0].name == ALEX


def test_a_picture_with_nobody_and_a_bad_array(recognizer):
    assert recognizer.faces(np.full((240, 320, 3), 127, np.uint8)) == []
    with pytest.raises(ValueError, match="uint8"):
        recognizer.faces(np.zeros((240, 320, 3), np.float32))
    with pytest.raises(ValueError, match="shape"):
        recognizer.faces(np.zeros((240, 320), np.uint8))


def test_stream_tracks_and_names_the_hamilton_clip(recognizer):
    capture = cv2.VideoCapture(str(shared("video", "short_hamilton_clip.mp4")))

    def frames():
        for _ in range(40):
            ok, image = capture.read()
            if not ok:
                return
            yield image

    results = list(recognizer.stream(frames(), fps=29.97))
    capture.release()
    assert len(results) == 40
    named = [i for i, faces in enumerate(results) if any(f.name == LIN for f in faces)]
    assert named[:20] == list(range(20))       # frames 0-19: Lin-Manuel on stage
    tracks = {f.track for faces in results[:20] for f in faces if f.name == LIN}
    assert len(tracks) == 1 and None not in tracks
    assert not any(f.name == LIN for faces in results[20:] for f in faces)  # Alex's profile


def test_enroll_refuses_like_the_cli_and_stores_nothing(recognizer, tmp_path):
    two = np.concatenate([cv2.resize(photo(name), (400, 400))
                          for name in ("lin-manuel-miranda.png", "alex-lacamoire.png")], axis=1)
    path = tmp_path / "two.png"
    assert cv2.imwrite(str(path), two)
    before = {p.name: p.samples for p in recognizer.people()}
    with pytest.raises(facelandmarks.EnrolmentError, match="2 faces"):
        recognizer.enroll("Somebody", [path])
    with pytest.raises(facelandmarks.EnrolmentError, match="already|matches"):
        recognizer.enroll("Not Lin", [shared("video", "lin-manuel-miranda.png")])
    with pytest.raises(facelandmarks.EnrolmentError):
        recognizer.enroll("Nobody", [tmp_path / "missing.jpg"])
    assert {p.name: p.samples for p in recognizer.people()} == before


def test_rename_and_remove_change_the_names_faces_get(tmp_path):
    with facelandmarks.Recognizer(gallery=tmp_path / "g.db") as rec:
        rec.enroll(LIN, [shared("video", "lin-manuel-miranda.png")])
        rec.rename(LIN, "Lin")
        assert rec.faces(photo("lin-manuel-miranda.png"))[0].name == "Lin"
        assert rec.remove("Lin") == 1
        assert rec.faces(photo("lin-manuel-miranda.png"))[0].name is None
        with pytest.raises(facelandmarks.PersonNotFound):
            rec.remove("Lin")
        assert rec.people() == []


def test_one_off_functions_agree_with_the_recognizer(recognizer):
    image = photo("lin-manuel-miranda.png")
    detections = facelandmarks.detect(image)
    assert len(detections) == 1
    points = facelandmarks.landmarks(image)
    assert len(points) == 1 and points[0].shape == (68, 2)
    face = recognizer.faces(image)[0]
    np.testing.assert_allclose(points[0], face.landmarks, atol=1e-3)
    np.testing.assert_allclose(facelandmarks.landmarks(image, boxes=[face.box])[0],
                               face.landmarks, atol=1e-3)
    vectors = facelandmarks.embeddings(image)
    assert vectors.shape == (1, 128)
    assert float(vectors[0] @ face.embedding) > 0.999
    assert facelandmarks.landmarks(image, boxes=[]) == []
    dlib_points = facelandmarks.landmarks(image, boxes=[face.box], model="dlib")[0]
    assert float(np.abs(dlib_points - face.landmarks).mean()) < 10   # same face, two models


def test_the_readme_example_runs(tmp_path):
    """The README's "From Python" block, as a user pastes it (from a folder holding the
    photo and the clip), names Lin-Manuel and tracks him through the clip."""
    import re
    import shutil
    import subprocess
    import sys

    from conftest import REPO_ROOT
    readme = (REPO_ROOT / "README.md").read_text()
    code = re.search(r"### From Python\n\n```python\n(.*?)```", readme, re.S).group(1)
    code = code.replace("import facelandmarks ", "import app as facelandmarks ")
    for name in ("lin-manuel-miranda.png", "short_hamilton_clip.mp4"):
        shutil.copy(shared("video", name), tmp_path / name)
    (tmp_path / "example.py").write_text(code)
    ran = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300, env={"PYTHONPATH": str(REPO_ROOT),
                                                      "HOME": str(tmp_path)})
    assert ran.returncode == 0, ran.stderr
    lines = ran.stdout.splitlines()
    assert lines[0].startswith(f"{LIN} 1.0 (")
    assert sum(f"'{LIN}'" in line for line in lines) >= 140   # frames naming him
    assert lines[-1] == "1 (68, 2) (1, 128)"
