"""The fault drill's accounting: what went in, what came out, per event_id; no Kafka, no clock.

The drill tells the ledger every record it published (valid events, events
sent twice on purpose, poison records) and every record it read back from
``labels`` and the DLQ, each with its place (partition, offset) so a record
read twice by a reader that reconnected counts once. The ledger then says,
for one fault class:

- **events in**: distinct valid event ids published;
- **labels out**: of those, how many have a revision-1 Label;
- **DLQ**: records in the DLQ; every poison record must be there once;
- **duplicates**: revision-1 Labels beyond the first per event, any
  (event, revision) published twice, poison dead-lettered twice, labels or
  DLQ records the drill never sent (a label for an unknown event, a valid
  event in the DLQ), and labels that counted an answer the drill forged (an
  answer for an unknown or an already closed task);
- **losses**: valid events without a revision-1 Label, and poison records
  missing from the DLQ.

A poison record is recognised in the DLQ by its key and the sha256 of its
value (the DLQ keeps the original key; a value too large for the DLQ is
replaced by a prefix and its digest in a header, see ``streams/runtime.py``).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field

from bench.harness import Goal

#: A record's place on its topic: (partition, offset).
Place = tuple[int, int]


def fingerprint(key: bytes | None, value: bytes | None) -> tuple[bytes | None, str]:
    """How a poison record is matched in the DLQ: its key and the sha256 of its value.

    >>> fingerprint(b"k", b"v")[1][:12]
    '4c94485e0c21'
    """
    return key, hashlib.sha256(value or b"").hexdigest()


@dataclass(frozen=True)
class FaultCounts:
    """The drill's row for one fault class."""

    fault: str
    events_in: int
    labels_out: int
    dlq: int
    duplicates: int
    losses: int
    #: The first few event ids (or poison kinds) behind losses and duplicates, for the report.
    examples: tuple[str, ...] = ()

    @property
    def holds(self) -> bool:
        """Nothing lost and nothing doubled."""
        return self.losses == 0 and self.duplicates == 0


@dataclass
class Ledger:
    """Counts for one fault class, fed by the drill as it publishes and reads.

    Examples
    --------
    >>> ledger = Ledger("sigkill")
    >>> for event_id in ("e1", "e2", "e3"):
    ...     ledger.sent_event(event_id)
    >>> ledger.sent_event("e1")  # published twice on purpose: still one event
    >>> ledger.sent_poison("json_array", b"p1", b"[1]")
    >>> ledger.saw_label("e1", 1, (0, 0))
    >>> ledger.saw_label("e1", 1, (0, 0))  # the same record read again: not a duplicate
    >>> ledger.saw_label("e2", 1, (1, 0))
    >>> ledger.saw_label("e2", 1, (1, 5))  # a second revision-1 label: a duplicate
    >>> ledger.saw_dlq(b"p1", b"[1]", (0, 0))
    >>> counts = ledger.counts()
    >>> counts.events_in, counts.labels_out, counts.dlq, counts.duplicates, counts.losses
    (3, 2, 1, 1, 1)
    >>> counts.examples
    ('lost e3', 'doubled e2 revision 1')
    """

    fault: str
    events: set[str] = field(default_factory=set)
    poison: dict[tuple[bytes | None, str], str] = field(default_factory=dict)
    _labels: dict[Place, tuple[str, int]] = field(default_factory=dict)
    #: Labels whose provenance names an answer the drill forged (a stray answer that took effect).
    _foreign: set[Place] = field(default_factory=set)
    _human: dict[str, None] = field(default_factory=dict)
    _dlq: dict[Place, tuple[bytes | None, str]] = field(default_factory=dict)

    def sent_event(self, event_id: str) -> None:
        """A valid event was published (again: sending one twice is part of some drills)."""
        self.events.add(event_id)

    def sent_poison(self, kind: str, key: bytes | None, value: bytes | None) -> None:
        """A record that must end in the DLQ was published."""
        self.poison[fingerprint(key, value)] = kind

    def saw_label(
        self, event_id: str, revision: int, place: Place, *, foreign: bool = False, human: bool = False
    ) -> None:
        """A Label record read from ``labels`` at ``place``.

        ``foreign``: it counts an answer the drill forged (it must not); ``human``: a person decided it.
        """
        self._labels[place] = (event_id, revision)
        if foreign:
            self._foreign.add(place)
        if human:
            self._human[event_id] = None

    def human_labeled(self) -> list[str]:
        """Events decided by people so far, in the order their labels were read (closed tasks)."""
        return list(self._human)

    def saw_dlq(
        self, key: bytes | None, value: bytes | None, place: Place, digest: str | None = None
    ) -> None:
        """A DLQ record at ``place``; ``digest`` is the original's sha256 when the DLQ kept a prefix."""
        self._dlq[place] = (key, digest or fingerprint(key, value)[1])

    def counts(self) -> FaultCounts:
        """The row: events in, labels out, DLQ records, duplicates, losses."""
        problems: list[str] = []
        revisions = Counter(self._labels.values())
        first = {event_id for event_id, revision in revisions if revision == 1}
        lost = sorted(self.events - first)
        problems += [f"lost {event_id}" for event_id in lost]
        doubled = sorted(place for place, seen in revisions.items() if seen > 1)
        problems += [f"doubled {event_id} revision {revision}" for event_id, revision in doubled]
        unknown = sorted({event_id for event_id, _ in revisions} - self.events)
        problems += [f"label for unknown {event_id}" for event_id in unknown]
        problems += [
            f"label from a forged answer: {self._labels[place][0]}" for place in sorted(self._foreign)
        ]
        in_dlq = Counter(self._dlq.values())
        poison_lost = [kind for print_, kind in self.poison.items() if print_ not in in_dlq]
        problems += [f"poison {kind} not in the DLQ" for kind in sorted(poison_lost)]
        poison_doubled = [self.poison[p] for p, seen in in_dlq.items() if p in self.poison and seen > 1]
        problems += [f"poison {kind} dead-lettered twice" for kind in sorted(poison_doubled)]
        stray = [p for p in in_dlq if p not in self.poison]
        problems += [f"unexpected DLQ record key {key!r}" for key, _ in stray]
        duplicates = (
            sum(seen - 1 for seen in revisions.values())
            + len(unknown)
            + len(self._foreign)
            + sum(in_dlq[p] - 1 for p in in_dlq if p in self.poison)
            + sum(in_dlq[p] for p in stray)
        )
        return FaultCounts(
            fault=self.fault,
            events_in=len(self.events),
            labels_out=len(first & self.events),
            dlq=len(self._dlq),
            duplicates=duplicates,
            losses=len(lost) + len(poison_lost),
            examples=tuple(problems[:5]),
        )


def goal(rows: list[FaultCounts]) -> Goal:
    """The D1 goal over every fault class of a drill.

    >>> row = FaultCounts("poison", events_in=20_000, labels_out=20_000, dlq=40, duplicates=0, losses=0)
    >>> goal([row]).line()
    'goal D1: 0 lost, 0 doubled over 20000 events in 1 fault classes (goal: 0 and 0) holds'
    """
    lost = sum(row.losses for row in rows)
    doubled = sum(row.duplicates for row in rows)
    events = sum(row.events_in for row in rows)
    return Goal(
        "D1",
        f"{lost} lost, {doubled} doubled over {events} events in {len(rows)} fault classes",
        "0 and 0",
        holds=bool(rows) and lost == 0 and doubled == 0,
    )


def table(rows: list[FaultCounts]) -> str:
    """The fault table, one row per fault class.

    >>> print(table([FaultCounts("sigkill", 100, 100, 0, 0, 0)]))
    fault class              events in  labels out     DLQ  duplicates  losses
    sigkill                        100         100       0           0       0
    """
    header = ("fault class", "events in", "labels out", "DLQ", "duplicates", "losses")
    lines = [f"{header[0]:<22} {header[1]:>11} {header[2]:>11} {header[3]:>7} {header[4]:>11} {header[5]:>7}"]
    for row in rows:
        lines.append(
            f"{row.fault:<22} {row.events_in:>11} {row.labels_out:>11} {row.dlq:>7} "
            f"{row.duplicates:>11} {row.losses:>7}"
        )
    return "\n".join(lines)
