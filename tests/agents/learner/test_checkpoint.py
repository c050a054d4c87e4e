"""Model checkpoints: atomic versioned writes, verified loads with fallback, rotation, faithful restores."""

from __future__ import annotations

import json
import logging
import os
import random
from pathlib import Path

import pytest

from agents.learner.checkpoint import (
    ModelStore,
    learner_payload,
    restore_learner,
    stored_tasks,
    task_dirname,
)
from agents.learner.model import ModelKind, OnlineLearner, build_model, features_of
from schemas import PredictionInput, utc_now


def separable(rng: random.Random) -> tuple[PredictionInput, str]:
    """Two features, the class is the side of a line; words that say the class for text models."""
    x0, x1 = rng.uniform(-1, 1), rng.uniform(-1, 1)
    positive = x0 + x1 > 0
    words = "great refund quick" if positive else "fraud stolen chargeback"
    return PredictionInput(text=words, features={"x0": x0, "x1": x1}), "yes" if positive else "no"


def trained(kind: ModelKind, n: int, seed: int = 3) -> tuple[OnlineLearner, random.Random]:
    rng = random.Random(seed)
    learner = OnlineLearner(build_model(kind), window=100)
    for _ in range(n):
        model_input, y = separable(rng)
        learner.observe(features_of(model_input, kind), y)
    return learner, rng


def save(store: ModelStore, learner: OnlineLearner, kind: ModelKind = "linear") -> int:
    return store.write(learner_payload(learner, kind), learner.seen, learner.summary())


def test_a_checkpoint_is_a_pickle_and_a_sidecar_with_its_hash(tmp_path: Path) -> None:
    learner, _ = trained("linear", 50)
    store = ModelStore(tmp_path, "default")
    assert save(store, learner) == 1
    assert sorted(path.name for path in (tmp_path / "models" / "default").iterdir()) == [
        "v000001.json",
        "v000001.pkl",
    ]
    meta = json.loads((tmp_path / "models" / "default" / "v000001.json").read_text())
    assert meta["version"] == 1
    assert meta["task"] == "default"
    assert meta["labels_seen"] == 50
    assert meta["metrics"]["prequential_accuracy"] == pytest.approx(learner.accuracy)
    assert {"created_at", "river_version", "python_version", "sha256"} <= set(meta)
    assert stored_tasks(tmp_path) == ["default"]


@pytest.mark.parametrize("kind", ["linear", "tree", "text"])
def test_a_restored_learner_predicts_like_the_original_and_continues_its_metrics(
    tmp_path: Path, kind: ModelKind
) -> None:
    learner, rng = trained(kind, 300)
    store = ModelStore(tmp_path, "default")
    save(store, learner, kind)
    restored = restore_learner(store, kind, window=100)
    assert restored is not None
    copy, checkpoint = restored
    assert checkpoint.version == 1
    assert (copy.seen, copy.correct) == (learner.seen, learner.correct)
    assert copy.rolling_accuracy == learner.rolling_accuracy
    for _ in range(100):
        model_input, y = separable(rng)
        x = features_of(model_input, kind)
        assert copy.predict(x) == learner.predict(x)
        assert copy.observe(x, y) == learner.observe(x, y)
    assert (copy.seen, copy.accuracy, copy.rolling_accuracy) == (
        learner.seen,
        learner.accuracy,
        learner.rolling_accuracy,
    )
    assert (copy.macro_f1, copy.rolling_macro_f1, copy.log_loss, copy.rolling_log_loss) == (
        learner.macro_f1,
        learner.rolling_macro_f1,
        learner.log_loss,
        learner.rolling_log_loss,
    )


def test_a_checkpoint_from_before_macro_f1_and_log_loss_resumes_them_from_its_next_label() -> None:
    learner, rng = trained("linear", 50)
    state = learner.state()
    for newer in ("confusion", "outcomes", "log_loss_sum"):
        del state[newer]
    copy = OnlineLearner.from_state(state, window=100)
    assert (copy.seen, copy.accuracy, copy.macro_f1, copy.log_loss) == (
        learner.seen,
        learner.accuracy,
        0.0,
        0.0,
    )
    model_input, y = separable(rng)
    copy.observe(features_of(model_input, "linear"), y)
    assert copy.metrics("online-default", "default", utc_now()).metrics["prequential_macro_f1"].n == 1


def test_a_crash_between_the_temp_write_and_the_replace_leaves_the_previous_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, _ = trained("linear", 20)
    second, _ = trained("linear", 80)
    store = ModelStore(tmp_path, "default")
    save(store, first)

    def crash(src: object, dst: object) -> None:
        raise OSError("power cut")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="power cut"):
        save(store, second)
    monkeypatch.undo()
    assert not [path for path in store.directory.iterdir() if path.name.endswith(".tmp")]
    # A killed process cannot clean up: its half-written temp file stays and is ignored.
    (store.directory / ".v000002.pkl.999.tmp").write_bytes(b"\x80\x05half")
    loaded = restore_learner(store, "linear", window=100)
    assert loaded is not None
    assert (loaded[1].version, loaded[0].seen) == (1, 20)
    assert save(store, second) == 2
    loaded = restore_learner(store, "linear", window=100)
    assert loaded is not None
    assert (loaded[1].version, loaded[0].seen) == (2, 80)


def test_a_pickle_without_its_sidecar_is_not_a_checkpoint(tmp_path: Path) -> None:
    first, _ = trained("linear", 20)
    store = ModelStore(tmp_path, "default")
    save(store, first)
    save(store, first)
    (store.directory / "v000002.json").unlink()  # the crash came after the pickle's replace
    assert store.versions() == [1]
    loaded = restore_learner(store, "linear", window=100)
    assert loaded is not None
    assert loaded[1].version == 1
    assert save(store, first) == 3  # the orphan's number is not reused


@pytest.mark.parametrize(
    "damage",
    [
        lambda store: (store.directory / "v000002.pkl").write_bytes(b"\x80\x05garbage"),
        lambda store: (store.directory / "v000002.pkl").unlink(),
        lambda store: (store.directory / "v000002.json").write_text("{not json"),
    ],
    ids=["corrupt-pickle", "missing-pickle", "corrupt-sidecar"],
)
def test_a_damaged_checkpoint_falls_back_to_the_previous_version(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: object
) -> None:
    first, _ = trained("linear", 20)
    second, _ = trained("linear", 80)
    store = ModelStore(tmp_path, "default")
    save(store, first)
    save(store, second)
    damage(store)  # type: ignore[operator]
    with caplog.at_level(logging.WARNING):
        loaded = restore_learner(store, "linear", window=100)
    assert loaded is not None
    assert (loaded[1].version, loaded[0].seen) == (1, 20)
    assert "v000002" in caplog.text


def test_another_river_version_is_not_unpickled(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    learner, _ = trained("linear", 20)
    store = ModelStore(tmp_path, "default")
    save(store, learner)
    sidecar = store.directory / "v000001.json"
    meta = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({**meta, "river_version": "0.0.1"}))
    with caplog.at_level(logging.WARNING):
        assert restore_learner(store, "linear", window=100) is None
    assert "River 0.0.1" in caplog.text


def test_a_checkpoint_of_another_model_kind_is_not_restored(tmp_path: Path) -> None:
    learner, _ = trained("linear", 20)
    store = ModelStore(tmp_path, "default")
    save(store, learner, "linear")
    assert restore_learner(store, "text", window=100) is None


def test_versions_rotate(tmp_path: Path) -> None:
    learner, _ = trained("linear", 10)
    store = ModelStore(tmp_path, "default", keep=2)
    assert [save(store, learner) for _ in range(5)] == [1, 2, 3, 4, 5]
    assert store.versions() == [4, 5]
    assert sorted(path.name for path in store.directory.iterdir()) == [
        "v000004.json",
        "v000004.pkl",
        "v000005.json",
        "v000005.pkl",
    ]


def test_a_learner_restored_with_another_window_keeps_the_newest_outcomes(tmp_path: Path) -> None:
    learner, _ = trained("linear", 300)
    store = ModelStore(tmp_path, "default")
    save(store, learner)
    restored = restore_learner(store, "linear", window=10)
    assert restored is not None
    assert restored[0].rolling_accuracy == sum(learner.state()["recent"][-10:]) / 10


def test_task_names_never_escape_the_models_dir(tmp_path: Path) -> None:
    learner, _ = trained("linear", 10)
    store = ModelStore(tmp_path, "../../etc/passwd")
    save(store, learner)
    assert store.directory.parent == tmp_path / "models"
    assert store.directory.name == task_dirname("../../etc/passwd")
    assert stored_tasks(tmp_path) == ["../../etc/passwd"]
