"""The response policy: what the loop does about a drift alert, and when it stops doing it.

On an alert of a signal it reacts to, it raises the control-group share
(more unbiased labels, so the precision estimate and the online model catch up
sooner) and tightens auto-accept (more events reviewed) for a window, and it
notifies operators. Every reaction is a :class:`schemas.PolicyCommand` that
goes through ``commands`` like an operator's, so the router applies it and
publishes the policy in force; when the signal has settled (no alert of a
reacting signal for ``settle_s``, and at least ``window_s`` after the
reaction) a second command reverts it. The core is pure: alerts, policy
statuses and times in, reactions out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field

from schemas import DriftAlert, DriftSignal, PolicyCommand, PolicyStatus

ReactionKind = Literal["raise", "extend", "revert", "notify"]
ISSUER = "monitor"
#: How a raise's and a revert's reasons begin: the router publishes them on ``policy-status``,
#: where a restarted worker (or another worker) learns that a reaction is in force, or is over.
RAISED = "drift response to "
EXTENDED = "drift response extended"
SETTLED = "drift response settled"


class ResponseSettings(BaseModel):
    """How the loop reacts to drift (``LABELLOOP_MONITOR__RESPONSE__*``)."""

    model_config = ConfigDict(frozen=True)

    #: Off: alerts are published and nothing else happens.
    enabled: bool = True
    #: Signals whose alerts change the policy; other signals' alerts only notify operators. The
    #: queue rate is not among them by default: more control labels in a surge add to the load.
    #: A model-error alert reacts only when the error rose (over all labels or within one
    #: predicted class: a class-conditional alert reacts like any other model-error alert).
    react_to: tuple[DriftSignal, ...] = ("model_error", "confidence", "class_mix")
    #: The control-group share while reacting (never lowered: the larger of this and the policy's).
    control_share: float = Field(default=0.2, ge=0.0, le=1.0)
    #: Added to the accept threshold (and to every per-class threshold) while reacting.
    tighten_by: float = Field(default=0.05, ge=0.0, le=0.5)
    max_threshold: float = Field(default=0.99, gt=0.0, le=1.0)
    #: The reaction lasts at least this long ...
    window_s: float = Field(default=600.0, ge=0.0)
    #: ... and until no alert of a reacting signal came for this long.
    settle_s: float = Field(default=300.0, ge=0.0)
    #: Operators are told every reaction (and every alert that only notifies) in the worker log;
    #: with a URL each is also POSTed there as JSON (a chat or paging webhook).
    notify_url: AnyHttpUrl | None = None
    notify_timeout_s: float = Field(default=5.0, gt=0.0, le=60.0)


@dataclass(frozen=True, slots=True)
class Reaction:
    """What the policy does about an alert or a tick: a command to publish (or none) and a notice."""

    kind: ReactionKind
    notice: str
    command: PolicyCommand | None = None


@dataclass(slots=True)
class _Active:
    """A reaction in force: what it changed from and to, and when the signal last moved."""

    task: str
    started: datetime
    last_alert: datetime
    alerts: int
    baseline: PolicyStatus
    control_share: float
    accept_threshold: float
    per_class_thresholds: dict[str, float]


def _what(alert: DriftAlert) -> str:
    """The alert's signal, and the predicted class it concerns if any (for reasons and notices)."""
    if alert.predicted_class is None:
        return alert.signal
    return f"{alert.signal} of predicted {alert.predicted_class!r}"


def _holds(value: float, *known: float) -> bool:
    """Whether ``value`` is one of ``known`` (with a tolerance: thresholds travel through JSON)."""
    return any(abs(value - one) < 1e-9 for one in known)


class ResponsePolicy:
    """React to drift alerts with a temporary policy change, and revert it when the signal settles.

    Parameters
    ----------
    settings
        What to change and for how long.
    policy
        The routing policy in force (what a reaction starts from and reverts to);
        keep it current with :meth:`observe_policy`.

    Examples
    --------
    >>> from datetime import UTC, datetime, timedelta
    >>> t0 = datetime(2026, 1, 1, tzinfo=UTC)
    >>> policy = PolicyStatus(version=1, measure="max_probability", accept_threshold=0.8,
    ...                       control_share=0.05, audit_rate=0.02, target_backlog=200,
    ...                       updated_at=t0, reason="start")
    >>> response = ResponsePolicy(ResponseSettings(window_s=60, settle_s=30), policy)
    >>> alert = DriftAlert(detector="kswin-confidence-default", detector_kind="KSWIN",
    ...                    signal="confidence", observation=900, detected_at=t0,
    ...                    before=0.93, after=0.81, message="confidence fell")
    >>> raised = response.observe(alert, t0)
    >>> raised.kind, raised.command.control_share, raised.command.accept_threshold
    ('raise', 0.2, 0.85)
    >>> response.tick(t0 + timedelta(seconds=59)) is None
    True
    >>> reverted = response.tick(t0 + timedelta(seconds=61))
    >>> reverted.kind, reverted.command.control_share, reverted.command.accept_threshold
    ('revert', 0.05, 0.8)
    """

    def __init__(self, settings: ResponseSettings, policy: PolicyStatus) -> None:
        self.settings = settings
        self.policy = policy
        self.active: _Active | None = None

    def observe_policy(self, status: PolicyStatus) -> None:
        """The router published the policy in force (after any command: ours, an operator's, the tuner's).

        A reaction this policy did not start (raised before a restart, or by
        another worker) is adopted, with the policy before it as its baseline,
        so it still reverts; an extension published by anyone pushes its end
        here too, and a revert published by anyone ends it.
        """
        if self.active is not None and status.reason.startswith(EXTENDED):
            self.active.last_alert = max(self.active.last_alert, status.updated_at)
        elif self.active is None and status.reason.startswith((RAISED, EXTENDED)):
            self.active = _Active(
                status.task,
                status.updated_at,
                status.updated_at,
                1,
                self.policy,
                status.control_share,
                status.accept_threshold,
                dict(status.per_class_thresholds),
            )
        elif self.active is not None and status.reason.startswith(SETTLED):
            self.active = None
        self.policy = status

    def reacts_to(self, alert: DriftAlert) -> bool:
        """Whether ``alert`` changes the policy (rather than only notifying)."""
        if not self.settings.enabled or alert.signal not in self.settings.react_to:
            return False
        # Less error is good news (and a tightened policy itself lowers the reviewed error).
        return alert.signal != "model_error" or alert.after > alert.before

    def observe(self, alert: DriftAlert, now: datetime) -> Reaction | None:
        """React to ``alert``: raise (a new reaction), extend (one is in force) or only notify."""
        if not self.settings.enabled:
            return None
        if not self.reacts_to(alert):
            return Reaction("notify", f"drift on {_what(alert)} ({alert.detector}): {alert.message}")
        active = self.active
        if active is not None:
            active.last_alert = now
            active.alerts += 1
            until = self.settles_at().isoformat(timespec="seconds")
            # A command that changes nothing: on policy-status it tells every worker the end moved.
            extension = PolicyCommand(
                task=alert.task,
                issued_by=ISSUER,
                issued_at=now,
                reason=f"{EXTENDED} by {alert.detector} ({_what(alert)} {alert.before:.3f} -> "
                f"{alert.after:.3f}) until at least {until}"[:512],
            )
            return Reaction(
                "extend",
                f"drift on {_what(alert)} ({alert.detector}) while reacting: {alert.message}; "
                f"the reaction lasts until {until}",
                extension,
            )
        policy, settings = self.policy, self.settings
        control_share = max(policy.control_share, settings.control_share)
        threshold = self._tightened(policy.accept_threshold)
        per_class = {label: self._tightened(value) for label, value in policy.per_class_thresholds.items()}
        self.active = _Active(alert.task, now, now, 1, policy, control_share, threshold, per_class)
        reason = (
            f"{RAISED}{alert.detector} ({_what(alert)} {alert.before:.3f} -> {alert.after:.3f}): "
            f"control share {policy.control_share:g} -> {control_share:g}, accept threshold "
            f"{policy.accept_threshold:g} -> {threshold:g} until the signal settles"
        )
        command = PolicyCommand(
            task=alert.task,
            control_share=control_share,
            accept_threshold=threshold,
            per_class_thresholds=per_class or None,
            issued_by=ISSUER,
            issued_at=now,
            reason=reason[:512],
        )
        return Reaction("raise", f"{reason}; {alert.message}"[:2_000], command)

    def _tightened(self, threshold: float) -> float:
        """``threshold`` raised by ``tighten_by`` up to ``max_threshold`` (never lowered)."""
        raised = round(min(threshold + self.settings.tighten_by, self.settings.max_threshold), 6)
        return max(raised, threshold)

    def settles_at(self) -> datetime:
        """When the reaction in force reverts if no more alerts come."""
        active = self.active
        if active is None:
            raise ValueError("no reaction in force")
        return max(
            active.started + timedelta(seconds=self.settings.window_s),
            active.last_alert + timedelta(seconds=self.settings.settle_s),
        )

    def tick(self, now: datetime) -> Reaction | None:
        """Revert the reaction in force once the signal has settled.

        A field is restored when it holds the reaction's value or already the
        baseline's; one an operator (or the tuner) changed meanwhile keeps their value.
        """
        active = self.active
        if not self.settings.enabled or active is None or now < self.settles_at():
            return None
        self.active = None
        policy, baseline = self.policy, active.baseline
        # A field keeps a third party's value (an operator's, the tuner's) set while we reacted.
        changes: dict[str, object] = {}
        if _holds(policy.control_share, active.control_share, baseline.control_share):
            changes["control_share"] = baseline.control_share
        if _holds(policy.accept_threshold, active.accept_threshold, baseline.accept_threshold):
            changes["accept_threshold"] = baseline.accept_threshold
        if active.per_class_thresholds and policy.per_class_thresholds in (
            active.per_class_thresholds,
            baseline.per_class_thresholds,
        ):
            changes["per_class_thresholds"] = baseline.per_class_thresholds
        lasted_s = (now - active.started).total_seconds()
        reason = (
            f"{SETTLED}: no alert for {(now - active.last_alert).total_seconds():.0f} s "
            f"({active.alerts} alerts in {lasted_s:.0f} s); back to control share "
            f"{baseline.control_share:g}, accept threshold {baseline.accept_threshold:g}"
        )
        if not changes:
            return Reaction("revert", f"{reason}: nothing to restore, the policy was changed meanwhile")
        command = PolicyCommand.model_validate(
            {"task": active.task, "issued_by": ISSUER, "issued_at": now, "reason": reason[:512], **changes}
        )
        return Reaction("revert", reason, command)
