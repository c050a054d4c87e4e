"""Turn a task's answers into a label by skill-weighted votes; escalate, audit and heal with experts.

The same task life as :mod:`agents.aggregator.majority` (request and answers
in either order, one vote per worker, golden answers never vote), with who to
trust from a :class:`~agents.aggregator.skills.SkillBook`:

- **Deciding.** A task is decided once it holds as many crowd answers as the
  latest ``CrowdAnswer.overlap`` (the pool's dynamic-overlap target, see
  :mod:`agents.aggregator.overlap`). The label is the class of highest
  posterior given the votes and each voter's confusion matrix (Dawid & Skene,
  1979); ``Label.confidence`` is that posterior.
- **Escalating.** Below ``escalate_below`` the crowd label is published at
  once as a provisional revision (its reason says it was escalated, its
  confidence says how unsure it is: consumers always have a label), and an
  escalation request goes to the expert tier above every crowd priority. The
  expert's verdict then comes out as the next revision.
- **Auditing** (Chimera, Sun et al. 2014). A deterministic share of the
  confident crowd labels (``uniform_for(event_id, audit_salt) < audit_share``)
  is sent to experts too (``route="audit"``, ``inclusion_probability`` =
  the share). Every expert verdict grades the crowd votes of its task into
  the SkillBook, and the verdict is published as a new revision
  (``source="expert"``), confirming or correcting the crowd.
- **Experts trump the crowd.** An expert's answer decides a task outright,
  whatever the crowd said.
- **Healing.** Decided tasks keep their votes; a :class:`VoterIndex` remembers
  the recent events of every worker. When evidence newly flags a worker
  (``Outcome.flagged``), the agent calls :meth:`WeightedVoteAggregator.reaggregate`
  on their events: a crowd label whose winner changes under the new skills
  is published as the next revision, its reason naming the worker.

Each step returns the new task state and an :class:`Outcome`: the labels,
the requests (escalations, audits) and the skill updates to publish.

References
----------
Dawid, A. P. & Skene, A. M. (1979). Maximum likelihood estimation of observer
error-rates using the EM algorithm. JRSS C 28(1), 20–28.

Sun, C., Rampalli, N., Yang, F. & Doan, A. (2014). Chimera: Large-scale
classification using machine learning, rules, and crowdsourcing. PVLDB 7(13).

Ipeirotis, P., Provost, F., Sheng, V. & Wang, J. (2014). Repeated labeling using
multiple noisy labelers. Data Mining and Knowledge Discovery 28, 402–441.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import Field

from agents.aggregator.dawid_skene import DawidSkeneRefit
from agents.aggregator.majority import TaskContext, TaskState, Vote
from agents.aggregator.overlap import posterior as one_coin_posterior
from agents.aggregator.settings import WeightedSettings as WeightedSettings  # importable from here too
from agents.aggregator.skills import SkillBook
from agents.aggregator.voters import VoterIndex as VoterIndex  # importable from here too
from agents.router.sampling import uniform_for
from schemas import CrowdAnswer, Label, LabelProvenance, LabelRequest, WorkerSkill
from schemas.labels import LabelSource


class WeightedTaskState(TaskState):
    """A task's state: :class:`TaskState` plus what deciding, escalating and healing need.

    Decided tasks keep their context and votes (a few hundred bytes) so they
    can be re-aggregated; the request itself (with the prediction's input) is
    kept only until the crowd decides, as escalations and audits copy it.
    """

    request: LabelRequest | None = None
    #: Classes of the task (the prediction's score keys): the K of the vote model.
    classes: list[str] = Field(default_factory=list)
    #: The latest published revision (0: none yet) and its source and confidence.
    revision: int = 0
    source: LabelSource | None = None
    confidence: float | None = None
    #: Why experts were asked, if they were.
    expert_asked: Literal["escalation", "audit"] | None = None
    #: Whether an expert verdict already graded this task's crowd votes.
    graded: bool = False

    @classmethod
    def from_json(cls, text: str | None) -> WeightedTaskState:
        """A stored state, or a fresh one."""
        return cls() if not text else cls.model_validate_json(text)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one step asks the agent to publish.

    ``flagged`` lists the workers this step newly flagged as spammers;
    ``revisit`` the events whose labels may now change, with the reason:
    the recent events of flagged workers, and every task of a Dawid–Skene
    refit's window. The agent calls
    :meth:`WeightedVoteAggregator.reaggregate` on each (a no-op for tasks
    not decided by the crowd) and publishes what comes out.
    """

    labels: tuple[Label, ...] = ()
    requests: tuple[LabelRequest, ...] = ()
    skills: tuple[WorkerSkill, ...] = ()
    flagged: tuple[str, ...] = ()
    revisit: tuple[tuple[str, str], ...] = ()

    def __add__(self, other: Outcome) -> Outcome:
        return Outcome(
            self.labels + other.labels,
            self.requests + other.requests,
            self.skills + other.skills,
            self.flagged + other.flagged,
            self.revisit + other.revisit,
        )


class WeightedVoteAggregator:
    """Skill-weighted votes with escalation, expert audits and healing (see the module docstring).

    Parameters
    ----------
    settings
        Escalation threshold, audit share, expert accuracy.
    book
        The workers' skills; shared with the pools' dynamic overlap (``book.accuracy_of``).
    refit
        Optional Dawid–Skene refit fed with every crowd answer and expert verdict, folded into
        ``book`` when due. It runs inside the step (about 20 ms per thousand answers in the
        window); leave it None to run refits elsewhere.

    Examples
    --------
    >>> from datetime import datetime, UTC
    >>> from schemas import PredictionEvent, PredictionInput
    >>> when = datetime(2026, 1, 1, tzinfo=UTC)
    >>> aggregator = WeightedVoteAggregator(WeightedSettings(audit_share=0.0))
    >>> event = PredictionEvent(event_id="e1", model_name="m", model_version="1", created_at=when,
    ...                         input=PredictionInput(text="meow"), predicted_label="dog",
    ...                         scores={"dog": 0.6, "cat": 0.4})
    >>> request = LabelRequest(prediction=event, route="low_confidence", reason="low",
    ...                        priority=0.4, uncertainty=0.4, requested_at=when)
    >>> state, _ = aggregator.step_request(WeightedTaskState(), request, when)
    >>> for worker, label in [("w1", "cat"), ("w2", "dog"), ("w3", "cat")]:
    ...     state, outcome = aggregator.step_answer(state, CrowdAnswer(
    ...         event_id="e1", task_id="t", pool="sim", worker_id=worker, label=label,
    ...         time_spent_s=1.0, answered_at=when, overlap=3), "e1", when)
    >>> [(label.label, label.revision, round(label.confidence, 2)) for label in outcome.labels]
    [('cat', 1, 0.7)]
    >>> [(request.route, request.tier, request.priority) for request in outcome.requests]
    [('escalation', 'expert', 1.4)]
    >>> state, outcome = aggregator.step_answer(state, CrowdAnswer(
    ...     event_id="e1", task_id="t", pool="experts", tier="expert", worker_id="x1", label="dog",
    ...     time_spent_s=9.0, answered_at=when), "e1", when)
    >>> [(label.label, label.source, label.revision, label.supersedes) for label in outcome.labels]
    [('dog', 'expert', 2, 1)]
    >>> round(aggregator.book.accuracy_of("w2"), 3) > round(aggregator.book.accuracy_of("w1"), 3)
    True
    """

    def __init__(
        self,
        settings: WeightedSettings | None = None,
        book: SkillBook | None = None,
        refit: DawidSkeneRefit | None = None,
        index: VoterIndex | None = None,
    ) -> None:
        self.settings = settings or WeightedSettings()
        self.book = book if book is not None else SkillBook()
        self.refit = refit
        self.index = index if index is not None else VoterIndex(self.settings.events_per_worker)

    # -- steps -------------------------------------------------------------------------------

    def step_request(
        self, state: WeightedTaskState, request: LabelRequest, now: datetime
    ) -> tuple[WeightedTaskState, Outcome]:
        """Record the request's context (the first request only); decide if the answers are in."""
        if state.context is not None:
            return state, Outcome()
        state = state.model_copy(
            update={
                "context": TaskContext.of(request),
                "request": request,
                "classes": sorted(request.prediction.scores),
            }
        )
        return self._maybe_decide(state, request.event_id, now)

    def step_answer(
        self, state: WeightedTaskState, answer: CrowdAnswer, event_id: str, now: datetime
    ) -> tuple[WeightedTaskState, Outcome]:
        """Record one answer: golden ones grade the worker, expert ones decide, crowd ones vote."""
        if answer.golden_label is not None:
            return state, self._golden(answer, now)
        if any(vote.worker_id == answer.worker_id for vote in state.votes):
            return state, Outcome()
        if answer.tier == "crowd" and state.decided is not None:
            return state, Outcome()  # late: the task was decided without it
        vote = Vote(
            worker_id=answer.worker_id,
            label=answer.label,
            pool=answer.pool,
            tier=answer.tier,
            overlap=answer.overlap,
        )
        state = state.model_copy(update={"votes": [*state.votes, vote]})
        outcome = Outcome()
        if answer.tier == "crowd":
            self.book.observe_answer(answer.worker_id, answer.pool, now, answer.time_spent_s)
            if self.refit is not None and self.refit.observe_answer(answer):
                outcome += self._refit(now)
        elif self.refit is not None:
            self.refit.observe_verdict(event_id, answer.label)
        state, decided = self._maybe_decide(state, event_id, now)
        return state, outcome + decided

    def reaggregate(
        self, state: WeightedTaskState, event_id: str, now: datetime, reason: str
    ) -> tuple[WeightedTaskState, Outcome]:
        """Recompute a decided crowd label with the current skills; a changed winner is a new revision.

        Expert verdicts stand; undecided tasks will be decided with the new skills anyway.
        """
        if state.source != "crowd" or state.decided is None or state.context is None:
            return state, Outcome()
        label, confidence = self._crowd_verdict(state)
        if label == state.decided:
            return state, Outcome()
        return self._publish(
            state, event_id, now, label, confidence, "crowd", f"re-aggregated: {reason}", crowd_only=True
        )

    def revisits(self, workers: Iterable[str]) -> list[str]:
        """The recent events of ``workers`` (each once, in first-seen order): what to re-aggregate."""
        return list(dict.fromkeys(event for worker in workers for event in self.index.events_of(worker)))

    # -- inside ------------------------------------------------------------------------------

    def _golden(self, answer: CrowdAnswer, now: datetime) -> Outcome:
        assert answer.golden_label is not None
        flagged = self.book.observe_golden(
            answer.worker_id, answer.pool, answer.golden_label, answer.label, now
        )
        outcome = Outcome(skills=(self.book.skill(answer.worker_id),)) + self._flagged(
            [answer.worker_id] * flagged
        )
        if self.refit is not None and self.refit.observe_answer(answer):
            outcome += self._refit(now)
        return outcome

    def _refit(self, now: datetime) -> Outcome:
        assert self.refit is not None
        fit = self.refit.refit()
        flagged = self.refit.fold(fit, self.book, now)
        # Every task of the window may read differently under the refitted skills (healing by refit).
        refitted = tuple((task, "Dawid-Skene refit of the workers' skills") for task in fit.probabilities)
        return (
            Outcome(skills=tuple(self.book.skill(worker) for worker in sorted(fit.workers)))
            + self._flagged(flagged)
            + Outcome(revisit=refitted)
        )

    def _flagged(self, workers: Sequence[str]) -> Outcome:
        """The outcome of newly flagging ``workers``: their recent events to revisit."""
        revisit = tuple(
            (event, f"worker {worker} flagged unreliable")
            for worker in workers
            for event in self.index.events_of(worker)
        )
        return Outcome(flagged=tuple(workers), revisit=revisit)

    def _target(self, state: WeightedTaskState) -> int:
        """Crowd answers the task needs: the latest answer's overlap, else the request's, else the default."""
        crowd = [vote for vote in state.votes if vote.tier == "crowd"]
        if crowd:
            return crowd[-1].overlap
        if state.context is not None and state.context.overlap is not None:
            return state.context.overlap
        return self.settings.default_overlap

    def _crowd_verdict(self, state: WeightedTaskState) -> tuple[str, float]:
        votes = [(vote.worker_id, vote.label) for vote in state.votes if vote.tier == "crowd"]
        probabilities = self.book.posterior(votes, state.classes)
        # Ties go to the smallest label, as in majority().
        label = min(probabilities, key=lambda candidate: (-probabilities[candidate], candidate))
        return label, probabilities[label]

    def _expert_verdict(self, state: WeightedTaskState) -> tuple[str, float]:
        votes = [(vote.worker_id, vote.label) for vote in state.votes if vote.tier == "expert"]
        expert = self.settings.expert_accuracy
        probabilities = one_coin_posterior(votes, len(state.classes), lambda worker: expert, expert)
        label = min(probabilities, key=lambda candidate: (-probabilities[candidate], candidate))
        return label, probabilities[label]

    def _maybe_decide(
        self, state: WeightedTaskState, event_id: str, now: datetime
    ) -> tuple[WeightedTaskState, Outcome]:
        context = state.context
        if context is None:
            return state, Outcome()
        if any(vote.tier == "expert" for vote in state.votes):
            return self._expert_decides(state, event_id, now)
        if state.decided is not None:
            return state, Outcome()
        crowd = [vote for vote in state.votes if vote.tier == "crowd"]
        if not crowd or len(crowd) < self._target(state):
            return state, Outcome()
        label, confidence = self._crowd_verdict(state)
        outcome = Outcome()
        if confidence >= self.settings.agreement_confidence:
            for vote in crowd:
                self.book.observe_agreement(vote.worker_id, vote.pool, vote.label == label, now)
            outcome += Outcome(skills=tuple(self.book.skill(vote.worker_id) for vote in crowd))
        for vote in crowd:
            self.index.add(vote.worker_id, event_id)
        asked, reason = self._ask_experts(state, event_id, confidence)
        state, published = self._publish(
            state, event_id, now, label, confidence, "crowd", reason, crowd_only=True
        )
        requests: tuple[LabelRequest, ...] = ()
        if asked is not None and state.request is not None:
            requests = (self._expert_request(state.request, asked, confidence, now),)
        state = state.model_copy(update={"expert_asked": asked, "request": None})
        return state, outcome + published + Outcome(requests=requests)

    def _ask_experts(
        self, state: WeightedTaskState, event_id: str, confidence: float
    ) -> tuple[Literal["escalation", "audit"] | None, str]:
        """Whether experts should see this crowd label, and the reason the label will carry."""
        assert state.context is not None
        settings = self.settings
        if confidence < settings.escalate_below:
            return "escalation", (
                f"{state.context.reason}; crowd posterior {confidence:.2f} < {settings.escalate_below:.2f}:"
                " provisional, escalated to experts"
            )
        if uniform_for(event_id, settings.audit_salt) < settings.audit_share:
            return "audit", f"{state.context.reason}; crowd label sent to an expert audit"
        return None, state.context.reason

    def _expert_request(
        self, request: LabelRequest, asked: Literal["escalation", "audit"], confidence: float, now: datetime
    ) -> LabelRequest:
        settings = self.settings
        if asked == "escalation":
            update: dict[str, object] = {
                "route": "escalation",
                "reason": f"crowd unsure: posterior {confidence:.2f} < {settings.escalate_below:.2f}",
                "priority": max(request.priority, 0.0) + settings.escalation_priority_boost,
            }
        else:
            update = {
                "route": "audit",
                "reason": f"expert audit of a crowd label (share {settings.audit_share:g})",
                "inclusion_probability": settings.audit_share,
            }
        return LabelRequest.model_validate(
            {**request.model_dump(), **update, "tier": "expert", "overlap": 1, "requested_at": now}
        )

    def _expert_decides(
        self, state: WeightedTaskState, event_id: str, now: datetime
    ) -> tuple[WeightedTaskState, Outcome]:
        context = state.context
        assert context is not None
        label, confidence = self._expert_verdict(state)
        if state.source == "expert" and label == state.decided:
            return state, Outcome()  # another expert agreeing adds nothing to publish
        outcome = Outcome()
        crowd = [vote for vote in state.votes if vote.tier == "crowd"]
        if crowd and not state.graded:
            flagged = [
                vote.worker_id
                for vote in crowd
                if self.book.observe_audit(vote.worker_id, vote.pool, label, vote.label, now)
            ]
            outcome = Outcome(
                skills=tuple(self.book.skill(vote.worker_id) for vote in crowd)
            ) + self._flagged(flagged)
            state = state.model_copy(update={"graded": True})
        if state.decided is None:
            reason = f"{context.reason}; expert answer"
        else:
            verdict = "confirmed" if label == state.decided else f"corrected {state.decided!r}"
            why = {"escalation": "escalation", "audit": "audit", None: "expert answer"}[state.expert_asked]
            reason = f"expert verdict ({why}): {verdict}"
        state, published = self._publish(
            state, event_id, now, label, confidence, "expert", reason, crowd_only=False
        )
        return state.model_copy(update={"request": None}), outcome + published

    def _publish(
        self,
        state: WeightedTaskState,
        event_id: str,
        now: datetime,
        label: str,
        confidence: float,
        source: LabelSource,
        reason: str,
        *,
        crowd_only: bool,
    ) -> tuple[WeightedTaskState, Outcome]:
        """The next revision of the event's Label, and the state that remembers it."""
        context = state.context
        assert context is not None
        # A router audit revisits an event the model labeled already (revision 1): humans write revision 2.
        previous = state.revision or (1 if context.route == "audit" else 0)
        voters: Sequence[Vote] = [
            vote for vote in state.votes if vote.tier == ("crowd" if crowd_only else "expert")
        ] or state.votes
        decided = Label(
            event_id=event_id,
            task=context.task,
            label=label,
            source=source,
            revision=previous + 1,
            supersedes=previous or None,
            confidence=min(max(confidence, 0.0), 1.0),
            route=context.route,
            inclusion_probability=context.inclusion_probability,
            reason=reason[:512],
            routing=context.routing,
            decided_at=now,
            prediction_created_at=context.prediction_created_at,
            provenance=LabelProvenance(
                model_name=context.model_name,
                model_version=context.model_version,
                model_label=context.model_label,
                model_confidence=context.model_confidence,
                n_answers=len(voters),
                pool=voters[0].pool,
                worker_ids=[vote.worker_id for vote in voters][:100],
            ),
        )
        state = state.model_copy(
            update={"decided": label, "revision": previous + 1, "source": source, "confidence": confidence}
        )
        return state, Outcome(labels=(decided,))
