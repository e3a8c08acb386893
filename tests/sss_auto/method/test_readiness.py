import math

import torch

from sss_auto.method.readiness import (READY_DICE, ClassReadiness, background_band_mask, labeled_class_dice,
                                      plausible_shares, unready_mask)


def test_labeled_class_dice_by_hand_and_nan_for_absent_classes():
    target = torch.zeros(1, 4, 4, dtype=torch.long)
    target[0, :2, :2] = 1  # 4 pixels of class 1; class 2 absent
    logits = torch.zeros(1, 3, 4, 4)
    logits[0, 0] = 1.0
    logits[0, 1, :2, :1] = 5.0  # 2 of them predicted
    logits[0, 2, 3, 3] = 5.0  # a false positive of the absent class
    dice = labeled_class_dice(logits, target)
    assert dice[1] == 2 * 2 / (2 + 4) and math.isnan(float(dice[2]))


def test_a_class_is_unready_until_its_running_labeled_dice_reaches_the_bar():
    readiness = ClassReadiness({1: 0.01, 2: 0.001}, num_classes=3)
    assert readiness.unready().tolist() == [False, True, True]  # never seen: unready
    readiness.update(torch.tensor([0.99, 0.9, float("nan")]))
    assert readiness.unready().tolist() == [False, False, True]  # class 2 absent from the batch: unchanged
    for _ in range(200):
        readiness.update(torch.tensor([0.99, 0.1, READY_DICE + 0.1]))
    assert readiness.unready().tolist() == [False, True, False]
    assert readiness.shares[1] == 0.1 and readiness.shares[2] == 0.01  # 10 x the labeled share
    again = ClassReadiness({1: 0.01, 2: 0.001}, num_classes=3)
    again.load_state_dict(readiness.state_dict())
    assert torch.equal(again.dice, readiness.dice) and set(readiness.metrics()) == {"ready_dice_1", "ready_dice_2"}


def test_waiting_classes_are_the_fold_classes_not_yet_learned_on_the_labeled_slices():
    readiness = ClassReadiness({}, num_classes=4)
    readiness.update(torch.tensor([0.99, READY_DICE + 0.2, 0.1, float("nan")]))
    waiting = readiness.waiting_classes({1, 2, 3})
    assert [k for k, _ in waiting] == [2, 3] and abs(waiting[0][1] - 0.1) < 1e-6 and math.isnan(waiting[1][1])  # 3: not seen
    assert readiness.waiting_classes({1}) == [], "a class absent from the fold's labeled cases never holds the start"
    assert readiness.waiting_classes({0, 7}) == [], "background and unknown values are not classes to wait for"


def test_unready_mask_ignores_the_class_and_where_the_teacher_ranks_it_highest():
    probabilities = torch.zeros(1, 3, 2, 5)
    probabilities[0, 0] = 0.9
    probabilities[0, 1] = torch.tensor([[0.01, 0.02, 0.03, 0.04, 0.05], [0.06, 0.07, 0.08, 0.09, 0.0]])
    probabilities[0, 2] = 0.1 - probabilities[0, 1]
    y_hat = torch.zeros(1, 2, 5, dtype=torch.long)
    y_hat[0, 0, 0] = 1  # pseudo-labelled as the unready class although the teacher ranks it low there
    unready = torch.tensor([False, True, False])
    mask = unready_mask(probabilities, y_hat, unready, torch.tensor([0.0, 0.2, 0.0]))  # top 2 of 10 pixels by p_1
    expected = torch.zeros(1, 2, 5, dtype=torch.bool)
    expected[0, 0, 0] = True
    expected[0, 1, 2] = expected[0, 1, 3] = True  # p_1 = 0.08 and 0.09
    assert torch.equal(mask, expected)
    assert not unready_mask(probabilities, y_hat, torch.tensor([False, False, False]), torch.zeros(3)).any()


def test_foreground_band_ignores_background_pseudo_labels_where_a_class_ranks_highest_and_nothing_else():
    probabilities = torch.zeros(1, 3, 2, 5)
    probabilities[0, 1] = torch.tensor([[0.01, 0.02, 0.03, 0.04, 0.05], [0.06, 0.07, 0.08, 0.60, 0.0]])
    probabilities[0, 2] = torch.tensor([[0.30, 0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0, 0.0]])
    probabilities[0, 0] = 1 - probabilities[0, 1] - probabilities[0, 2]
    y_hat = probabilities.argmax(1)
    y_hat[0, 1, 3] = 1  # the top pixel of class 1 is pseudo-labelled 1: kept, foreground is never masked
    shares = plausible_shares({1: 0.02, 2: 0.01}, 3, multiple=10)  # top 20 % (2 pixels) of p_1, 10 % (1) of p_2
    assert shares.tolist() == [0.0, 0.2, 0.1]
    expected = torch.zeros(1, 2, 5, dtype=torch.bool)
    expected[0, 1, 2] = True  # p_1 = 0.08, second highest, background
    expected[0, 0, 0] = True  # the top pixel of p_2, background
    assert torch.equal(background_band_mask(probabilities, y_hat, shares), expected)
    assert not background_band_mask(probabilities, y_hat, torch.zeros(3)).any()
