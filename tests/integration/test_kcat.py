"""The wire contract from the outside: a user with only kcat publishes a prediction and reads its Label."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from schemas import Label
from streams.topics import topic_names
from tests.integration.conftest import LoopUnderTest

pytestmark = pytest.mark.kafka
KCAT = shutil.which("kcat")


def _prediction(event_id: str, confidence: float) -> dict[str, object]:
    # Exactly what a user would write by hand (see README: "Talk to it with kcat").
    return {
        "event_id": event_id,
        "model_name": "fraud",
        "model_version": "7",
        "created_at": "2026-11-23T12:00:00Z",
        "input": {"text": "refund request, card ending 4242", "features": {"amount": 120.5}},
        "predicted_label": "ok",
        "scores": {"ok": confidence, "fraud": round(1 - confidence, 6)},
    }


@pytest.mark.skipif(KCAT is None, reason="kcat is not installed (make test installs it with apt-get as root)")
def test_a_kcat_user_publishes_a_prediction_and_reads_its_label(
    loop_under_test: Callable[..., LoopUnderTest], tmp_path: Path
) -> None:
    assert KCAT is not None
    loop = loop_under_test(LABELLOOP_POOLS__SIMULATED__TRUTH_WAIT_S="0.2")
    names = topic_names(loop.settings)
    bootstrap = loop.settings.kafka.bootstrap_servers
    loop.start_worker()
    events = {"kcat-sure-1": 0.97, "kcat-unsure-1": 0.55}
    for event_id, confidence in events.items():
        path = tmp_path / f"{event_id}.json"
        path.write_text(json.dumps(_prediction(event_id, confidence), indent=2), encoding="utf-8")
        # One file is one message; -k sets its key (the event_id).
        subprocess.run(
            [KCAT, "-P", "-b", bootstrap, "-t", names.predictions, "-k", event_id, str(path)],
            check=True,
            timeout=30,
        )
    seen: dict[str, Label] = {}
    deadline = time.monotonic() + 120
    while set(seen) != set(events) and time.monotonic() < deadline:
        output = subprocess.run(
            [KCAT, "-C", "-b", bootstrap, "-t", names.labels, "-o", "beginning", "-e", "-q", "-f", "%s\n"],
            check=True,
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout
        # The first revision of each event (an expert may revise the crowd's label later).
        seen = {
            label.event_id: label
            for label in map(Label.model_validate_json, output.split("\n")[:-1])
            if label.revision == 1
        }
        time.sleep(0.5)
    assert set(seen) == set(events), loop.worker_logs()
    assert seen["kcat-sure-1"].source == "model"
    assert seen["kcat-sure-1"].label == "ok"
    assert seen["kcat-unsure-1"].source == "crowd"
    # Dynamic overlap: two answers when they agree, more (up to the maximum) when they do not.
    assert 2 <= seen["kcat-unsure-1"].provenance.n_answers <= 5
