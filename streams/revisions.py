"""Which record of an event is the truth: one rule for the SDK, the snapshots and the demo.

``labels`` is compacted and keyed by event_id: the latest revision of an event is its trusted
label. Two records of one revision (a retry that wrote twice, two writers racing) are ordered
by their decision time, then by their wire bytes, so the winner never depends on the order
records are read in: a consumer (:func:`streams.sdk.latest_labels`) and a snapshot
(:func:`streams.snapshot.latest_revisions`) agree on every event.
"""

from __future__ import annotations

from collections.abc import Iterable

from schemas import Label

__all__ = ["latest_labels", "supersedes"]


def supersedes(candidate: Label, current: Label) -> bool:
    """Whether ``candidate`` is the truth over ``current`` (two records of one event).

    The higher revision wins; then the later decision; then the greater wire bytes (computed
    only for a full tie).

    >>> from schemas.examples import human_label
    >>> supersedes(human_label(revision=2), human_label(revision=1))
    True
    >>> first, again = human_label(human_label="ok"), human_label(human_label="fraud")
    >>> supersedes(first, again) != supersedes(again, first)   # a tie: the same winner either way
    True
    """
    if candidate.revision != current.revision:
        return candidate.revision > current.revision
    if candidate.decided_at != current.decided_at:
        return candidate.decided_at > current.decided_at
    return candidate.to_json_bytes() > current.to_json_bytes()


def latest_labels(labels: Iterable[Label]) -> dict[str, Label]:
    """The trusted label per event (:func:`supersedes`), whatever order ``labels`` come in.

    >>> from schemas.examples import human_label
    >>> latest = latest_labels([human_label(event_id="a", revision=2), human_label(event_id="a")])
    >>> latest["a"].revision
    2
    """
    latest: dict[str, Label] = {}
    for label in labels:
        current = latest.get(label.event_id)
        if current is None or supersedes(label, current):
            latest[label.event_id] = label
    return latest
