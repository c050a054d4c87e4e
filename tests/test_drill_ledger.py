"""The drill's ledger: what counts as lost and what as doubled, per event_id (no Kafka)."""

from __future__ import annotations

import hashlib

from bench.drill_ledger import FaultCounts, Ledger, goal, table


def _ledger(events: int = 3) -> Ledger:
    ledger = Ledger("drill")
    for n in range(events):
        ledger.sent_event(f"e{n}")
    return ledger


def test_every_event_labeled_once_holds() -> None:
    ledger = _ledger()
    for n in range(3):
        ledger.saw_label(f"e{n}", 1, (n % 2, n))
    ledger.saw_label("e0", 2, (0, 10))  # an audit's revision: not a duplicate
    counts = ledger.counts()
    assert (counts.events_in, counts.labels_out, counts.duplicates, counts.losses) == (3, 3, 0, 0)
    assert counts.holds


def test_a_record_read_again_counts_once_but_a_second_record_is_a_duplicate() -> None:
    ledger = _ledger(1)
    ledger.saw_label("e0", 1, (0, 5))
    ledger.saw_label("e0", 1, (0, 5))
    assert ledger.counts().duplicates == 0
    ledger.saw_label("e0", 1, (0, 9))
    ledger.saw_label("e0", 2, (0, 11))
    ledger.saw_label("e0", 2, (0, 12))
    counts = ledger.counts()
    assert counts.duplicates == 2
    assert counts.examples == ("doubled e0 revision 1", "doubled e0 revision 2")


def test_an_event_without_a_revision_one_label_is_lost() -> None:
    ledger = _ledger(2)
    ledger.saw_label("e0", 1, (0, 0))
    ledger.saw_label("e1", 2, (0, 1))  # a later revision does not stand in for the first
    counts = ledger.counts()
    assert (counts.labels_out, counts.losses) == (1, 1)
    assert counts.examples == ("lost e1",)


def test_labels_for_unknown_events_and_from_forged_answers_are_duplicates() -> None:
    ledger = _ledger(1)
    ledger.saw_label("e0", 1, (0, 0))
    ledger.saw_label("ghost", 1, (0, 1))
    ledger.saw_label("e0", 2, (0, 2), foreign=True)
    counts = ledger.counts()
    assert counts.duplicates == 2
    assert set(counts.examples) == {"label for unknown ghost", "label from a forged answer: e0"}


def test_poison_must_reach_the_dlq_exactly_once() -> None:
    ledger = _ledger(0)
    ledger.sent_poison("json_array", b"k1", b"[1]")
    ledger.sent_poison("null_key", None, b"{}")
    ledger.sent_poison("ten_mb", b"k3", b"x" * 2_000)
    ledger.saw_dlq(b"k1", b"[1]", (0, 0))
    ledger.saw_dlq(b"k1", b"[1]", (1, 0))  # dead-lettered twice
    # The DLQ kept a prefix of the big one, with the original's digest in a header.
    ledger.saw_dlq(b"k3", b"x" * 100, (2, 0), digest=hashlib.sha256(b"x" * 2_000).hexdigest())
    ledger.saw_dlq(b"stray", b"valid event", (3, 0))
    counts = ledger.counts()
    assert counts.dlq == 4
    assert counts.losses == 1  # the null-key record never arrived
    assert counts.duplicates == 2  # json_array twice, and a record nobody sent as poison
    assert "poison null_key not in the DLQ" in counts.examples


def test_the_goal_fails_on_any_loss_or_duplicate_and_on_no_rows() -> None:
    good = FaultCounts("sigkill", 100, 100, 0, 0, 0)
    bad = FaultCounts("poison", 100, 99, 5, 1, 1)
    assert goal([good]).holds
    assert not goal([good, bad]).holds
    assert not goal([]).holds
    assert goal([good, bad]).line() == (
        "goal D1: 1 lost, 1 doubled over 200 events in 2 fault classes (goal: 0 and 0) FAILS"
    )
    assert table([good, bad]).splitlines()[2].split() == ["poison", "100", "99", "5", "1", "1"]
