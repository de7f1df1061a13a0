"""The window's state machine (``app.window.ui.Controller``) and view (``compose_view``), driven
without a window: key codes in, state and pictures out, with the real pipeline."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from app.people.gallery import Gallery
from app.sources.capture import now_ms
from app.stages.track import Tracker
from app.types import Frame
from app.window import render
from app.window.ui import (
    KEY_BACKSPACE,
    KEY_ENTER,
    KEY_ESC,
    Controller,
    compose_picture,
    compose_view,
)
from tests.conftest import built_pipeline, shared


class Clock:
    """A clock the test moves by hand (messages expire after a few seconds)."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    shared("video", "lin-manuel-miranda.png")
    with built_pipeline(tmp_path_factory.mktemp("ui") / "unused.sqlite3") as pipe:
        yield pipe


@pytest.fixture
def pipeline(models, tmp_path):
    """The module's pipeline with an empty gallery, a new tracker and CNN landmarks."""
    saved = models.gallery
    gallery = Gallery(tmp_path / "gallery.sqlite3")
    models.gallery, models.tracker, models.landmarks = gallery, Tracker(), "cnn"
    models.landmark_models["dlib"]  # loaded: keys switch at once (see test_lazy_models.py)
    yield models
    models.gallery, models.landmarks = saved, "cnn"
    gallery.close()


@pytest.fixture(scope="module")
def lin_image():
    image = cv2.imread(str(shared("video", "lin-manuel-miranda.png")), cv2.IMREAD_COLOR)
    assert image is not None
    return image


@pytest.fixture
def controller(pipeline):
    return Controller(pipeline, clock=Clock())


def press(controller, keys, last=None) -> None:
    for key in keys:
        controller.handle_key(ord(key) if isinstance(key, str) else key, last)


def frame_result(pipeline, image, index=0):
    return pipeline.process(Frame(index, image, now_ms()))


# -- keys ----------------------------------------------------------------------------------
@pytest.mark.parametrize("key", ["q", "Q", KEY_ESC])
def test_q_and_esc_quit(controller, key):
    assert not controller.quit
    press(controller, [key])
    assert controller.quit


def test_no_key_does_nothing(controller):
    press(controller, [-1])
    assert not controller.quit and not controller.paused and controller.pipeline.landmarks == "cnn"


def test_l_cycles_cnn_dlib_both(controller, pipeline):
    seen = [pipeline.landmarks]
    for _ in range(3):
        press(controller, ["l"])
        seen.append(pipeline.landmarks)
    assert seen == ["cnn", "dlib", "both", "cnn"]
    assert controller.message == "landmarks: cnn"


def test_s_toggles_side_by_side_and_restores_the_mode(controller, pipeline):
    press(controller, ["l"])
    assert pipeline.landmarks == "dlib"
    press(controller, ["s"])
    assert controller.side_by_side and pipeline.landmarks == "both"
    press(controller, ["l"])  # refused while side by side
    assert pipeline.landmarks == "both" and "press s" in controller.message
    press(controller, ["s"])
    assert not controller.side_by_side and pipeline.landmarks == "dlib"


def test_space_pauses_and_h_toggles_help(controller):
    press(controller, [" "])
    assert controller.paused and "paused: space resumes, . or n steps one frame" in controller.status_lines()
    press(controller, [" "])
    assert not controller.paused
    press(controller, ["h"])
    assert controller.show_help
    press(controller, ["h"])
    assert not controller.show_help


def test_e_without_a_face_says_so(controller, pipeline):
    press(controller, ["e"], None)
    assert controller.message == "no face to enrol" and controller.prompt is None
    empty = frame_result(pipeline, np.full((240, 320, 3), 127, np.uint8))
    assert empty.faces == []
    press(controller, ["e"], empty)
    assert controller.message == "no face to enrol" and controller.prompt is None
    assert controller.enrolment is None


def test_e_with_a_read_only_gallery_says_so_before_taking_samples(controller, pipeline,
                                                                   lin_image, monkeypatch):
    monkeypatch.setattr(pipeline.gallery, "can_write", lambda: False)  # a read-only folder
    press(controller, ["e"], frame_result(pipeline, lin_image))
    assert "read-only" in controller.message and controller.enrolment is None
    assert controller.prompt is None


def test_name_prompt_takes_every_key_as_text(controller, pipeline, lin_image):
    result = frame_result(pipeline, lin_image)
    press(controller, ["e"], result)
    assert controller.prompt == "" and controller.enrolment is not None
    assert controller.enrolment.track_id == result.faces[0].track_id

    press(controller, list("Sam qlehu "), result)  # each of these is a command outside it
    assert controller.prompt == "Sam qlehu "
    assert not controller.quit and not controller.paused and not controller.show_help
    assert not controller.side_by_side and pipeline.landmarks == "cnn"
    assert pipeline.gallery.people() == []  # 'u' did not undo anything either
    assert any("name: Sam qlehu" in line for line in controller.status_lines())

    press(controller, [KEY_BACKSPACE] * 5, result)
    assert controller.prompt == "Sam q"

    press(controller, [KEY_ESC], result)  # Esc cancels the prompt instead of quitting
    assert controller.prompt is None and controller.enrolment is None
    assert not controller.quit and controller.message == "enrolment cancelled"


def test_enter_with_an_empty_name_is_refused(controller, pipeline, lin_image):
    result = frame_result(pipeline, lin_image)
    press(controller, ["e", " ", " ", KEY_ENTER], result)
    assert controller.prompt == "  "  # still asking
    assert controller.enrolment is not None and controller.enrolment.name is None
    assert "must not be empty" in controller.message
    press(controller, [KEY_BACKSPACE, KEY_BACKSPACE, KEY_BACKSPACE, KEY_ENTER], result)
    assert controller.prompt == "" and controller.enrolment.name is None


def test_live_enrolment_stores_five_samples_then_u_undoes_it(controller, pipeline, lin_image):
    index = 0
    result = frame_result(pipeline, lin_image, index)
    controller.after_frame(result)
    press(controller, ["e"], result)
    enrolment = controller.enrolment
    # Frames keep coming while the user types; samples are collected meanwhile.
    while not enrolment.done:
        index += 1
        assert index < 60, f"no 5 samples after {index} frames: {enrolment.status}"
        result = frame_result(pipeline, lin_image, index)
        controller.after_frame(result)
    assert pipeline.gallery.people() == []  # nothing is stored before the name is given
    assert controller.enrolment is enrolment

    press(controller, list("Lin Q"), result)
    press(controller, [KEY_ENTER], result)
    assert controller.prompt is None and enrolment.name == "Lin Q"
    index += 1
    result = frame_result(pipeline, lin_image, index)
    controller.after_frame(result)

    assert controller.enrolment is None
    people = pipeline.gallery.people()
    assert [(p.name, p.samples) for p in people] == [("Lin Q", 5)]
    assert people[0].embeddings == {pipeline.model_id: 5}
    assert controller.message == "enrolled Lin Q (5 samples)"
    # the tracker forgot its names: the next frame is matched again, against the new entry
    index += 1
    result = frame_result(pipeline, lin_image, index)
    assert result.faces[0].name == "Lin Q" and result.faces[0].similarity > 0.9

    press(controller, ["u"], result)
    assert pipeline.gallery.people() == []
    assert controller.message == "undo: removed Lin Q (5 samples)"
    index += 1
    assert frame_result(pipeline, lin_image, index).faces[0].name is None
    press(controller, ["u"], result)
    assert controller.message.startswith("nothing to undo")


def test_u_never_touches_people_enrolled_before_the_run(controller, pipeline, lin_image):
    dim = frame_result(pipeline, lin_image).faces[0].embedding.shape[0]
    earlier = np.random.default_rng(0).normal(size=(2, dim)).astype(np.float32)
    pipeline.gallery.add_samples("Ada Earlier", earlier, pipeline.model_id)
    pipeline.gallery.add_samples("Lin Q", earlier[:1], pipeline.model_id)
    press(controller, ["u"])
    assert controller.message.startswith("nothing to undo")
    assert [(p.name, p.samples) for p in pipeline.gallery.people()] == [("Ada Earlier", 2),
                                                                      ("Lin Q", 1)]
    # This run adds 5 samples to the existing Lin Q; u takes back those 5 and keeps him.
    index = 0
    result = frame_result(pipeline, lin_image, index)
    press(controller, ["e"], result)
    press(controller, list("Lin Q") + [KEY_ENTER], result)
    while controller.enrolment is not None:
        index += 1
        assert index < 60
        result = frame_result(pipeline, lin_image, index)
        controller.after_frame(result)
    assert controller.message == "added samples to existing Lin Q (5 samples)"
    press(controller, ["u", "u"], result)
    assert [(p.name, p.samples) for p in pipeline.gallery.people()] == [("Ada Earlier", 2),
                                                                      ("Lin Q", 1)]


# -- the view ------------------------------------------------------------------------------
HUD = {"FPS": "25.0  latency 30 ms  dropped 0", "ms": {"detect": 5.0, "landmarks": 7.5},
       "models": "blazeface | landmarks:cnn | facenet:int8"}


@pytest.mark.parametrize("mode", ["cnn", "both", "side-by-side"])
def test_compose_view_never_changes_the_frame(controller, pipeline, lin_image, mode):
    if mode == "side-by-side":
        press(controller, ["s"])
    else:
        pipeline.landmarks = mode
    image = lin_image.copy()
    result = frame_result(pipeline, image)
    assert len(result.faces) == 1
    press(controller, ["h", "e"], result)  # help panel and a name prompt drawn on top
    press(controller, list("Al"), result)
    before = image.copy()
    height, width = image.shape[:2]
    top = render.header_height(image) if mode == "side-by-side" else 0
    picture = compose_picture(result, controller)
    assert picture.shape == (top + height, (2 if top else 1) * width, 3)
    for hud in (HUD, None):
        view = compose_view(result, controller, hud)
        assert np.array_equal(result.frame.image, before), "compose_view drew on the frame"
        # the status bar (prompt, messages, speed) is below the picture, never over it
        assert view.shape[0] > picture.shape[0] and view.shape[1] == picture.shape[1]
        assert view.dtype == np.uint8
        assert not np.array_equal(view[top:top + height, :width], before)  # drawn on
    press(controller, [KEY_ESC, "h", "b"], result)  # no prompt, help or bar: the picture
    assert np.array_equal(compose_view(result, controller, HUD), picture)
    if mode == "both":
        assert result.disagreement_nme is not None
    plain = compose_picture(result, None)
    assert plain.shape == image.shape and np.array_equal(result.frame.image, before)


def test_enrolment_follows_the_person_onto_a_new_track(controller, pipeline, lin_image):
    """A cut gives the person on screen a new track id: collection goes on under it."""
    index = 0
    result = frame_result(pipeline, lin_image, index)
    press(controller, ["e"], result)
    first = controller.enrolment.track_id
    press(controller, list("Lin Q") + [KEY_ENTER], result)
    while controller.enrolment is not None:
        index += 1
        assert index < 60, controller.status_lines()
        if index == 4:
            pipeline.tracker.reset()  # what a cut does: every face starts a new track
        result = frame_result(pipeline, lin_image, index)
        controller.after_frame(result)
    assert result.faces[0].track_id != first
    assert controller.message == "enrolled Lin Q (5 samples)"
    assert controller.enrolled[-1].samples == 5


def test_a_click_chooses_the_face_to_enrol(controller, pipeline):
    left = cv2.imread(str(shared("video", "lin-manuel-miranda.png")), cv2.IMREAD_COLOR)
    right = cv2.imread(str(shared("video", "alex-lacamoire.png")), cv2.IMREAD_COLOR)
    height = min(left.shape[0], right.shape[0])
    pair = np.ascontiguousarray(np.concatenate([left[:height], right[:height]], axis=1))
    result = frame_result(pipeline, pair)
    assert len(result.faces) == 2
    target = max(result.faces, key=lambda f: f.box[0])  # the face on the right
    x = int((target.box[0] + target.box[2]) / 2)
    y = int((target.box[1] + target.box[3]) / 2)
    controller.click(5, 5, result)
    assert controller.message.startswith("no face there")
    controller.click(x, y, result)
    assert controller.message == f"face #{target.track_id} chosen: press e to enrol it"
    press(controller, ["e"], result)
    assert controller.enrolment.track_id == target.track_id


def test_an_enrolment_that_finds_no_samples_times_out_saying_why(controller, pipeline,
                                                                  lin_image):
    result = frame_result(pipeline, lin_image)
    press(controller, ["e"], result)
    controller.enrolment.timeout_frames = 3
    empty = frame_result(pipeline, np.full((240, 320, 3), 127, np.uint8), 1)
    for _ in range(3):
        controller.after_frame(empty)
    assert controller.enrolment is None
    assert controller.message.startswith("enrolment timed out: face #")
    assert "0/5 samples in 3 frames (last problem: face not in view)" in controller.message
    assert "nothing stored" in controller.message and pipeline.gallery.people() == []


def test_a_name_typed_on_the_terminal_arrives_exactly_even_after_a_cancelled_question():
    """A cancelled question (timed-out enrolment) must not swallow the next one's answer,
    and the process exits cleanly with the reader still waiting on stdin."""
    import json
    import subprocess
    import sys

    from app.paths import REPO_ROOT

    child = ("import json, time\n"
             "from app.window.names import NameRequest\n"
             "first = NameRequest('terminal'); first.cancel()\n"
             "second = NameRequest('terminal')\n"
             "print('ready', flush=True)\n"
             "deadline = time.monotonic() + 10\n"
             "while second.poll() is None and not second.cancelled "
             "and time.monotonic() < deadline:\n"
             "    time.sleep(0.01)\n"
             "print(json.dumps([second.poll(), second.cancelled]), flush=True)\n")
    proc = subprocess.Popen([sys.executable, "-c", child], cwd=REPO_ROOT, text=True,
                            encoding="utf-8", stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        while "ready" not in proc.stdout.readline():
            pass
        proc.stdin.write("Łucja Ødegård-Смирнова\n")
        proc.stdin.flush()
        answer = proc.stdout.readline().strip().split(": ")[-1]
        assert proc.wait(10) == 0
    finally:
        proc.kill()
    assert json.loads(answer) == ["Łucja Ødegård-Смирнова", False]


def test_a_name_given_after_the_last_frame_still_stores_the_enrolment(controller, pipeline,
                                                                      lin_image):
    """The video may end (or the user pause) while the name is being typed: the samples
    are in, so Enter stores them at once, with no further frame."""
    result = frame_result(pipeline, lin_image, 0)
    controller.after_frame(result)
    press(controller, ["e"], result)
    index = 0
    while not controller.enrolment.done:
        index += 1
        assert index < 60
        result = frame_result(pipeline, lin_image, index)
        controller.after_frame(result)
    press(controller, list("Ada") + [KEY_ENTER], result)  # no frame after this
    assert controller.enrolment is None
    assert [(p.name, p.samples) for p in pipeline.gallery.people()] == [("Ada", 5)]
    assert controller.finish() == ["enrolled in this window: Ada (5 samples)"]


def test_leaving_a_side_by_side_start_returns_to_the_run_s_landmarks(pipeline):
    pipeline.landmarks = "both"  # what --side-by-side --landmarks dlib runs
    controller = Controller(pipeline, side_by_side=True, clock=Clock(),
                            mode_after_side_by_side="dlib")
    press(controller, ["s"])
    assert not controller.side_by_side and pipeline.landmarks == "dlib"
