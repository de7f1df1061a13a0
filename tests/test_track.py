"""Tracker: stable ids, when to re-embed, and name votes that do not flicker."""
from __future__ import annotations

import numpy as np
import pytest

from app.stages.geometry import iou_matrix
from app.stages.track import Tracker
from app.types import Face


def face(x, y, w=100, h=120):
    return Face(box=np.array([x, y, x + w, y + h], np.float32), score=0.9)


def test_iou_matrix():
    a = np.array([[0, 0, 10, 10]], np.float32)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], np.float32)
    assert iou_matrix(a, b) == pytest.approx(np.array([[1.0, 50 / 150, 0.0]]))


def test_ids_stay_stable_while_two_faces_move():
    tracker = Tracker()
    ids = None
    for t in range(40):
        faces = tracker.update([face(600 - 4 * t, 100), face(50 + 5 * t, 110 + t)])
        now = [f.track_id for f in faces]
        assert ids is None or now == ids
        ids = now
    assert len(set(ids)) == 2 and len(tracker.tracks) == 2


def test_order_of_detections_does_not_matter():
    tracker = Tracker()
    a, b = tracker.update([face(0, 0), face(400, 0)])
    swapped = tracker.update([face(402, 1), face(3, 2)])
    assert [f.track_id for f in swapped] == [b.track_id, a.track_id]


def test_a_new_face_gets_a_new_track_and_asks_for_an_embedding():
    tracker = Tracker()
    [first] = tracker.update([face(0, 0)])
    assert first.track.needs_embedding and first.track.embed_reason == "new"
    tracker.record_match(first.track_id, "Alice", 0.8)
    old, new = tracker.update([face(2, 0), face(400, 300)])
    assert old.track_id == first.track_id and not old.track.needs_embedding
    assert new.track_id not in (None, first.track_id) and new.track.embed_reason == "new"
    assert old.name == "Alice" and new.name is None


def test_reverify_every_15_frames():
    tracker = Tracker(reverify_every=15)
    asked = []
    for t in range(46):
        [f] = tracker.update([face(100 + t, 100)])  # slow, smooth motion: no jumps
        if f.track.needs_embedding:
            asked.append((t, f.track.embed_reason))
            tracker.record_match(f.track_id, "Alice", 0.8)
    assert asked == [(0, "new"), (15, "reverify"), (30, "reverify"), (45, "reverify")]


def test_request_stays_up_until_a_match_is_recorded():
    tracker = Tracker()
    [f] = tracker.update([face(0, 0)])
    [f] = tracker.update([face(1, 0)])  # the caller could not embed on frame 0
    assert f.track.needs_embedding and tracker.needs_embedding(f.track_id)
    tracker.record_match(f.track_id, None, 0.2)
    assert not tracker.needs_embedding(f.track_id)


@pytest.mark.parametrize("moved", [
    face(140, 100),             # centre shifted by 40% of the box: overlapping, but a jump
    face(90, 90, 150, 180),     # grew 1.5x
    face(205, 100),             # no overlap any more, but the nearest track within a box size
])
def test_a_jump_keeps_the_track_but_asks_to_reverify(moved):
    tracker = Tracker()
    [f] = tracker.update([face(100, 100)])
    tracker.record_match(f.track_id, "Alice", 0.8)
    [g] = tracker.update([moved])
    assert g.track_id == f.track_id
    assert g.track.needs_embedding and g.track.embed_reason == "jump"
    # perhaps someone else: the old name is not shown while the new match is made
    assert g.name is None and tracker.track(g.track_id).name is None


def test_far_away_face_is_a_new_track():
    tracker = Tracker()
    [f] = tracker.update([face(0, 0)])
    [g] = tracker.update([face(1000, 600)])
    assert g.track_id != f.track_id


def test_one_wrong_match_does_not_flip_the_name():
    tracker = Tracker(vote_window=5)
    [f] = tracker.update([face(0, 0)])
    shown = []
    for name in ["Alice", "Alice", "Bob", "Alice", None, "Alice"]:
        shown.append(tracker.record_match(f.track_id, name, 0.7)[0])
    assert shown == ["Alice"] * 6


def test_vote_changes_when_the_majority_changes_and_ties_keep_the_name():
    tracker = Tracker(vote_window=4)
    [f] = tracker.update([face(0, 0)])
    tid = f.track_id
    assert tracker.record_match(tid, "Alice", 0.9) == ("Alice", pytest.approx(0.9))
    assert tracker.record_match(tid, "Bob", 0.6)[0] == "Alice"   # 1:1 tie keeps Alice
    assert tracker.record_match(tid, "Bob", 0.6)[0] == "Bob"     # Bob leads 2:1
    assert tracker.record_match(tid, "Alice", 0.9)[0] == "Bob"   # 2:2 tie keeps Bob
    assert tracker.record_match(tid, None, 0.3)[0] == "Bob"      # Bob, Bob, Alice, unknown
    # Bob, Alice, unknown, unknown: unknown wins 2:1:1, similarity = mean of its votes
    assert tracker.record_match(tid, None, 0.2) == (None, pytest.approx(0.25))


def test_unknown_is_a_vote_and_similarity_is_the_winners_mean():
    tracker = Tracker(vote_window=3)
    [f] = tracker.update([face(0, 0)])
    for sim in (0.3, 0.4, 0.2):
        name, similarity = tracker.record_match(f.track_id, None, sim)
    assert name is None and similarity == pytest.approx(0.3)
    [g] = tracker.update([face(1, 1)])
    assert g.name is None and g.similarity == pytest.approx(0.3)


def test_tracks_expire_after_max_missed_frames():
    tracker = Tracker(max_missed=3)
    [f] = tracker.update([face(0, 0)])
    for _ in range(3):
        tracker.update([])
    assert [t.id for t in tracker.tracks] == [f.track_id]
    [g] = tracker.update([face(1, 0)])  # back within max_missed: same id
    assert g.track_id == f.track_id
    for _ in range(4):
        tracker.update([])
    assert tracker.tracks == []
    with pytest.raises(KeyError):
        tracker.record_match(f.track_id, "Alice", 0.9)
    [h] = tracker.update([face(1, 0)])
    assert h.track_id != f.track_id  # ids are never reused


def test_a_clearly_closer_view_is_embedded_again_at_once():
    tracker = Tracker(reverify_every=100, better_view=1.25)
    small = Face(box=np.array([100, 100, 140, 140], np.float32), score=0.9)
    tracker.update([small])
    tracker.record_match(small.track_id, "Ada", 0.6)
    grown = [np.array([100 - d, 100 - d, 140 + d, 140 + d], np.float32) for d in (1, 2, 3, 4, 5, 6)]
    reasons = []
    for box in grown:                     # grows 1 px a side a frame: never a jump
        face = Face(box=box, score=0.9)
        tracker.update([face])
        reasons.append(face.track.embed_reason)
    # 40 px -> 50 px (1.25x) at the fifth frame
    assert reasons == [None, None, None, None, "closer", "closer"]
    tracker.record_match(face.track_id, "Ada", 0.7)
    assert not tracker.needs_embedding(face.track_id)


def test_an_unrecognised_face_is_tried_again_twice_as_often():
    tracker = Tracker(reverify_every=30)
    asked = {}
    for name in ("Ada", None):
        face = Face(box=np.array([100, 100, 140, 140], np.float32), score=0.9)
        tracker.reset()
        tracker.update([face])
        tracker.record_match(face.track_id, name, 0.7 if name else 0.2)
        for frame in range(1, 31):
            tracker.update([face])
            if face.track.embed_reason:
                asked[name] = frame
                break
    assert asked == {"Ada": 30, None: 15}


def turned_face(turn: float) -> Face:
    """A face at a fixed box whose nose sits off the middle of its jaw by ``turn``
    (0 frontal): the cheekbone points 1 and 15 at x 100 and 140, the nose tip 30 moved."""
    points = np.tile(np.array([120, 120], np.float32), (68, 1))
    points[1], points[15] = (100, 120), (140, 120)
    points[30] = (120 + 20 * turn, 120)
    return Face(box=np.array([100, 100, 140, 140], np.float32), score=0.9, landmarks=points)


def test_a_clearly_more_frontal_view_is_embedded_again_at_once():
    tracker = Tracker(reverify_every=100, better_turn=0.2)
    first = turned_face(0.6)
    tracker.update([first])
    tracker.record_match(first.track_id, None, 0.3)      # turned away: not recognised
    reasons = []
    for turn in (0.6, 0.5, 0.45, 0.35, 0.7):
        face = turned_face(turn)
        tracker.update([face])
        reasons.append(face.track.embed_reason)
    # 0.6 -> 0.4 or less is clearly more frontal; turning further away is not
    assert reasons == [None, None, None, "frontal", None]


def test_a_late_match_counts_the_next_check_from_the_frame_its_face_came_from():
    """FaceNet on its own thread: the match arrives frames after its face; the periodic
    check keeps the period it would have had on the frame path."""
    tracker = Tracker(reverify_every=30)
    face0 = face(100, 100)
    tracker.update([face0])
    for _ in range(4):                                    # the result takes 4 frames
        tracker.update([face(100, 100)])
    tracker.record_match(face0.track_id, "Ada", 0.8, seen_at=0)
    asked = next(t for t in range(5, 40)
                 if tracker.update([face(100, 100)])[0].track.embed_reason)
    assert asked == 30


def test_a_face_being_embedded_elsewhere_is_not_due_again_every_frame():
    """FaceNet's worker has the face seen when the track fell due: the track is not due
    again (so that view is not replaced by later ones) until a new reason arises."""
    tracker = Tracker(reverify_every=30)
    [first] = tracker.update([face(100, 100)])
    tracker.mark_requested(first.track_id)                 # its first face went off
    reasons = [tracker.update([face(100, 100)])[0].track.embed_reason for _ in range(14)]
    assert reasons == [None] * 14
    [jumped] = tracker.update([face(140, 100)])            # a new reason: a jump
    assert jumped.track.embed_reason == "jump"
    tracker.mark_requested(jumped.track_id)
    assert tracker.stale(jumped.track_id, 0)               # the first face's match: stale
    tracker.record_match(jumped.track_id, "Ada", 0.8, seen_at=15)
    assert tracker.track(jumped.track_id).requested is None
    assert not tracker.needs_embedding(jumped.track_id)
