"""The demo's summary: figures from what the view saw, shown as tables a person reads."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from types import SimpleNamespace

from rich.console import Console

from agents.simulation.demo.render import print_summary
from agents.simulation.demo.summary import summarize
from agents.simulation.demo.view import LoopView, observe
from agents.simulation.stream import SimulatedEvent, StreamSettings
from streams.settings import Settings
from streams.topics import topic_names
from tests.factories import human_label, prediction


def _run() -> tuple[LoopView, list[SimulatedEvent]]:
    stream = [SimulatedEvent(i, prediction(f"e-{i}"), "fraud" if i % 2 else "ok") for i in range(4)]
    names = topic_names(Settings())
    view = LoopView()
    records = [
        human_label("accepted", event_id="e-0", source="model", human_label="ok"),
        human_label("low_confidence", event_id="e-1"),
        human_label("control", event_id="e-2", human_label="fraud"),
        human_label("low_confidence", event_id="e-3", source="expert", revision=2),
    ]
    for label in records:
        observe(view, names, SimpleNamespace(topic=names.labels, value=label.to_json_bytes(), headers=None))
    observe(
        view,
        names,
        SimpleNamespace(topic=names.dlq, value=b"x", headers=[("labelloop.error.kind", b"contract")]),
    )
    return view, stream


def test_the_summary_counts_labels_routes_and_dead_letters() -> None:
    view, stream = _run()
    summary = summarize(view, stream, StreamSettings(events=4), sent_poison=1, elapsed_s=3.25)
    assert summary["labeled"] == 4
    assert summary["routes"] == {"accepted": 1, "low_confidence": 1, "control": 1}  # first revisions
    assert summary["dlq_by_kind"] == {"contract": 1}
    assert summary["label_accuracy"] == 0.75  # e-2 says fraud, its truth is ok
    assert summary["ok"] is True


def test_the_summary_is_printed_as_tables_not_as_python_literals(tmp_path: Path) -> None:
    view, stream = _run()
    summary = summarize(view, stream, StreamSettings(events=4), sent_poison=1, elapsed_s=3.25)
    summary["labelers_flagged"] = ["simulated-w10", "simulated-w3"]
    summary["dlq_by_kind"] = dict(Counter({"contract": 3, "json": 1}))
    console = Console(record=True, width=120)
    print_summary(console, summary, tmp_path)
    text = console.export_text()
    assert "{" not in text
    assert "['" not in text
    assert "simulated-w10, simulated-w3" in text
    assert "first labels by route" in text
    assert "dead letters by kind" in text
    assert "reviewed share" in text
    assert "75.0 %" in text  # three of four labels came from humans
