"""Extra Toloka pools against the stand-in: a surge the top reward cannot staff opens a pool for
another audience, and when the target falls it drains and closes without losing or doubling a task."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agents.pools.toloka.audience import Audience
from agents.pools.toloka.backend import TolokaBackend
from agents.pools.toloka.client import TolokaSettings
from schemas import CrowdAnswer, LabelRequest, utc_now
from tests.agents.pools.toloka.test_toloka_backend import aggregate, settings_for, spec_with_golden
from tests.standin.toloka import Faults, TolokaStandIn, Worker, label_all, requests_for

ENGLISH = Audience(name="en", languages=["EN"])
GERMAN = Audience(name="de", languages=["DE"], regions=[96])


def crowd(english_count: int = 2) -> list[Worker]:
    """Tolokers the main (English) pool reaches, and four only a German pool reaches."""
    english = [Worker(f"tk-en{i}", 0.9) for i in range(english_count)]
    german = [Worker(f"tk-de{i}", 0.9, languages=("DE",), region=96) for i in range(4)]
    return english + german


def elastic(standin: TolokaStandIn, **overrides: Any) -> TolokaSettings:
    return settings_for(
        standin,
        audience=ENGLISH,
        extra_pools=(GERMAN,),
        reward_per_assignment=0.04,
        reward_min=0.03,
        reward_max=0.05,
        reward_cooldown_s=0.0,
        extra_pool_cooldown_s=0.0,
        **overrides,
    )


def real_tasks(standin: TolokaStandIn, pool_id: str | None = None) -> list[dict[str, Any]]:
    with standin.lock:
        return [
            task
            for task in standin.created_tasks
            if not task.get("known_solutions") and pool_id in (None, task["pool_id"])
        ]


def open_real_tasks(standin: TolokaStandIn) -> int:
    with standin.lock:
        return sum(1 for task in real_tasks(standin) if task["remaining_overlap"] > 0)


class Phase:
    """Requests handed to the backend at once; the stand-in is stepped by hand (``tick_s=None``)."""

    def __init__(self, backend: TolokaBackend, standin: TolokaStandIn, requests: list[LabelRequest]) -> None:
        self.backend, self.standin, self.requests = backend, standin, requests
        self.answers: list[CrowdAnswer] = []
        self._labeling: asyncio.Future[list[None]] | None = None

    async def _keep(self, answer: CrowdAnswer) -> None:
        self.answers.append(answer)

    async def upload(self) -> None:
        """Hand every request over and wait until each has its task (no Toloker has stepped)."""
        before = len(real_tasks(self.standin))
        self._labeling = asyncio.gather(*(self.backend.label(r, self._keep) for r in self.requests))
        for _ in range(6000):  # at most a minute
            if len(real_tasks(self.standin)) >= before + len(self.requests):
                return
            await asyncio.sleep(0.01)
        raise AssertionError("the uploads did not finish")

    async def work(self) -> int:
        """Step the Tolokers until no task wants an answer, then wait for the backend; the steps taken."""
        assert self._labeling is not None
        steps = 0
        while open_real_tasks(self.standin) > 0:
            self.standin.tick()
            steps += 1
            await asyncio.sleep(0.005)
        await asyncio.wait_for(self._labeling, timeout=60)
        return steps

    async def run(self) -> float:
        """Label every request; the labeling rate in requests per stand-in step."""
        await self.upload()
        return len(self.requests) / await self.work()


def test_a_surge_past_the_top_reward_opens_a_pool_for_another_audience_and_closes_it_drained() -> None:
    async def scenario(backend: TolokaBackend, standin: TolokaStandIn) -> None:
        requests = requests_for(standin, 60)
        await backend.start()
        main = str(backend.pool_id)
        assert standin.pools[main]["filter"] is not None, "the main pool admits English Tolokers only"

        before = await Phase(backend, standin, requests[:24]).run()
        assert backend.workers == 2, "only the English Tolokers see the main pool"

        backend.resize(6)  # the autoscaler asks for six
        # Reward first: the extra pool waits until the reward is at its maximum.
        await backend.steer_extra_pools()
        assert backend.extras == []
        await backend.steer_reward()
        assert standin.pools[main]["reward_per_assignment"] == 0.05
        await backend.steer_extra_pools()
        [extra] = backend.extras
        assert (extra.audience, extra.state, extra.reward) == (GERMAN, "open", 0.05)
        assert standin.pools[extra.pool_id]["status"] == "OPEN"
        assert standin.pools[extra.pool_id]["private_name"] == f"{backend.pool_name}+de-{GERMAN.key}"

        surge = Phase(backend, standin, requests[24:48])
        after = await surge.run()
        assert backend.workers == 6, "the German Tolokers work the extra pool"
        assert after > before, (before, after)
        german = {a.event_id for a in surge.answers if a.worker_id.startswith("tk-de")}
        in_extra = {task["input_values"]["event_id"] for task in real_tasks(standin, extra.pool_id)}
        assert german, "the German Tolokers answered"
        assert german <= in_extra, "and only tasks of the extra pool"
        assert backend.status(utc_now()).cost_per_label == pytest.approx(0.05)

        # The target falls while the extra pool holds open tasks: it drains, then closes.
        tail = Phase(backend, standin, requests[48:])
        await tail.upload()
        held = {task["input_values"]["event_id"] for task in real_tasks(standin, extra.pool_id)} - in_extra
        assert held, "some of the new tasks went to the extra pool"
        backend.resize(1)
        await backend.steer_reward()
        assert backend.reward == 0.05, "the reward stays up while an extra pool is open"
        await backend.steer_extra_pools()
        assert extra.state == "draining"
        assert standin.pools[extra.pool_id]["status"] == "OPEN", "it still serves the tasks it holds"
        await tail.work()
        assert held <= {a.event_id for a in tail.answers}
        await backend.steer_extra_pools()
        assert extra.state == "closed"
        assert standin.pools[extra.pool_id]["status"] == "CLOSED"
        await backend.steer_reward()
        assert backend.reward == 0.04, "with the extra pool closed the reward falls"
        await backend.stop()

        labels = aggregate(requests, [*surge.answers, *tail.answers])
        for request in requests[24:]:
            assert len(labels[request.event_id]) == 1, request.event_id

    with TolokaStandIn(crowd(), tick_s=None).serve() as standin:
        settings = elastic(standin, overlap_min=2, overlap_max=2, golden_rate=0.0, tasks_per_suite=1)
        backend = TolokaBackend(settings, spec=spec_with_golden())
        asyncio.run(scenario(backend, standin))
    assert standin.duplicate_uploads() == {}
    assert len(real_tasks(standin)) == 60
    assert len(standin.pools) == 2


def test_under_faults_the_extra_pool_opens_and_closes_and_every_request_keeps_its_answers() -> None:
    faults = Faults.total(0.30, slow_s=0.5)  # slow answers outlast the 0.25 s client timeout

    async def scenario(backend: TolokaBackend, standin: TolokaStandIn) -> list[CrowdAnswer]:
        requests = requests_for(standin, 50)
        answers = await label_all(backend, requests[:10])
        backend.resize(7)
        for _ in range(3):
            await backend.steer_reward()
            await backend.steer_extra_pools()
        [extra] = backend.extras
        assert extra.state == "open"
        answers += await label_all(backend, requests[10:35])
        assert any(a.worker_id.startswith("tk-de") for a in answers if not a.is_golden)
        # The target falls while the last requests are being labeled: the poller drains and closes
        # the extra pool on its own, whatever it still holds.
        last: list[CrowdAnswer] = []

        async def keep(answer: CrowdAnswer) -> None:
            last.append(answer)

        labeling = asyncio.gather(*(backend.label(r, keep) for r in requests[35:]))
        backend.resize(1)
        await asyncio.wait_for(labeling, timeout=60)
        for _ in range(100):
            if extra.state == "closed":
                break
            await asyncio.sleep(0.05)
        await backend.stop()
        assert extra.state == "closed"
        return answers + last

    # A task stays in the pool it went to, and only that pool's audience can answer it: with golden
    # tasks on, a rejected suite needs another Toloker of the same audience (three English ones, one
    # answer a task, so a ban and a rejection together cannot strand a task in the main pool).
    with TolokaStandIn(crowd(english_count=3), faults=faults).serve() as standin:
        backend = TolokaBackend(elastic(standin, overlap_min=1, overlap_max=1), spec=spec_with_golden())
        answers = asyncio.run(scenario(backend, standin))
        requests = requests_for(standin, 50)
        [extra] = backend.extras
        golden_in_extra = [
            task
            for task in standin.created_tasks
            if task.get("known_solutions") and task["pool_id"] == extra.pool_id
        ]
    labels = aggregate(requests, answers)
    assert all(len(decided) == 1 for decided in labels.values())
    assert standin.duplicate_uploads() == {}
    assert len(real_tasks(standin)) == 50
    assert len(golden_in_extra) == len(backend.spec.golden), "the extra pool carries its own golden tasks"
    assert standin.pools[extra.pool_id]["status"] == "CLOSED"
    assert min(standin.faults_injected.values()) > 0
    assert backend.retry.rate_limited > 0


def test_a_restarted_backend_serves_the_extra_pool_it_finds_open_and_creates_no_other() -> None:
    with TolokaStandIn(crowd(english_count=3)).serve() as standin:
        first = TolokaBackend(elastic(standin, overlap_min=1, overlap_max=1), spec=spec_with_golden())

        async def surge() -> None:
            await first.start()
            first.resize(6)
            await first.steer_reward()
            await first.steer_extra_pools()
            await first.stop()

        asyncio.run(surge())
        [extra] = first.extras
        requests = requests_for(standin, 12)
        again = TolokaBackend(elastic(standin, overlap_min=1, overlap_max=1), spec=spec_with_golden())
        answers = asyncio.run(label_all(again, requests))
        pools = len(standin.pools)
        served = real_tasks(standin, extra.pool_id)
    assert [(e.pool_id, e.state) for e in again.extras] == [(extra.pool_id, "open")]
    assert pools == 2
    assert served, "new tasks went to the extra pool found open"
    assert any(a.worker_id.startswith("tk-de") for a in answers if not a.is_golden)
    assert standin.duplicate_uploads() == {}
    assert all(len(decided) == 1 for decided in aggregate(requests, answers).values())
