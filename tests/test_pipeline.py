"""The whole pipeline on real photos and the real Hamilton clip (real models throughout).

The models load once per module; the clip runs once (about 4 s) and its events file is
shared by the tests that score it.
"""
from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest

from app.lab import scoring
from app.outputs.sinks import EventsWriter
from app.people.enroll import enroll_photos
from app.people.gallery import Gallery
from app.runloop import Outputs, run
from app.sources.capture import VideoFileSource, now_ms
from app.stages.track import Tracker
from app.types import Frame, Match
from tests.conftest import built_pipeline, shared

LIN, ALEX = "Lin-Manuel Miranda", "Alex Lacamoire"
CLIP_FRAMES = 275


def photo(name: str) -> np.ndarray:
    image = cv2.imread(str(shared("video", name)), cv2.IMREAD_COLOR)
    assert image is not None
    return image


def two_face_photo() -> np.ndarray:
    """The two enrolment photos side by side (same height): Lin-Manuel left, Alex right."""
    left, right = photo("lin-manuel-miranda.png"), photo("alex-lacamoire.png")
    height = min(left.shape[0], right.shape[0])
    scaled = [cv2.resize(im, (round(im.shape[1] * height / im.shape[0]), height),
                         interpolation=cv2.INTER_AREA) for im in (left, right)]
    return np.ascontiguousarray(np.concatenate(scaled, axis=1))


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    shared("video", "short_hamilton_clip.mp4")  # skip the module early without the data
    with built_pipeline(tmp_path_factory.mktemp("pipeline") / "gallery.sqlite3") as pipe:
        yield pipe


@pytest.fixture
def fresh(pipeline, tmp_path):
    """The module's pipeline with an empty gallery, a new tracker and CNN landmarks;
    restored afterwards."""
    saved = pipeline.gallery, pipeline.tracker, pipeline.landmarks
    gallery = Gallery(tmp_path / "gallery.sqlite3")
    pipeline.gallery, pipeline.tracker, pipeline.landmarks = gallery, Tracker(), "cnn"
    yield pipeline
    pipeline.gallery, pipeline.tracker, pipeline.landmarks = saved
    gallery.close()


def enrol_both(pipe) -> None:
    for name, file in ((LIN, "lin-manuel-miranda.png"), (ALEX, "alex-lacamoire.png")):
        report = enroll_photos(pipe, name, [shared("video", file)])
        assert report.created_new and report.samples == 1 and not report.warnings


@pytest.fixture(scope="module")
def clip_run(pipeline, tmp_path_factory):
    """Enrol both people, run the whole clip headless: (events, summary, run summary,
    stop reason, labels, raw lines)."""
    enrol_both(pipeline)
    path = tmp_path_factory.mktemp("clip") / "ev.jsonl"
    events = EventsWriter(path)
    source = VideoFileSource(shared("video", "short_hamilton_clip.mp4"), progress=False)
    try:
        summary, stop_reason = run(pipeline, source, Outputs(events=events))
    finally:
        events.close()
        source.stop()
    frames, written_summary = scoring.read_events(path)
    labels = json.loads(shared("video", "short_hamilton_clip.labels.json").read_text())
    lines = path.read_text(encoding="utf-8").splitlines()
    return frames, written_summary, summary, stop_reason, labels, lines


# -- the clip ---------------------------------------------------------------------------
def test_clip_writes_one_event_per_frame_then_a_summary(clip_run):
    frames, written, summary, stop_reason, _, lines = clip_run
    assert stop_reason is None
    assert len(lines) == CLIP_FRAMES + 1
    assert [e["frame"] for e in frames] == list(range(CLIP_FRAMES))
    assert "summary" in json.loads(lines[-1])
    assert all("summary" not in json.loads(line) for line in lines[:-1])
    assert written == json.loads(json.dumps(summary))  # the file holds what run() returned
    assert written["frames"] == CLIP_FRAMES


def test_clip_events_follow_the_schema_exactly(clip_run):
    frames, written, *_ = clip_run
    fps = 29.97
    faces_seen = 0
    for event in frames:
        assert set(event) == {"frame", "t_ms", "faces"}
        assert type(event["frame"]) is int
        assert type(event["t_ms"]) is float
        assert event["t_ms"] == pytest.approx(event["frame"] * 1000.0 / fps, abs=0.5)
        assert isinstance(event["faces"], list)
        for face in event["faces"]:
            faces_seen += 1
            assert set(face) == {"box", "track", "name", "similarity", "landmarks"}
            box = face["box"]
            assert isinstance(box, list) and len(box) == 4
            assert all(type(v) is float and math.isfinite(v) for v in box)
            assert box[2] > box[0] and box[3] > box[1]
            assert type(face["track"]) is int and face["track"] >= 1
            assert face["name"] is None or (type(face["name"]) is str and face["name"])
            assert face["similarity"] is None or type(face["similarity"]) is float
            if face["name"] is not None:
                assert face["similarity"] is not None
            points = face["landmarks"]
            assert isinstance(points, list) and len(points) == 68
            assert all(isinstance(p, list) and len(p) == 2 and
                       all(type(v) is float and math.isfinite(v) for v in p) for p in points)
    assert faces_seen > 200

    assert {"frames", "fps", "stage_ms"} <= set(written)
    assert type(written["frames"]) is int
    assert isinstance(written["fps"], float) and written["fps"] > 0
    stage_ms = written["stage_ms"]
    assert {"detect", "landmarks", "track", "embed", "match"} <= set(stage_ms)
    assert all(isinstance(v, (int, float)) and v >= 0 for v in stage_ms.values())


def test_clip_names_the_enrolled_man_and_nobody_else(clip_run):
    frames, _, _, _, labels, _ = clip_run
    named = scoring.names_by_frame(frames)
    rows = {(r["first"], r["last"]): r for r in scoring.score_segments(named, labels)}
    lin_frames = sum(r["frames"] for r in rows.values() if r["expect"] == LIN)
    assert lin_frames == 149
    assert scoring.frames_naming(named, LIN, labels["segments"]) >= 140
    assert rows[(211, 274)]["named_wrong"] == 0, "an audience face was given a name"
    assert all(not named.get(i) for i in range(211, 275))
    assert rows[(20, 81)]["named_wrong"] == 0, "the profile close-up was called Lin-Manuel"
    assert all(LIN not in named.get(i, set()) for i in range(20, 82))
    assert rows[(0, 19)]["named_wrong"] == 0 and rows[(82, 210)]["named_wrong"] == 0


# -- per-frame behaviour ------------------------------------------------------------------
class EmbedSpy:
    def __init__(self, embed):
        self.embed, self.batches = embed, []

    def __call__(self, crops):
        self.batches.append(len(crops))
        return self.embed(crops)


def test_faces_of_one_frame_are_embedded_in_one_call(fresh, monkeypatch):
    enrol_both(fresh)
    spy = EmbedSpy(fresh.embedder.embed)
    monkeypatch.setattr(fresh.embedder, "embed", spy)
    result = fresh.process(Frame(0, two_face_photo(), now_ms()))
    assert len(result.faces) == 2
    assert spy.batches == [2]
    for face in result.faces:
        assert face.embedding is not None and face.embedding.ndim == 1
        assert np.linalg.norm(face.embedding) == pytest.approx(1.0, abs=1e-3)
    by_x = sorted(result.faces, key=lambda f: f.box[0])
    assert [f.name for f in by_x] == [LIN, ALEX]
    assert by_x[0].track_id != by_x[1].track_id


def test_a_track_is_embedded_when_new_then_reverified_within_30_frames(fresh, monkeypatch):
    image = photo("lin-manuel-miranda.png")
    spy = EmbedSpy(fresh.embedder.embed)
    monkeypatch.setattr(fresh.embedder, "embed", spy)
    embedded_at, reasons, tracks = [], {}, set()
    for index in range(35):
        calls = len(spy.batches)
        result = fresh.process(Frame(index, image, now_ms()))
        assert len(result.faces) == 1
        face = result.faces[0]
        tracks.add(face.track_id)
        if len(spy.batches) > calls:
            embedded_at.append(index)
            reasons[index] = face.track.embed_reason
            assert face.embedding is not None
        else:
            assert face.embedding is None
    assert len(tracks) == 1
    assert embedded_at[0] == 0 and reasons[0] == "new"
    assert len(embedded_at) >= 2 and embedded_at[1] <= 30
    assert reasons[embedded_at[1]] == "reverify"
    # nobody is enrolled here, so he stays unknown: tried again every 15 frames (a named
    # face: every 30); nothing in between: a still face is not re-embedded
    assert embedded_at == [0, 15, 30]


def test_landmarks_both_keeps_each_models_points_and_their_disagreement(fresh):
    fresh.landmarks = "both"
    result = fresh.process(Frame(0, photo("lin-manuel-miranda.png"), now_ms()))
    assert len(result.faces) == 1
    face = result.faces[0]
    sets = face.landmark_sets
    assert set(sets) == {"cnn", "dlib"}
    for points in sets.values():
        assert points.shape == (68, 2) and np.all(np.isfinite(points))
    assert np.array_equal(face.landmarks, sets["cnn"])
    assert isinstance(result.disagreement_nme, float)
    assert 0.0 < result.disagreement_nme < 0.2  # same face: the two models roughly agree
    assert set(result.landmark_ms_per_face) == {"cnn", "dlib"}

    fresh.landmarks = "cnn"
    result = fresh.process(Frame(1, photo("lin-manuel-miranda.png"), now_ms()))
    assert not result.faces[0].landmark_sets and result.disagreement_nme is None


def test_sample_of_another_model_is_re_embedded_from_its_crop_and_then_matched(fresh):
    image = photo("alex-lacamoire.png")
    result = fresh.process(Frame(0, image, now_ms()))
    crop = result.faces[0].aligned
    assert crop.shape == (160, 160, 3)
    # Stored by some other embedder: a vector this pipeline must never compare with.
    other = "facenet:other-model"
    fresh.gallery.add_samples(ALEX, np.random.default_rng(0).normal(size=(1, 128)), other,
                              [crop], crop=fresh.crop)
    fresh.gallery.add_samples("No Crop", np.random.default_rng(1).normal(size=(1, 128)),
                              other, [None])
    query = fresh.embed_faces(image, [result.faces[0]])
    assert fresh.gallery.match(query, fresh.model_id, fresh.threshold) == [Match(None, None)]

    assert fresh.sync_gallery() == (1, 1)  # Alex re-embedded; the crop-less one cannot be
    models = {p.name: p.embeddings for p in fresh.gallery.people()}
    assert models[ALEX] == {other: 1, fresh.model_id: 1}
    assert models["No Crop"] == {other: 1}
    [match] = fresh.gallery.match(query, fresh.model_id, fresh.threshold)
    name, similarity = match.name, match.similarity
    assert name == ALEX and similarity > 0.9

    fresh.tracker = Tracker()
    result = fresh.process(Frame(0, image, now_ms()))
    assert result.faces[0].name == ALEX
    assert fresh.sync_gallery() == (0, 1)  # nothing left to do


@pytest.mark.parametrize("crop, model_id, dim", [
    ("head-box", "facenet-casia512:facenet_int8@head-box", 512),      # CASIA's crop
    ("five-point", "facenet-keras128:facenet_keras_int8", 128)])      # Keras's old crop
def test_a_thumbnail_of_another_crop_is_re_made_never_embedded_as_it_is(fresh, crop,
                                                                         model_id, dim):
    """A sample stored by an embedder of another crop rule meets this pipeline's
    (five-point-tight, Keras): its stored crop is re-cut, not embedded as it is."""
    from app.stages.align import FIVE_POINT_TIGHT, crop_face

    assert fresh.crop == FIVE_POINT_TIGHT and fresh.model_id != model_id
    image = photo("alex-lacamoire.png")
    result = fresh.process(Frame(0, image, now_ms()))
    direct = fresh.embed_faces(image, [result.faces[0]])
    other_crop = crop_face(image, result.faces[0].landmarks, crop)
    fresh.gallery.add_samples(ALEX, np.random.default_rng(0).normal(size=(1, dim)),
                              model_id, [other_crop], crop=crop)
    assert fresh.sync_gallery() == (1, 0)
    [match] = fresh.gallery.match(direct, fresh.model_id, fresh.threshold)
    assert match.name == ALEX and match.similarity > 0.8  # the re-cut crop, not the photo's
    stored = fresh.gallery._vectors(fresh.model_id)[2][0]
    as_it_was = fresh.embedder.embed(other_crop[None])[0]
    assert float(stored @ as_it_was) < 0.99   # embedded as it is: 0.997 (the thumbnail is JPEG)


def test_detection_workers_landmark_the_faces_they_find_with_their_own_cnn(fresh):
    image = two_face_photo()
    detect_a, detect_b = fresh.detect_functions(2)
    detections, _, early = detect_a(image)
    assert len(detections) == 2 and early.mode == "cnn" and early.points.shape == (2, 68, 2)
    own = fresh.landmark_models["cnn"]
    workers_cnn = {id(cnn) for _, cnn in fresh._workers}
    assert id(own) not in workers_cnn and len(workers_cnn) == 2   # no interpreter shared
    np.testing.assert_allclose(detect_b(image)[2].points, early.points, atol=1e-4)
    np.testing.assert_allclose(early.points,
                               own.predict_many(image, [d.box for d in detections]), atol=1e-4)
    result = fresh.process(Frame(0, image, now_ms()), detections, 1.0, early)
    assert np.array_equal(np.stack([f.landmarks for f in result.faces]), early.points)

    fresh.landmarks = "dlib"     # a key switched models after the worker ran: not used
    assert detect_a(image)[2] is None
    result = fresh.process(Frame(1, image, now_ms()), detections, 1.0, early)
    assert result.faces[0].landmark_model == "dlib"
    assert not np.array_equal(result.faces[0].landmarks, early.points[0])


@pytest.mark.parametrize("landmarks, backend, headless, expected", [
    ("cnn", "tflite", True, True), ("dlib", "tflite", True, False),
    ("dlib", "tflite", False, True),          # a window may switch to the CNN with a key
    ("cnn", "pb", True, False)])               # TensorFlow backends stay on the main thread
def test_workers_get_a_cnn_only_where_it_may_be_used(landmarks, backend, headless, expected):
    from app.config import RunConfig
    from app.factory import _worker_landmarks

    config = RunConfig(source="x.mp4", landmarks=landmarks, landmark_backend=backend,
                       headless=headless)
    assert _worker_landmarks(config) is expected
