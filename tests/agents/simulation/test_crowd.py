"""The simulated crowd's workers: confusion, spammers, careless workers, time, seeds."""

from __future__ import annotations

import math
import random
import statistics
from collections import Counter

import pytest

from agents.simulation.crowd import CrowdProfile, WorkerProfile, answer, worker, workers

CLASSES = ["bird", "cat", "dog", "fox"]


def test_confusion_rows_sum_to_one_for_every_kind() -> None:
    crowd = workers(30, seed=2, profile=CrowdProfile(spammer_share=0.2, careless_share=0.2))
    assert {member.kind for member in crowd} == {"good", "careless", "spammer"}
    for member in crowd:
        for truth, row in member.confusion(CLASSES).items():
            assert list(row) == CLASSES
            assert sum(row.values()) == pytest.approx(1.0)
            assert all(0.0 <= p <= 1.0 for p in row.values()), (member, truth)


def test_a_good_workers_accuracy_matches_its_setting() -> None:
    member = worker("w0", seed=4, profile=CrowdProfile(min_accuracy=0.8, max_accuracy=0.8), kind="good")
    rng = random.Random(0)
    draws = 20_000
    truths = [CLASSES[index % len(CLASSES)] for index in range(draws)]
    right = sum(member.answer(truth, CLASSES, rng) == truth for truth in truths)
    assert member.accuracy == 0.8
    # Per-class accuracies stray by up to 0.05 but average to the worker's accuracy.
    assert right / draws == pytest.approx(0.8, abs=0.015)
    per_class = [member.class_accuracy(label, CLASSES) for label in CLASSES]
    assert statistics.fmean(per_class) == pytest.approx(0.8)
    assert len(set(per_class)) > 1


def test_good_workers_share_which_class_pairs_they_confuse() -> None:
    profile = CrowdProfile(
        min_accuracy=0.7, max_accuracy=0.7, confusion_spread=0.0, confusable_pairs=(("dog", "fox"),)
    )
    for member in workers(10, seed=9, profile=profile.model_copy(update={"spammer_share": 0.0})):
        if member.kind != "good":
            continue
        row = member.confusion_row("dog", CLASSES)
        # The named pair is confused five times as often as any other wrong class.
        assert row["fox"] == pytest.approx(5 * row["cat"])
        assert row["cat"] == pytest.approx(row["bird"])


def test_mistakes_are_uneven_with_a_confusion_spread() -> None:
    member = worker("w1", seed=1, profile=CrowdProfile(confusion_spread=1.5), kind="good")
    wrong = [p for label, p in member.confusion_row("cat", CLASSES).items() if label != "cat"]
    assert max(wrong) > 2 * min(wrong)
    # The affinity is crowd-wide: another good worker of the same crowd ranks the wrong classes alike.
    other = worker("w2", seed=1, profile=CrowdProfile(confusion_spread=1.5), kind="good")
    other_wrong = [p for label, p in other.confusion_row("cat", CLASSES).items() if label != "cat"]
    assert sorted(range(3), key=wrong.__getitem__) == sorted(range(3), key=other_wrong.__getitem__)


def test_spammers_ignore_the_truth() -> None:
    rng = random.Random(3)
    constant = WorkerProfile("s1", "spammer", 0.0, 0.4, spammer="constant", favourite=6)
    assert {constant.answer(truth, CLASSES, rng) for truth in CLASSES * 10} == {"dog"}  # 6 % 4 -> dog
    uniform = WorkerProfile("s2", "spammer", 0.0, 0.4, spammer="uniform")
    counts = Counter(uniform.answer("cat", CLASSES, rng) for _ in range(8_000))
    assert set(counts) == set(CLASSES)
    assert all(count / 8_000 == pytest.approx(0.25, abs=0.03) for count in counts.values())
    assert uniform.confusion_row("cat", CLASSES) == dict.fromkeys(CLASSES, 0.25)


def test_the_crowd_has_the_configured_shares_and_both_spammer_kinds() -> None:
    profile = CrowdProfile(spammer_share=0.25, careless_share=0.15, constant_spammer_share=0.5)
    crowd = workers(100, seed=5, profile=profile)
    kinds = Counter(member.kind for member in crowd)
    assert kinds == {"spammer": 25, "careless": 15, "good": 60}
    spammers = Counter(member.spammer for member in crowd if member.kind == "spammer")
    assert spammers["constant"] > 5
    assert spammers["uniform"] > 5
    assert [member.worker_id for member in crowd[:3]] == ["w0", "w1", "w2"]


def test_careless_workers_are_faster_and_less_accurate() -> None:
    profile = CrowdProfile(spammer_share=0.0, careless_share=0.5, session_mean_s=None)
    crowd = workers(200, seed=8, profile=profile)
    good = [member for member in crowd if member.kind == "good"]
    careless = [member for member in crowd if member.kind == "careless"]
    assert max(member.accuracy for member in careless) <= 0.75 <= min(member.accuracy for member in good)
    good_speed = statistics.fmean(member.mean_service_s for member in good)
    careless_speed = statistics.fmean(member.mean_service_s for member in careless)
    assert good_speed == pytest.approx(2.0, rel=0.15)  # the crowd's mean is mean_service_s
    assert careless_speed == pytest.approx(0.4 * good_speed, rel=0.2)
    assert len({member.mean_service_s for member in good}) == len(good)  # speeds vary per worker


def test_service_time_abandon_and_session_draws() -> None:
    member = WorkerProfile("w0", "good", 0.9, 3.0, abandon_probability=0.1, session_mean_s=60.0)
    rng = random.Random(11)
    times = [member.service_time_s(rng) for _ in range(20_000)]
    assert statistics.fmean(times) == pytest.approx(3.0, rel=0.03)
    assert min(times) > 0
    assert sum(member.abandons(rng) for _ in range(20_000)) / 20_000 == pytest.approx(0.1, abs=0.01)
    assert statistics.fmean(member.session_s(rng) for _ in range(20_000)) == pytest.approx(60.0, rel=0.05)
    loyal = WorkerProfile("w1", "good", 0.9, 3.0)
    state = rng.getstate()
    assert not loyal.abandons(rng)
    assert math.isinf(loyal.session_s(rng))
    assert rng.getstate() == state  # nothing drawn: the answer sequence is unchanged


def test_crowds_are_reproducible_per_seed() -> None:
    assert workers(20, seed=3) == workers(20, seed=3)
    assert workers(20, seed=3) != workers(20, seed=4)
    assert worker("alice", seed=1) == worker("alice", seed=1)


def test_the_plain_answer_function_is_deterministic() -> None:
    labels = [answer(f"w{index}", {"text": "meow"}, "cat", CLASSES, seed=2) for index in range(50)]
    assert labels == [answer(f"w{index}", {"text": "meow"}, "cat", CLASSES, seed=2) for index in range(50)]
    assert labels.count("cat") > 25  # most workers are good
    assert set(labels) > {"cat"}
    # Different tasks draw differently for the same worker.
    per_task = {answer("w0", f"task-{index}", "cat", CLASSES, seed=2) for index in range(200)}
    assert len(per_task) > 1


def test_profiles_reject_inconsistent_settings() -> None:
    with pytest.raises(ValueError, match="min_accuracy"):
        CrowdProfile(min_accuracy=0.9, max_accuracy=0.8)
    with pytest.raises(ValueError, match="exceed 1"):
        CrowdProfile(spammer_share=0.6, careless_share=0.6)
