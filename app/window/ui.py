"""Interactive state behind the window: keys, the name prompt, live enrolment, the view.

:class:`Controller` turns key codes into actions on the pipeline's landmark modes and,
through :class:`~app.window.enrolling.WindowEnrolment`, on the gallery; :func:`compose_view`
draws one result the way the current state asks. Both are plain Python, so tests drive
them without a window.
"""
from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from ..config import LANDMARK_MODES
from ..people.enroll import LiveEnrolment, pick_face
from ..types import FrameResult
from . import render
from .enrolling import WindowEnrolment
from .keys import KEY_BACKSPACE, KEY_DELETE, KEY_ENTER, KEY_ESC, KEY_RETURN  # noqa: F401
from .names import NameRequest

MESSAGE_SECONDS = 3.0


class Controller:
    """Keys: q/Esc quit, l cycle landmarks, s side by side, e enrol, u undo, space pause,
    . or n one frame on while paused, p screenshot, b status bar, h help. While the name prompt is open, keys type
    the name (Enter confirms, Esc cancels, Backspace deletes).

    It holds the pipeline for its landmark modes (l, s); live enrolment (e, u, the name)
    is :attr:`enrolling`'s, given the pipeline's gallery, embedding and tracker."""

    def __init__(self, pipeline, side_by_side: bool = False, clock=time.monotonic,
                 name_input: str = "window", mode_after_side_by_side: str | None = None):
        self.pipeline = pipeline
        self.enrolling = WindowEnrolment(pipeline.gallery, pipeline.embed_faces,
                                         pipeline.model_id, pipeline.crop, pipeline.threshold,
                                         pipeline.tracker.forget_names, self.say, name_input)
        self.side_by_side = side_by_side
        self.paused = False
        self.show_help = False
        self.show_status = True               # the status bar under the picture (key b)
        self.quit = False
        self._message: tuple[str, float] | None = None
        self._clock = clock
        # What leaving side by side returns to: the run's --landmarks when it started in
        # side by side (the pipeline then runs "both"), else the mode before s was pressed.
        self._mode_before_sbs = mode_after_side_by_side or pipeline.landmarks
        self.at_end: str | None = None        # "end of video" / "single image": holding it
        self._step = False                    # one frame on, while paused
        self.screenshot_wanted = False        # key p: the loop saves the next view
        self.chosen: tuple[float, float] | None = None  # a click: the face to enrol there

    # -- the live enrolment's state, read where the controller is ---------------------------
    @property
    def enrolment(self) -> LiveEnrolment | None:
        return self.enrolling.enrolment

    @property
    def prompt(self) -> str | None:
        """The name being typed in the window; None when no prompt is open."""
        return self.enrolling.prompt

    @property
    def asking(self) -> NameRequest | None:
        return self.enrolling.asking

    @property
    def enrolled(self) -> list:
        """This run's enrolments (``Enrolled``), oldest first."""
        return self.enrolling.enrolled

    # -- keys ----------------------------------------------------------------------------
    def handle_key(self, key: int, last: FrameResult | None) -> None:
        if key < 0:
            return
        if self.prompt is not None:
            self.enrolling.prompt_key(key)
            return
        char = chr(key).lower() if 0 <= key < 256 else ""
        if key == KEY_ESC and self.enrolment is not None:
            self.cancel_enrolment("enrolment cancelled")
        elif key == KEY_ESC or char == "q":
            self.quit = True
        elif char == "l":
            self._cycle_landmarks()
        elif char == "s":
            self._toggle_side_by_side()
        elif char == "e":
            self._start_enrolment(last)
        elif char == "u":
            self.enrolling.undo()
        elif char == " ":
            self.paused = not self.paused
        elif char in ".n":
            self._step_key()
        elif char == "h":
            self.show_help = not self.show_help
        elif char == "b":
            self.show_status = not self.show_status
        elif char == "p":
            self.screenshot_wanted = True

    def _step_key(self) -> None:
        if self.at_end:
            self.say(f"{self.at_end}: nothing more to show")
        elif not self.paused:
            self.paused = True  # the first press pauses; each further one steps a frame
        else:
            self._step = True

    def take_step(self) -> bool:
        """Whether one frame should be shown now (a step key while paused); clears it."""
        step, self._step = self._step, False
        return step

    def _cycle_landmarks(self) -> None:
        if self.side_by_side:
            self.say("side by side shows both; press s to leave it first")
            return
        mode = self.pipeline.requested_landmarks
        nxt = LANDMARK_MODES[(LANDMARK_MODES.index(mode) + 1) % len(LANDMARK_MODES)]
        self._switch(nxt)

    def _switch(self, mode: str) -> None:
        """Switch at once when the mode's models are loaded, else when they are (the
        frames keep coming meanwhile)."""
        if self.pipeline.request_landmarks(mode):
            self.say(f"landmarks: {mode}")
        else:
            self.say(f"landmarks: {mode} (loading...)")

    def _toggle_side_by_side(self) -> None:
        self.side_by_side = not self.side_by_side
        if self.side_by_side:
            self._mode_before_sbs = self.pipeline.requested_landmarks
            self._switch("both")
        else:
            self._switch(self._mode_before_sbs)

    def click(self, x: int, y: int, last: FrameResult | None) -> None:
        """A left click on the picture: choose the face under it for the next ``e``."""
        if last is None:
            return
        image = last.frame.image
        if self.side_by_side:  # two panels under a header strip
            y -= render.header_height(image)
            x %= image.shape[1]
        face = pick_face(last.faces, image, (x, y))
        if face is None:
            self.chosen = None
            self.say("no face there: click inside a face's box to choose it")
            return
        self.chosen = (x, y)
        self.say(f"face #{face.track_id} chosen: press e to enrol it")

    # -- live enrolment (WindowEnrolment) -------------------------------------------------
    def _start_enrolment(self, last: FrameResult | None) -> None:
        if not self.enrolling.can_start(self.at_end):
            return
        chosen, self.chosen = self.chosen, None
        self.enrolling.start(last, chosen)

    def poll_name(self) -> None:
        """Pick up a name given in the dialog or the terminal."""
        self.enrolling.poll_name()

    def cancel_enrolment(self, why: str) -> None:
        self.enrolling.cancel(why)

    # -- per frame -------------------------------------------------------------------------
    def after_frame(self, result: FrameResult) -> None:
        """Feed a live enrolment; store it once it has its samples and a name."""
        self.enrolling.after_frame(result)

    def finish(self) -> list[str]:
        """At exit: close a pending dialog; lines reporting this run's enrolments."""
        return self.enrolling.finish()

    def say(self, text: str) -> None:
        self._message = (text, self._clock() + MESSAGE_SECONDS)
        print(text, flush=True)

    @property
    def message(self) -> str | None:
        if self._message and self._clock() < self._message[1]:
            return self._message[0]
        return None

    def status_lines(self) -> list[str]:
        lines = self.enrolling.status_lines()
        if self.at_end:
            lines.append(f"{self.at_end}: press q to quit")
        elif self.paused:
            lines.append("paused: space resumes, . or n steps one frame")
        if self.message:
            lines.append(self.message)
        return lines


BAR_ROWS = 5   # status bar lines: 3 of speed, models and ms; 2 for prompts and messages
MIN_BAR_WIDTH = 640   # a narrower picture gets dark room on its right for the bar's text


def compose_picture(result: FrameResult, controller: Controller | None) -> np.ndarray:
    """The annotated picture (what ``--output`` records): boxes, names, landmarks in their
    models' colours with a legend, or the CNN | dlib comparison. Never modifies
    ``result.frame.image``; nothing but labels is drawn over the faces."""
    image = result.frame.image
    side_by_side = controller is not None and controller.side_by_side
    if side_by_side and result.faces and all(f.landmark_sets for f in result.faces):
        cnn = [replace(f, landmarks=f.landmark_sets["cnn"]) for f in result.faces]
        dlib = [replace(f, landmarks=f.landmark_sets["dlib"]) for f in result.faces]
        ms = result.landmark_ms_per_face
        # the mean of the per-face numbers drawn by each face (smoothed points, as drawn)
        mean = float(np.mean([render.face_disagreement(f) for f in result.faces]))
        return render.side_by_side(image, cnn, dlib, ms.get("cnn"), ms.get("dlib"), mean)
    if side_by_side:  # no face, or dlib still loading: same layout, nothing to compare
        why = "loading..." if result.faces else "no face"
        return render.side_by_side(image, result.faces, result.faces, None, None, None,
                                   titles=(f"CNN 68   {why}", f"dlib 68   {why}"))
    both = any(f.landmark_sets for f in result.faces)
    view = render.draw_faces(image, result.faces,
                             landmark_colors=render.LANDMARK_COLORS if both else None)
    models = sorted({name for f in result.faces for name in f.landmark_sets}
                    or {f.landmark_model for f in result.faces if f.landmark_model},
                    key=("cnn", "dlib").index)
    return render.draw_legend(view, models)


def window_view(picture: np.ndarray, controller: Controller | None,
                hud: dict | list[str] | None) -> np.ndarray:
    """What the window shows: the picture (with the help panel over it when asked) and,
    below it, the status bar (speed, models, prompts, messages) unless ``b`` hid it."""
    if controller is not None and controller.show_help:
        picture = render.draw_help(picture)
    if controller is not None and not controller.show_status:
        return picture
    lines = hud_lines(hud)
    status = controller.status_lines() if controller is not None else []
    if len(status) > BAR_ROWS - len(lines):  # keep the bar's height: join the extra lines
        keep = max(1, BAR_ROWS - len(lines))
        status = status[:keep - 1] + ["  ·  ".join(status[keep - 1:])]
    width = max(picture.shape[1], MIN_BAR_WIDTH)
    if width > picture.shape[1]:  # on the right: click positions stay picture pixels
        room = np.full((picture.shape[0], width - picture.shape[1], 3), render.BAR_COLOR,
                       np.uint8)
        picture = np.concatenate([picture, room], axis=1)
    bar = render.status_bar(width, lines + status, BAR_ROWS, render.bar_px(picture))
    return np.concatenate([picture, bar], axis=0)


def compose_view(result: FrameResult, controller: Controller | None,
                 hud: dict | list[str] | None) -> np.ndarray:
    """The window's picture for one result: :func:`compose_picture` + :func:`window_view`."""
    return window_view(compose_picture(result, controller), controller, hud)


def hud_lines(hud: dict | list[str] | None) -> list[str]:
    if not hud:
        return []
    if isinstance(hud, dict):
        return [f"{key}: {render._format_value(value)}" for key, value in hud.items()][:3]
    return list(hud)[:3]
