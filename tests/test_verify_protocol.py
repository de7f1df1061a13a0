"""eval verify's protocol on tiny hand-made pairs: k-fold thresholds never chosen on the
fold they decide, and a pair whose photo has no face counts as wrong (never dropped)."""
import numpy as np
import pytest

from app.lab.evaluate import Pairs, pair_scores, read_pairs, score_rows, write_scores
from app.lab.metrics import accuracy_at, best_threshold, fold_accuracy, roc_auc, worst_for_missing


def test_a_fold_is_decided_by_the_threshold_of_the_other_folds():
    scores = np.array([0.6, 0.4, 0.9, 0.8, 0.95, 0.7])
    same = np.array([1, 0, 1, 0, 1, 0], bool)
    folds = np.array([0, 0, 1, 1, 2, 2])
    # each fold alone is separable, so choosing on the scored fold would give 100 %
    for k in range(3):
        fold = folds == k
        assert accuracy_at(scores[fold], same[fold], best_threshold(scores[fold], same[fold])) == 1
    mean, std, thresholds = fold_accuracy(scores, same, folds)
    # fold 0 by folds 1+2: midway 0.8..0.9 -> its same pair (0.6) rejected; folds 1 and 2
    # by the others: 3 of 4 at best, the lowest such threshold (0.5) accepts their 0.8 / 0.7
    assert thresholds == pytest.approx([0.85, 0.5, 0.5])
    assert mean == pytest.approx(0.5) and std == pytest.approx(0.0)


def test_best_threshold_sits_between_scores():
    assert best_threshold([0.2, 0.4, 0.6, 0.8], [0, 0, 1, 1]) == pytest.approx(0.5)


def test_a_pair_without_a_face_is_wrong_whatever_the_threshold():
    scores = np.array([0.9, np.nan, 0.1, np.nan])
    same = np.array([1, 1, 0, 0], bool)
    for threshold in (-10, 0.5, 10):
        assert accuracy_at(scores, same, threshold) <= 0.5
    assert accuracy_at(scores, same, 0.5) == 0.5  # 2 right of 4, not 2 of 2
    ranked = worst_for_missing(scores, same)
    assert ranked[1] < 0.1 and ranked[3] > 0.9      # below every score / above every score
    assert roc_auc(ranked, same) == pytest.approx(0.25)  # of 4 (same, different): only (0.9, 0.1)


def _vectors():
    e = np.eye(3, dtype=np.float32)
    return {"a/1.jpg": e[0], "a/2.jpg": e[0], "b/1.jpg": e[1], "c/1.jpg": None}


def test_score_rows_counts_no_face_pairs_as_wrong_and_prints_the_count():
    pairs = Pairs(["a/1.jpg", "a/1.jpg", "a/2.jpg", "c/1.jpg"],
                  ["a/2.jpg", "b/1.jpg", "c/1.jpg", "b/1.jpg"],
                  np.array([1, 0, 1, 0], bool), None, "fixture")
    row, scores = score_rows("keras-int8", _vectors(), pairs, None, None)
    assert np.isnan(scores[2:]).all() and row["pairs"] == 4 and row["no_face_pairs"] == 2
    assert row["protocol"] == "own threshold" and row["accuracy"] == 0.5


def test_tune_pairs_choose_the_threshold(tmp_path):
    pairs = Pairs(["a/1.jpg", "a/1.jpg"], ["a/2.jpg", "b/1.jpg"], np.array([1, 0], bool),
                  None, "scored")
    tune = Pairs(["a/1.jpg", "a/1.jpg"], ["a/2.jpg", "b/1.jpg"], np.array([1, 0], bool),
                 None, str(tmp_path / "tune.csv"))
    row, _ = score_rows("casia-int8", _vectors(), pairs, tune, None)
    assert row["protocol"] == "threshold from tune.csv" and row["threshold"] == 0.5
    assert row["accuracy"] == 1.0


def test_read_pairs_with_folds_and_scores_file(tmp_path):
    for name in ("a/1.jpg", "a/2.jpg", "b/1.jpg"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    csv_path = tmp_path / "pairs.csv"
    csv_path.write_text("file_a,file_b,same,fold\na/1.jpg,a/2.jpg,1,0\na/1.jpg,b/1.jpg,0,1\n")
    pairs = read_pairs(csv_path, tmp_path)
    assert pairs.folds.tolist() == ["0", "1"] and pairs.same.tolist() == [True, False]
    out = tmp_path / "scores.csv"
    write_scores(out, pairs, {"keras-int8": pair_scores("keras-int8", _vectors(), pairs)})
    assert out.read_text().splitlines() == [
        "file_a,file_b,same,fold,keras-int8", "a/1.jpg,a/2.jpg,1,0,1.000000",
        "a/1.jpg,b/1.jpg,0,1,0.000000"]


def test_read_pairs_names_a_missing_photo(tmp_path):
    csv_path = tmp_path / "pairs.csv"
    csv_path.write_text("file_a,file_b,same\nx/1.jpg,y/1.jpg,0\n")
    with pytest.raises(FileNotFoundError, match="x/1.jpg"):
        read_pairs(csv_path, tmp_path)
