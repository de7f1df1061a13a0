"""Interactive state behind the window: keys, the name prompt, live enrolment, the view.

:class:`Controller` turns key codes into actions on the pipeline and the gallery, and
:func:`compose_view` draws one result the way the current state asks. Both are plain
Python, so tests drive them without a window.
"""
from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from app import render
from app.config import LANDMARK_MODES
from app.enroll import EnrolmentError, LiveEnrolment
from app.geometry import largest
from app.gallery import GalleryError, clean_name
from app.types import FrameResult

KEY_ESC, KEY_ENTER, KEY_RETURN, KEY_BACKSPACE, KEY_DELETE = 27, 13, 10, 8, 127
MESSAGE_SECONDS = 3.0


class Controller:
    """Keys: q/Esc quit, l cycle landmarks, s side by side, e enrol, u undo, space pause,
    h help. While the name prompt is open, keys type the name (Enter confirms, Esc
    cancels, Backspace deletes)."""

    def __init__(self, pipeline, side_by_side: bool = False, clock=time.monotonic):
        self.pipeline = pipeline
        self.side_by_side = side_by_side
        self.paused = False
        self.show_help = False
        self.quit = False
        self.prompt: str | None = None        # name being typed, None when no prompt
        self.enrolment: LiveEnrolment | None = None
        self._message: tuple[str, float] | None = None
        self._clock = clock
        self._mode_before_sbs = pipeline.landmarks

    # -- keys ----------------------------------------------------------------------------
    def handle_key(self, key: int, last: FrameResult | None) -> None:
        if key < 0:
            return
        if self.prompt is not None:
            self._prompt_key(key)
            return
        char = chr(key).lower() if 0 <= key < 256 else ""
        if key == KEY_ESC or char == "q":
            self.quit = True
        elif char == "l":
            self._cycle_landmarks()
        elif char == "s":
            self._toggle_side_by_side()
        elif char == "e":
            self._start_enrolment(last)
        elif char == "u":
            self._undo()
        elif char == " ":
            self.paused = not self.paused
        elif char == "h":
            self.show_help = not self.show_help

    def _prompt_key(self, key: int) -> None:
        if key == KEY_ESC:
            self.prompt, self.enrolment = None, None
            self.say("enrolment cancelled")
        elif key in (KEY_ENTER, KEY_RETURN):
            try:
                name = clean_name(self.prompt)
            except ValueError as exc:
                self.say(str(exc))
                return
            self.enrolment.name = typed_name_case(name)
            self.prompt = None
        elif key in (KEY_BACKSPACE, KEY_DELETE):
            self.prompt = self.prompt[:-1]
        elif 32 <= key < 127:
            self.prompt += chr(key)

    def _cycle_landmarks(self) -> None:
        if self.side_by_side:
            self.say("side by side shows both; press s to leave it first")
            return
        mode = self.pipeline.landmarks
        nxt = LANDMARK_MODES[(LANDMARK_MODES.index(mode) + 1) % len(LANDMARK_MODES)]
        self.pipeline.landmarks = nxt
        self.say(f"landmarks: {nxt}")

    def _toggle_side_by_side(self) -> None:
        self.side_by_side = not self.side_by_side
        if self.side_by_side:
            self._mode_before_sbs = self.pipeline.landmarks
            self.pipeline.landmarks = "both"
        else:
            self.pipeline.landmarks = self._mode_before_sbs

    def _start_enrolment(self, last: FrameResult | None) -> None:
        face = largest(last.faces) if last else None
        if face is None or face.track_id is None:
            self.say("no face to enrol")
            return
        self.enrolment = LiveEnrolment(face.track_id)
        self.prompt = ""

    def _undo(self) -> None:
        try:
            undone = self.pipeline.gallery.undo_last_enrolment()
        except GalleryError as exc:
            self.say(f"undo failed: {exc}")
            return
        if undone is None:
            self.say("nothing to undo")
            return
        self.pipeline.tracker.forget_names("undo")
        self.say(f"undid the last enrolment of {undone.name}")

    # -- per frame -------------------------------------------------------------------------
    def after_frame(self, result: FrameResult) -> None:
        """Feed a live enrolment; store it once it has its samples and a name."""
        enrolment = self.enrolment
        if enrolment is None:
            return
        enrolment.offer(self.pipeline, result.frame, result.faces)
        if enrolment.timed_out:
            self.enrolment, self.prompt = None, None
            self.say(f"enrolment failed: no good samples ({enrolment.last_problem})")
        elif enrolment.done and enrolment.name is not None:
            self.enrolment = None
            try:
                _, created = enrolment.store(self.pipeline)
            except (GalleryError, EnrolmentError, ValueError) as exc:
                self.say(f"enrolment failed: {exc}")
                return
            self.pipeline.tracker.forget_names("enrolled")
            verb = "enrolled" if created else "added samples to existing"
            self.say(f"{verb} {enrolment.name} ({enrolment.wanted} samples)")

    def say(self, text: str) -> None:
        self._message = (text, self._clock() + MESSAGE_SECONDS)
        print(text, flush=True)

    @property
    def message(self) -> str | None:
        if self._message and self._clock() < self._message[1]:
            return self._message[0]
        return None

    def status_lines(self) -> list[str]:
        lines = []
        if self.enrolment is not None:
            lines.append(self.enrolment.status)
        if self.prompt is not None:
            lines.append(f"name: {self.prompt}_   (Enter to confirm, Esc to cancel)")
        if self.paused:
            lines.append("paused (space to resume)")
        if self.message:
            lines.append(self.message)
        return lines


def typed_name_case(name: str) -> str:
    """A name typed in the window, with each word capitalised when it has no capital at all.

    OpenCV's Qt window (the opencv-python wheel) reports letter keys in lower case whatever
    Shift says, so "Test Person" typed there arrives as "test person". A name with any
    capital letter (another GUI backend, or typed on purpose) is kept as typed."""
    if name != name.lower():
        return name
    return " ".join(word[:1].upper() + word[1:] for word in name.split(" "))


def compose_view(result: FrameResult, controller: Controller | None,
                 hud: dict | None) -> np.ndarray:
    """The annotated picture for one result; never modifies ``result.frame.image``.

    The HUD goes under the faces, so a name tag is never hidden by it."""
    image = result.frame.image
    hud = dict(hud or {})
    if result.disagreement_nme is not None:
        hud["cnn vs dlib NME"] = result.disagreement_nme
    side_by_side = controller is not None and controller.side_by_side
    if side_by_side and all(f.landmark_sets for f in result.faces):
        cnn = [replace(f, landmarks=f.landmark_sets["cnn"]) for f in result.faces]
        dlib = [replace(f, landmarks=f.landmark_sets["dlib"]) for f in result.faces]
        ms = result.landmark_ms_per_face
        view = render.side_by_side(image, cnn, dlib, ms.get("cnn"), ms.get("dlib"),
                                   result.disagreement_nme)
        left = render.draw_hud(view[:, :image.shape[1]], hud) if hud else view[:, :image.shape[1]]
        view[:, :image.shape[1]] = render.draw_faces(left, cnn, show_landmarks=False)
    else:
        both = any(f.landmark_sets for f in result.faces)
        view = render.draw_hud(image, hud) if hud else image
        view = render.draw_faces(view, result.faces,
                                 landmark_colors=render.LANDMARK_COLORS if both else None)
    if controller is not None:
        lines = controller.status_lines()
        if lines:
            view = render.draw_status(view, lines)
        if controller.show_help:
            view = render.draw_help(view)
    return view
