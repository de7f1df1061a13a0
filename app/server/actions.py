"""What the browser view may do to the people, each run on the pipeline thread
(:meth:`LiveService.call`): the same checks and refusals as ``enroll`` and ``people``,
and afterwards every live track's name is matched afresh (``forget_names``).

Each method returns a :class:`concurrent.futures.Future` of its result; the errors it
raises are the gallery's and enrolment's own (:mod:`app.server.routes` maps them to HTTP
statuses): ``PersonNotFound``, ``NameTaken``, ``EnrolmentError`` (``FaceCountError``
with the faces found), ``GalleryError``, ``ValueError`` for a bad name, ``LookupError``
for a face that is gone.
"""
from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..people.enroll import PhotoEnrolment, enrol_checked, enroll_photos
from ..people.gallery import clean_name
from .live import LiveService


@dataclass(frozen=True)
class Added:
    """Samples stored for a person by an upload or by naming an unknown face."""
    name: str
    added: int
    created: bool
    warnings: list[str]


class PeopleActions:
    def __init__(self, service: LiveService):
        self.service = service

    # -- reads (the gallery is safe to read from any thread) ----------------------------------
    def people(self) -> list[dict]:
        return [{"name": p.name, "samples": p.samples} for p in self.service.gallery.people()]

    def thumbnail(self, name: str) -> bytes | None:
        return self.service.gallery.thumbnail_jpeg(name)

    # -- writes -----------------------------------------------------------------------------
    def add_photos(self, name: str, photos: list[Path], force: bool = False,
                   face: int | None = None) -> "Future[Added]":
        def job() -> Added:
            report: PhotoEnrolment = enroll_photos(self.service.pipeline, name, photos,
                                                   force=force, face=face)
            self._changed("enrolled")
            return Added(report.name, report.samples, report.created_new, report.warnings)
        return self.service.call(job)

    def rename(self, old: str, new: str) -> "Future[None]":
        def job() -> None:
            self.service.gallery.rename(old, new)
            self._changed("renamed")
        return self.service.call(job)

    def remove(self, name: str) -> "Future[int]":
        def job() -> int:
            count = self.service.gallery.remove(name)
            self._changed("removed")
            return count
        return self.service.call(job)

    def enrol_track(self, track: int, name: str) -> "Future[None]":
        """Start the live enrolment of the window (five good frames of that track), named."""
        def job() -> None:
            loop = self.service.loop
            loop.controller.enrolling.start_named(self.service.latest_with(track), track,
                                                  name, at_end=self.service.ended)
        return self.service.call(job)

    def cancel_enrolment(self) -> "Future[bool]":
        def job() -> bool:
            controller = self.service.loop.controller
            if controller.enrolment is None:
                return False
            controller.cancel_enrolment("enrolment cancelled")
            return True
        return self.service.call(job)

    def undo(self) -> "Future[tuple[bool, str | None]]":
        """Undo this server's latest live enrolment: (whether anything was undone, what
        happened)."""
        def job():
            controller = self.service.loop.controller
            undone = controller.enrolling.undo()
            return undone, controller.message
        return self.service.call(job)

    def name_unknown(self, track: int, name: str, force: bool = False) -> "Future[Added]":
        """Store the views kept of a recent unknown face (its embeddings and crops) under
        ``name``: "this is ...", even after the face has left."""
        def job() -> Added:
            service = self.service
            face = service.unknown.get(track)
            if face is None:
                raise LookupError(f"no recent unknown face #{track} (it was named, or is "
                                  f"too old)")
            who = clean_name(name)
            pipeline = service.pipeline
            embeddings = np.stack(face.embeddings)
            labels = [f"face #{track}"] * len(embeddings)
            stored, warnings = enrol_checked(service.gallery, who, embeddings,
                                             pipeline.model_id, face.crops, pipeline.crop,
                                             pipeline.threshold, labels, force)
            service.unknown.pop(track)
            self._changed("enrolled")
            return Added(stored.name, stored.samples, stored.created_person, warnings)
        return self.service.call(job)

    def _changed(self, why: str) -> None:
        """On the pipeline thread, after a change: names are matched afresh, and the
        unknown faces that are now someone leave the "who is this?" panel."""
        self.service.pipeline.tracker.forget_names(why)
        self.service.people_changed()
