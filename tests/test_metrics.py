"""Metrics against examples worked out by hand (the arithmetic is in the comments)."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinycnn.metrics import accuracy, classification_report, confusion_matrix, precision_recall_f1, top_k_accuracy

# Example A, 4 classes: class 3 is never predicted, class 2 is predicted once but wrongly.
#   index:   0  1  2  3  4  5  6  7
A_TRUE = [0, 0, 1, 1, 1, 2, 3, 3]
A_PRED = [0, 1, 1, 1, 0, 1, 2, 0]
# Rows = truth, columns = prediction:
#   true 0: idx 0 -> 0, idx 1 -> 1            -> [1, 1, 0, 0]
#   true 1: idx 2 -> 1, idx 3 -> 1, idx 4 -> 0 -> [1, 2, 0, 0]
#   true 2: idx 5 -> 1                        -> [0, 1, 0, 0]
#   true 3: idx 6 -> 2, idx 7 -> 0            -> [1, 0, 1, 0]
A_CM = [[1, 1, 0, 0], [1, 2, 0, 0], [0, 1, 0, 0], [1, 0, 1, 0]]
# TP = diag = (1, 2, 0, 0); predicted (column sums) = (3, 4, 1, 0); support (row sums) = (2, 3, 1, 2)
# precision = (1/3, 2/4, 0/1, 0/0 -> 0);  recall = (1/2, 2/3, 0/1, 0/2)
# F1 class 0 = 2 (1/3)(1/2) / (1/3 + 1/2) = (1/3) / (5/6) = 2/5
# F1 class 1 = 2 (1/2)(2/3) / (1/2 + 2/3) = (2/3) / (7/6) = 4/7;  F1 classes 2, 3 = 0
A_P, A_R, A_F = [1 / 3, 1 / 2, 0, 0], [1 / 2, 2 / 3, 0, 0], [2 / 5, 4 / 7, 0, 0]


def test_confusion_matrix_by_hand():
    cm = confusion_matrix(A_TRUE, A_PRED, 4)
    np.testing.assert_array_equal(cm, A_CM)
    assert cm.dtype == np.int64


def test_accuracy_by_hand():
    # correct: idx 0, 2, 3 -> 3/8
    assert accuracy(A_TRUE, A_PRED) == 3 / 8


def test_per_class_precision_recall_f1_with_a_class_never_predicted():
    p, r, f = precision_recall_f1(A_TRUE, A_PRED, 4)
    np.testing.assert_allclose(p, A_P, rtol=1e-15)
    np.testing.assert_allclose(r, A_R, rtol=1e-15)
    np.testing.assert_allclose(f, A_F, rtol=1e-15)


def test_averages_by_hand():
    # macro: P = (1/3 + 1/2) / 4 = 5/24;  R = (1/2 + 2/3) / 4 = 7/24;  F1 = (2/5 + 4/7) / 4 = 17/70
    assert precision_recall_f1(A_TRUE, A_PRED, 4, "macro") == pytest.approx((5 / 24, 7 / 24, 17 / 70), rel=1e-15)
    # micro: sum TP = 3 over 8 predictions and 8 true samples -> 3/8 for all three (= accuracy)
    assert precision_recall_f1(A_TRUE, A_PRED, 4, "micro") == pytest.approx((3 / 8, 3 / 8, 3 / 8), rel=1e-15)
    # weighted by support (2, 3, 1, 2) / 8:
    #   P = (2/3 + 3/2) / 8 = 13/48;  R = (1 + 2) / 8 = 3/8;  F1 = (4/5 + 12/7) / 8 = (88/35) / 8 = 11/35
    assert precision_recall_f1(A_TRUE, A_PRED, 4, "weighted") == pytest.approx((13 / 48, 3 / 8, 11 / 35), rel=1e-15)


def test_class_absent_from_y_true_but_predicted():
    # 3 classes, class 2 never true, predicted twice.
    #   true 0: [1, 0, 1];  true 1: [0, 1, 1];  true 2: [0, 0, 0]
    #   precision = (1/1, 1/1, 0/2) = (1, 1, 0);  recall = (1/2, 1/2, 0/0 -> 0)
    #   F1 = (2*1*0.5/1.5, same, 0) = (2/3, 2/3, 0);  macro = (2/3, 1/3, 4/9)
    y_true, y_pred = [0, 0, 1, 1], [0, 2, 1, 2]
    np.testing.assert_array_equal(confusion_matrix(y_true, y_pred, 3), [[1, 0, 1], [0, 1, 1], [0, 0, 0]])
    p, r, f = precision_recall_f1(y_true, y_pred, 3)
    np.testing.assert_allclose(p, [1, 1, 0], rtol=1e-15)
    np.testing.assert_allclose(r, [0.5, 0.5, 0], rtol=1e-15)
    np.testing.assert_allclose(f, [2 / 3, 2 / 3, 0], rtol=1e-15)
    assert precision_recall_f1(y_true, y_pred, 3, "macro") == pytest.approx((2 / 3, 1 / 3, 4 / 9), rel=1e-15)


def test_zero_division_gives_zero_without_a_warning():
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")            # a RuntimeWarning (0/0) would fail here
        p, r, f = precision_recall_f1([0, 0], [0, 0], 3)
    # class 0: P = R = F1 = 1; classes 1, 2 absent from both: 0/0 -> 0 everywhere
    np.testing.assert_array_equal(p, [1, 0, 0])
    np.testing.assert_array_equal(r, [1, 0, 0])
    np.testing.assert_array_equal(f, [1, 0, 0])


# Scores for top-k: 4 samples, 3 classes.
SCORES = np.array([[0.1, 0.7, 0.2],    # true 2: one class (0.7) is higher      -> top-1 no, top-2 yes
                   [0.5, 0.3, 0.2],    # true 0: none higher                    -> top-1 yes
                   [0.2, 0.2, 0.6],    # true 1: 0.6 higher, class 0 ties at 0.2 -> top-1 no, top-2 yes (tie is in)
                   [0.6, 0.3, 0.1]])   # true 2: two higher                     -> top-2 no, top-3 yes
SCORE_TRUE = [2, 0, 1, 2]


def test_top_k_accuracy_by_hand_with_a_tie():
    assert top_k_accuracy(SCORE_TRUE, SCORES, k=1) == 1 / 4
    assert top_k_accuracy(SCORE_TRUE, SCORES, k=2) == 3 / 4
    assert top_k_accuracy(SCORE_TRUE, SCORES, k=3) == 1.0


def test_accuracy_from_scores_uses_argmax():
    # argmax rows: 1, 0, 2, 0 against 2, 0, 1, 2 -> only sample 1 right
    assert accuracy(SCORE_TRUE, SCORES) == 1 / 4
    # tie [0.5, 0.5]: argmax takes the lower index, 0
    assert accuracy([0], np.array([[0.5, 0.5]])) == 1.0


def test_classification_report_shows_the_hand_worked_numbers():
    text = classification_report([0, 0, 1, 1], [0, 2, 1, 2], 3, class_names=["cat", "dog", "fox"])
    lines = {line.split()[0]: line.split()[1:] for line in text.splitlines() if line.strip()}
    assert lines["cat"] == ["1.000", "0.500", "0.667", "2"]
    assert lines["dog"] == ["1.000", "0.500", "0.667", "2"]
    assert lines["fox"] == ["0.000", "0.000", "0.000", "0"]
    assert lines["accuracy"] == ["0.500", "4"]
    # macro (2/3, 1/3, 4/9); weighted by support (2, 2, 0)/4 = (1, 1/2, 2/3)
    assert lines["macro"] == ["avg", "0.667", "0.333", "0.444", "4"]
    assert lines["weighted"] == ["avg", "1.000", "0.500", "0.667", "4"]


@given(st.integers(1, 5).flatmap(lambda k: st.tuples(
    st.just(k), st.lists(st.tuples(st.integers(0, k - 1), st.integers(0, k - 1)), min_size=1, max_size=30))))
def test_metric_identities(case):
    # identities that hold for any labels: counts add up; micro P = R = F1 = accuracy;
    # support-weighted recall = accuracy; per-class recall * support = TP
    k, pairs = case
    y_true = np.array([t for t, _ in pairs])
    y_pred = np.array([p for _, p in pairs])
    cm = confusion_matrix(y_true, y_pred, k)
    acc = accuracy(y_true, y_pred)
    assert cm.sum() == len(pairs) and np.trace(cm) == np.sum(y_true == y_pred)
    assert precision_recall_f1(y_true, y_pred, k, "micro") == pytest.approx((acc, acc, acc), rel=1e-12)
    assert precision_recall_f1(y_true, y_pred, k, "weighted").recall == pytest.approx(acc, rel=1e-12)
    _, r, f = precision_recall_f1(y_true, y_pred, k)
    np.testing.assert_allclose(r * cm.sum(axis=1), np.diag(cm), rtol=1e-12)
    assert np.all((0 <= f) & (f <= 1))


def test_bad_input_is_named():
    with pytest.raises(ValueError, match=r"confusion_matrix: y_pred\[1\] = 3 is out of range for num_classes=3"):
        confusion_matrix([0, 1], [0, 3], 3)
    with pytest.raises(ValueError, match="y_true has 2 samples but y_pred has 3"):
        precision_recall_f1([0, 1], [0, 1, 1], 2)
    with pytest.raises(TypeError, match="y_true must hold integer class indices, got dtype float64"):
        accuracy([0.5, 1.0], [0, 1])
    with pytest.raises(ValueError, match=r"top_k_accuracy: k must be an integer in 1..3 .* got 4"):
        top_k_accuracy(SCORE_TRUE, SCORES, k=4)
    with pytest.raises(ValueError, match="average must be None, 'macro', 'micro' or 'weighted', got 'binary'"):
        precision_recall_f1([0], [0], 2, average="binary")
    with pytest.raises(ValueError, match="scores hold NaN"):
        top_k_accuracy([0], np.array([[np.nan, 1.0]]), k=1)
