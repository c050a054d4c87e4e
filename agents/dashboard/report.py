"""A self-contained HTML report of a run: the dashboard's page with its data and plotly.js inside.

The report is the live dashboard frozen: the same page, the same drawing code
(``static/dashboard.js``), fed the series the worker kept for the whole run
instead of polling for them, with plotly.js, the styles and the data inlined,
so the one file opens anywhere, offline. ``make demo`` writes one per run.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agents.dashboard.server import STATIC, page_html, plotly_js


def _inline_script(source: str) -> str:
    # "</script" would end the element early wherever it appears in the source.
    return "<script>" + source.replace("</script", "<\\/script") + "</script>"


def _json_script(element_id: str, document: Any) -> str:
    # "<" escaped as \u003c: the JSON can never close the element or open a comment.
    text = json.dumps(document).replace("<", "\\u003c")
    return f'<script id="{element_id}" type="application/json">{text}</script>'


def summary_table(summary: Mapping[str, Any]) -> str:
    """The run's figures as an HTML table (every value escaped).

    >>> table = summary_table({"events": 10, "note": "<b>"})
    >>> "<td>events</td><td>10</td>" in table, "<td>&lt;b&gt;</td>" in table
    (True, True)
    """
    rows = "".join(
        f"<tr><td>{html.escape(key.replace('_', ' '))}</td><td>{html.escape(_text(value))}</td></tr>"
        for key, value in summary.items()
    )
    return f'<section class="panel summary"><h2>Summary</h2><table>{rows}</table></section>'


def _text(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def report_html(series: Mapping[str, Any], summary: Mapping[str, Any], title: str) -> str:
    """The report page: the dashboard with ``series`` embedded, plotly.js inline, ``summary`` below.

    >>> page = report_html({"t": []}, {"events": 3}, "demo 2026-01-01")
    >>> page.count("<script src="), 'id="embedded-series"' in page, "demo 2026-01-01" in page
    (0, True, True)
    """
    page = page_html()
    page = page.replace(
        '<link rel="stylesheet" href="/dashboard/static/dashboard.css">',
        "<style>" + (STATIC / "dashboard.css").read_text("utf-8") + "</style>",
    )
    page = page.replace(
        '<script src="/dashboard/static/plotly.min.js"></script>',
        _inline_script(plotly_js().read_text("utf-8")),
    )
    page = page.replace(
        '<script src="/dashboard/static/dashboard.js"></script>',
        _inline_script((STATIC / "dashboard.js").read_text("utf-8")),
    )
    page = page.replace("<!--embedded-->", _json_script("embedded-series", dict(series)))
    page = page.replace("<!--summary-->", summary_table(summary))
    page = page.replace(
        "<title>Labelloop · loop dashboard</title>", f"<title>Labelloop · {html.escape(title)}</title>"
    )
    page = page.replace(
        '<span id="title-kind">loop dashboard</span>', f'<span id="title-kind">{html.escape(title)}</span>'
    )
    page = page.replace(
        '<p class="muted small" id="subtitle">the loop as this worker sees it: its partitions, its pools</p>',
        '<p class="muted small" id="subtitle">the whole run as its worker measured it '
        "(a self-contained report: opens offline)</p>",
    )
    page = page.replace('<a id="metrics-link" href="/metrics">/metrics</a>', "")
    return page


def write_report(path: Path, series: Mapping[str, Any], summary: Mapping[str, Any], title: str) -> Path:
    """Write :func:`report_html` to ``path`` (atomically: a reader never sees half a report)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_text(report_html(series, summary, title), encoding="utf-8")
    partial.replace(path)
    return path
