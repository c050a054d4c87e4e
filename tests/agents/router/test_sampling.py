"""The router's measurement samples: deterministic draws, audit inclusion probabilities, the control group."""

from __future__ import annotations

import hashlib
import random
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from agents.router.sampling import AuditDecision, AuditSampler, AuditSettings, ControlSampler, uniform_for

ids = st.text(min_size=1, max_size=64)
probabilities = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


def binary(fraud: float) -> dict[str, float]:
    return {"fraud": fraud, "ok": 1.0 - fraud}


def warmed(settings: AuditSettings, events: int = 2_000, seed: int = 0) -> AuditSampler:
    """A sampler that has seen a stream of accepted "ok" predictions with fraud scores in [0, 0.2]."""
    sampler = AuditSampler(settings)
    rng = random.Random(seed)
    for i in range(events):
        sampler.decide(f"warm-{i}", binary(0.2 * rng.random() ** 3), "ok")
    return sampler


# --- uniform_for ------------------------------------------------------------------------------


@given(event_id=ids, salt=st.text(max_size=200))
def test_uniform_for_is_deterministic_and_in_unit_interval(event_id: str, salt: str) -> None:
    u = uniform_for(event_id, salt)
    assert 0.0 <= u < 1.0
    assert u == uniform_for(event_id, salt)


@given(event_id=ids, salt=st.text(max_size=200))
def test_uniform_for_is_the_keyed_blake2b_of_the_id(event_id: str, salt: str) -> None:
    """The cached keyed state changes no draw: every replayed event is sampled as before."""
    key = salt.encode("utf-8")
    if len(key) > 64:
        key = hashlib.blake2b(key, digest_size=64).digest()
    digest = hashlib.blake2b(event_id.encode("utf-8"), digest_size=8, key=key).digest()
    assert uniform_for(event_id, salt) == (int.from_bytes(digest, "big") >> 11) * 2.0**-53


def test_uniform_for_depends_on_salt_and_keys_it_unambiguously() -> None:
    assert uniform_for("tx-1", "audit") != uniform_for("tx-1", "control")
    # Keyed hashing: moving a character between salt and id is a different draw.
    assert uniform_for("bc", "a") != uniform_for("c", "ab")
    long_salt = "s" * 200  # longer than BLAKE2b's 64-byte key: hashed down, still distinct
    assert uniform_for("tx-1", long_salt) != uniform_for("tx-1", long_salt + "t")


def test_uniform_for_is_close_to_uniform() -> None:
    draws = [uniform_for(f"event-{i}", "audit") for i in range(20_000)]
    assert statistics.fmean(draws) == pytest.approx(0.5, abs=0.01)
    assert statistics.pvariance(draws) == pytest.approx(1 / 12, abs=0.003)
    counts = [0] * 10
    for u in draws:
        counts[int(u * 10)] += 1
    chi_square = sum((count - 2_000) ** 2 / 2_000 for count in counts)
    assert chi_square < 27.9  # the 99.9% point of chi-square with 9 degrees of freedom
    # Neighbouring ids are not correlated.
    assert statistics.correlation(draws[:-1], draws[1:]) == pytest.approx(0, abs=0.03)


# --- AuditSettings ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [{"rate": 0.0}, {"rate": 1.5}, {"floor": 0.0}, {"exponent": 0.0}, {"salt": ""}],
)
def test_audit_settings_refuse_values_that_break_the_estimator(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        AuditSettings.model_validate(bad)


def test_audit_settings_are_frozen() -> None:
    settings = AuditSettings()
    with pytest.raises(ValidationError):
        settings.rate = 0.5  # type: ignore[misc]


# --- AuditSampler -----------------------------------------------------------------------------


@given(fraud=probabilities, other=probabilities, predicted=st.sampled_from(["ok", "fraud", "spam"]))
def test_inclusion_probability_is_in_zero_one(fraud: float, other: float, predicted: str) -> None:
    for positive in ("fraud", None):
        sampler = warmed(AuditSettings(positive_class=positive), events=20)
        pi, audited = sampler.probability({"fraud": fraud, "ok": 1 - fraud, "spam": other}, predicted)
        settings = sampler.settings
        assert settings.rate * settings.floor <= pi <= 1.0
        assert pi > 0.0
        assert audited != predicted or positive == predicted


@given(low=probabilities, high=probabilities)
def test_inclusion_probability_rises_with_the_audited_score(low: float, high: float) -> None:
    low, high = sorted((low, high))
    for exponent in (0.5, 1.0, 2.0):
        sampler = warmed(AuditSettings(positive_class="fraud", exponent=exponent), events=20)
        pi_low, _ = sampler.probability(binary(low), "ok")
        pi_high, _ = sampler.probability(binary(high), "ok")
        assert pi_low <= pi_high


def test_average_inclusion_probability_and_audited_share_match_the_rate() -> None:
    settings = AuditSettings(rate=0.05, positive_class="fraud")
    sampler = AuditSampler(settings)
    rng = random.Random(3)
    probabilities_seen, audited = [], 0
    for i in range(20_000):
        scores = binary(0.2 * rng.random() ** 3)
        probabilities_seen.append(sampler.probability(scores, "ok")[0])
        audited += sampler.decide(f"e{i}", scores, "ok") is not None
    assert statistics.fmean(probabilities_seen) == pytest.approx(0.05, rel=0.03)
    assert audited / 20_000 == pytest.approx(0.05, rel=0.08)


def test_weight_is_floor_plus_power_of_score() -> None:
    sampler = AuditSampler(AuditSettings(floor=0.1, exponent=0.5))
    assert sampler.weight(0.0) == pytest.approx(0.1)
    assert sampler.weight(0.25) == pytest.approx(0.6)


def test_first_event_is_drawn_at_the_rate() -> None:
    sampler = AuditSampler(AuditSettings(rate=0.02))
    assert sampler.mean_weight is None
    assert sampler.probability(binary(0.15), "ok")[0] == pytest.approx(0.02)


def test_prediction_of_the_positive_class_is_sampled_at_the_floor() -> None:
    sampler = warmed(AuditSettings(positive_class="fraud"))
    floor_pi, audited = sampler.probability(binary(0.97), "fraud")
    zero_pi, _ = sampler.probability(binary(0.0), "ok")
    assert audited == "fraud"
    assert floor_pi == pytest.approx(zero_pi)
    assert floor_pi < sampler.settings.rate


def test_missing_positive_class_scores_zero() -> None:
    sampler = warmed(AuditSettings(positive_class="fraud"))
    assert sampler.audited_score({"ok": 0.9, "spam": 0.1}, "ok") == ("fraud", 0.0)


def test_every_class_mode_audits_the_best_non_predicted_class() -> None:
    sampler = AuditSampler(AuditSettings())
    assert sampler.audited_score({"ok": 0.85, "fraud": 0.05, "spam": 0.10}, "ok") == ("spam", 0.10)
    # Ties break by class name, whatever the dict order.
    assert sampler.audited_score({"ok": 0.8, "spam": 0.1, "fraud": 0.1}, "ok") == ("fraud", 0.1)
    assert sampler.audited_score({"ok": 0.8, "fraud": 0.1, "spam": 0.1}, "ok") == ("fraud", 0.1)
    # A single-class model: nothing else to miss, the event is a sure true positive.
    assert sampler.audited_score({"ok": 1.0}, "ok") == ("ok", 0.0)


def test_scores_are_clipped_and_nan_refused() -> None:
    sampler = AuditSampler(AuditSettings(positive_class="fraud"))
    assert sampler.audited_score({"fraud": 1.0000000001, "ok": 0.0}, "ok") == ("fraud", 1.0)
    with pytest.raises(ValueError, match="NaN"):
        sampler.probability({"fraud": float("nan"), "ok": 0.5}, "ok")


def test_probability_is_pure_and_decide_counts_the_event() -> None:
    sampler = warmed(AuditSettings(positive_class="fraud"), events=10)
    before = (sampler.accepted, sampler.g_total)
    pi, _ = sampler.probability(binary(0.1), "ok")
    assert (sampler.accepted, sampler.g_total) == before
    decision = AuditSampler(AuditSettings(positive_class="fraud", rate=1.0)).decide("x", binary(0.1), "ok")
    assert decision == AuditDecision(audited_class="fraud", inclusion_probability=1.0)
    sampler.decide("e-new", binary(0.1), "ok")
    assert sampler.accepted == before[0] + 1
    assert pi > 0


def test_a_replayed_event_gets_the_same_decision() -> None:
    first, second = warmed(AuditSettings(rate=0.3)), warmed(AuditSettings(rate=0.3))
    for i in range(200):
        scores = binary((i % 20) / 100)
        one, two = first.decide(f"e{i}", scores, "ok"), second.decide(f"e{i}", scores, "ok")
        assert one == two


def test_salt_reseeds_the_audit() -> None:
    def chosen(salt: str) -> set[int]:
        sampler = AuditSampler(AuditSettings(rate=0.2, salt=salt))
        return {i for i in range(2_000) if sampler.decide(f"e{i}", binary(0.1), "ok") is not None}

    assert chosen("audit") == chosen("audit")
    assert chosen("audit") != chosen("audit-2")


def test_merge_adds_running_means() -> None:
    left, right = warmed(AuditSettings(), 100, seed=1), warmed(AuditSettings(), 300, seed=2)
    total = left.g_total + right.g_total
    left.merge(right)
    assert left.accepted == 400
    assert left.g_total == pytest.approx(total)


# --- ControlSampler ---------------------------------------------------------------------------


def test_control_share_is_its_inclusion_probability() -> None:
    control = ControlSampler()
    chosen = sum(control.decide(f"e{i}", 0.05) for i in range(40_000))
    assert chosen / 40_000 == pytest.approx(0.05, rel=0.06)
    assert not any(control.decide(f"e{i}", 0.0) for i in range(1_000))
    assert all(control.decide(f"e{i}", 1.0) for i in range(1_000))


@given(event_id=ids, low=probabilities, high=probabilities)
def test_control_samples_are_nested_as_the_share_grows(event_id: str, low: float, high: float) -> None:
    low, high = sorted((low, high))
    control = ControlSampler()
    assert control.decide(event_id, low) <= control.decide(event_id, high)


def test_control_and_audit_draw_independently() -> None:
    control, audit = ControlSampler(), AuditSampler(AuditSettings(rate=0.2))
    both = sum(
        control.decide(f"e{i}", 0.2) and audit.decide(f"e{i}", binary(0.1), "ok") is not None
        for i in range(20_000)
    )
    assert both / 20_000 == pytest.approx(0.04, rel=0.15)


@pytest.mark.parametrize("share", [-0.1, 1.1, float("nan")])
def test_control_refuses_a_share_outside_zero_one(share: float) -> None:
    with pytest.raises(ValueError, match="share"):
        ControlSampler().decide("e", share)
