"""Identities that persist across frames: stable track ids, when to re-embed, name votes.

Per frame the pipeline calls::

    faces = tracker.update(faces)                # sets face.track_id, name, similarity
    for face in faces:
        if face.track.needs_embedding:           # or tracker.needs_embedding(face.track_id)
            match = gallery.match(...)[0]
            face.name, face.similarity = tracker.record_match(face.track_id, match.name,
                                                             match.similarity)

A face needs an embedding when its track is new, when its box jumped (centre moved by
more than ``jump_threshold`` box sizes, or its size changed by more than
``scale_jump`` times: a cut, or another face), when a clearly better view arrives (the
box grew ``better_view`` times since the last match: closer, so sharper; or, for a face
nobody recognised yet, its turn fell by ``better_turn``: more frontal — on the 2x2
mosaic this named a face first missed in profile 3-4 frames after FaceNet on the frame
path did, instead of 30-45), and on a slow periodic check every ``reverify_every``
frames. The request stays up until :meth:`Tracker.record_match` is called, so a face
that could not be embedded this frame is asked for again next frame; a face handed to
FaceNet's worker (:meth:`Tracker.mark_requested`) counts as embedded meanwhile, so the
view embedded is the one seen when the track fell due, and a match of a face seen
before the track's last jump is stale (:meth:`Tracker.stale`).

Why 30 frames (1 s at 30 FPS) for the periodic check of a named face, not the 15 it
was: on the Hamilton clip (both people enrolled) it made 24 embeddings instead of 34
with the same naming, his 149 of 149 frames and no wrong name (45 frames: 22, the same
naming); jumps, cuts and closer views still re-embed at once. A face not recognised yet
keeps the 15 (half the period): with 30 for it too, a mosaic face missed at its first
embedding was named about 30 frames later than before (bench --baseline).

A track's name is a majority vote over its last ``vote_window`` matches ("unknown",
recorded as ``None``, is a vote too; a tie keeps the current name), so one wrong match
does not make the label flicker. A jump clears the votes and the name, so after a cut a
face that inherited a track is named by what it looks like now, not by the face before
the cut (nor shown with that name while its match is being made).
"""
from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field

import numpy as np

from ..types import Face
from .geometry import iou_matrix


@dataclass
class Track:
    id: int
    box: np.ndarray                     # last matched box, x1 y1 x2 y2
    first_frame: int
    last_seen: int                      # frame number of the last matched detection
    last_embedded: int | None = None    # frame number of the last recorded match
    pending: str | None = "new"         # why an embedding is due regardless of age
    votes: deque = field(default_factory=deque)  # (name | None, similarity | None)
    name: str | None = None
    similarity: float | None = None
    embedded_size: float | None = None  # box size (mean of w, h) at the last recorded match
    embedded_turn: float | None = None  # its turn (see _turn) at the last recorded match
    turn: float | None = None           # how far the face is turned now
    jumped_at: int | None = None        # frame number of its last jump (a match of a face
                                        # seen before it is about someone else: stale)
    requested: tuple | None = None      # (frame, size, turn) of a face being embedded now


class Tracker:
    """Greedy IoU tracker with re-verification and name voting (see module docstring)."""

    def __init__(self, iou_threshold: float = 0.3, max_missed: int = 10, reverify_every: int = 30,
                 jump_threshold: float = 0.25, scale_jump: float = 1.3, max_jump: float = 1.0,
                 vote_window: int = 5, better_view: float = 1.25, better_turn: float = 0.2):
        """
        iou_threshold: least IoU for a detection to continue a track.
        max_missed: frames a track survives without a detection before it expires.
        reverify_every: re-embed a track at least this often (frames).
        jump_threshold: centre shift, in units of the previous box size (mean of w, h),
            that counts as a jump (re-embed).
        scale_jump: size ratio (either way) between consecutive boxes that counts as a jump.
        max_jump: a detection that overlaps no track still continues the nearest unmatched
            one whose centre is within this many box sizes and whose size is within
            ``scale_jump``; it is flagged as a jump, so it is re-verified at once.
        vote_window: number of recent matches the name vote is taken over.
        better_view: a face whose box grew this many times since its last match is
            embedded again at once (a closer, sharper view than the one that named it).
        better_turn: likewise a face whose turn (:func:`_turn`, 0 frontal to 1 profile)
            fell this much since its last match (a more frontal view).
        """
        if not 0.0 < iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
        if reverify_every < 1 or vote_window < 1 or max_missed < 0:
            raise ValueError("reverify_every and vote_window must be >= 1, max_missed >= 0")
        self.iou_threshold = iou_threshold
        self.max_missed = max_missed
        self.reverify_every = reverify_every
        self.jump_threshold = jump_threshold
        self.scale_jump = scale_jump
        self.max_jump = max_jump
        self.vote_window = vote_window
        self.better_view = better_view
        self.better_turn = better_turn
        self.frame = -1  # number of the frame last passed to update()
        self._tracks: dict[int, Track] = {}
        self._next_id = 1

    # -- per frame -----------------------------------------------------------------
    def update(self, faces: list[Face]) -> list[Face]:
        """Assign ``track_id`` to each face (in place) and return the same list.

        Also fills each face's ``name``/``similarity`` from its track's current vote and
        its ``track`` (:class:`~app.types.TrackState`): ``embed_reason`` ("new", "jump",
        "reverify", ... or None when no embedding is due) and ``event``, "new" or "jump"
        only in the frame where that happened. Tracks not seen for more than
        ``max_missed`` frames are dropped; ids are never reused.
        """
        self.frame += 1
        boxes = [np.asarray(f.box, np.float32).reshape(4) for f in faces]
        tracks = list(self._tracks.values())
        pairs = self._match(tracks, boxes)
        for t_index, f_index, jumped in pairs:
            track = tracks[t_index]
            if jumped or _is_jump(track.box, boxes[f_index], self.jump_threshold,
                                  self.scale_jump):
                # A face that leapt or changed size within one frame is likely another
                # face (a cut): its old votes must not outvote what it looks like now,
                # and its old name is not shown on it while its new match is made.
                # (a new track's first face stays "new"; any other reason becomes "jump":
                # the first face of who is there now)
                track.pending = "new" if track.pending == "new" else "jump"
                track.votes.clear()
                track.name = track.similarity = None
                track.jumped_at = self.frame
                faces[f_index].track.event = "jump"
            track.box = boxes[f_index]
            track.last_seen = self.frame
            track.turn = _turn(faces[f_index].landmarks)
            faces[f_index].track_id = track.id
        matched = {f_index for _, f_index, _ in pairs}
        for f_index, box in enumerate(boxes):
            if f_index not in matched:
                track = Track(self._next_id, box, self.frame, self.frame,
                              turn=_turn(faces[f_index].landmarks))
                self._tracks[track.id] = track
                self._next_id += 1
                faces[f_index].track_id = track.id
                faces[f_index].track.event = "new"
        self._expire()
        for face in faces:
            track = self._tracks[face.track_id]
            face.track.embed_reason = self._embed_reason(track)
            face.track.checked = track.last_embedded is not None
            face.name, face.similarity = track.name, track.similarity
        return faces

    def stale(self, track_id: int, seen_at: int | None) -> bool:
        """Whether a match of this track's face seen at frame ``seen_at`` came from before
        its last jump (a face that is perhaps someone else now): not to be recorded."""
        track = self._get(track_id)
        return seen_at is not None and track.jumped_at is not None and seen_at < track.jumped_at

    def mark_requested(self, track_id: int) -> None:
        """This frame's face of the track went to be embedded elsewhere (FaceNet's worker):
        until its match is recorded the track is due again only for a new reason (a jump,
        a changed gallery, the next periodic check or a clearly better view counted from
        this face), so the face embedded is the one seen when it fell due, as on the
        frame path."""
        track = self._get(track_id)
        track.requested = (self.frame, _size(track.box), track.turn)
        track.pending = None

    def needs_embedding(self, track_id: int) -> bool:
        """Whether the track is due an embedding this frame (new, jumped, a clearly better
        view, or its periodic check)."""
        return self._embed_reason(self._get(track_id)) is not None

    def record_match(self, track_id: int, name: str | None, similarity: float | None,
                     seen_at: int | None = None) -> tuple[str | None, float | None]:
        """Record one gallery match for a track; returns the track's voted (name, similarity).

        ``name`` None means "unknown". The similarity returned is the mean similarity of
        the recent votes for the winning name. ``seen_at``: the frame the embedded face
        came from, when the match arrives later (FaceNet's worker): the next periodic
        re-verification counts from there, as it would have on the frame path. Raises
        KeyError for an unknown track id.
        """
        track = self._get(track_id)
        track.votes.append((name, None if similarity is None else float(similarity)))
        while len(track.votes) > self.vote_window:
            track.votes.popleft()
        track.last_embedded = self.frame if seen_at is None else seen_at
        track.embedded_size, track.embedded_turn = _size(track.box), track.turn
        if track.requested is not None and seen_at is not None \
                and seen_at >= track.requested[0]:
            if seen_at == track.requested[0]:   # the view that was embedded, not today's
                track.embedded_size, track.embedded_turn = track.requested[1:]
            track.requested = None
        track.pending = None
        track.name = _vote(track.votes, track.name)
        sims = [s for n, s in track.votes if n == track.name and s is not None]
        track.similarity = float(np.mean(sims)) if sims else None
        return track.name, track.similarity

    # -- inspection ----------------------------------------------------------------
    @property
    def tracks(self) -> list[Track]:
        """Live tracks (seen within the last ``max_missed`` frames), oldest first."""
        return list(self._tracks.values())

    def track(self, track_id: int) -> Track:
        return self._get(track_id)

    def alive(self, track_id: int) -> bool:
        """Whether ``track_id`` is still tracked (ended tracks' ids never come back)."""
        return track_id in self._tracks

    def forget_names(self, reason: str = "gallery changed") -> None:
        """Drop every track's votes and ask for a fresh match now (after an enrolment or
        undo changed who the gallery knows); ids and boxes are kept."""
        for track in self._tracks.values():
            track.votes.clear()
            track.name = track.similarity = None
            track.pending = reason

    def reset(self) -> None:
        """Forget every track (ids keep increasing)."""
        self._tracks.clear()

    # -- internals -----------------------------------------------------------------
    def _get(self, track_id: int) -> Track:
        try:
            return self._tracks[track_id]
        except KeyError:
            raise KeyError(f"no live track with id {track_id}") from None

    def _embed_reason(self, track: Track) -> str | None:
        if track.pending:
            return track.pending
        # a face nobody recognised yet is tried again twice as often: its name may be late
        every = self.reverify_every if track.name is not None else self.reverify_every // 2
        # a face being embedded elsewhere counts as embedded (see mark_requested)
        last, size, turn = track.requested or (track.last_embedded, track.embedded_size,
                                               track.embedded_turn)
        if last is None or self.frame - last >= every:
            return "reverify"
        if size and _size(track.box) >= self.better_view * size:
            return "closer"   # a clearly larger (so sharper) view than the one last embedded
        if (track.name is None and turn is not None and track.turn is not None
                and turn - track.turn >= self.better_turn):
            # clearly less turned away than the view last embedded, for a face nobody
            # recognised yet (a named face has its name; the periodic check covers it)
            return "frontal"
        return None

    def _expire(self) -> None:
        for track_id in [t.id for t in self._tracks.values()
                         if self.frame - t.last_seen > self.max_missed]:
            del self._tracks[track_id]

    def _match(self, tracks: list[Track], boxes: list[np.ndarray]
               ) -> list[tuple[int, int, bool]]:
        """Greedy matching: (track index, face index, matched-by-distance) triples."""
        if not tracks or not boxes:
            return []
        track_boxes = np.stack([t.box for t in tracks])
        ious = iou_matrix(track_boxes, np.stack(boxes))
        pairs: list[tuple[int, int, bool]] = []
        used_t: set[int] = set()
        used_f: set[int] = set()
        for t, f in zip(*np.unravel_index(np.argsort(-ious, axis=None), ious.shape)):
            if ious[t, f] < self.iou_threshold:
                break
            if t not in used_t and f not in used_f:
                pairs.append((int(t), int(f), False))
                used_t.add(t)
                used_f.add(f)
        # Second chance for a box that jumped off its track: nearest centre, similar size.
        candidates = []
        for t in range(len(tracks)):
            for f in range(len(boxes)):
                if t in used_t or f in used_f:
                    continue
                shift, ratio = _shift_and_ratio(track_boxes[t], boxes[f])
                if shift <= self.max_jump and ratio <= self.scale_jump:
                    candidates.append((shift, t, f))
        for _, t, f in sorted(candidates):
            if t not in used_t and f not in used_f:
                pairs.append((t, f, True))
                used_t.add(t)
                used_f.add(f)
        return pairs


def _turn(landmarks: np.ndarray | None) -> float | None:
    """How far a face is turned sideways, from its 68 points: 0 frontal, towards 1 in
    profile (the nose tip's distances to the two sides of the jaw, at the cheekbones,
    differ); None without points."""
    if landmarks is None or len(landmarks) != 68:
        return None
    points = np.asarray(landmarks, np.float32)
    left = float(np.linalg.norm(points[30] - points[1]))
    right = float(np.linalg.norm(points[15] - points[30]))
    return abs(left - right) / max(left + right, 1e-6)


def _size(box: np.ndarray) -> float:
    return float(np.mean(np.asarray(box[2:]) - np.asarray(box[:2])))


def _shift_and_ratio(old: np.ndarray, new: np.ndarray) -> tuple[float, float]:
    """Centre shift in units of the old box size (mean of w, h), and size ratio (>= 1)."""
    old_size = max(float((old[2] - old[0]) + (old[3] - old[1])) / 2, 1e-6)
    new_size = max(float((new[2] - new[0]) + (new[3] - new[1])) / 2, 1e-6)
    shift = float(np.hypot((new[0] + new[2] - old[0] - old[2]) / 2,
                           (new[1] + new[3] - old[1] - old[3]) / 2)) / old_size
    return shift, max(new_size / old_size, old_size / new_size)


def _is_jump(old: np.ndarray, new: np.ndarray, jump_threshold: float, scale_jump: float) -> bool:
    shift, ratio = _shift_and_ratio(old, new)
    return shift > jump_threshold or ratio > scale_jump


def _vote(votes, current: str | None) -> str | None:
    """Majority name over ``votes``; a tie keeps ``current`` if it is among the leaders,
    else the leader voted most recently."""
    counts = Counter(name for name, _ in votes)
    top = max(counts.values())
    leaders = {name for name, count in counts.items() if count == top}
    if len(leaders) == 1:
        return next(iter(leaders))
    if current in leaders:
        return current
    for name, _ in reversed(votes):
        if name in leaders:
            return name
    return current
