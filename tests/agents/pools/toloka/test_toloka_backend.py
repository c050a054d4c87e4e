"""The Toloka backend against the local stand-in: whole cycles, faults, golden review, the token's secrecy."""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from toloka.client.exceptions import TooManyRequestsApiError

from agents.aggregator.majority import MajorityVoteAggregator, TaskState
from agents.pools.base import LabelingBackend
from agents.pools.toloka.backend import TolokaBackend
from agents.pools.toloka.client import RetryPolicy, TolokaSettings
from agents.pools.toloka.spec import GoldenTask, LabelingSpec
from schemas import CrowdAnswer, Label, LabelRequest
from streams.errors import ConfigError, RetryableBackendError
from tests.standin.toloka import Faults, TolokaStandIn, Worker, default_workers, label_all, requests_for

TOKEN = "AQAD-labelloop-test-token-9f8e7d"
WHEN = datetime(2026, 1, 1, tzinfo=UTC)
CLASSES = ["positive", "negative"]


def settings_for(standin: TolokaStandIn, **overrides: Any) -> TolokaSettings:
    fast: dict[str, Any] = {
        "url": standin.url,
        "token": TOKEN,
        "poll_interval_s": 0.005,
        "request_timeout_s": 0.25,
        "backoff_base_s": 0.005,
        "backoff_max_s": 0.05,
        "max_attempts": 30,
    }
    return TolokaSettings(**(fast | overrides))


def spec_with_golden(count: int = 30) -> LabelingSpec:
    """The default spec with enough golden tasks that every Toloker meets new ones."""
    rng = random.Random(11)
    golden = [
        GoldenTask(input={"text": f"control case {i}"}, label=rng.choice(CLASSES)) for i in range(count)
    ]
    return LabelingSpec.load().model_copy(update={"golden": golden})


def aggregate(requests: list[LabelRequest], answers: list[CrowdAnswer]) -> dict[str, list[Label]]:
    """Feed everything through the real aggregator core: event id -> the Labels it decided."""
    aggregator = MajorityVoteAggregator()
    states = {request.event_id: TaskState() for request in requests}
    labels: dict[str, list[Label]] = {request.event_id: [] for request in requests}
    for request in requests:
        states[request.event_id], label = aggregator.observe_request(states[request.event_id], request, WHEN)
        assert label is None
    for answer in answers:
        if answer.is_golden:
            continue
        state, label = aggregator.observe_answer(states[answer.event_id], answer, answer.event_id, WHEN)
        states[answer.event_id] = state
        if label is not None:
            labels[answer.event_id].append(label)
    return labels


# --- the spec -----------------------------------------------------------------------------


def test_the_packaged_spec_builds_a_template_builder_project() -> None:
    spec = LabelingSpec.load()
    project = spec.project()
    assert project.task_spec.view_spec.type.value == "tb"
    assert project.task_spec.output_spec["label"].allowed_values == spec.class_values
    assert project.private_comment == spec.project_key
    assert spec.fingerprint != spec_with_golden().fingerprint


def test_a_spec_whose_golden_answer_is_not_a_class_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(
        "name: s\npublic_name: S\npublic_description: d\ninstructions: i\n"
        "classes: [{value: a, title: A}, {value: b, title: B}]\n"
        "golden: [{input: {text: t}, label: c}]\n",
        encoding="utf-8",
    )
    with pytest.raises(ValidationError, match="not classes of the spec"):
        LabelingSpec.load(path)


def test_the_token_comes_from_a_file_and_never_shows(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n", encoding="utf-8")
    settings = TolokaSettings(token_file=token_file)
    assert settings.resolve_token().get_secret_value() == TOKEN
    assert TOKEN not in repr(settings)
    assert TOKEN not in str(settings.model_dump())
    with pytest.raises(ConfigError) as missing:
        TolokaSettings(token_file=tmp_path / "absent").resolve_token()
    assert TOKEN not in str(missing.value)


# --- retries ------------------------------------------------------------------------------


def test_a_429_waits_as_long_as_retry_after_says() -> None:
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    policy = RetryPolicy(TolokaSettings(backoff_base_s=0.001), sleep=record)
    attempts = 0

    async def rate_limited() -> str:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            response = httpx.Response(429, headers={"Retry-After": "2.5"})
            raise TooManyRequestsApiError(code="TOO_MANY_REQUESTS", status_code=429, response=response)
        return "ok"

    assert asyncio.run(policy.call(rate_limited, "find pools")) == "ok"
    assert waits == [2.5]
    assert policy.rate_limited == 1


def test_a_toloka_that_keeps_failing_ends_in_a_retryable_error_without_the_token(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    with TolokaStandIn(faults=Faults(rate_500=1.0)).serve() as standin:
        backend = TolokaBackend(settings_for(standin, max_attempts=3, transport_retries=1))
        with pytest.raises(RetryableBackendError) as failed:
            asyncio.run(backend.start())
    assert "find_projects" in str(failed.value)
    assert failed.value.retry_after_s > 0
    assert standin.requests >= 3 * 2  # each of our attempts, retried once by toloka-kit
    assert TOKEN not in str(failed.value)
    assert TOKEN not in repr(failed.value)
    assert TOKEN not in caplog.text


# --- whole cycles -------------------------------------------------------------------------


def test_the_backend_is_a_labeling_backend() -> None:
    assert isinstance(TolokaBackend(TolokaSettings(token=TOKEN)), LabelingBackend)


def test_a_whole_cycle_labels_every_task_once_with_golden_answers_flagged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    with TolokaStandIn().serve() as standin:
        backend = TolokaBackend(settings_for(standin), spec=spec_with_golden())
        requests = requests_for(standin, 30)
        answers = asyncio.run(label_all(backend, requests))
        status = backend.status(WHEN)
    labels = aggregate(requests, answers)
    assert all(len(decided) == 1 for decided in labels.values())
    accuracy = sum(labels[e][0].label == standin.truth[e] for e in labels) / len(labels)
    assert accuracy >= 0.7
    golden = [answer for answer in answers if answer.is_golden]
    assert golden
    assert all(answer.event_id.startswith("golden-") for answer in golden)
    real = [answer for answer in answers if not answer.is_golden]
    assert {answer.pool for answer in answers} == {"toloka"}
    assert all(answer.worker_id.startswith("tk-") and answer.time_spent_s > 0 for answer in real)
    # Each answer carries the overlap target after it; the last answer of a task meets its target.
    for event_id in labels:
        mine = [answer for answer in real if answer.event_id == event_id]
        assert len(mine) == mine[-1].overlap >= 2
    assert len(standin.created_tasks) == 30 + len(backend.golden)
    assert standin.duplicate_uploads() == {}
    assert status.tasks_done == 30
    assert status.backend == "toloka"
    assert status.backlog == 0
    assert standin.tokens_seen == {TOKEN}
    assert TOKEN not in caplog.text
    assert all(TOKEN not in str(record.args) for record in caplog.records)


def test_under_30_percent_faults_nothing_is_uploaded_twice_and_every_task_is_labeled_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    faults = Faults.total(0.30, slow_s=0.5)  # slow answers outlast the 0.25 s client timeout
    with TolokaStandIn(faults=faults).serve() as standin:
        backend = TolokaBackend(settings_for(standin), spec=spec_with_golden())
        requests = requests_for(standin, 40)
        answers = asyncio.run(label_all(backend, requests))
    labels = aggregate(requests, answers)
    assert all(len(decided) == 1 for decided in labels.values())
    assert standin.duplicate_uploads() == {}
    assert len(standin.created_tasks) == 40 + len(backend.golden)
    assert min(standin.faults_injected.values()) > 0
    assert backend.retry.retries > 0
    assert backend.retry.rate_limited > 0
    assert TOKEN not in caplog.text


def test_the_same_request_delivered_again_reuses_its_task_and_its_answers() -> None:
    with TolokaStandIn().serve() as standin:
        requests = requests_for(standin, 3)
        first = TolokaBackend(settings_for(standin), spec=spec_with_golden())
        before = asyncio.run(label_all(first, requests))
        # A new process (as after a crash) gets the same requests again.
        again = TolokaBackend(settings_for(standin), spec=spec_with_golden())
        after = asyncio.run(label_all(again, requests))
        created = len(standin.created_tasks)
        projects, pools = len(standin.projects), len(standin.pools)
    assert standin.duplicate_uploads() == {}
    assert created == 3 + len(first.golden)
    assert (projects, pools) == (1, 1)
    assert again.pool_id == first.pool_id
    real_before = {(a.event_id, a.worker_id) for a in before if not a.is_golden}
    real_after = {(a.event_id, a.worker_id) for a in after if not a.is_golden}
    assert real_after <= real_before
    assert {e for e, _ in real_after} == {r.event_id for r in requests}


def test_answers_reported_side_by_side_never_end_a_task_short_of_its_raised_overlap() -> None:
    # Two Tolokers who always disagree submit in the same step, so one poll page holds both and
    # their answers are reported side by side; a slow sink lets the second be counted (raising the
    # target) while the first is still being sent. The task must wait for the answers it asked for.
    def disagree(worker_id: str, task_input: dict[str, Any], truth: str | None, classes: list[str]) -> str:
        return classes[sum(map(ord, worker_id)) % 2]

    answers: list[CrowdAnswer] = []

    async def slow(answer: CrowdAnswer) -> None:
        await asyncio.sleep(0.02)
        answers.append(answer)

    async def label(backend: TolokaBackend, requests: list[LabelRequest]) -> None:
        try:
            await asyncio.wait_for(asyncio.gather(*(backend.label(r, slow) for r in requests)), 60)
        finally:
            await backend.stop()

    with TolokaStandIn(answer=disagree).serve() as standin:
        backend = TolokaBackend(settings_for(standin, golden_rate=0.0, poll_interval_s=0.2))
        requests = requests_for(standin, 12)
        asyncio.run(label(backend, requests))
    by_event: dict[str, list[CrowdAnswer]] = {}
    for answer in answers:
        by_event.setdefault(answer.event_id, []).append(answer)
    assert set(by_event) == {request.event_id for request in requests}
    for event_id, got in by_event.items():
        # The aggregator decides once it holds as many answers as the last one asked for.
        assert len(got) >= got[-1].overlap, (event_id, [(a.worker_id, a.label, a.overlap) for a in got])
    assert any(len(got) > 2 for got in by_event.values()), "no task needed more than two answers"


# --- golden review and quality control ------------------------------------------------------


def test_assignments_failing_golden_tasks_are_rejected_and_their_answers_never_count() -> None:
    spec = spec_with_golden()
    known = {golden.input["text"]: golden.label for golden in spec.golden}

    def answer(worker_id: str, task_input: dict[str, Any], truth: str | None, classes: list[str]) -> str:
        if worker_id == "tk-liar":  # wrong on every control task, right elsewhere
            text = str(task_input.get("text"))
            return next(c for c in classes if c != known[text]) if text in known else str(truth)
        return str(truth)

    # The liar is first in the stand-in's order: they take a suite in its first round, before
    # the honest Tolokers can use up the tasks uploaded so far.
    workers = [Worker("tk-liar", 1.0, 30.0), *default_workers(8, spammers=0)]
    with TolokaStandIn(workers, answer=answer).serve() as standin:
        # One failed golden answer is enough to ban: how many suites the liar gets depends on how
        # the stand-in's rounds interleave with the uploads (fewer on a loaded machine).
        # Golden answers of a suite whose real tasks are all decided go to the golden sink (the
        # worker sends them to crowd-answers too); on a loaded machine the liar's come that late.
        late_golden: list[CrowdAnswer] = []

        async def keep_golden(answer: CrowdAnswer) -> None:
            late_golden.append(answer)

        backend = TolokaBackend(
            settings_for(standin, ban_golden_min_answers=1), spec=spec, golden_sink=keep_golden
        )
        requests = requests_for(standin, 20)

        async def label_then_review() -> list[CrowdAnswer]:
            answers = await label_all(backend, requests)
            # The poller stops once the last request is decided, which can be while the liar's
            # suite (read in the same page) is still being rejected: one more poll finishes it.
            await backend.poll_once()
            return answers

        answers = asyncio.run(label_then_review())
        with standin.lock:
            liar_suites = [a for a in standin.assignments.values() if a["user_id"] == "tk-liar"]
    assert liar_suites
    assert all(suite["status"] == "REJECTED" for suite in liar_suites)
    assert all(answer.worker_id != "tk-liar" for answer in answers if not answer.is_golden)
    liar_golden = [a for a in [*answers, *late_golden] if a.is_golden and a.worker_id == "tk-liar"]
    assert liar_golden
    assert all(a.label != a.golden_label for a in liar_golden)
    assert "tk-liar" in standin.banned()  # the pool's golden-set rule banned them
    assert all(len(decided) == 1 for decided in aggregate(requests, answers).values())


def test_fast_random_answers_get_a_ban_from_the_submit_time_rule() -> None:
    workers = [*default_workers(8, spammers=0), Worker("tk-rusher", 0.9, 1.0)]
    with TolokaStandIn(workers).serve() as standin:
        backend = TolokaBackend(settings_for(standin, golden_rate=0.0), spec=spec_with_golden())
        # Enough suites that the rusher submits the two fast ones the rule needs, however the
        # uploads interleave with the Tolokers' turns (with 20 it sometimes got one suite only).
        asyncio.run(label_all(backend, requests_for(standin, 60)))
    assert standin.banned() == {"tk-rusher"}
    assert backend.mix == (5, 0)


def test_pause_closes_the_pool_and_resume_opens_it() -> None:
    async def scenario(backend: TolokaBackend, standin: TolokaStandIn) -> list[str]:
        await backend.start()
        seen = [standin.pools[str(backend.pool_id)]["status"]]
        backend.pause()
        await asyncio.sleep(0.2)
        seen.append(standin.pools[str(backend.pool_id)]["status"])
        assert not backend.status(WHEN).active
        backend.resize(3)
        await asyncio.sleep(0.2)
        seen.append(standin.pools[str(backend.pool_id)]["status"])
        await backend.stop()
        return seen

    with TolokaStandIn().serve() as standin:
        backend = TolokaBackend(settings_for(standin), spec=spec_with_golden())
        assert asyncio.run(scenario(backend, standin)) == ["OPEN", "CLOSED", "OPEN"]


def test_a_pool_short_of_tolokers_raises_its_reward_within_bounds_and_lowers_it_after() -> None:
    """Tolokers who ask more than the pool pays join once the reward reaches their price."""
    cheap = [Worker(f"tk-cheap{i}", 0.9) for i in range(2)]
    dear = [Worker(f"tk-dear{i}", 0.9, min_reward=0.06) for i in range(4)]

    async def scenario(backend: TolokaBackend, standin: TolokaStandIn) -> list[float]:
        requests = requests_for(standin, 40)
        rewards = [backend.reward]
        await label_all(backend, requests[:10])
        assert backend.workers == 2, "at the base reward only the cheap Tolokers work"
        backend.resize(6)  # the autoscaler wants six
        for _ in range(10):
            await backend.steer_reward()
        rewards.append(standin.pools[str(backend.pool_id)]["reward_per_assignment"])
        await label_all(backend, requests[10:])
        assert backend.workers == 6, "the dear Tolokers joined at the higher reward"
        backend.resize(2)
        for _ in range(10):
            await backend.steer_reward()
        rewards.append(standin.pools[str(backend.pool_id)]["reward_per_assignment"])
        assert backend.status(WHEN).cost_per_label == pytest.approx(rewards[-1] / backend.mix[0])
        return rewards

    with TolokaStandIn(cheap + dear).serve() as standin:
        settings = settings_for(
            standin,
            reward_per_assignment=0.04,
            reward_min=0.03,
            reward_max=0.07,
            reward_cooldown_s=0.0,
            overlap_min=1,
            overlap_max=2,
            golden_rate=0.0,  # no rejected suite: two Tolokers can finish every task at overlap 2
        )
        backend = TolokaBackend(settings, spec=spec_with_golden())
        assert asyncio.run(scenario(backend, standin)) == [0.04, 0.07, 0.03]
