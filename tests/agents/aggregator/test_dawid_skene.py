"""Dawid–Skene refits: crowd-kit over a sliding window, known truths clamped, folded into skills."""

from __future__ import annotations

import random
import warnings
from datetime import UTC, datetime

import pytest

from agents.aggregator.dawid_skene import (
    DawidSkeneRefit,
    DawidSkeneSettings,
    WindowAnswer,
    fit_dawid_skene,
    window_of,
)
from agents.aggregator.skills import SkillBook
from schemas import CrowdAnswer

WHEN = datetime(2026, 1, 1, tzinfo=UTC)
CLASSES = ["cat", "dog", "fox"]


def simulated(
    tasks: int, accuracy: dict[str, float], seed: int = 5
) -> tuple[list[WindowAnswer], dict[str, str]]:
    """Every worker answers every task, right with its accuracy; the truths."""
    rng = random.Random(seed)
    truths = {f"t{i}": rng.choice(CLASSES) for i in range(tasks)}
    answers = [
        WindowAnswer(
            task, worker, truth if rng.random() < a else rng.choice([c for c in CLASSES if c != truth])
        )
        for task, truth in truths.items()
        for worker, a in accuracy.items()
    ]
    return answers, truths


def test_the_fit_recovers_worker_accuracies_and_beats_a_majority_of_poor_workers() -> None:
    answers, truths = simulated(200, {"good": 0.95, "ok1": 0.75, "ok2": 0.7, "poor1": 0.45, "poor2": 0.45})
    fit = fit_dawid_skene(answers)
    assert fit.workers["good"].accuracy == pytest.approx(0.95, abs=0.06)
    assert fit.workers["poor1"].accuracy == pytest.approx(0.45, abs=0.1)
    assert fit.workers["good"].answers == 200
    accuracy = sum(fit.label_of(task) == truth for task, truth in truths.items()) / len(truths)
    assert accuracy > 0.9
    confusion = fit.workers["good"].confusion
    assert sum(confusion["cat"].values()) == pytest.approx(1.0)
    assert sum(fit.priors.values()) == pytest.approx(1.0)


def test_known_truths_are_clamped() -> None:
    answers = [
        WindowAnswer("t1", "w1", "cat"),
        WindowAnswer("t1", "w2", "cat"),
        WindowAnswer("t2", "w1", "dog"),
    ]
    fit = fit_dawid_skene(answers, known={"t1": "dog", "elsewhere": "cat", "t2": "never-answered"})
    assert fit.label_of("t1") == "dog"
    assert fit.label_of("t2") == "dog"
    assert fit.label_of("unknown") is None


def test_golden_answers_carry_their_truth_into_the_fit() -> None:
    # Two workers always disagree; golden tasks say which of them is right.
    answers = [WindowAnswer(f"g{i}", "right", "cat", "cat") for i in range(10)]
    answers += [WindowAnswer(f"g{i}", "wrong", "dog", "cat") for i in range(10)]
    answers += [WindowAnswer("t", "right", "fox"), WindowAnswer("t", "wrong", "cat")]
    fit = fit_dawid_skene(answers)
    assert fit.workers["right"].accuracy > fit.workers["wrong"].accuracy
    assert fit.label_of("t") == "fox"


def test_an_empty_window_fits_nothing() -> None:
    fit = fit_dawid_skene([])
    assert (fit.workers, fit.probabilities, fit.priors) == ({}, {}, {})


def test_the_fit_raises_no_warning_under_pytests_warnings_as_errors() -> None:
    answers, _ = simulated(20, {"a": 0.9, "b": 0.8})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit_dawid_skene(answers)


def test_the_window_slides_refits_when_due_and_forgets_old_verdicts() -> None:
    refit = DawidSkeneRefit(DawidSkeneSettings(window_answers=10, refit_every=4))
    due = [refit.observe(f"t{i}", "w1", "cat") for i in range(4)]
    assert due == [False, False, False, True]
    refit.observe_verdict("t0", "dog")
    refit.observe_verdict("gone", "dog")
    refit.refit()
    assert refit.since_refit == 0
    assert refit.known == {"t0": "dog"}
    for i in range(4, 14):
        refit.observe(f"t{i}", "w1", "cat")
    assert [answer.task for answer in refit.window] == [f"t{i}" for i in range(4, 14)]
    refit.refit()
    assert refit.known == {}


def test_crowd_answers_enter_the_window_and_expert_answers_become_verdicts() -> None:
    def answer(worker: str, tier: str, golden: str | None = None) -> CrowdAnswer:
        return CrowdAnswer.model_validate(
            {
                "event_id": "e1",
                "task_id": "t",
                "pool": "p",
                "tier": tier,
                "worker_id": worker,
                "label": "cat",
                "time_spent_s": 1.0,
                "answered_at": WHEN,
                "golden_label": golden,
            }
        )

    refit = DawidSkeneRefit()
    refit.observe_answer(answer("w1", "crowd", golden="dog"))
    refit.observe_answer(answer("x1", "expert"))
    assert list(refit.window) == [WindowAnswer("e1", "w1", "cat", "dog")]
    assert refit.known == {"e1": "cat"}
    assert window_of([answer("w2", "crowd"), answer("x2", "expert")]) == [WindowAnswer("e1", "w2", "cat")]


def test_folding_a_fit_flags_spammers_and_sets_the_class_prior() -> None:
    answers, _ = simulated(120, {"good1": 0.9, "good2": 0.85, "good3": 0.8})
    answers += [WindowAnswer(f"t{i}", "spam", "cat") for i in range(120)]
    refit = DawidSkeneRefit()
    for answer in answers:
        refit.observe(answer.task, answer.worker, answer.label)
    book = SkillBook()
    assert refit.fold(refit.refit(), book, WHEN) == ["spam"]
    assert book.is_flagged("spam")
    assert not book.is_flagged("good1")
    assert book.class_prior is not None
    assert set(book.class_prior) == set(CLASSES)
    good = book.accuracy_of("good1")
    assert good is not None
    assert good > 0.8


def test_the_numpy_engine_is_crowd_kits_dawid_skene() -> None:
    """Both engines give the same fit: posteriors, confusions and priors, clamps included."""
    rng = random.Random(9)
    accuracy = {f"w{i}": rng.uniform(0.3, 0.95) for i in range(12)}
    answers = []
    for i in range(150):
        truth = rng.choices(CLASSES, weights=[0.5, 0.3, 0.2])[0]
        for worker in rng.sample(sorted(accuracy), 3):
            answered = truth if rng.random() < accuracy[worker] else rng.choice(CLASSES)
            answers.append(WindowAnswer(f"t{i}", worker, answered))
        if i % 10 == 0:
            answers.append(WindowAnswer(f"g{i}", "w0", rng.choice(CLASSES), truth))
    answers.append(WindowAnswer("t0", "only-dog", "dog"))
    known = {"t5": "fox", "t7": "dog", "gone": "cat"}
    fast = fit_dawid_skene(answers, known, DawidSkeneSettings(engine="numpy"))
    reference = fit_dawid_skene(answers, known, DawidSkeneSettings(engine="crowd-kit"))

    assert fast.probabilities.keys() == reference.probabilities.keys()
    for task, row in reference.probabilities.items():
        for label, p in row.items():
            assert fast.probabilities[task][label] == pytest.approx(p, abs=1e-9)
    assert fast.workers.keys() == reference.workers.keys()
    for worker, skill in reference.workers.items():
        assert fast.workers[worker].accuracy == pytest.approx(skill.accuracy, abs=1e-9)
        for truth in CLASSES:
            assert fast.workers[worker].confusion[truth].keys() == skill.confusion[truth].keys()
            for answered, p in skill.confusion[truth].items():
                assert fast.workers[worker].confusion[truth][answered] == pytest.approx(p, abs=1e-9)
    for label, p in reference.priors.items():
        assert fast.priors[label] == pytest.approx(p, abs=1e-9)
