"""The demo's figures: routing shares, label accuracy against the truth, estimates, drift, DLQ.

Pure: what the view saw and the stream that was replayed in, a dict of figures out (written as
``summary.json``; :mod:`agents.simulation.demo.render` shows it as tables).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from agents.simulation.demo.view import LoopView
from agents.simulation.stream import SimulatedEvent, StreamSettings
from schemas import Label

#: The online model's figures in the summary (``online_model_<name>``) and their model-metrics names.
ONLINE_FIGURES = {
    "accuracy": "prequential_accuracy",
    "rolling_accuracy": "rolling_accuracy",
    "macro_f1": "prequential_macro_f1",
    "log_loss": "prequential_log_loss",
}


def summarize(
    view: LoopView,
    stream: list[SimulatedEvent],
    stream_settings: StreamSettings,
    sent_poison: int,
    elapsed_s: float,
) -> dict[str, Any]:
    """The demo's figures: routing shares, label accuracy against the truth, drift, DLQ."""
    truth = {simulated.event.event_id: simulated.truth for simulated in stream}
    index = {simulated.event.event_id: simulated.index for simulated in stream}
    labels = [label for event_id, label in view.labels.items() if event_id in truth]
    human = [label for label in labels if label.is_human]
    accepted = [label for label in labels if not label.is_human]

    def accuracy(group: list[Label]) -> float | None:
        return (
            round(sum(label.label == truth[label.event_id] for label in group) / len(group), 4)
            if group
            else None
        )

    model_accuracy = sum(s.event.predicted_label == s.truth for s in stream) / len(stream)
    drift_event = int(stream_settings.events * stream_settings.drift_at)
    online = view.metrics["online"].metrics if "online" in view.metrics else {}
    production = view.metrics["production"].metrics if "production" in view.metrics else {}
    first_labels = {event_id: label for event_id, label in view.first_revisions.items() if event_id in truth}
    model_accepted = [label for label in first_labels.values() if label.route == "accepted"]
    true_precision = (
        sum(label.label == truth[label.event_id] for label in model_accepted) / len(model_accepted)
        if model_accepted
        else None
    )
    routes = Counter(label.route for label in first_labels.values())
    audits = [label for label in labels if label.route == "audit"]
    crowd_first = [label for label in first_labels.values() if label.is_human]
    healed = [
        label for label in labels if label.is_human and label.revision > (2 if label.route == "audit" else 1)
    ]
    return {
        "events": len(stream),
        "labeled": len(labels),
        "label_records": view.label_records,
        "accepted_share": round(len(accepted) / max(1, len(labels)), 4),
        "reviewed_share": round(len(human) / max(1, len(labels)), 4),
        "label_accuracy": accuracy(labels),
        "accepted_accuracy": accuracy(accepted),
        "crowd_accuracy": accuracy(human),
        "human_first_revision_accuracy": accuracy(crowd_first),
        "revised_by_experts_or_healing": len(healed),
        "expert_labels": sum(label.source == "expert" for label in labels),
        "escalated": sum("escalated" in (label.reason or "") for label in view.first_revisions.values()),
        "re_aggregated": sum("re-aggregated" in (label.reason or "") for label in labels),
        "labelers_flagged": sorted(w for w, skill in view.skills.items() if skill.flagged_spammer),
        "production_model_accuracy": round(model_accuracy, 4),
        **{
            f"online_model_{name}": round(online[metric].value, 4) if metric in online else None
            for name, metric in ONLINE_FIGURES.items()
        },
        "routes": dict(routes),
        "shed_by_capacity": sum("not sent" in (label.reason or "") for label in model_accepted),
        "audits": len(audits),
        "audit_corrections": sum(label.label != label.provenance.model_label for label in audits),
        "auto_accept_precision_estimate": (
            estimate_text(production["auto_accept_precision"])
            if "auto_accept_precision" in production
            else None
        ),
        "auto_accept_precision_true": round(true_precision, 4) if true_precision is not None else None,
        "recall_estimates": {
            name: estimate_text(value) for name, value in production.items() if name.startswith("recall.")
        },
        "drift_injected_at_event": drift_event,
        "drift_alerts": [
            {
                "message": alert.message,
                "observation": alert.observation,
                "after_event": max(
                    (
                        index.get(label.event_id, 0)
                        for label in human
                        if label.decided_at <= alert.detected_at
                    ),
                    default=None,
                ),
            }
            for alert in view.alerts
        ],
        "policy_changes": [
            {
                "version": policy.version,
                "accept_threshold": policy.accept_threshold,
                "control_share": policy.control_share,
                "reason": policy.reason,
            }
            for policy in view.policies[1:]
        ],
        "dlq_records": sum(view.dlq_kinds.values()),
        "dlq_by_kind": dict(view.dlq_kinds),
        "malformed_sent": sent_poison,
        "elapsed_s": round(elapsed_s, 1),
        "ok": len(labels) == len(stream) and sum(view.dlq_kinds.values()) == sent_poison,
    }


def estimate_text(estimate: Any) -> str:
    """An estimate as ``value [lower, upper] (n=...)``."""
    interval = (
        f" [{estimate.lower:.3f}, {estimate.upper:.3f}]"
        if estimate.lower is not None and estimate.upper is not None
        else ""
    )
    return f"{estimate.value:.3f}{interval} (n={estimate.n})"
