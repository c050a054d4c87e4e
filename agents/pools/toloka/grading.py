"""Grading: an assignment's golden answers graded, the assignment accepted or rejected, its answers reported.

Answers are counted once per Toloker; each is stamped with the overlap target after counting it.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

from toloka.client import Assignment
from toloka.client.exceptions import ConflictStateApiError
from toloka.client.task import TaskOverlapPatch

from agents.pools.toloka.spec import OUTPUT_FIELD
from agents.pools.toloka.state import (
    REVIEW_CONCURRENCY,
    TolokaState,
    Verdict,
    _aware,
    _Pending,
    _value,
)
from schemas import CrowdAnswer

log = logging.getLogger(__name__)


class Grading(TolokaState):
    """An assignment's golden answers graded, the assignment accepted or rejected, its answers reported."""

    def verdict(self, assignment: Assignment) -> Verdict:
        """Accept unless the golden answers in the suite are right less often than the threshold."""
        total = right = 0
        for task, solution in zip(assignment.tasks or [], assignment.solutions or [], strict=False):
            known = self._known(task)
            if known is None:
                continue
            total += 1
            right += (solution.output_values or {}).get(OUTPUT_FIELD) == known
        accept = total == 0 or right / total >= self.settings.accept_min_golden_accuracy
        return Verdict(accept, total, right)

    def _known(self, task: Any) -> str | None:
        """The known answer of a golden task (ours, else the one Toloka sent), None for a real task."""
        known = self.golden.get(str(task.id))
        if known is None and task.known_solutions:
            known = str((task.known_solutions[0].output_values or {}).get(OUTPUT_FIELD))
        return known

    async def _process_bounded(self, assignment: Assignment) -> None:
        if self._reviews is None:
            self._reviews = asyncio.Semaphore(REVIEW_CONCURRENCY)
        async with self._reviews:
            await self._process(assignment)

    async def _process(self, assignment: Assignment) -> None:
        status = _value(assignment.status)
        if status == "SUBMITTED":
            verdict = self.verdict(assignment)
            status = await self._review(assignment, verdict)
        moment = _aware(assignment.submitted, self._clock())
        self._last_seen[(str(assignment.pool_id), str(assignment.user_id))] = moment
        await self._report(assignment, accepted=status == "ACCEPTED", goldens=True)

    async def _review(self, assignment: Assignment, verdict: Verdict) -> str:
        call = self.client.accept_assignment if verdict.accept else self.client.reject_assignment
        what = "accept assignment" if verdict.accept else "reject assignment"
        assignment_id = str(assignment.id)
        try:
            reviewed = await self.retry.call(lambda: call(assignment_id, verdict.comment), what)
            status = _value(reviewed.status)
        except ConflictStateApiError:  # reviewed already (by our retry that timed out, or another worker)
            current = await self.retry.call(
                lambda: self.client.get_assignment(assignment_id), "read assignment"
            )
            status = _value(current.status)
        if status == "ACCEPTED":
            self.accepted += 1
        elif status == "REJECTED":
            self.rejected += 1
            log.info("toloka: rejected assignment %s (%s)", assignment.id, verdict.comment)
        return status

    async def _report(self, assignment: Assignment, *, accepted: bool, goldens: bool) -> None:
        """Golden answers always (once); real answers of accepted assignments, once per Toloker and task."""
        submitted = _aware(assignment.submitted, self._clock())
        created = _aware(assignment.created, submitted)
        worker = str(assignment.user_id)
        pairs = list(zip(assignment.tasks or [], assignment.solutions or [], strict=False))
        time_spent_s = max(0.0, (submitted - created).total_seconds()) / max(1, len(pairs))
        sink = next(
            (self._by_task[str(task.id)].on_answer for task, _ in pairs if str(task.id) in self._by_task),
            self._golden_sink,
        )
        for task, solution in pairs:
            label = str((solution.output_values or {}).get(OUTPUT_FIELD))
            task_id = str(task.id)
            known = self._known(task)
            if known is not None:
                if goldens and sink is not None:
                    self.golden_answers += 1
                    await sink(
                        CrowdAnswer(
                            event_id=str((task.input_values or {}).get("event_id") or f"golden-{task_id}"),
                            task_id=task_id,
                            pool=self.name,
                            tier="crowd",
                            worker_id=worker,
                            label=label,
                            time_spent_s=round(time_spent_s, 3),
                            answered_at=submitted,
                            golden_label=known,
                        )
                    )
                continue
            pending = self._by_task.get(task_id)
            if accepted and pending is not None:
                await self._count(pending, worker, label, time_spent_s, submitted, task_id)

    async def _count(
        self, pending: _Pending, worker: str, label: str, time_spent_s: float, at: datetime, task_id: str
    ) -> None:
        if pending.done.done() or any(voter == worker for voter, _ in pending.votes):
            return
        pending.votes.append((worker, label))  # before any await: a racing report sees it
        target = pending.rule.target(pending.votes, pending.classes)
        answer = CrowdAnswer(
            event_id=pending.request.event_id,
            task_id=task_id,
            pool=self.name,
            tier="crowd",
            worker_id=worker,
            label=label,
            time_spent_s=round(time_spent_s, 3),
            answered_at=at,
            overlap=target,
        )
        try:
            await pending.on_answer(answer)
        except Exception as error:  # the sink failed: this request fails (and is delivered again)
            if not pending.done.done():
                pending.done.set_exception(error)
            return
        self.answers_total += 1
        # Decide on every vote counted so far, not on the target computed before the send: the
        # answers of one page are reported side by side, and while this one was being sent another
        # could be counted and raise the target. With the stale target, the first of two
        # disagreeing answers saw "2 of 2" and finished a task the second had just raised to 3;
        # the third answer then found no task and was dropped, and the aggregator (told 3) waited
        # for it forever (the drill: 3 of 120 events never labeled).
        target = pending.rule.target(pending.votes, pending.classes)
        if len(pending.votes) >= target:
            if not pending.done.done():
                self.tasks_done += 1
                pending.done.set_result(None)
            return
        if target > pending.asked:
            pending.asked = target
            await self.retry.call(
                lambda: self.client.patch_task_overlap_or_min(task_id, TaskOverlapPatch(overlap=target)),
                "raise overlap",
                event_id=pending.request.event_id,
            )
