"""The SkillBook: priors, golden and audit grading, agreement, spammer flags, posterior, storage."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.aggregator.majority import majority
from agents.aggregator.skills import SkillBook, SkillSettings
from schemas import WorkerSkill

WHEN = datetime(2026, 1, 1, tzinfo=UTC)
CLASSES = ["cat", "dog", "fox"]


def graded_book(accuracy_by_worker: dict[str, float], answers: int, seed: int = 1) -> SkillBook:
    """A book that graded ``answers`` golden answers per worker, each right with its accuracy."""
    rng = random.Random(seed)
    book = SkillBook()
    for worker, accuracy in accuracy_by_worker.items():
        for index in range(answers):
            truth = CLASSES[index % len(CLASSES)]
            wrong = [label for label in CLASSES if label != truth]
            answered = truth if rng.random() < accuracy else rng.choice(wrong)
            book.observe_golden(worker, "sim", truth, answered, WHEN)
    return book


def test_a_new_worker_is_unknown_and_weighs_at_the_prior() -> None:
    book = SkillBook(SkillSettings(prior_accuracy=0.75))
    assert book.accuracy_of("nobody") is None
    assert book.skill("nobody").accuracy == 0.75
    book.observe_answer("w1", "sim", WHEN)
    assert book.accuracy_of("w1") == pytest.approx(0.75)
    assert book.skill("w1").n_answers == 1


def test_golden_answers_move_accuracy_towards_the_observed_share() -> None:
    book = graded_book({"good": 0.95, "poor": 0.4}, answers=90)
    good, poor = book.accuracy_of("good"), book.accuracy_of("poor")
    assert good is not None
    assert poor is not None
    assert good > 0.85
    assert 0.3 < poor < 0.5
    skill = book.skill("good")
    assert skill.n_golden == 90
    assert skill.golden_accuracy is not None
    assert skill.golden_accuracy > 0.85
    assert skill.n_audited == 0
    assert skill.audited_accuracy is None


def test_audits_grade_like_golden_answers_but_are_reported_apart() -> None:
    book = SkillBook()
    for _ in range(5):
        book.observe_audit("w1", "sim", "cat", "dog", WHEN)
    skill = book.skill("w1")
    assert (skill.n_audited, skill.audited_accuracy, skill.n_golden) == (5, 0.0, 0)
    assert skill.accuracy < SkillSettings().prior_accuracy


def test_agreement_counts_at_its_weight_until_dawid_skene_replaces_it() -> None:
    settings = SkillSettings(prior_accuracy=0.5, prior_strength=2.0, agreement_weight=0.5)
    book = SkillBook(settings)
    for _ in range(10):
        book.observe_agreement("w1", "sim", True, WHEN)
    # Beta(1 + 5, 1): 6 / 7.
    assert book.accuracy_of("w1") == pytest.approx(6 / 7)
    assert book.skill("w1").agreement == 1.0
    book.observe_dawid_skene("w1", 0.6, 20, None, WHEN)
    # Beta(1 + 0.5 * 20 * 0.6, 1 + 0.5 * 20 * 0.4) = Beta(7, 5): agreement no longer counts.
    assert book.accuracy_of("w1") == pytest.approx(7 / 12)


def test_uniform_spammers_are_flagged_once_credibly_near_chance_and_good_workers_never() -> None:
    book = graded_book({"good": 0.85, "careless": 0.6, "spam": 1 / 3}, answers=60)
    assert book.is_flagged("spam")
    assert not book.is_flagged("good")
    assert not book.is_flagged("careless")
    assert book.skill("spam").flagged_spammer


def test_a_constant_spammer_is_flagged_by_its_identical_confusion_rows() -> None:
    book = SkillBook()
    flags = [book.observe_golden("lazy", "sim", truth, "cat", WHEN) for truth in ["cat", "dog"] * 5]
    assert book.is_flagged("lazy")
    assert flags.count(True) == 1  # newly flagged exactly once
    informativeness = book.informativeness("lazy")
    assert informativeness is not None
    assert informativeness < 0.05


def test_a_dawid_skene_confusion_with_identical_rows_flags_the_worker() -> None:
    book = SkillBook()
    rows = {"cat": {"cat": 0.5, "dog": 0.5}, "dog": {"cat": 0.5, "dog": 0.5}}
    assert not book.observe_dawid_skene("w1", 0.5, 10, rows, WHEN)  # too few answers to say
    assert book.observe_dawid_skene("w1", 0.5, 100, rows, WHEN)
    assert not book.observe_dawid_skene(
        "w1", 0.9, 100, {"cat": {"cat": 0.9, "dog": 0.1}, "dog": {"cat": 0.1, "dog": 0.9}}, WHEN
    )
    assert not book.is_flagged("w1")  # the flag follows the evidence both ways


def test_a_flagged_workers_vote_carries_no_weight() -> None:
    book = SkillBook(SkillSettings(prior_accuracy=0.7))
    for truth in ["cat", "dog"] * 10:
        book.observe_golden("lazy", "sim", truth, "cat", WHEN)
    assert book.is_flagged("lazy")
    p = book.posterior([("lazy", "cat"), ("w1", "dog")], ["cat", "dog"])
    assert p == pytest.approx({"cat": 0.3, "dog": 0.7})  # w1 alone, at the prior


@settings(max_examples=60, deadline=None)
@given(
    labels=st.lists(st.sampled_from(CLASSES), min_size=1, max_size=9),
    accuracy=st.floats(min_value=0.4, max_value=0.99),
)
def test_equal_skills_rank_classes_exactly_as_a_majority_vote(labels: list[str], accuracy: float) -> None:
    book = SkillBook(SkillSettings(prior_accuracy=accuracy))
    votes = [(f"w{index}", label) for index, label in enumerate(labels)]
    p = book.posterior(votes, CLASSES)
    best = min(p, key=lambda label: (-p[label], label))
    assert best == majority(labels)[0]


def test_json_round_trip_keeps_every_estimate() -> None:
    book = graded_book({"good": 0.9, "spam": 1 / 3}, answers=60)
    book.observe_agreement("good", "sim", True, WHEN)
    book.observe_dawid_skene("good", 0.88, 50, {"cat": {"cat": 0.9, "dog": 0.1}}, WHEN)
    text = book.to_json()
    again = SkillBook.from_json(text)
    assert again.to_json() == text
    for worker in ("good", "spam", "nobody"):
        assert again.accuracy_of(worker) == book.accuracy_of(worker)
        assert again.skill(worker) == book.skill(worker)
    assert SkillBook.from_json(None).workers == {}


def test_merging_two_halves_equals_one_book_of_everything() -> None:
    everything, first, second = SkillBook(), SkillBook(), SkillBook()
    rng = random.Random(3)
    for index in range(80):
        truth, answered = rng.choice(CLASSES), rng.choice(CLASSES)
        half = first if index % 2 else second
        for book in (everything, half):
            book.observe_golden(f"w{index % 4}", "sim", truth, answered, WHEN + timedelta(seconds=index))
    first.merge(second)
    for worker in ("w0", "w1", "w2", "w3"):
        assert first.accuracy_of(worker) == pytest.approx(everything.accuracy_of(worker))
        assert first.skill(worker) == everything.skill(worker)


def test_worker_skill_is_a_wire_model_with_a_schema_version() -> None:
    skill = graded_book({"w1": 0.9}, answers=12).skill("w1")
    assert WorkerSkill.from_json_bytes(skill.to_json_bytes()) == skill
    assert skill.schema_version == 1


def test_a_flagged_worker_is_worth_a_coin_to_the_overlap_rule_but_publishes_its_estimate() -> None:
    book = graded_book({"spam": 1 / 3}, answers=90)
    assert book.is_flagged("spam")
    assert book.accuracy_of("spam") == pytest.approx(1 / 3)
    assert book.skill("spam").accuracy == pytest.approx(book.estimated_accuracy(book.workers["spam"]))
