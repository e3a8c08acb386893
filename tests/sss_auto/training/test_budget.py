import pytest

from sss_auto.training.budget import (PROBE_ITERATIONS, PROBE_SKIP, BudgetTracker, Costs, Schedule, epochs_within,
                                      format_duration, remaining_s)


def test_epochs_within_counts_steps_validation_refreshes_and_the_final_validation():
    schedule = Schedule(iterations_per_epoch=10, warmup_epochs=2, ssl=True, refresh_every=2)
    costs = Costs(supervised_step_s=1.0, ssl_step_s=3.0, validation_s=2.0, refresh_s=5.0, final_validation_s=10.0)
    # epochs cost 12, 12 (warm-up), then 37 (refresh), 32, 37, 32, ...: 10 + 12 + 12 + 37 + 32 = 103 <= 110 < 140
    assert [schedule.epoch_cost(e, costs) for e in range(5)] == [12, 12, 37, 32, 37]
    assert epochs_within(110, 0, 0, schedule, costs) == 4
    assert epochs_within(140, 0, 0, schedule, costs) == 5
    assert epochs_within(110, 30, 2, schedule, costs) == 4  # 30 spent, 2 done, 2 more: 30 + 10 + 37 + 32 = 109
    supervised = Schedule(10, 2, ssl=False, refresh_every=None)
    assert epochs_within(110, 0, 0, supervised, costs) == 8  # 10 + 8 x 12 = 106


def test_at_least_one_more_epoch_is_planned_even_when_the_budget_is_spent():
    assert epochs_within(1, 100, 3, Schedule(10, 0, True, None), Costs(1, 1)) == 4


def test_tracker_probes_each_phase_once_then_follows_whole_epochs_and_survives_a_resume():
    tracker = BudgetTracker(budget_s=600, device="cpu", num_epochs=300)
    times = [5.0, 5.0] + [0.1] * PROBE_ITERATIONS  # the skipped first iterations are slow
    done = [tracker.record_step("supervised", t) for t in times]
    assert done == [False] * (PROBE_SKIP + PROBE_ITERATIONS - 1) + [True]
    assert tracker.measured["supervised_step_s"] == pytest.approx(0.1)
    assert tracker.costs(tta=False).ssl_step_s == pytest.approx(0.3)  # guessed (x3 on the CPU) until measured
    schedule = Schedule(10, 2, True, None)
    tracker.plan(0, 0, schedule, False, "test")
    assert tracker.num_epochs == epochs_within(600, 0, 0, schedule, tracker.costs(False))
    tracker.record_epoch("supervised", 2.0, 10)  # whole epochs replace the probe
    assert tracker.measured["supervised_step_s"] == pytest.approx(0.2)
    assert not tracker.record_step("supervised", 9.0)  # measured already: no second probe
    restored = BudgetTracker.from_state_dict(tracker.state_dict(spent_s=50), "cpu")
    assert restored.num_epochs == tracker.num_epochs and restored.elapsed_s == 50
    assert restored.measured == tracker.measured and restored.history == tracker.history


def test_check_replans_only_when_the_plan_misses_the_budget_by_more_than_an_epoch():
    schedule = Schedule(10, 0, True, None)
    tracker = BudgetTracker(budget_s=100, device="cpu", num_epochs=10)
    tracker.measured.update(ssl_step_s=1.0, supervised_step_s=1.0)  # epochs of 10 s: 10 fit
    assert tracker.check(spent_s=15, done_epochs=1, schedule=schedule, tta=False) == 10  # 5 s late: kept
    assert tracker.check(spent_s=40, done_epochs=1, schedule=schedule, tta=False) == 7  # 30 s late: 40 + 6 x 10
    assert tracker.history and "projected" in tracker.history[-1]


def test_a_run_slowed_at_its_start_is_extended_after_its_planned_last_epoch_and_never_past_its_budget():
    schedule = Schedule(10, 0, False, None)
    tracker = BudgetTracker(budget_s=100, device="cpu", num_epochs=2)
    for seconds in (40.0, 4.0):  # another process slowed the first epoch; the second ran at the machine's speed
        tracker.record_epoch("supervised", seconds, 10)
    assert tracker.measured["supervised_step_s"] == pytest.approx(2.2)
    assert tracker.check(spent_s=44, done_epochs=2, schedule=schedule, tta=False) == 4  # 44 + 2 x 22 <= 100
    for seconds in (4.0, 4.0, 4.0):
        tracker.record_epoch("supervised", seconds, 10)
    assert tracker.measured["supervised_step_s"] == pytest.approx(0.4), "the last three epochs, not the slow first"
    assert tracker.check(spent_s=57, done_epochs=4, schedule=schedule, tta=False) == 14  # 57 + 10 x 4 = 97
    assert tracker.check(spent_s=99, done_epochs=14, schedule=schedule, tta=False) == 14, "no epoch past the budget"
    assert tracker.check(spent_s=130, done_epochs=14, schedule=schedule, tta=False) == 14, "over: ends, no extra epoch"


def test_a_warmup_fraction_plans_the_warmup_as_a_share_of_the_budget_and_freezes_it_once_ssl_starts():
    schedule = Schedule(10, 10**6, True, None)  # the loop's placeholder until the warm-up is planned
    tracker = BudgetTracker(budget_s=100, device="cpu", num_epochs=300, warmup_fraction=0.5, warmup_epochs=10**6)
    tracker.measured.update(supervised_step_s=1.0, ssl_step_s=2.0)
    tracker.plan(0, 0, schedule, False, "test")
    assert tracker.warmup_epochs == 5  # half of 100 s in supervised epochs of 10 s
    assert tracker.num_epochs == 5 + 2  # then 50 s of SSL epochs of 20 s
    assert tracker.schedule(schedule).warmup_epochs == 5
    tracker.measured.update(supervised_step_s=0.5)
    tracker.plan(60, 6, schedule, False, "after SSL started")
    assert tracker.warmup_epochs == 5, "frozen once SSL has started"
    restored = BudgetTracker.from_state_dict(tracker.state_dict(0), "cpu")
    assert restored.warmup_epochs == 5 and restored.warmup_fraction == 0.5


def test_a_held_warmup_plans_the_rest_as_supervised_until_released_then_as_ssl_and_survives_a_resume():
    schedule = Schedule(10, 3, True, None)
    tracker = BudgetTracker(budget_s=200, device="cpu", num_epochs=300)
    tracker.measured.update(supervised_step_s=1.0, ssl_step_s=2.0)
    assert tracker.plan(0, 0, schedule, False, "test") == 3 + 8  # 30 s supervised, then 170 s of 20-s SSL epochs
    tracker.hold_warmup(6)  # a class was still not learned after epoch 6
    assert tracker.plan(60, 6, schedule, False, "held") == 20, "while held, every remaining epoch is a supervised one"
    assert tracker.history[-1].startswith("time budget 3.3 min (held): 20 epochs (supervised while the SSL start gate")
    tracker.hold_warmup(4)
    assert tracker.warmup_hold == 6, "a hold never shortens the warm-up"
    restored = BudgetTracker.from_state_dict(tracker.state_dict(60), "cpu")
    assert restored.warmup_hold == 6 and restored.holding
    restored.release_warmup()
    assert restored.schedule(schedule).warmup_epochs == 6
    assert restored.plan(0, 6, schedule, False, "released") == 6 + 7  # 60 s done before the resume; 140 s of SSL epochs


def test_remaining_time_counts_the_epochs_left_and_the_final_validation_and_reads_as_hours():
    schedule = Schedule(iterations_per_epoch=10, warmup_epochs=2, ssl=True, refresh_every=None)
    costs = Costs(supervised_step_s=1.0, ssl_step_s=3.0, validation_s=5.0, final_validation_s=20.0)
    # epoch 1: 10 + 5 (supervised), epochs 2-3: 30 + 5 each (SSL), then the final validation
    assert remaining_s(4, 1, schedule, costs) == pytest.approx(15 + 35 + 35 + 20)
    assert remaining_s(4, 4, schedule, costs) == pytest.approx(20)
    assert [format_duration(s) for s in (40, 720, 11400)] == ["40 s", "12 min", "3 h 10 min"]


def test_a_gated_run_is_planned_exactly_as_a_supervised_run_until_semi_supervision_starts():
    gated = BudgetTracker(budget_s=300, device="cpu", num_epochs=300, warmup_fraction=0.4, warmup_epochs=10**6,
                          holding=True)
    supervised = BudgetTracker(budget_s=300, device="cpu", num_epochs=300)
    for tracker in (gated, supervised):
        tracker.measured.update(supervised_step_s=0.1, validation_s=0.5)
    epochs = supervised.plan(0, 0, Schedule(50, 0, False, None), False, "supervised")
    assert gated.plan(0, 0, Schedule(50, 10**6, True, None), False, "gated") == epochs == 54
    assert gated.warmup_epochs == 21, "the minimum warm-up is still 40 % of the budget"
