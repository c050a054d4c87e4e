"""Export what an explorer filter matches as a versioned snapshot, exactly as ``labelloop export`` writes one.

The rows are the latest Label of every matching event (the index's view of
``labels``), and the snapshot is :func:`streams.snapshot.build_snapshot`'s: the
same Parquet bytes, manifest and content hash ``labelloop export`` gives for the
same Labels, so a filtered dataset trains the next model through the same
loader (:func:`streams.snapshot.load_snapshot`). The snapshot's id is its
content hash (its version: the same rows are the same snapshot). The filter
that chose the rows is kept beside the manifest, in ``filter.json``, leaving
the manifest's shape ``labelloop export``'s.

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> from agents.explorer.query import Explorer, ExplorerFilter
>>> from agents.explorer.rows import Facts
>>> from agents.explorer.store import IndexStore
>>> from schemas.examples import human_label, prediction
>>> explorer = Explorer(IndexStore("sqlite://"))
>>> facts = Facts()
>>> for n in range(3):
...     facts.add(prediction(f"tx-{n}")); facts.add(human_label(event_id=f"tx-{n}"))
>>> _ = explorer.store.apply(facts, {})
>>> with tempfile.TemporaryDirectory() as out:
...     path, snapshot = export_filter(explorer, ExplorerFilter(q="refund"), Path(out), topic="labels")
...     snapshot.manifest["label_count"], (path.parent / "filter.json").read_text().strip()
(3, '{"q": "refund"}')
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from agents.explorer.query import Explorer, ExplorerFilter
from streams.snapshot import Snapshot, build_snapshot, write_snapshot

#: The most events one export takes (the index's view is read into memory to write Parquet).
MAX_EXPORT = 2_000_000
FILTER_FILE = "filter.json"


def export_filter(
    explorer: Explorer,
    f: ExplorerFilter,
    out: Path,
    *,
    topic: str,
    created_at: datetime | None = None,
    cap: int = MAX_EXPORT,
) -> tuple[Path, Snapshot]:
    """Write the snapshot of ``f``'s events into ``out/<snapshot-id>/``; its manifest's path and itself."""
    labels = explorer.select(f, cap=cap)
    snapshot = build_snapshot(labels, topic=topic, records_read=len(labels), created_at=created_at)
    manifest_path = write_snapshot(snapshot, out)
    chosen = f.model_dump(mode="json", exclude_defaults=True, exclude={"page", "per_page", "sort", "order"})
    (manifest_path.parent / FILTER_FILE).write_text(
        json.dumps(chosen, sort_keys=True) + "\n", encoding="utf-8"
    )
    return manifest_path, snapshot
