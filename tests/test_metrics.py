import numpy as np
import pytest

from app.metrics import cosine_rows, pair_scores, roc_auc


def test_roc_auc_hand_computed():
    # positives 0.9, 0.4; negatives 0.5, 0.1: of 4 (pos, neg) pairs, 3 are ordered right
    assert roc_auc([0.9, 0.4, 0.5, 0.1], [1, 1, 0, 0]) == pytest.approx(0.75)


def test_roc_auc_counts_ties_half():
    assert roc_auc([0.5, 0.5], [1, 0]) == pytest.approx(0.5)
    assert roc_auc([1.0, 0.5, 0.5, 0.0], [1, 1, 0, 0]) == pytest.approx(0.875)


def test_roc_auc_needs_both_classes():
    with pytest.raises(ValueError):
        roc_auc([0.1, 0.2], [1, 1])


def test_pair_scores_lists_each_unordered_pair_once():
    emb = np.eye(3, dtype=np.float32)
    emb[2] = emb[0]
    sims, same = pair_scores(emb, ["a", "b", "a"])
    np.testing.assert_array_equal(sims, [0, 1, 0])  # pairs (0,1), (0,2), (1,2)
    np.testing.assert_array_equal(same, [False, True, False])


def test_cosine_rows():
    np.testing.assert_allclose(cosine_rows([[1, 0], [1, 1]], [[2, 0], [-1, -1]]), [1, -1])
