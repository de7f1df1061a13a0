"""The window's live enrolment (key ``e``): start it on a face, take the name (typed in
the window, or asked in a dialog or on the terminal), feed it frames, store it once it
has its samples and its name, cancel it, undo this window's latest one (key ``u``).

:class:`WindowEnrolment` is the part of :class:`~app.window.ui.Controller` that does
this; it is given what it uses (the gallery, the embed function, the embedder's model id
and crop rule, the recognition threshold, the tracker's ``forget_names``, and ``say``
for messages), not the pipeline.
"""
from __future__ import annotations

from typing import Callable

from ..people.enroll import EmbedFaces, EnrolmentError, LiveEnrolment, pick_face
from ..people.gallery import GalleryError, clean_name
from ..types import FrameResult
from .keys import KEY_BACKSPACE, KEY_DELETE, KEY_ENTER, KEY_ESC, KEY_RETURN
from .names import NameRequest, typed_name_case


class WindowEnrolment:
    """One live enrolment at a time, and this run's enrolments (``enrolled``, oldest
    first), the only ones ``u`` may undo."""

    def __init__(self, gallery, embed: EmbedFaces, model_id: str, crop: str,
                 threshold: float, forget_names: Callable[[str], None],
                 say: Callable[[str], None], name_input: str = "window"):
        self.gallery = gallery
        self._embed = embed
        self._model_id, self._crop, self._threshold = model_id, crop, threshold
        self._forget_names = forget_names     # the tracker's: names are matched afresh
        self._say = say
        self.name_input = name_input          # "dialog", "terminal" or "window" (app.window.names)
        self.asking: NameRequest | None = None  # a dialog / terminal prompt being answered
        self.prompt: str | None = None        # name being typed, None when no prompt
        self.enrolment: LiveEnrolment | None = None
        self.enrolled: list = []              # this run's enrolments (Enrolled), oldest first

    # -- starting ------------------------------------------------------------------------
    def can_start(self, at_end: str | None) -> bool:
        """Whether an enrolment may start now; says why not."""
        why = self.why_not(at_end)
        if why:
            self._say(why)
        return why is None

    def why_not(self, at_end: str | None) -> str | None:
        """Why an enrolment cannot start now (None: it can)."""
        if self.enrolment is not None:
            return "already enrolling: give the name, or Esc to cancel"
        if at_end:
            return (f"{at_end}: no more frames to take samples from; enrol from "
                    f"photos instead: python -m app enroll --name NAME PHOTO")
        if not self.gallery.can_write():
            return (f"cannot enrol: gallery {self.gallery.path} is read-only "
                    f"here; copy it to a folder you can write to and pass that --gallery")
        return None

    def start(self, last: FrameResult | None, chosen: tuple[float, float] | None) -> None:
        """Enrol the face at ``chosen`` (a click), else the best face of ``last``; then
        ask for the name."""
        face = None
        if last is not None:
            face = (chosen and pick_face(last.faces, last.frame.image, chosen)) \
                or pick_face(last.faces, last.frame.image)
        if face is None:
            self._say("no face to enrol")
            return
        self._follow(last, face)
        if self.name_input == "window":
            self.prompt = ""
        else:
            self.asking = NameRequest(self.name_input)
            print(f"type the name in {self.asking.where}", flush=True)

    def start_named(self, last: FrameResult | None, track_id: int, name: str,
                    at_end: str | None = None) -> None:
        """Enrol track ``track_id`` of ``last`` under ``name`` with no prompt (the browser
        view); EnrolmentError saying why it cannot start."""
        why = self.why_not(at_end)
        if why:
            raise EnrolmentError(why)
        name = clean_name(name)
        faces = last.faces if last is not None else []
        face = next((f for f in faces if f.track_id == track_id and f.landmarks is not None),
                    None)
        if face is None:
            raise EnrolmentError(f"no face #{track_id} in the latest frame (it left, or its "
                                 f"track ended): pick a face that is on the picture now")
        self._follow(last, face)
        self.enrolment.name = name
        self._say(f"enrolling face #{track_id} as {name}: keep facing the camera")

    def _follow(self, last: FrameResult, face) -> None:
        reference = face.embedding
        if reference is None:
            reference = self._embed(last.frame.image, [face])[0]
        self.enrolment = LiveEnrolment(face.track_id, threshold=self._threshold,
                                       reference=reference)

    # -- the name ------------------------------------------------------------------------
    def prompt_key(self, key: int) -> None:
        """A key while the name prompt is open: text, Backspace, Enter, Esc."""
        if key == KEY_ESC:
            self.cancel("enrolment cancelled")
        elif key in (KEY_ENTER, KEY_RETURN):
            try:
                name = clean_name(self.prompt)
            except ValueError as exc:
                self._say(str(exc))
                return
            self.enrolment.name = typed_name_case(name)
            self.prompt = None
            self.store_if_ready()
        elif key in (KEY_BACKSPACE, KEY_DELETE):
            self.prompt = self.prompt[:-1]
        elif 32 <= key < 127:
            self.prompt += chr(key)

    def poll_name(self) -> None:
        """Pick up a name given in the dialog or the terminal."""
        if self.asking is None:
            return
        name = self.asking.poll()
        if self.asking.cancelled:
            self.cancel("enrolment cancelled (no name given)")
        elif name is not None:
            self.asking = None
            try:
                self.enrolment.name = clean_name(name)
            except ValueError as exc:
                self.cancel(f"enrolment cancelled: {exc}")
                return
            self.store_if_ready()

    def cancel(self, why: str) -> None:
        if self.asking is not None:
            self.asking.cancel()
        self.asking, self.prompt, self.enrolment = None, None, None
        self._say(why)

    # -- samples, storing, undoing -------------------------------------------------------
    def after_frame(self, result: FrameResult) -> None:
        """Feed a live enrolment; store it once it has its samples and a name."""
        self.poll_name()
        enrolment = self.enrolment
        if enrolment is None:
            return
        followed = len(enrolment.followed)
        enrolment.offer(self._embed, result.frame, result.faces)
        if len(enrolment.followed) > followed:
            self._say(f"enrolment follows the same person onto track #{enrolment.track_id}")
        if enrolment.timed_out:
            self.cancel(f"enrolment timed out: {enrolment.summary}; nothing "
                        f"stored, press e to try again")
        else:
            self.store_if_ready()

    def store_if_ready(self) -> None:
        """Store the live enrolment once it has its samples and its name, whichever came
        last (the name may arrive after the video ended or while paused)."""
        enrolment = self.enrolment
        if enrolment is None or not enrolment.done or enrolment.name is None:
            return
        self.enrolment = None
        try:
            stored = enrolment.store(self.gallery, self._model_id, self._crop)
        except (GalleryError, EnrolmentError, ValueError) as exc:
            self._say(f"enrolment failed: {exc}")
            return
        self.enrolled.append(stored)
        self._forget_names("enrolled")
        verb = "enrolled" if stored.created_person else "added samples to existing"
        self._say(f"{verb} {enrolment.name} ({enrolment.wanted} samples)")

    def undo(self) -> bool:
        """Undo this window's latest enrolment of this run, and only that: people enrolled
        before the run (or by anyone else) are never touched (``people remove`` is for
        that). Says what happened; whether anything was undone."""
        if not self.enrolled:
            self._say("nothing to undo (u only undoes enrolments made in this window)")
            return False
        try:
            undone = self.gallery.undo_enrolment(self.enrolled[-1].enrolment_id)
        except GalleryError as exc:
            self._say(f"undo failed: {exc}")
            return False
        self.enrolled.pop()
        if undone is None:
            self._say("nothing to undo: that enrolment was already removed")
            return False
        self._forget_names("undo")
        if undone.person_removed:
            self._say(f"undo: removed {undone.name} ({undone.samples} samples)")
        else:
            self._say(f"undo: removed the {undone.samples} samples just added to "
                      f"{undone.name} (kept the earlier ones)")
        return True

    def finish(self) -> list[str]:
        """At exit: close a pending dialog; lines reporting this run's enrolments."""
        self.poll_name()
        self.store_if_ready()
        lines = [f"enrolled in this window: {e.name} ({e.samples} samples)"
                 for e in self.enrolled]
        if self.enrolment is not None:
            lines.append(f"enrolment not finished: {self.enrolment.summary}; nothing stored")
            if self.asking is not None:
                self.asking.cancel()
            self.enrolment = self.asking = self.prompt = None
        return lines

    def status_lines(self) -> list[str]:
        """Progress and the name prompt, for the status bar."""
        lines = []
        if self.enrolment is not None:
            lines.append(self.enrolment.status)
        if self.prompt is not None:
            lines.append(f"name: {self.prompt}_   (Enter to confirm, Esc to cancel)")
        if self.asking is not None:
            lines.append(f"name: type it in {self.asking.where} (Esc here cancels)")
        return lines
