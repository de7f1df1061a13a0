"""Training pieces of the landmark CNN: flip remap, crop geometry, augmentation, head."""
from __future__ import annotations

import numpy as np
import pytest

from app.stages.landmarks.crop import cut_square, to_frame
from app.toolchain.train_landmarks import (
    FLIP_INDEX,
    Augment,
    augment_sample,
    crop_transform,
    flip_points,
    split_indices,
    warp_crop,
)
from app.types import LEFT_EYE, OUTER_EYE_CORNERS, RIGHT_EYE


def test_flip_remap_is_an_involution_and_swaps_the_eyes():
    assert sorted(FLIP_INDEX) == list(range(68))
    np.testing.assert_array_equal(FLIP_INDEX[FLIP_INDEX], np.arange(68))
    assert set(FLIP_INDEX[list(RIGHT_EYE)]) == set(LEFT_EYE)
    right, left = OUTER_EYE_CORNERS
    assert FLIP_INDEX[right] == left
    assert FLIP_INDEX[30] == 30 and FLIP_INDEX[8] == 8  # nose tip, chin stay


def test_flipping_a_face_twice_gives_it_back_and_mirrors_left_right():
    rng = np.random.default_rng(1)
    points = rng.uniform(0.2, 0.8, (68, 2))
    once = flip_points(points)
    np.testing.assert_allclose(flip_points(once), points)
    right, left = OUTER_EYE_CORNERS
    np.testing.assert_allclose(once[right, 0], 1 - points[left, 0])
    np.testing.assert_allclose(once[:, 1], points[FLIP_INDEX, 1])


def test_crop_transform_reproduces_the_run_time_crop_and_its_mapping_back():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (300, 260, 3), np.uint8)
    square = np.array([-20, 40, 224])  # leaves the frame on the left: zero padding
    matrix = crop_transform(square)
    np.testing.assert_allclose(warp_crop(image, matrix).astype(float),
                               cut_square(image, square, 112).astype(float), atol=40)
    points = rng.uniform(0, 250, (68, 2)).astype(np.float32)
    fractions = (points @ matrix[:, :2].T + matrix[:, 2] + 0.5) / 112
    np.testing.assert_allclose(to_frame(fractions, square), points, atol=1e-3)


def test_augmented_points_stay_on_the_features_they_mark():
    """A bright dot drawn at one point must end up where the augmented target says."""
    image = np.zeros((240, 240, 3), np.uint8)
    points = np.random.default_rng(2).uniform(70, 170, (68, 2)).astype(np.float32)
    image[int(points[36, 1]) - 1:int(points[36, 1]) + 2,
          int(points[36, 0]) - 1:int(points[36, 0]) + 2] = 255
    aug = Augment(colour_prob=0, gray_prob=0, blur_prob=0, occlude_prob=0, flip_prob=1.0,
                  rotate_prob=1.0)
    rng = np.random.default_rng(3)
    crop, target = augment_sample(image, points, np.array([20.0, 20.0, 200.0]), rng, aug)
    y, x = np.unravel_index(crop.astype(float).sum(axis=2).argmax(), crop.shape[:2])
    flipped_36 = target[FLIP_INDEX[36]] * 112 - 0.5  # point 36 is called 45 after a flip
    assert np.hypot(x - flipped_36[0], y - flipped_36[1]) < 2.5


def test_validation_split_is_stable_and_disjoint():
    names = [f"face_{i}" for i in range(500)]
    fit, val = split_indices(names)
    assert not set(fit) & set(val) and len(fit) + len(val) == 500
    assert 30 < len(val) < 80
    _, val_subset = split_indices(names[:250])
    assert set(val_subset) == {i for i in val if i < 250}


@pytest.mark.parametrize("head,extra_blocks", [("gdconv", 0), ("flatten", 0), ("gdconv", 2)])
def test_learnt_heads_start_as_the_average_pool_head(head, extra_blocks):
    from app.toolchain.cnn68 import build_keras_model, widen_head

    pooled = build_keras_model()
    crops = np.random.default_rng(4).uniform(0, 255, (3, 112, 112, 3)).astype(np.float32)
    wide = widen_head(pooled, head, extra_blocks)
    np.testing.assert_allclose(np.asarray(wide(crops)), np.asarray(pooled(crops)), atol=1e-5)
    with pytest.raises(ValueError, match="head"):
        build_keras_model(head="unknown")


def test_training_logs_validation_nme_and_resumes_where_it_stopped(tmp_path):
    """Two epochs straight == one epoch, stop, resume for the second (same seed, same data
    order), on 40 real training faces."""
    import argparse
    import json
    import shutil

    from app.toolchain.train_landmarks import train
    from tests.conftest import shared

    data = tmp_path / "data"
    data.mkdir()
    for path in sorted(shared("landmarks300w", "train").glob("*.jpg"))[:40]:
        shutil.copy(path, data)
        shutil.copy(path.with_suffix(".pts"), data)

    def run(work, stop_after=None, resume=False):
        args = argparse.Namespace(data=str(data), epochs=2, batch=8, lr=1e-4, seed=0,
                                  work=str(work), resume=resume, head="gdconv", init=None,
                                  extra_blocks=0, aug=None, stop_after=stop_after)
        train(args)
        return [json.loads(line) for line in (work / "log.jsonl").read_text().splitlines()]

    straight = run(tmp_path / "a")
    assert [r["epoch"] for r in run(tmp_path / "b", stop_after=1)] == [0, 1]
    resumed = run(tmp_path / "b", resume=True)
    assert [r["epoch"] for r in straight] == [r["epoch"] for r in resumed] == [0, 1, 2]
    assert all(0 < r["val_nme"] < 0.2 for r in resumed)
    assert resumed[-1]["val_nme"] == pytest.approx(straight[-1]["val_nme"], abs=1e-6)
    assert (tmp_path / "b" / "best.weights.h5").exists()


def test_heatmap_head_puts_a_point_at_its_peak_cell_in_the_output_layout():
    """Soft-argmax of a sharp one-hot heatmap is that cell's centre, as x0, y0, x1, ..."""
    from app.toolchain.heatmap_head import SoftArgmax

    logits = np.zeros((2, 14, 14, 3), np.float32)
    cells = [(0, 0), (13, 2), (5, 9)]  # (row, column) of point 0, 1, 2
    for k, (row, col) in enumerate(cells):
        logits[:, row, col, k] = 100.0
    out = np.asarray(SoftArgmax()(logits))
    expected = [[(col + 0.5) / 14, (row + 0.5) / 14] for row, col in cells]
    np.testing.assert_allclose(out, np.tile(np.ravel(expected), (2, 1)), atol=1e-5)
    flat = np.asarray(SoftArgmax()(np.zeros((1, 14, 14, 1), np.float32)))
    np.testing.assert_allclose(flat, [[0.5, 0.5]], atol=1e-6)  # uniform map: the centre


def test_heatmap_head_keeps_the_backbone_and_the_output_shape():
    from app.toolchain.cnn68 import build_keras_model, widen_head

    pooled = build_keras_model()
    model = widen_head(pooled, "heatmap")
    crops = np.random.default_rng(5).uniform(0, 255, (3, 112, 112, 3)).astype(np.float32)
    out = np.asarray(model(crops))
    assert out.shape == (3, 136) and ((out > 0) & (out < 1)).all()
    for name in ("dense2_conv3", "dense3_conv3"):
        for a, b in zip(model.get_layer(name).get_weights(),
                        pooled.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)
