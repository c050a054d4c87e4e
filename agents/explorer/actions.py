"""The explorer's write side, pure: corrections, bulk labels and their undo, as new Label revisions.

Nothing here talks to Kafka or a database. An operator's action becomes
:class:`RevisionOrder` records (one per event), which :mod:`agents.explorer.revise`
publishes on ``labels`` through the worker's label ledger, and a bulk action is
remembered as :class:`BulkAction` parts on the action log (so its undo survives
a restart).

- A **correction** is the next revision of an event's latest Label: source
  ``expert``, confidence 1, ``revision = latest + 1``, ``supersedes = latest``,
  with the operator's name and reason in its provenance. Everything the loop's
  estimators need (route, inclusion probability, routing trace, the model's own
  label) is kept from the revision it supersedes, so a correction of a control
  or audit label replaces what that label counted instead of adding a sample.
- A **bulk label** is one correction per selected event, at most ``cap`` of
  them. Its orders are *conditional*: an event whose latest revision moved on
  since the preview is left alone (the operator labeled what they saw).
- An **undo** restores, for every event of a bulk action whose latest revision
  is still the action's, the label it had before, as a further revision
  (conditional too: whatever came after the action is kept).

Examples
--------
>>> from datetime import UTC, datetime
>>> from schemas import examples
>>> when = datetime(2026, 1, 2, tzinfo=UTC)
>>> crowd = examples.human_label("control", human_label="ok", inclusion_probability=0.2)
>>> fixed = correction(crowd, label="fraud", operator="ana", reason="chargeback filed", now=when)
>>> fixed.label, fixed.source, fixed.revision, fixed.supersedes, fixed.route, fixed.inclusion_probability
('fraud', 'expert', 2, 1, 'control', 0.2)
>>> fixed.provenance.operator, fixed.provenance.operator_reason
('ana', 'chargeback filed')
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from schemas import Label
from schemas.base import ClassLabel, Id, Reason, Timestamp, WireModel
from streams.errors import LabelloopError

#: An operator's name (as the operator API takes it: no spaces, at most 55 characters).
OperatorName = Annotated[str, StringConstraints(min_length=1, max_length=55, pattern=r"^[^\s\x00-\x1f]+$")]
#: Events per part of a bulk action on the action log: a part stays far below the 900 kB a record holds.
PART_SIZE = 250
#: The most events one bulk action may ever touch, whatever the setting (4 parts of the log... x 5).
MAX_BULK_CAP = 5_000


class ActionError(LabelloopError, ValueError):
    """An action that cannot be carried out as asked (the API answers 4xx with ``message``).

    In :mod:`streams.errors`' tree; also a ValueError, as it was before it joined the tree.

    >>> error = ActionError("nothing to undo", status=409)
    >>> (str(error), error.status, isinstance(error, ValueError))
    ('nothing to undo', 409, True)
    """

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class RevisionOrder(WireModel):
    """Publish ``label`` as the next revision of its event (internal topic ``explorer-revisions``).

    ``label.supersedes`` is the revision the operator saw as the latest. With
    ``if_latest`` the order is dropped unless that is still the latest revision
    on ``labels``; without it (a single correction) the label is renumbered on
    top of whatever is the latest by then.
    """

    SCHEMA_VERSION = 1
    schema_version: Literal[1] = 1
    label: Label
    if_latest: bool = False
    kind: Literal["correction", "bulk", "undo"] = "correction"

    @property
    def event_id(self) -> str:
        return self.label.event_id


#: Orders per record on ``explorer-revisions`` (a record stays far below the 900 kB one may hold).
ORDERS_PER_RECORD = 200


class RevisionOrders(WireModel):
    """Orders for events of one partition: one record on ``explorer-revisions``.

    The record goes to that partition (keyed by its first event), so its owner
    publishes all of them; one record per partition and chunk costs faust's
    per-record delivery once per 200 revisions instead of once per revision.
    """

    SCHEMA_VERSION = 1
    schema_version: Literal[1] = 1
    orders: list[RevisionOrder] = Field(min_length=1, max_length=ORDERS_PER_RECORD)

    @property
    def event_id(self) -> str:
        return self.orders[0].event_id


class PriorLabel(BaseModel):
    """What an event's label was before a bulk action, and the revision the action gave it."""

    model_config = ConfigDict(frozen=True)

    event_id: Id
    #: The revision the action published (``prior revision + 1``).
    revision: int = Field(ge=2)
    label: ClassLabel
    source: Literal["model", "crowd", "expert"]
    confidence: float = Field(ge=0.0, le=1.0)
    reason: Reason | None = None


class BulkAction(WireModel):
    """One part of a bulk action on the action log (compacted topic ``explorer-actions``).

    Keyed by ``<action_id>/<part>``; ``parts`` says how many there are. An undo
    writes the same keys again with ``undone_at`` set, so undoing twice does nothing.
    """

    SCHEMA_VERSION = 1
    schema_version: Literal[1] = 1
    action_id: Id
    part: int = Field(ge=0)
    parts: int = Field(ge=1)
    operator: OperatorName
    reason: Reason
    label: ClassLabel
    created_at: Timestamp
    events: list[PriorLabel] = Field(max_length=PART_SIZE)
    undone_at: Timestamp | None = None
    undone_by: OperatorName | None = None

    @property
    def key(self) -> str:
        return f"{self.action_id}/{self.part}"


def correction(
    latest: Label,
    *,
    label: str,
    operator: str,
    reason: str,
    now: datetime,
    action_id: str | None = None,
) -> Label:
    """The revision that sets ``latest``'s event to ``label``, by ``operator`` for ``reason``."""
    return latest.model_copy(
        update={
            "label": label,
            "source": "expert",
            "revision": latest.revision + 1,
            "supersedes": latest.revision,
            "confidence": 1.0,
            "reason": _why(f"corrected by {operator}", reason, latest.label),
            "decided_at": now,
            "provenance": latest.provenance.model_copy(
                update={"operator": operator, "operator_reason": reason, "action_id": action_id}
            ),
        }
    )


def restoration(current: Label, prior: PriorLabel, *, operator: str, action_id: str, now: datetime) -> Label:
    """The revision after ``current`` (a bulk action's) that gives its event back ``prior``'s label."""
    return current.model_copy(
        update={
            "label": prior.label,
            "source": prior.source,
            "revision": current.revision + 1,
            "supersedes": current.revision,
            "confidence": prior.confidence,
            "reason": _why(f"undo of {action_id} by {operator}", f"restores revision {prior.revision - 1}"),
            "decided_at": now,
            "provenance": current.provenance.model_copy(
                update={
                    "operator": operator,
                    "operator_reason": f"undo of bulk action {action_id}",
                    "action_id": action_id,
                }
            ),
        }
    )


def _why(who: str, reason: str, was: str | None = None) -> str:
    text = f"{who}: {reason}" + ("" if was is None else f" (was {was!r})")
    return text[:512]


@dataclass(frozen=True)
class BulkPlan:
    """What a bulk label would do: the orders (one per event whose label changes), and what was left out."""

    action_id: str
    orders: tuple[RevisionOrder, ...]
    #: Selected events that already carry the label (nothing to change).
    unchanged: int
    #: Whether the selection hit the cap (more events matched than one action may touch).
    capped: bool

    @property
    def count(self) -> int:
        return len(self.orders)


def new_action_id(now: datetime, seed: str | None = None) -> str:
    """An id for a bulk action: sortable by time, unique (``seed`` makes it deterministic in tests)."""
    unique = uuid.uuid5(uuid.NAMESPACE_URL, seed).hex[:12] if seed is not None else uuid.uuid4().hex[:12]
    return f"bulk-{now.strftime('%Y%m%dT%H%M%S')}-{unique}"


def plan_bulk(
    selected: Sequence[Label],
    *,
    label: str,
    operator: str,
    reason: str,
    now: datetime,
    cap: int,
    action_id: str,
) -> BulkPlan:
    """Plan ``label`` for every selected event (their latest Labels), at most ``cap`` of them.

    ``selected`` may hold one more than ``cap`` (that is how the caller learns the
    selection was capped); duplicates of an event count once.

    >>> from datetime import UTC, datetime
    >>> from schemas import examples
    >>> when = datetime(2026, 1, 2, tzinfo=UTC)
    >>> picked = [examples.human_label(event_id=f"e{i}", human_label="ok" if i else "spam")
    ...           for i in range(4)]
    >>> plan = plan_bulk(picked, label="spam", operator="ana", reason="one outage", now=when, cap=3,
    ...                  action_id="bulk-1")
    >>> [order.event_id for order in plan.orders], plan.unchanged, plan.capped
    (['e1', 'e2'], 1, True)
    """
    if cap < 1 or cap > MAX_BULK_CAP:
        raise ActionError(f"the bulk cap must be in [1, {MAX_BULK_CAP}], got {cap}")
    seen: set[str] = set()
    orders: list[RevisionOrder] = []
    unchanged = 0
    capped = False
    for latest in selected:
        if latest.event_id in seen:
            continue
        if len(seen) >= cap:
            capped = True
            break
        seen.add(latest.event_id)
        if latest.label == label:
            unchanged += 1
            continue
        revised = correction(
            latest, label=label, operator=operator, reason=reason, now=now, action_id=action_id
        )
        orders.append(RevisionOrder(label=revised, if_latest=True, kind="bulk"))
    return BulkPlan(action_id, tuple(orders), unchanged, capped)


def action_parts(
    plan: BulkPlan, selected: Iterable[Label], *, operator: str, reason: str, label: str, now: datetime
) -> list[BulkAction]:
    """The action log records of ``plan``: each changed event's prior label, in parts of :data:`PART_SIZE`."""
    prior = {latest.event_id: latest for latest in selected}
    events = [
        PriorLabel(
            event_id=order.event_id,
            revision=order.label.revision,
            label=prior[order.event_id].label,
            source=prior[order.event_id].source,
            confidence=prior[order.event_id].confidence,
            reason=prior[order.event_id].reason,
        )
        for order in plan.orders
    ]
    chunks = [events[start : start + PART_SIZE] for start in range(0, len(events), PART_SIZE)] or [[]]
    return [
        BulkAction(
            action_id=plan.action_id,
            part=index,
            parts=len(chunks),
            operator=operator,
            reason=reason,
            label=label,
            created_at=now,
            events=chunk,
        )
        for index, chunk in enumerate(chunks)
    ]


def plan_undo(
    parts: Sequence[BulkAction],
    latest: Mapping[str, Label],
    *,
    operator: str,
    now: datetime,
) -> tuple[list[RevisionOrder], int]:
    """The orders that undo a bulk action, and how many of its events are left alone.

    ``latest`` is each event's latest Label as the index knows it now. Only an
    event whose latest revision is still the action's is restored; the orders
    are conditional on that, so the publisher checks again. While the index has
    not seen every revision of the action yet (:func:`not_yet_seen`), the undo
    is refused (409: try again): it cannot tell an event still to be restored
    from one that moved on, and an undo, once done, is done.

    >>> from datetime import UTC, datetime
    >>> from schemas import examples
    >>> when = datetime(2026, 1, 2, tzinfo=UTC)
    >>> picked = [examples.human_label(event_id=f"e{i}", human_label="ok") for i in range(2)]
    >>> plan = plan_bulk(picked, label="spam", operator="ana", reason="outage", now=when, cap=10,
    ...                  action_id="b-1")
    >>> parts = action_parts(plan, picked, operator="ana", reason="outage", label="spam", now=when)
    >>> now_latest = {order.event_id: order.label for order in plan.orders}
    >>> now_latest["e1"] = now_latest["e1"].model_copy(update={"revision": 3})  # e1 moved on since
    >>> orders, left = plan_undo(parts, now_latest, operator="bo", now=when)
    >>> [(o.event_id, o.label.label, o.label.revision, o.label.supersedes) for o in orders], left
    ([('e0', 'ok', 3, 2)], 1)
    """
    if not parts:
        raise ActionError("no such bulk action", status=404)
    if any(part.undone_at is not None for part in parts):
        raise ActionError(f"bulk action {parts[0].action_id} is undone already", status=409)
    if len({part.part for part in parts}) != parts[0].parts:
        raise ActionError(f"bulk action {parts[0].action_id} is incomplete on the action log", status=409)
    behind = not_yet_seen(parts, latest)
    if behind:
        raise ActionError(
            f"the index has not seen {len(behind)} revisions of bulk action {parts[0].action_id} yet"
            " (they are on their way): try the undo again in a moment",
            status=409,
        )
    orders: list[RevisionOrder] = []
    left = 0
    for part in sorted(parts, key=lambda found: found.part):
        for prior in part.events:
            current = latest.get(prior.event_id)
            if (
                current is None
                or current.revision != prior.revision
                or current.provenance.action_id != part.action_id
            ):
                left += 1
                continue
            restored = restoration(current, prior, operator=operator, action_id=part.action_id, now=now)
            orders.append(RevisionOrder(label=restored, if_latest=True, kind="undo"))
    return orders, left


def not_yet_seen(parts: Sequence[BulkAction], latest: Mapping[str, Label]) -> list[str]:
    """The events of a bulk action whose known latest revision is older than the action's."""
    return [
        prior.event_id
        for part in parts
        for prior in part.events
        if (current := latest.get(prior.event_id)) is None or current.revision < prior.revision
    ]


def undone(parts: Sequence[BulkAction], *, operator: str, now: datetime) -> list[BulkAction]:
    """The action log records that mark ``parts`` undone."""
    return [part.model_copy(update={"undone_at": now, "undone_by": operator}) for part in parts]


def publishable(order: RevisionOrder, latest_revision: int) -> Label | None:
    """The Label to publish for ``order``, given the highest revision the ledger knows (0: none); or None.

    The one rule of the publisher (:mod:`agents.explorer.revise`). The ledger
    knows every revision after the first (audits, expert verdicts, heals and
    these orders all go through it); the router's revision 1 it may not know,
    which is why "still the latest" reads "nothing after the base": a
    conditional order is dropped once a later revision than its base exists; an
    unconditional one (a single correction) is then renumbered on top of it.

    >>> from schemas import examples
    >>> order = RevisionOrder(label=examples.human_label(revision=3), if_latest=True)
    >>> [None if (found := publishable(order, latest)) is None else found.revision for latest in (0, 2, 3)]
    [3, 3, None]
    >>> loose = RevisionOrder(label=examples.human_label(revision=3))
    >>> [(found.revision, found.supersedes) for latest in (2, 5) if (found := publishable(loose, latest))]
    [(3, 2), (6, 5)]
    """
    label = order.label
    base = label.supersedes or 0
    if latest_revision <= base:
        return label
    if order.if_latest:
        return None
    return label.model_copy(update={"revision": latest_revision + 1, "supersedes": latest_revision})


class ActionBody(BaseModel):
    """The JSON body of a correction or a bulk request (shared by the API and the CLI)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    operator: OperatorName = "api"
    reason: Reason = "via the record explorer"
