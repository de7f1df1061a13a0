"""Real time on an ordinary CPU (issue 23): FaceNet on its own thread, the detector on a
schedule. The worker's order and replacement rules with a controllable embedder; the
rest on the real pipeline and the Hamilton clip."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from app.embed_worker import AsyncEmbedding, EmbedRequest, EmbedWorker, LockedEmbedder
from app.sources.capture import VideoFileSource
from app.stages.cuts import CutDetector
from app.stages.follow import BoxFollower
from app.stages.track import Tracker
from app.types import Face, Frame
from tests.conftest import built_pipeline, shared

LIN = "Lin-Manuel Miranda"


class GatedEmbedder:
    """Embeds a crop as a one-hot vector of its first pixel; each call waits for the gate
    (so a test decides when the worker finishes) and is recorded."""

    def __init__(self):
        self.gate = threading.Semaphore(0)
        self.calls: list[int] = []

    def embed(self, crops: np.ndarray) -> np.ndarray:
        self.gate.acquire()
        self.calls.append(int(crops[0, 0, 0, 0]))
        out = np.zeros((len(crops), 8), np.float32)
        out[:, int(crops[0, 0, 0, 0]) % 8] = 1
        return out


def request(track: int, frame: int, value: int, new: bool = False) -> EmbedRequest:
    return EmbedRequest(track, frame, np.full((4, 4, 3), value, np.uint8), new)


def test_new_tracks_first_and_a_queued_view_replaced_not_stacked():
    embedder = GatedEmbedder()
    worker = EmbedWorker(LockedEmbedder(embedder))
    try:
        worker.submit(request(1, 0, 10))             # starts at once (waits on the gate)
        while not worker.busy_with(1):
            pass
        worker.submit(request(2, 1, 20))             # a re-verification of track 2 ...
        worker.submit(request(3, 1, 30, new=True))   # ... a new track: served first
        worker.submit(request(2, 2, 21))             # track 2 due again: replaces 20
        for _ in range(3):
            embedder.gate.release()
        worker.wait_for(None)
        assert embedder.calls == [10, 30, 21]
        done = worker.take()
        assert [(d.request.track_id, d.request.frame_index) for d in done] == [(1, 0), (3, 1),
                                                                              (2, 2)]
        assert worker.take() == []                   # handed back once
    finally:
        worker.close()


def test_wait_for_a_frame_waits_only_for_that_frame_and_earlier():
    embedder = GatedEmbedder()
    worker = EmbedWorker(LockedEmbedder(embedder))
    try:
        worker.submit(request(1, 5, 1))
        worker.submit(request(2, 9, 2))
        embedder.gate.release()
        worker.wait_for(5)
        assert [d.request.track_id for d in worker.take()] == [1]
        with pytest.raises(TimeoutError):
            worker.wait_for(9, timeout=0.2)
        embedder.gate.release()
        worker.wait_for(9)
    finally:
        worker.close()


class FakePipeline:
    """What AsyncEmbedding uses of a pipeline: a real tracker, a gallery that names every
    vector "Ada", the embedder and its crop."""

    def __init__(self, embedder):
        self.tracker, self.embedder, self.crop = Tracker(), embedder, "five-point-tight"
        self.model_id, self.threshold = "test", 0.5
        self.matched: list[int] = []
        self.gallery = self

    def match(self, vectors, model_id, threshold):
        from app.types import Match
        self.matched += [len(vectors)]
        return [Match("Ada", 0.9) for _ in vectors]


def face_at(x: float) -> Face:
    points = np.stack([np.linspace(x, x + 40, 68), np.linspace(20, 60, 68)], 1)
    return Face(box=np.array([x, 20, x + 40, 60], np.float32), score=0.9,
                landmarks=points.astype(np.float32))


def test_a_result_for_a_track_that_ended_names_nobody():
    embedder = GatedEmbedder()
    pipeline = FakePipeline(embedder)
    embedding = AsyncEmbedding(pipeline, lag=None)      # live: the frame path never waits
    try:
        image = np.zeros((100, 200, 3), np.uint8)
        faces = [face_at(10)]
        pipeline.tracker.update(faces)
        embedding.step(Frame(0, image, 0.0), faces, {})          # track 1 queued
        pipeline.tracker.reset()                                 # a cut: track 1 ended
        embedder.gate.release()
        embedding.worker.wait_for(None)
        later = [face_at(10)]
        pipeline.tracker.update(later)                           # a new track, id 2
        embedding.step(Frame(1, image, 33.0), later, {})
        assert later[0].track_id == 2 and later[0].name is None
        assert pipeline.matched == []                            # track 1's result dropped
    finally:
        embedder.gate.release()
        embedding.finish()


def test_a_live_frame_never_waits_and_the_name_arrives_frames_later():
    embedder = GatedEmbedder()
    pipeline = FakePipeline(embedder)
    embedding = AsyncEmbedding(pipeline, lag=None)
    try:
        image = np.zeros((100, 200, 3), np.uint8)
        names = []
        for index in range(4):
            faces = [face_at(10)]
            pipeline.tracker.update(faces)
            embedding.step(Frame(index, image, index * 33.0), faces, {})
            names.append(faces[0].name)
            if index == 1:
                embedder.gate.release()           # FaceNet finishes during frame 2
                embedding.worker.wait_for(None)
        assert names == [None, None, "Ada", "Ada"]
        assert embedder.calls == [0]               # one embedding, not one a frame
    finally:
        embedding.finish()


def test_a_new_tracks_first_face_is_kept_while_queued():
    """Its name belongs from the frame it was first seen in (held frames wait for it)."""
    embedder = GatedEmbedder()
    worker = EmbedWorker(LockedEmbedder(embedder))
    try:
        worker.submit(request(1, 0, 10))                       # running, held by the gate
        while not worker.busy_with(1):
            pass
        assert worker.submit(request(2, 3, 30, new=True))
        assert not worker.submit(request(2, 4, 31, new=True))  # the first face stays
        assert worker.owes(3, new_only=True) and not worker.owes(2, new_only=True)
        embedder.gate.release()
        embedder.gate.release()
        worker.wait_for(None)
        assert embedder.calls == [10, 30]
        assert worker.owes(3, new_only=True)                   # done, not yet handed back
        worker.take()
        assert not worker.owes(3, new_only=True)
    finally:
        worker.close()


def held_run(embedding, pipeline, frames: int, release_at: int | None = None):
    """Frames of one face through step() and hold(); returns, per frame processed, the
    indices handed back then. The gate opens after frame ``release_at``."""
    from app.types import FrameResult
    image = np.zeros((100, 200, 3), np.uint8)
    handed = []
    for index in range(frames):
        faces = [face_at(10)]
        pipeline.tracker.update(faces)
        result = FrameResult(Frame(index, image, index * 33.0), faces, {})
        embedding.step(result.frame, faces, result.stage_ms)
        handed.append([r.frame.index for r in embedding.hold(result)])
        if index == release_at:
            pipeline.embedder_gate.release()
            embedding.worker.wait_for(None)
    return handed


def gated_pipeline():
    embedder = GatedEmbedder()
    pipeline = FakePipeline(embedder)
    pipeline.embedder_gate = embedder.gate
    return pipeline, embedder


def test_a_headless_file_run_holds_frames_until_the_new_track_is_named():
    """The frame path goes on while FaceNet works; the frames come out in order, with the
    name from the track's first frame, as with FaceNet on the frame path."""
    pipeline, embedder = gated_pipeline()
    embedding = AsyncEmbedding(pipeline, lag=15, hold=12)
    try:
        handed = held_run(embedding, pipeline, 6, release_at=3)
        assert embedding.drain() == []
    finally:
        embedding.finish()
    assert handed == [[], [], [], [], [0, 1, 2, 3, 4], [5]]   # frame 0's name was owed
    assert embedder.calls == [0]                        # one embedding for the track


def test_held_frames_get_the_name_and_the_source_frame_its_embedding():
    pipeline, _ = gated_pipeline()
    embedding = AsyncEmbedding(pipeline, lag=15, hold=12)
    from app.types import FrameResult
    image = np.zeros((100, 200, 3), np.uint8)
    results = []
    try:
        for index in range(3):
            faces = [face_at(10)]
            pipeline.tracker.update(faces)
            result = FrameResult(Frame(index, image, index * 33.0), faces, {})
            embedding.step(result.frame, faces, result.stage_ms)
            assert embedding.hold(result) == []
            results.append(result)
        pipeline.embedder_gate.release()
        drained = embedding.drain()                      # the end of the run
    finally:
        embedding.finish()
    assert drained == results
    assert [r.faces[0].name for r in drained] == ["Ada"] * 3
    assert drained[0].faces[0].embedding is not None     # made from frame 0's face
    assert drained[1].faces[0].embedding is None


def opened_later(hold: int, frames: int) -> list[list[int]]:
    """``held_run`` of a file run holding ``hold`` frames, FaceNet finishing 0.3 s in."""
    pipeline, _ = gated_pipeline()
    embedding = AsyncEmbedding(pipeline, lag=15, hold=hold)
    opener = threading.Timer(0.3, pipeline.embedder_gate.release)
    opener.start()
    try:
        return held_run(embedding, pipeline, frames)
    finally:
        opener.join()
        embedding.finish()


def test_past_the_hold_limit_the_frame_path_waits_for_the_oldest():
    assert opened_later(hold=2, frames=4) == [[], [], [0, 1, 2], [3]]   # frame 2 waited


def test_a_window_file_run_waits_for_a_new_track_instead_of_holding():
    assert opened_later(hold=0, frames=2) == [[0], [1]]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    from app.people.enroll import enroll_photos
    with built_pipeline(tmp_path_factory.mktemp("rt") / "g.sqlite3") as pipe:
        enroll_photos(pipe, LIN, [shared("video", "lin-manuel-miranda.png")])
        yield pipe


def clip_frames(count: int | None = None) -> list[Frame]:
    source = VideoFileSource(shared("video", "short_hamilton_clip.mp4"), progress=False)
    frames = []
    with source:
        while (frame := source.read()) is not None and (count is None or len(frames) < count):
            frames.append(frame)
    return frames


def test_the_detector_runs_on_its_schedule_and_at_once_after_a_cut(pipeline):
    frames = clip_frames(40)
    cuts, finder = [], CutDetector()
    cuts = [f.index for f in frames if finder.is_cut(f.image)]
    every = 7
    off_schedule = [c for c in cuts if c % every]
    assert off_schedule, f"the clip's cuts {cuts} all fall on the schedule"
    pipeline.tracker.reset()
    pipeline.cuts = CutDetector()
    pipeline._follower = BoxFollower(every)
    with pipeline.video_mode(async_embed=False):
        detected = [f.index for f in frames if "detect" in pipeline.process(f).stage_ms]
    assert off_schedule[0] in detected                 # at once after the cut
    assert {0, 7, 14, 21, 28, 35} <= set(detected)     # the schedule
    assert len(detected) < len(frames) / 2


def test_a_file_run_names_him_in_every_frame_with_facenet_on_its_thread(pipeline):
    """Async in a file run: new tracks are waited for, so he is named from each track's
    first frame; every track that was ever due got its embedding."""
    from app.runloop import LoopOptions, run

    pipeline.tracker.reset()
    pipeline._follower = BoxFollower()
    named, tracks, embedded = {}, set(), set()

    def seen(result):
        for face in result.faces:
            tracks.add(face.track_id)
            if face.embedding is not None:
                embedded.add(face.track_id)
        named[result.frame.index] = {f.name for f in result.faces} - {None}

    source = VideoFileSource(shared("video", "short_hamilton_clip.mp4"), progress=False)
    with source:
        run(pipeline, source, options=LoopOptions(on_result=seen))
    his = [i for i in range(275) if 0 <= i <= 19 or 82 <= i <= 210]
    assert sum(LIN in named[i] for i in his) == len(his)
    assert all(named[i] <= {LIN} for i in named)          # no wrong name anywhere
    assert embedded == tracks and len(tracks) >= 10       # every track embedded, none dropped


def square_points(cx: float, cy: float, size: float) -> np.ndarray:
    """68 points spread over a size x size square around (cx, cy)."""
    t = np.linspace(-0.5, 0.5, 68)
    return np.stack([cx + size * t, cy + size * np.roll(t, 17)], 1).astype(np.float32)


def test_the_follower_keeps_the_detectors_box_convention_and_moves_with_the_points():
    follower = BoxFollower(every=4)
    detected = Face(box=np.array([90, 80, 130, 130], np.float32), score=0.8, track_id=1,
                    landmarks=square_points(110, 110, 30))   # box: 40 x 50, above centre
    assert follower.wants_detection(1)                        # nothing seen yet: detect
    follower.observe([detected], detected=True, shape=(480, 640, 3))
    assert not follower.wants_detection(1) and follower.wants_detection(4)
    [followed] = follower.faces()
    np.testing.assert_allclose(followed.box, detected.box, atol=1e-4)
    followed.landmarks = square_points(120, 110, 30)          # the face moved 10 px right
    follower.refine([followed])
    np.testing.assert_allclose(followed.box, [100, 80, 140, 130], atol=1e-4)
    followed.track_id = 1
    follower.observe([followed], detected=False, shape=(480, 640, 3))
    assert not follower.wants_detection(2)


@pytest.mark.parametrize("start, end, why", [
    ((110, 30), (110, 45), "grew 1.5x in a frame"),
    ((110, 30), (130, 30), "moved over a third of its size in a frame"),
    ((632, 30), (641, 30), "its box left the picture (0.3 of its size a frame)"),
])
def test_a_broken_fit_asks_for_the_detector_at_once(start, end, why):
    follower = BoxFollower(every=4)
    x, size = start
    face = Face(box=np.array([x - 20, 80, x + 20, 130], np.float32), score=0.8, track_id=1,
                landmarks=square_points(x, 110, size))
    follower.observe([face], detected=True, shape=(480, 640, 3))
    assert not follower.wants_detection(1)
    [followed] = follower.faces()
    followed.track_id, followed.landmarks = 1, square_points(end[0], 110, end[1])
    follower.observe([followed], detected=False, shape=(480, 640, 3))
    assert follower.wants_detection(2), why
    assert follower.faces() == []


def test_a_new_track_that_ended_before_its_name_came_is_named_in_its_held_frames():
    """A cut ends the track while FaceNet still works on its first face: the frames held
    for it get the name all the same (the frame path would have named them); the
    tracker, which has forgotten the track, records nothing."""
    from app.types import FrameResult
    pipeline, _ = gated_pipeline()
    embedding = AsyncEmbedding(pipeline, lag=15, hold=12)
    image = np.zeros((100, 200, 3), np.uint8)
    try:
        faces = [face_at(10)]
        pipeline.tracker.update(faces)
        first = FrameResult(Frame(0, image, 0.0), faces, {})
        embedding.step(first.frame, faces, first.stage_ms)
        assert embedding.hold(first) == []
        pipeline.tracker.reset()                          # the cut
        pipeline.embedder_gate.release()
        assert embedding.drain() == [first]
    finally:
        embedding.finish()
    assert first.faces[0].name == "Ada" and first.faces[0].embedding is not None
    assert pipeline.tracker.tracks == []


def test_a_jumped_track_is_held_and_served_like_a_new_one():
    """After a jump (perhaps another person at the same place) the held frames wait for
    the new match, so a file run never shows the old name on the new face."""
    from app.types import FrameResult
    pipeline, embedder = gated_pipeline()
    embedding = AsyncEmbedding(pipeline, lag=15, hold=12)
    image = np.zeros((100, 200, 3), np.uint8)
    out = []
    try:
        for index, x in enumerate((10, 10, 30)):           # frame 2: half a face over
            faces = [face_at(x)]
            pipeline.tracker.update(faces)
            result = FrameResult(Frame(index, image, index * 33.0), faces, {})
            embedding.step(result.frame, faces, result.stage_ms)
            if index == 0:
                pipeline.embedder_gate.release()           # the first match: "Ada"
                embedding.worker.wait_for(None)
            out += embedding.hold(result)
        assert [r.frame.index for r in out] == [0, 1]      # frame 2 waits for its match
        assert embedding.worker.owes(2, new_only=True)
        pipeline.embedder_gate.release()
        out += embedding.drain()
    finally:
        embedding.finish()
    assert [r.faces[0].track.event for r in out] == ["new", None, "jump"]
    assert len({r.faces[0].track_id for r in out}) == 1
    assert out[2].faces[0].embedding is not None and len(embedder.calls) == 2


def test_a_match_of_the_face_before_a_jump_is_not_recorded():
    """A jump while the track's earlier face is being embedded: the jumped face is queued
    at once, and the earlier face's match (about someone else now) is not recorded."""
    pipeline, embedder = gated_pipeline()
    embedding = AsyncEmbedding(pipeline, lag=None)          # live: nothing waits
    image = np.zeros((100, 200, 3), np.uint8)
    try:
        for index, x in enumerate((10, 30)):                  # frame 1: the jump
            faces = [face_at(x)]
            pipeline.tracker.update(faces)
            embedding.step(Frame(index, image, index * 33.0), faces, {})
            while index == 0 and not embedding.worker.busy_with(faces[0].track_id):
                pass                                          # frame 0's face is running
        assert faces[0].track.event == "jump"
        embedder.gate.release()
        embedder.gate.release()
        embedding.worker.wait_for(None)
        later = [face_at(30)]
        pipeline.tracker.update(later)
        embedding.step(Frame(2, image, 66.0), later, {})
    finally:
        embedding.finish()
    track = pipeline.tracker.track(later[0].track_id)
    assert len(embedder.calls) == 2 and pipeline.matched == [1]   # one match recorded
    assert later[0].name == "Ada" and len(track.votes) == 1 and track.pending is None


def test_a_new_tracks_first_face_names_its_held_frames_up_to_a_jump():
    """The new track jumps (someone else?) before its first match is in: the held frames
    before the jump get that match's name, the jumped face waits for its own."""
    from app.types import FrameResult
    pipeline, embedder = gated_pipeline()
    embedding = AsyncEmbedding(pipeline, lag=15, hold=12)
    image = np.zeros((100, 200, 3), np.uint8)
    results = []
    try:
        for index, x in enumerate((10, 10, 30)):           # frame 2: the jump
            faces = [face_at(x)]
            pipeline.tracker.update(faces)
            result = FrameResult(Frame(index, image, index * 33.0), faces, {})
            embedding.step(result.frame, faces, result.stage_ms)
            while index == 0 and not embedding.worker.busy_with(faces[0].track_id):
                pass
            assert embedding.hold(result) == []
            results.append(result)
        embedder.gate.release()                             # frame 0's face: stale now
        embedder.gate.release()                             # the jumped face's own
        drained = embedding.drain()
    finally:
        embedding.finish()
    assert drained == results
    assert [r.faces[0].name for r in drained] == ["Ada", "Ada", "Ada"]
    assert drained[0].faces[0].embedding is not None and drained[2].faces[0].embedding is not None
    assert pipeline.matched.count(1) >= 2 and len(pipeline.tracker.track(
        results[2].faces[0].track_id).votes) == 1          # only the jumped face's vote


def test_a_failed_worker_ends_the_run_with_its_summary(pipeline):
    """FaceNet failing on its thread stops the run as a runtime failure (its summary
    says so), instead of raising again while the run closes."""
    from app.runloop import LoopOptions, run

    class Broken:
        def __getattr__(self, name):
            return getattr(real, name)

        def embed(self, crops):
            raise MemoryError("no room for FaceNet")

    real = pipeline.embedder
    pipeline.tracker.reset()
    pipeline._follower = BoxFollower()
    pipeline.embedder = Broken()
    try:
        source = VideoFileSource(shared("video", "short_hamilton_clip.mp4"), progress=False)
        with source:
            summary, stopped = run(pipeline, source, options=LoopOptions(max_frames=40))
    finally:
        pipeline.embedder = real
    assert stopped.startswith("failed:") and "FaceNet failed on its worker" in stopped
    assert summary["stopped"] == stopped
