"""The One Euro filter and the per-track landmark smoother, on synthetic signals."""
from __future__ import annotations

import numpy as np
import pytest

from app.lab.smooth_eval import jitter, lag_frames
from app.stages.smooth import LandmarkSmoother, OneEuroFilter
from app.types import Face

DT = 1 / 30


def run(filt, signal, scale=1.0):
    return np.array([filt(x, DT, scale) for x in signal])


def test_still_noisy_points_jitter_far_less():
    rng = np.random.default_rng(0)
    signal = 100 + rng.normal(0, 1.0, (300, 68, 2))
    out = run(OneEuroFilter(), signal, scale=100)
    assert jitter(out, 1.0) < jitter(signal, 1.0) / 3
    assert abs(out[50:].mean() - 100) < 0.2  # no bias


def test_ramp_is_followed_with_little_lag_and_the_lag_shrinks_with_beta():
    t = np.arange(120)
    signal = np.zeros((120, 68, 2))
    signal[..., 0] = np.clip(t - 20, 0, 60)[:, None] * 2.0  # 2 px / frame, face size 100
    lags = [lag_frames(signal, run(OneEuroFilter(beta=beta), signal, scale=100))
            for beta in (0.0, 4.0, 20.0)]
    assert lags[0] > lags[1] > lags[2]
    assert lags[1] <= 2.0
    # A plain exponential filter at 1 Hz (beta 0) at 30 FPS lags (1 - a) / a frames.
    a = 1 / (1 + 30 / (2 * np.pi))
    assert lags[0] == pytest.approx((1 - a) / a, abs=0.3)


def test_speed_is_measured_in_face_sizes():
    """The same motion relative to the face is smoothed the same for a small and a big face."""
    rng = np.random.default_rng(1)
    base = rng.normal(0, 1, (90, 68, 2)).cumsum(axis=0)
    small = run(OneEuroFilter(), base, scale=50)
    big = run(OneEuroFilter(), base * 4, scale=200)
    np.testing.assert_allclose(big, small * 4, rtol=1e-4, atol=1e-3)


def test_first_value_passes_through_and_bad_parameters_raise():
    filt = OneEuroFilter()
    x = np.ones((68, 2))
    np.testing.assert_array_equal(filt(x, DT), x)
    with pytest.raises(ValueError):
        OneEuroFilter(min_cutoff=0)
    with pytest.raises(ValueError):
        filt(x, 0.0)
    with pytest.raises(ValueError):
        LandmarkSmoother(fps=0)


def face(track_id, points, event=None, box=(0, 0, 100, 100)):
    f = Face(box=np.array(box, np.float32), score=1.0, landmarks=points.astype(np.float32),
             track_id=track_id)
    f.track.event = event
    return f


def test_smoother_keeps_tracks_apart_and_restarts_on_a_jump():
    smoother = LandmarkSmoother()
    a, b = np.zeros((68, 2)), np.full((68, 2), 50.0)
    smoother.apply([face(1, a, "new"), face(2, b, "new")])
    moved = [face(1, a + 10), face(2, b + 10)]
    smoother.apply(moved)
    assert 0 < moved[0].landmarks.mean() < 10          # smoothed towards the old points
    assert 50 < moved[1].landmarks.mean() < 60         # track 2 did not see track 1's points
    cut = face(1, a + 300, "jump")
    smoother.apply([cut])
    np.testing.assert_array_equal(cut.landmarks, a + 300)  # a cut is not smoothed across


def test_smoother_smooths_each_model_in_side_by_side_mode_and_forgets_idle_tracks():
    smoother = LandmarkSmoother(max_idle=2)
    first = face(7, np.zeros((68, 2)), "new")
    first.landmark_sets = {"cnn": np.zeros((68, 2)), "dlib": np.ones((68, 2))}
    smoother.apply([first])
    second = face(7, np.full((68, 2), 10.0))
    second.landmark_sets = {"cnn": np.full((68, 2), 10.0), "dlib": np.full((68, 2), 11.0)}
    smoother.apply([second])
    assert 0 < second.landmark_sets["cnn"].mean() < 10
    assert 1 < second.landmark_sets["dlib"].mean() < 11
    for _ in range(3):
        smoother.apply([])
    assert not smoother._filters


def test_smoothing_measure_on_a_real_photo():
    """The jitter/lag measure end to end: detector + CNN on clips made from one photo."""
    from app.lab.smooth_eval import evaluate
    from tests.conftest import shared

    row = evaluate(shared("landmarks300w", "test"), photos=1, frames=20)
    assert row["photos"] == 1
    assert 0 < row["jitter_smoothed"] < row["jitter_raw"]
    assert 0 < row["lag_frames"] < 5


def test_switching_landmark_model_does_not_blend_one_into_the_other():
    smoother = LandmarkSmoother()
    cnn = face(3, np.zeros((68, 2)), "new")
    cnn.landmark_model = "cnn"
    smoother.apply([cnn])
    dlib = face(3, np.full((68, 2), 5.0))
    dlib.landmark_model = "dlib"
    smoother.apply([dlib])
    np.testing.assert_array_equal(dlib.landmarks, np.full((68, 2), 5.0))  # dlib's first frame


def test_smoothing_measure_scores_every_model_on_the_same_clips():
    from app.lab.smooth_eval import evaluate_models
    from tests.conftest import shared

    cnn, dlib = evaluate_models(shared("landmarks300w", "test"), ["cnn", "dlib"], photos=1,
                                frames=12)
    assert (cnn["landmarks"], dlib["landmarks"]) == ("cnn", "dlib")
    assert cnn["box_jitter"] == dlib["box_jitter"]  # same frames, same detector boxes
    assert cnn["jitter_raw"] != dlib["jitter_raw"]
