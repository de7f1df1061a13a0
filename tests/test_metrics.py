import numpy as np
import pytest

from app.lab.metrics import cosine_rows, pair_scores, roc_auc


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


def test_tar_at_far_by_hand():
    from app.lab.metrics import tar_at_far
    scores = np.array([0.9, 0.8, 0.4, 0.7, 0.3, 0.2, 0.1])
    positive = np.array([1, 1, 1, 0, 0, 0, 0], bool)
    # FAR 0: threshold at the best negative (0.7): positives above it: 0.9, 0.8 -> 2/3
    assert tar_at_far(scores, positive, 0.0) == (pytest.approx(2 / 3), 0.7)
    # FAR 0.25 allows one of 4 negatives: threshold 0.3 -> all three positives
    assert tar_at_far(scores, positive, 0.25) == (1.0, 0.3)


def test_best_accuracy_by_hand():
    from app.lab.metrics import best_accuracy
    scores = np.array([0.9, 0.6, 0.5, 0.2])
    positive = np.array([1, 0, 1, 0], bool)
    # t=0.5: accept 0.9, 0.6, 0.5 -> right: 0.9, 0.5, 0.2 -> 3/4 (first threshold reaching it)
    assert best_accuracy(scores, positive) == (0.75, 0.5)


def test_rank1_by_hand():
    from app.lab.metrics import rank1
    e = np.array([[1, 0], [0, 1], [0.9, 0.1], [0.2, 0.8], [0.8, 0.6]], np.float32)
    labels = ["a", "b", "a", "b", "b"]
    enrolled = np.array([1, 1, 0, 0, 0], bool)
    # queries: [0.9,.1]->a ok; [.2,.8]->b ok; [.8,.6]->a wrong -> 2/3
    assert rank1(e, labels, enrolled) == pytest.approx(2 / 3)
