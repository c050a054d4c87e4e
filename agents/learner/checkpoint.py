"""Versioned, atomic checkpoints of the online learners on the worker's disk.

Layout: ``<data_dir>/models/<task>/v000001.pkl`` (the pickled learner state) and
``v000001.json`` (its sidecar: version, task, when, labels seen, prequential
metrics, the River and Python versions, and the sha256 of the pickle).

Writes are atomic: each file goes to a temp file in the same directory, is
fsynced and ``os.replace``d into place, the sidecar last. A checkpoint counts
only when its sidecar is valid and the pickle's sha256 matches it, so a crash
at any point leaves the previous version as the latest loadable one. The last
``keep`` versions are kept; :meth:`ModelStore.load_latest` falls back to an
older version when the newest is corrupt or was written by another River.

Trust: pickling is River's standard way of persisting a model, and unpickling
runs code. A checkpoint is *local, trusted state written by this worker* to its
own data dir. It is never read from a Kafka message, an upload or another
host's disk; anything that could write the data dir can already run code as
the worker. The sha256 guards against torn or corrupted files, not attackers.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import pickle
import platform
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import river

from agents.learner.model import OnlineLearner
from streams.errors import CheckpointError as CheckpointError  # importable from here, as it always was

log = logging.getLogger(__name__)

FORMAT = 1
_VERSION_FILE = re.compile(r"^v(\d{6,})\.(pkl|json)$")
_SAFE_TASK = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}$")


@dataclass(frozen=True)
class Checkpoint:
    """One loaded checkpoint: the unpickled state and its sidecar."""

    version: int
    state: Any
    meta: dict[str, Any]


def task_dirname(task: str) -> str:
    """The directory name of ``task``: itself when it is path-safe, else a hash of it.

    >>> task_dirname("default")
    'default'
    >>> task_dirname("../etc").startswith("task-")
    True
    """
    if _SAFE_TASK.match(task) and task not in {".", ".."}:
        return task
    return "task-" + hashlib.sha256(task.encode()).hexdigest()[:32]


def _fsync_dir(directory: Path) -> None:
    # Make the rename itself durable (POSIX); not every platform can open a directory.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same dir: fsync, then ``os.replace``."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with temp.open("wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    _fsync_dir(path.parent)


class ModelStore:
    """The checkpoints of one task's learner under ``<data_dir>/models/<task>/``.

    Examples
    --------
    >>> import tempfile
    >>> store = ModelStore(Path(tempfile.mkdtemp()), "default", keep=2)
    >>> store.load_latest() is None
    True
    >>> [store.save({"w": i}, labels_seen=i) for i in range(3)]
    [1, 2, 3]
    >>> store.versions(), store.load_latest().state
    ([2, 3], {'w': 2})
    """

    def __init__(self, data_dir: Path, task: str, keep: int = 3) -> None:
        if keep < 1:
            raise ValueError("keep must be at least 1")
        self.task = task
        self.keep = keep
        self.directory = data_dir / "models" / task_dirname(task)

    def _pickle_path(self, version: int) -> Path:
        return self.directory / f"v{version:06d}.pkl"

    def _sidecar_path(self, version: int) -> Path:
        return self.directory / f"v{version:06d}.json"

    def _numbers(self) -> Iterator[tuple[int, str]]:
        if not self.directory.is_dir():
            return
        for path in self.directory.iterdir():
            if match := _VERSION_FILE.match(path.name):
                yield int(match.group(1)), match.group(2)

    def versions(self) -> list[int]:
        """Versions with a sidecar (complete checkpoints, not yet verified), oldest first."""
        return sorted(number for number, kind in self._numbers() if kind == "json")

    def save(self, state: Any, *, labels_seen: int, metrics: dict[str, float] | None = None) -> int:
        """Pickle ``state`` as the next version and return it; older versions beyond ``keep`` go."""
        return self.write(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL), labels_seen, metrics)

    def write(self, payload: bytes, labels_seen: int, metrics: dict[str, float] | None = None) -> int:
        """Store an already pickled ``payload`` (pickle in the event loop, write in a thread)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        version = max((number for number, _ in self._numbers()), default=0) + 1
        meta = {
            "format": FORMAT,
            "task": self.task,
            "version": version,
            "created_at": datetime.now(UTC).isoformat(),
            "labels_seen": labels_seen,
            "metrics": dict(metrics or {}),
            "river_version": river.__version__,
            "python_version": platform.python_version(),
            "sha256": hashlib.sha256(payload).hexdigest(),
            "pickle": self._pickle_path(version).name,
        }
        _atomic_write(self._pickle_path(version), payload)
        # The sidecar last: until it is in place, this version does not exist for a reader.
        _atomic_write(self._sidecar_path(version), json.dumps(meta, indent=2).encode())
        self._rotate()
        return version

    def _rotate(self) -> None:
        numbers = sorted({number for number, _ in self._numbers()})
        complete = self.versions()
        if len(complete) <= self.keep:
            return
        oldest_kept = complete[-self.keep]
        for number in numbers:
            if number < oldest_kept:
                # Sidecar first: a half-removed version is never seen as complete.
                for path in (self._sidecar_path(number), self._pickle_path(number)):
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()

    def load(self, version: int) -> Checkpoint:
        """Verify and unpickle ``version``; raises :class:`CheckpointError` when it is unusable."""
        try:
            meta = json.loads(self._sidecar_path(version).read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise CheckpointError(f"v{version:06d}: unreadable sidecar ({error})") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("version") != version:
            raise CheckpointError(f"v{version:06d}: not a format-{FORMAT} sidecar of this version")
        if meta.get("river_version") != river.__version__:
            raise CheckpointError(
                f"v{version:06d}: written by River {meta.get('river_version')}, this is {river.__version__}"
            )
        try:
            payload = self._pickle_path(version).read_bytes()
        except OSError as error:
            raise CheckpointError(f"v{version:06d}: unreadable pickle ({error})") from None
        if hashlib.sha256(payload).hexdigest() != meta.get("sha256"):
            raise CheckpointError(f"v{version:06d}: sha256 mismatch (torn or corrupted file)")
        try:
            # Local trusted state written by this worker (see the module docstring).
            state = pickle.loads(payload)
        except Exception as error:  # any unpickling failure means "unusable"
            raise CheckpointError(f"v{version:06d}: cannot unpickle ({error!r})") from None
        return Checkpoint(version=version, state=state, meta=meta)

    def load_latest(self) -> Checkpoint | None:
        """The newest usable checkpoint, falling back version by version; None when there is none."""
        for version in reversed(self.versions()):
            try:
                return self.load(version)
            except CheckpointError as error:
                log.warning("model checkpoint of task %r skipped: %s", self.task, error)
        return None


def stored_tasks(data_dir: Path) -> list[str]:
    """The tasks that have checkpoints under ``data_dir`` (read from their newest sidecar)."""
    root = data_dir / "models"
    if not root.is_dir():
        return []
    tasks: list[str] = []
    for directory in sorted(root.iterdir()):
        sidecars = sorted(directory.glob("v*.json")) if directory.is_dir() else []
        for sidecar in reversed(sidecars):
            try:
                task = json.loads(sidecar.read_text(encoding="utf-8")).get("task")
            except (OSError, ValueError, AttributeError):
                continue
            if isinstance(task, str) and task_dirname(task) == directory.name:
                tasks.append(task)
                break
    return tasks


def learner_payload(learner: OnlineLearner, kind: str) -> bytes:
    """The pickled state of ``learner`` (a model of ``kind``), ready for :meth:`ModelStore.write`."""
    return pickle.dumps({"kind": kind, "learner": learner.state()}, protocol=pickle.HIGHEST_PROTOCOL)


def restore_learner(store: ModelStore, kind: str, window: int) -> tuple[OnlineLearner, Checkpoint] | None:
    """The learner of the newest usable checkpoint of a ``kind`` model, or None (start fresh)."""
    for version in reversed(store.versions()):
        try:
            checkpoint = store.load(version)
            state = checkpoint.state
            if not isinstance(state, dict) or state.get("kind") != kind:
                raise CheckpointError(f"v{version:06d}: not a {kind!r} learner")
            return OnlineLearner.from_state(state["learner"], window), checkpoint
        except (CheckpointError, KeyError, TypeError, ValueError) as error:
            log.warning("model checkpoint of task %r skipped: %s", store.task, error)
    return None
