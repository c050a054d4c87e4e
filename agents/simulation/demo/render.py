"""What the demo shows a person: the live table while it runs, and the summary's tables at the end."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table

from agents.simulation.demo.summary import estimate_text
from agents.simulation.demo.view import LoopView


def live_table(view: LoopView, published: int, total: int, started: float) -> Group:
    """The live view: what was published, labeled, waiting, estimated and detected so far."""
    with view.lock:
        labels = list(view.labels.values())
        crowd = [status for status in view.pools.values() if status.tier == "crowd"]
        experts = [status for status in view.pools.values() if status.tier == "expert"]
        flagged = sum(skill.flagged_spammer for skill in view.skills.values())
        pool, expert_pool, metrics, alerts, dlq = (
            crowd[0] if crowd else None,
            experts[0] if experts else None,
            dict(view.metrics),
            list(view.alerts),
            sum(view.dlq_kinds.values()),
        )
        policy = view.policies[-1] if view.policies else None
    by_source = Counter(label.source for label in labels)
    table = Table(title=f"Labelloop demo: {time.monotonic() - started:.0f}s", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    table.add_row("predictions published", f"{published} / {total}")
    revised = sum(label.revision > (2 if label.route == "audit" else 1) for label in labels)
    table.add_row(
        "trusted labels",
        f"{len(labels)} (model {by_source['model']}, crowd {by_source['crowd']}, "
        f"expert {by_source['expert']}; {revised} revised by experts or healing)",
    )
    if pool is not None:
        table.add_row("crowd backlog", f"{pool.backlog} waiting, {pool.in_progress} in progress")
        table.add_row(
            "queue rate vs capacity",
            f"{pool.arrival_rate_per_min:.0f}/min vs {pool.event_capacity_per_min:.0f}/min "
            f"({pool.workers} workers, overlap {pool.overlap})",
        )
    if expert_pool is not None:
        table.add_row(
            "expert page",
            f"{expert_pool.backlog} waiting, {expert_pool.workers} experts active, "
            f"{expert_pool.answers_total} answers",
        )
    table.add_row("labelers flagged unreliable", str(flagged))
    production = metrics.get("production")
    if production is not None and "auto_accept_precision" in production.metrics:
        table.add_row(
            "auto-accept precision (control group)",
            estimate_text(production.metrics["auto_accept_precision"]),
        )
    if "online" in metrics:
        accuracy = metrics["online"].metrics.get("rolling_accuracy")
        if accuracy is not None:
            table.add_row("online model accuracy (rolling)", f"{accuracy.value:.3f} over {accuracy.n}")
    table.add_row("drift alerts", "; ".join(alert.message for alert in alerts[-2:]) or "none")
    if policy is not None:
        table.add_row(
            "routing policy",
            f"v{policy.version}: accept >= {policy.accept_threshold:g}, control share "
            f"{policy.control_share:g} ({policy.reason})",
        )
    table.add_row("DLQ records", str(dlq))
    return Group(table)


#: The summary's single figures, by section, in the order a reader asks for them.
SUMMARY_SECTIONS: dict[str, tuple[str, ...]] = {
    "the run": ("events", "labeled", "malformed_sent", "dlq_records", "elapsed_s"),
    "routing": (
        "accepted_share",
        "reviewed_share",
        "shed_by_capacity",
        "audits",
        "audit_corrections",
        "escalated",
        "expert_labels",
        "revised_by_experts_or_healing",
        "re_aggregated",
    ),
    "estimates against the truth": ("auto_accept_precision_estimate", "auto_accept_precision_true"),
    "label accuracy": (
        "label_accuracy",
        "accepted_accuracy",
        "crowd_accuracy",
        "human_first_revision_accuracy",
        "production_model_accuracy",
    ),
    "online model (prequential)": (
        "online_model_accuracy",
        "online_model_rolling_accuracy",
        "online_model_macro_f1",
        "online_model_log_loss",
    ),
    "labelers and drift": ("labelers_flagged", "drift_injected_at_event"),
}

_SHARES = {"accepted_share", "reviewed_share"}


def figure_text(name: str, value: Any) -> str:
    """One summary figure as a person reads it: shares in per cent, lists as names, none as a dash.

    >>> figure_text("accepted_share", 0.7068)
    '70.7 %'
    >>> figure_text("label_accuracy", 0.95123)
    '0.951'
    >>> figure_text("labelers_flagged", ["simulated-w10", "simulated-w3"])
    'simulated-w10, simulated-w3'
    >>> figure_text("labelers_flagged", []), figure_text("crowd_accuracy", None)
    ('none', '-')
    >>> figure_text("elapsed_s", 181.4), figure_text("events", 4000)
    ('181.4 s', '4,000')
    """
    if value is None:
        return "-"
    if isinstance(value, list):
        return ", ".join(str(item) for item in value) or "none"
    if isinstance(value, bool | str):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if name in _SHARES:
        return f"{value * 100:.1f} %"
    if name.endswith("_s"):
        return f"{value:.1f} s"
    return f"{value:.3f}"


def _count_table(title: str, what: str, counts: dict[str, int]) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column(what)
    table.add_column("records", justify="right")
    for name, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        table.add_row(name, f"{count:,}")
    return table


def summary_tables(summary: dict[str, Any]) -> list[Table]:
    """The summary as tables: the figures by section, then each breakdown a table of its own."""
    figures = Table(title="figures", title_justify="left", show_header=False)
    figures.add_column("figure", style="bold")
    figures.add_column("value", justify="right")
    for section, names in SUMMARY_SECTIONS.items():
        figures.add_row(f"[dim]{section}[/]", "")
        for name in names:
            label = name.removesuffix("_s").replace("_", " ")
            figures.add_row(f"  {label}", figure_text(name, summary.get(name)))
    tables = [figures]
    if summary.get("routes"):
        tables.append(_count_table("first labels by route", "route", summary["routes"]))
    if summary.get("recall_estimates"):
        recall = Table(title="recall (audit estimate)", title_justify="left")
        recall.add_column("class")
        recall.add_column("estimate, interval (n)", justify="right")
        for name, text in sorted(summary["recall_estimates"].items()):
            recall.add_row(name.removeprefix("recall."), text)
        tables.append(recall)
    if summary.get("dlq_by_kind"):
        tables.append(_count_table("dead letters by kind", "kind", summary["dlq_by_kind"]))
    drift = Table(title="drift alerts", title_justify="left")
    drift.add_column("alert")
    drift.add_column("around event", justify="right")
    for alert in summary.get("drift_alerts", []):
        drift.add_row(alert["message"], figure_text("after_event", alert["after_event"]))
    if not summary.get("drift_alerts"):
        drift.add_row("none", "-")
    tables.append(drift)
    if summary.get("policy_changes"):
        policies = Table(title="routing policy changes", title_justify="left")
        policies.add_column("version", justify="right")
        policies.add_column("accept at or above", justify="right")
        policies.add_column("control share", justify="right")
        policies.add_column("why")
        for policy in summary["policy_changes"]:
            policies.add_row(
                f"v{policy['version']}",
                f"{policy['accept_threshold']:g}",
                f"{policy['control_share']:g}",
                policy["reason"],
            )
        tables.append(policies)
    return tables


def print_summary(console: Console, summary: dict[str, Any], home: Path) -> None:
    """The summary's tables in a panel (green when every event got its label), and where the files are."""
    console.print(
        Panel(
            Group(*summary_tables(summary)),
            title="Labelloop demo: summary",
            border_style="green" if summary["ok"] else "red",
        )
    )
    console.print(f"summary written to {home / 'summary.json'}; worker log {home / 'worker.log'}")
    if not summary["ok"]:
        console.print("[red]not every event got its label, or the DLQ count differs from what was sent[/]")
