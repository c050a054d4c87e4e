"""A local Toloka stand-in: the endpoints the Toloka backend uses, simulated Tolokers, injected faults.

Toloka cannot be reached from the test machines, so toloka-kit is pointed
(``url=``) at this small HTTP/1.1 server (HTTP/1.0 replies make toloka-kit
fail with KeyError). It answers, in the JSON shapes of Toloka's API reference
and of toloka-kit's models:

- ``/api/v1/projects`` (create, get, search), ``/api/v1/pools`` (create, get,
  search, ``/open``, ``/close``: 202 with an operation, 204 when already so);
- ``POST /api/v1/tasks`` (a task or a list; ``async_mode`` true: 202 with an
  operation, ``OPERATION_ALREADY_EXISTS`` 409 when its ``operation_id`` was
  seen; false: 201 with ``items``/``validation_errors``), ``GET
  /api/v1/tasks/{id}``, ``PATCH /api/v1/tasks/{id}/set-overlap-or-min``;
- ``/api/v1/operations/{id}`` and ``/log``;
- ``GET /api/v1/assignments`` (filters ``pool_id``, ``task_id``, ``status``,
  ``user_id``, ``id``/``submitted`` ranges, ``sort``, ``limit`` -> ``items``,
  ``has_more``), ``GET``/``PATCH /api/v1/assignments/{id}`` (accept, reject);
- ``GET /api/v1/user-restrictions``.

Simulated Tolokers take task suites from open pools on a background tick,
one suite per project and tick, from the best paid pool that pays at least
their price and whose ``filter`` admits their profile (``languages``,
``region_by_ip``: a second pool for the same audience adds nobody), as the
pool's ``mixer_config`` composes them (real tasks with remaining overlap
plus golden tasks they have not seen), answer with a pluggable
:data:`AnswerModel` and submit at once; the time they "spent" is written into
the assignment (``created`` to ``submitted``), so the pool's quality control
(golden-set accuracy and fast submits, ``RESTRICTION_V2``) bans them as
Toloka would. A rejected assignment gives its tasks' overlap back.

Faults (:class:`Faults`): a share of requests answered 429 with
``Retry-After``, 500, or slowly (the request is applied first, then the answer
is held past the client's timeout, as when a create succeeded and its answer
was lost). Every created task is counted, so a test can assert that nothing
was uploaded twice.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from agents.pools.base import LabelingBackend
from schemas import CrowdAnswer, LabelRequest, PredictionEvent, PredictionInput

#: ``answer(worker_id, task_input, true_label, classes) -> label``: how a simulated Toloker answers.
AnswerModel = Callable[[str, dict[str, Any], str | None, list[str]], str]
Json = dict[str, Any]


@dataclass(frozen=True)
class Worker:
    """A simulated Toloker: how often right, and how long a task suite takes."""

    user_id: str
    accuracy: float
    suite_s: float = 30.0
    #: The least reward per suite for which this Toloker takes a pool's tasks (0: any).
    min_reward: float = 0.0
    #: The languages of their profile (ISO 639-1, upper case) and the region of their IP
    #: (a Toloka region id): what pool filters (``languages``, ``region_by_ip``) look at.
    languages: tuple[str, ...] = ("EN",)
    region: int = 84

    def profile(self) -> dict[str, Any]:
        """What a pool filter's conditions read, by their ``key``."""
        region = self.region
        return {"languages": list(self.languages), "region_by_ip": region, "region_by_phone": region}


def default_workers(count: int = 12, *, spammers: int = 1, seed: int = 1) -> list[Worker]:
    """``count`` honest Tolokers (accuracy 0.8-0.95, 20-60 s a suite) and ``spammers`` (random, 1 s).

    >>> [w.user_id for w in default_workers(2, spammers=1)]
    ['tk-w00', 'tk-w01', 'tk-spam00']
    """
    rng = random.Random(seed)
    honest = [Worker(f"tk-w{i:02d}", rng.uniform(0.8, 0.95), rng.uniform(20.0, 60.0)) for i in range(count)]
    return honest + [Worker(f"tk-spam{i:02d}", 0.0, 1.0) for i in range(spammers)]


class AccuracyAnswers:
    """The default answer model: right with the worker's accuracy, else a random other class.

    A worker with accuracy 0 answers uniformly at random (a spammer). Each
    answer is drawn from its own seeded generator (seed, worker, task input),
    so it does not depend on the order in which threads ask.
    """

    def __init__(self, workers: list[Worker], seed: int = 1) -> None:
        self._accuracy = {worker.user_id: worker.accuracy for worker in workers}
        self._seed = seed

    def __call__(
        self, worker_id: str, task_input: dict[str, Any], truth: str | None, classes: list[str]
    ) -> str:
        rng = random.Random(f"{self._seed}/{worker_id}/{json.dumps(task_input, sort_keys=True)}")
        accuracy = self._accuracy.get(worker_id, 0.0)
        if truth is None or accuracy <= 0.0:
            return rng.choice(classes)
        wrong = [label for label in classes if label != truth]
        return truth if not wrong or rng.random() < accuracy else rng.choice(wrong)


@dataclass
class Faults:
    """Shares of requests that fail, and how (each request draws once)."""

    rate_429: float = 0.0
    rate_500: float = 0.0
    rate_slow: float = 0.0
    #: How long a slow answer is held (longer than the client's timeout to make it time out).
    slow_s: float = 0.5
    #: The Retry-After header of a 429 (delta-seconds; a decimal keeps tests fast).
    retry_after: str = "0"
    seed: int = 3

    @classmethod
    def total(cls, share: float, **options: Any) -> Faults:
        """``share`` of requests fail, split evenly between 429, 500 and slow answers."""
        return cls(rate_429=share / 3, rate_500=share / 3, rate_slow=share / 3, **options)


class _ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")


class TolokaStandIn:
    """The stand-in's state and simulation; :meth:`serve` runs its HTTP server.

    Parameters
    ----------
    workers
        The simulated Tolokers (:func:`default_workers` by default).
    answer
        How they answer (:class:`AccuracyAnswers` over ``workers`` by default).
    faults
        Injected failures.
    tick_s
        Seconds between two simulation steps (each worker takes at most one suite a step);
        None: no background steps, the test calls :meth:`tick` itself (exact counts of steps).

    Examples
    --------
    >>> import httpx
    >>> with TolokaStandIn().serve() as standin:
    ...     httpx.get(f"{standin.url}/api/v1/pools", params={"project_id": "1"}).json()
    {'items': [], 'has_more': False}
    """

    def __init__(
        self,
        workers: list[Worker] | None = None,
        *,
        answer: AnswerModel | None = None,
        faults: Faults | None = None,
        tick_s: float | None = 0.005,
        seed: int = 1,
    ) -> None:
        self.workers = workers if workers is not None else default_workers(seed=seed)
        self.answer = answer or AccuracyAnswers(self.workers, seed)
        self.faults = faults or Faults()
        self.tick_s = tick_s
        self.lock = threading.RLock()
        #: True labels of real tasks, by the ``event_id`` in their input (the simulation's side-channel).
        self.truth: dict[str, str] = {}
        self.projects: dict[str, Json] = {}
        self.pools: dict[str, Json] = {}
        self.tasks: dict[str, Json] = {}
        self.operations: dict[str, Json] = {}
        self.operation_logs: dict[str, list[Json]] = {}
        self.assignments: dict[str, Json] = {}
        self.restrictions: list[Json] = []
        #: Every task ever created, in order (a duplicate upload shows up here twice).
        self.created_tasks: list[Json] = []
        self.requests = 0
        self.faults_injected = {"429": 0, "500": 0, "slow": 0}
        self.tokens_seen: set[str] = set()
        self._ids = itertools.count(1)
        self._rng = random.Random(self.faults.seed)
        self._turn = 0
        # Indexes the simulation reads every tick.
        self._done_by: dict[tuple[str, str], set[str]] = {}
        self._by_worker: dict[tuple[str, str], list[Json]] = {}
        self._open_tasks: dict[str, list[Json]] = {}
        self._golden_tasks: dict[str, list[Json]] = {}
        self._banned: set[str] = set()
        self._server: ThreadingHTTPServer | None = None
        self.url = ""

    # -- running -------------------------------------------------------------------------

    @contextmanager
    def serve(self) -> Iterator[TolokaStandIn]:
        """Serve on a free port of 127.0.0.1 with the simulation ticking, until the block ends."""
        standin = self

        class Handler(_Handler):
            pass

        Handler.standin = standin
        server = _Server(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self._server = server
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        stop = threading.Event()
        threads = [threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)]
        if self.tick_s is not None:
            threads.append(threading.Thread(target=self._simulate, args=(stop,), daemon=True))
        for thread in threads:
            thread.start()
        try:
            yield self
        finally:
            stop.set()
            server.shutdown()
            server.server_close()
            for thread in threads:
                thread.join(timeout=5)

    def _simulate(self, stop: threading.Event) -> None:
        assert self.tick_s is not None
        while not stop.wait(self.tick_s):
            self.tick()

    def tick(self) -> int:
        """One simulation step under the lock; the task suites it issued."""
        with self.lock:
            return self.step()

    # -- what tests read -----------------------------------------------------------------

    def duplicate_uploads(self) -> dict[str, int]:
        """Inputs (by ``event_id``, else the whole input) created more than once, with their count.

        A real task must exist once across all pools; a golden task once per pool
        (every pool mixes its own honeypots), so golden keys carry their pool id.
        """
        counts: dict[str, int] = {}
        for task in self.created_tasks:
            values = task["input_values"]
            key = str(values.get("event_id") or json.dumps(values, sort_keys=True))
            if task.get("known_solutions"):
                key = f"{task['pool_id']}/{key}"
            counts[key] = counts.get(key, 0) + 1
        return {key: count for key, count in counts.items() if count > 1}

    def banned(self) -> set[str]:
        """Tolokers with a restriction."""
        return set(self._banned)

    # -- simulation ----------------------------------------------------------------------

    def step(self) -> int:
        """Every Toloker not banned takes at most one task suite per project and submits it.

        A Toloker sees only the open pools whose filter admits them and that pay at
        least their least reward, and works one at a time: of a project's pools the
        best paid one with a task for them (so a second pool for the same audience
        adds no Toloker, one for another audience does).
        """
        now = _now()
        order = self.workers[self._turn :] + self.workers[: self._turn]
        self._turn = (self._turn + 1) % max(1, len(self.workers))
        by_project: dict[str, list[Json]] = {}
        for pool in self.pools.values():
            if pool["status"] == "OPEN":
                by_project.setdefault(pool["project_id"], []).append(pool)
        issued = 0
        for pools in by_project.values():
            pools.sort(key=lambda pool: (-float(pool.get("reward_per_assignment") or 0.0), pool["id"]))
            for worker in order:
                if worker.user_id in self._banned:
                    continue
                for pool in pools:
                    if self._admits(pool, worker) and self._issue(pool, worker, now):
                        issued += 1
                        break
        return issued

    @staticmethod
    def _admits(pool: Json, worker: Worker) -> bool:
        """The pool's reward is enough for the Toloker and its filter admits them."""
        if float(pool.get("reward_per_assignment") or 0.0) < worker.min_reward:
            return False
        return _matches(pool.get("filter"), worker.profile())

    def _issue(self, pool: Json, worker: Worker, now: datetime) -> bool:
        mixer = pool.get("mixer_config") or {"real_tasks_count": 1, "golden_tasks_count": 0}
        done_by = self._done_by.setdefault((worker.user_id, pool["id"]), set())
        wanted = int(mixer.get("real_tasks_count", 1))
        real: list[Json] = []
        for task in self._open_tasks.get(pool["id"], []):
            if task["remaining_overlap"] > 0 and task["id"] not in done_by:
                real.append(task)
                if len(real) == wanted:
                    break
        if not real:
            return False
        golden = [task for task in self._golden_tasks.get(pool["id"], []) if task["id"] not in done_by][
            : int(mixer.get("golden_tasks_count", 0))
        ]
        suite = real + golden
        random.Random(f"{worker.user_id}/{suite[0]['id']}").shuffle(suite)
        classes = self._classes(pool)
        solutions = []
        for task in suite:
            truth = (
                task["known_solutions"][0]["output_values"]["label"]
                if task.get("known_solutions")
                else self.truth.get(str(task["input_values"].get("event_id")))
            )
            label = self.answer(worker.user_id, task["input_values"], truth, classes)
            solutions.append({"output_values": {"label": label}})
        for task in real:
            task["remaining_overlap"] -= 1
        done_by.update(task["id"] for task in suite)
        self._open_tasks[pool["id"]] = [t for t in self._open_tasks[pool["id"]] if t["remaining_overlap"] > 0]
        spent_s = worker.suite_s * random.Random(f"t/{worker.user_id}/{suite[0]['id']}").uniform(0.7, 1.3)
        assignment_id = self._new_id()
        assignment = self.assignments[assignment_id] = {
            "id": assignment_id,
            "task_suite_id": self._new_id(),
            "pool_id": pool["id"],
            "user_id": worker.user_id,
            "status": "SUBMITTED",
            "reward": pool.get("reward_per_assignment", 0.0),
            "tasks": [dict(task) for task in suite],
            "automerged": False,
            "created": _iso(now - timedelta(seconds=spent_s)),
            "submitted": _iso(now),
            "solutions": solutions,
            "mixed": True,
            "owner": {"id": "requester-1", "myself": True},
        }
        self._by_worker.setdefault((worker.user_id, pool["id"]), []).append(assignment)
        self._quality_control(pool, worker.user_id)
        return True

    def _classes(self, pool: Json) -> list[str]:
        project = self.projects.get(pool["project_id"], {})
        output = project.get("task_spec", {}).get("output_spec", {}).get("label", {})
        return list(output.get("allowed_values") or ["positive", "negative"])

    def _quality_control(self, pool: Json, user_id: str) -> None:
        """Apply the pool's golden-set and submit-time rules to one Toloker (RESTRICTION_V2 bans)."""
        mine = self._by_worker.get((user_id, pool["id"]), [])
        for config in (pool.get("quality_control") or {}).get("configs", []):
            collector = config.get("collector_config", {})
            parameters = collector.get("parameters", {})
            history = int(parameters.get("history_size") or 10)
            if collector.get("type") == "GOLDEN_SET":
                graded = [
                    solution["output_values"] == task["known_solutions"][0]["output_values"]
                    for assignment in mine
                    for task, solution in zip(assignment["tasks"], assignment["solutions"], strict=True)
                    if task.get("known_solutions")
                ][-history:]
                values = {
                    "golden_set_answers_count": len(graded),
                    "golden_set_correct_answers_rate": 100.0 * sum(graded) / len(graded) if graded else None,
                    "golden_set_incorrect_answers_rate": (
                        100.0 * (len(graded) - sum(graded)) / len(graded) if graded else None
                    ),
                }
            elif collector.get("type") == "ASSIGNMENT_SUBMIT_TIME":
                threshold = float(parameters.get("fast_submit_threshold_seconds") or 0)
                recent = mine[-history:]
                values = {
                    "total_submitted_count": len(recent),
                    "fast_submitted_count": sum(
                        datetime.fromisoformat(a["submitted"]) - datetime.fromisoformat(a["created"])
                        < timedelta(seconds=threshold)
                        for a in recent
                    ),
                }
            else:
                continue
            for rule in config.get("rules", []):
                if all(_holds(condition, values) for condition in rule.get("conditions", [])):
                    action = rule.get("action", {})
                    if (
                        action.get("type") in ("RESTRICTION_V2", "RESTRICTION")
                        and user_id not in self._banned
                    ):
                        self._banned.add(user_id)
                        self.restrictions.append(
                            {
                                "id": self._new_id(),
                                "user_id": user_id,
                                "scope": action.get("parameters", {}).get("scope", "PROJECT"),
                                "project_id": pool["project_id"],
                                "private_comment": action.get("parameters", {}).get("private_comment", ""),
                                "created": _iso(_now()),
                            }
                        )

    # -- the API -------------------------------------------------------------------------

    def _new_id(self) -> str:
        # Fixed width, so ids order the same as strings (toloka-kit pages with id_gt) and as numbers.
        return f"{next(self._ids):012d}"

    def handle(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        """One API call on the state (the lock is held); raises _ApiError for API errors."""
        parts = [part for part in path.split("/") if part][2:]  # drop "api", "v1"
        params = {key: values[-1] for key, values in query.items()}
        route = (method, parts[0] if parts else "", len(parts))
        if route == ("POST", "projects", 1):
            return 201, self._create("projects", body, {"status": "ACTIVE"})
        if route == ("POST", "pools", 1):
            if body.get("project_id") not in self.projects:
                raise _ApiError(400, "VALIDATION_ERROR", "unknown project_id")
            return 201, self._create("pools", body, {"status": "CLOSED", "last_started": None})
        if method == "GET" and len(parts) == 1 and parts[0] in ("projects", "pools", "assignments"):
            return 200, self._search(getattr(self, parts[0]), params)
        if method == "GET" and parts == ["user-restrictions"]:
            return 200, self._search({r["id"]: r for r in self.restrictions}, params)
        if (
            method == "GET"
            and len(parts) == 2
            and parts[0] in ("projects", "pools", "tasks", "assignments", "operations")
        ):
            return 200, self._get(getattr(self, parts[0]), parts[1])
        if method == "GET" and len(parts) == 3 and parts[0] == "operations" and parts[2] == "log":
            self._get(self.operations, parts[1])
            return 200, self.operation_logs.get(parts[1], [])
        if method == "PUT" and len(parts) == 2 and parts[0] == "pools":
            return 200, self._update_pool(parts[1], body)
        if method == "POST" and len(parts) == 3 and parts[0] == "pools" and parts[2] in ("open", "close"):
            return self._set_pool_status(parts[1], "OPEN" if parts[2] == "open" else "CLOSED")
        if route == ("POST", "tasks", 1):
            return self._create_tasks(body, params)
        if method == "PATCH" and len(parts) == 3 and parts[0] == "tasks" and parts[2] == "set-overlap-or-min":
            return 200, self._set_overlap(parts[1], int(body["overlap"]))
        if method == "PATCH" and len(parts) == 2 and parts[0] == "assignments":
            return 200, self._review(parts[1], body)
        raise _ApiError(404, "DOES_NOT_EXIST", f"no route {method} {path}")

    def _create(self, kind: str, body: Json, extra: Json) -> Json:
        created = {**body, **extra, "id": self._new_id(), "created": _iso(_now())}
        getattr(self, kind)[created["id"]] = created
        return created

    @staticmethod
    def _get(table: dict[str, Json], object_id: str) -> Json:
        if object_id not in table:
            raise _ApiError(404, "DOES_NOT_EXIST", f"object {object_id} does not exist")
        return table[object_id]

    @staticmethod
    def _search(table: dict[str, Json], params: dict[str, str]) -> Json:
        limit = int(params.pop("limit", "50"))
        sort = [key for key in params.pop("sort", "id").split(",") if key]
        items = list(table.values())
        for key, value in params.items():
            name, _, suffix = key.rpartition("_")
            if suffix in ("gt", "gte", "lt", "lte") and name:
                items = [
                    item
                    for item in items
                    if item.get(name) is not None and _compare(item[name], suffix, value)
                ]
            elif key == "task_id":  # an assignment holds a suite of tasks
                items = [item for item in items if any(task["id"] == value for task in item.get("tasks", []))]
            else:
                allowed = set(value.split(","))
                items = [item for item in items if str(item.get(key)) in allowed]
        for key in reversed(sort):
            items.sort(key=lambda item: str(item.get(key.lstrip("-")) or ""), reverse=key.startswith("-"))
        return {"items": items[:limit], "has_more": len(items) > limit}

    def _update_pool(self, pool_id: str, body: Json) -> Json:
        """``PUT /pools/{id}``: the pool's settings replaced; id, status and dates are the server's."""
        pool = self._get(self.pools, pool_id)
        server_side: tuple[str, ...] = ("id", "project_id", "status", "created", "last_started")
        kept: Json = {key: pool[key] for key in server_side if key in pool}
        pool.clear()
        pool.update({**body, **kept})
        return pool

    def _set_pool_status(self, pool_id: str, status: str) -> tuple[int, Any]:
        pool = self._get(self.pools, pool_id)
        if pool["status"] == status:
            return 204, None
        pool["status"] = status
        if status == "OPEN":
            pool["last_started"] = _iso(_now())
        kind = "POOL.OPEN" if status == "OPEN" else "POOL.CLOSE"
        return 202, self._operation(kind, {"pool_id": pool_id}, str(self._new_id()))

    def _operation(self, kind: str, parameters: Json, operation_id: str, status: str = "SUCCESS") -> Json:
        moment = _iso(_now())
        operation = {
            "id": operation_id,
            "type": kind,
            "status": status,
            "submitted": moment,
            "started": moment,
            "parameters": parameters,
        }
        if status == "SUCCESS":
            operation["finished"] = moment
        self.operations[operation_id] = operation
        return operation

    def _create_tasks(self, body: Any, params: dict[str, str]) -> tuple[int, Any]:
        async_mode = params.get("async_mode", "true") == "true"
        operation_id = params.get("operation_id")
        if async_mode and operation_id in self.operations:
            raise _ApiError(409, "OPERATION_ALREADY_EXISTS", f"operation {operation_id} already exists")
        single = isinstance(body, dict)
        items: list[Json] = [body] if single else list(body)
        log: list[Json] = []
        created: dict[str, Json] = {}
        errors: dict[str, Json] = {}
        for index, item in enumerate(items):
            pool = self.pools.get(str(item.get("pool_id")))
            if pool is None or not isinstance(item.get("input_values"), dict):
                errors[str(index)] = {"pool_id": {"code": "VALUE_REQUIRED", "message": "unknown pool"}}
                log.append(
                    {"type": "TASK_VALIDATE", "success": False, "input": item, "output": errors[str(index)]}
                )
                continue
            task = {key: value for key, value in item.items() if key != "__item_idx"}
            if params.get("allow_defaults") == "true" or "overlap" not in task:
                task["overlap"] = int((pool.get("defaults") or {}).get("default_overlap_for_new_tasks") or 1)
            task.update(id=self._new_id(), created=_iso(_now()), remaining_overlap=task["overlap"])
            task.setdefault("infinite_overlap", False)
            self.tasks[task["id"]] = task
            self.created_tasks.append(task)
            index_of: dict[str, list[Json]] = (
                self._golden_tasks if task.get("known_solutions") else self._open_tasks
            )
            index_of.setdefault(task["pool_id"], []).append(task)
            created[str(index)] = task
            log.append(
                {"type": "TASK_CREATE", "success": True, "input": item, "output": {"task_id": task["id"]}}
            )
        if params.get("open_pool") == "true":
            for task in created.values():
                self.pools[task["pool_id"]]["status"] = "OPEN"
        if not async_mode:
            if single:
                if errors:
                    raise _ApiError(400, "VALIDATION_ERROR", "validation failed")
                return 201, created["0"]
            return 201, {"items": created, "validation_errors": errors}
        operation_id = operation_id or str(self._new_id())
        self.operation_logs[operation_id] = log
        operation = self._operation(
            "TASK.BATCH_CREATE" if not single else "TASK.CREATE",
            {
                key: params[key] == "true"
                for key in ("allow_defaults", "open_pool", "skip_invalid_items")
                if key in params
            },
            operation_id,
            status="RUNNING",
        )
        # The next read of the operation finds it done (so clients exercise their polling).
        operation["details"] = {"items_count": len(items)}
        return 202, dict(operation)

    def read_operation(self, operation_id: str) -> None:
        """A RUNNING task upload is done by the time anyone reads it."""
        operation = self.operations.get(operation_id)
        if operation is not None and operation["status"] == "RUNNING":
            operation["status"] = "SUCCESS"
            operation["finished"] = _iso(_now())

    def _set_overlap(self, task_id: str, overlap: int) -> Json:
        task = self._get(self.tasks, task_id)
        used = task["overlap"] - task["remaining_overlap"]
        task["overlap"] = max(overlap, used)
        task["remaining_overlap"] = task["overlap"] - used
        self._reopen(task)
        return task

    def _reopen(self, task: Json) -> None:
        open_tasks = self._open_tasks.setdefault(task["pool_id"], [])
        if task["remaining_overlap"] > 0 and all(other["id"] != task["id"] for other in open_tasks):
            open_tasks.append(task)
            open_tasks.sort(key=lambda other: str(other["id"]))

    def _review(self, assignment_id: str, body: Json) -> Json:
        assignment = self._get(self.assignments, assignment_id)
        status = body.get("status")
        if status not in ("ACCEPTED", "REJECTED"):
            raise _ApiError(400, "VALIDATION_ERROR", "status must be ACCEPTED or REJECTED")
        if assignment["status"] != "SUBMITTED":
            raise _ApiError(409, "CONFLICT_STATE", f"assignment is {assignment['status']}")
        assignment["status"] = status
        assignment[status.lower()] = _iso(_now())
        assignment["public_comment"] = body.get("public_comment", "")
        if status == "REJECTED":
            # Toloka hands a rejected assignment's tasks out again.
            for task in assignment["tasks"]:
                stored = self.tasks[task["id"]]
                if not stored.get("known_solutions"):
                    stored["remaining_overlap"] += 1
                    self._reopen(stored)
        return assignment

    # -- faults --------------------------------------------------------------------------

    def draw_fault(self) -> str | None:
        """Which fault (if any) this request gets."""
        faults = self.faults
        draw = self._rng.random()
        for kind, rate in (("429", faults.rate_429), ("500", faults.rate_500), ("slow", faults.rate_slow)):
            if draw < rate:
                self.faults_injected[kind] += 1
                return kind
            draw -= rate
        return None


def _matches(condition: Json | None, values: Json) -> bool:
    """A pool filter (``and``/``or`` trees of conditions, None: everyone) over a Toloker's profile."""
    if condition is None:
        return True
    if "and" in condition:
        return all(_matches(part, values) for part in condition["and"])
    if "or" in condition:
        return any(_matches(part, values) for part in condition["or"])
    return _holds(condition, values)


def _holds(condition: Json, values: Json) -> bool:
    """One condition (a quality-control rule's or a filter's); an unknown key never holds."""
    found = values.get(condition.get("key", ""))
    if found is None:
        return False
    operator = str(condition["operator"])
    if operator in ("IN", "NOT_IN"):  # a list attribute (languages) holds the value, a scalar equals it
        inside: bool = condition["value"] in found if isinstance(found, list) else found == condition["value"]
        return inside == (operator == "IN")
    value, target = float(found), float(condition["value"])
    return {
        "EQ": value == target,
        "NE": value != target,
        "GT": value > target,
        "GTE": value >= target,
        "LT": value < target,
        "LTE": value <= target,
    }[condition["operator"]]


def _compare(value: Any, suffix: str, bound: str) -> bool:
    if isinstance(value, str) and "T" in value and "T" in bound:
        left: Any = datetime.fromisoformat(value.replace("Z", ""))
        right: Any = datetime.fromisoformat(bound.replace("Z", "").split("+")[0])
    else:
        left, right = str(value), bound
    return bool({"gt": left > right, "gte": left >= right, "lt": left < right, "lte": left <= right}[suffix])


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that timed out and hung up is expected here (slow faults), not worth a traceback."""


class _Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 (toloka-kit fails on HTTP/1.0 replies), JSON in and out."""

    protocol_version = "HTTP/1.1"
    standin: TolokaStandIn

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read state, not logs
        pass

    def _serve(self) -> None:
        standin = self.standin
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        authorization = self.headers.get("Authorization", "")
        with standin.lock:
            standin.requests += 1
            standin.tokens_seen.add(authorization.partition(" ")[2])
            fault = standin.draw_fault()
        if fault == "429":
            retry_after = standin.faults.retry_after
            self._reply(429, _error("TOO_MANY_REQUESTS", "too many requests"), {"Retry-After": retry_after})
            return
        if fault == "500":
            self._reply(500, _error("INTERNAL_ERROR", "injected failure"))
            return
        try:
            body = json.loads(raw) if raw else None
            with standin.lock:
                parts = split.path.split("/")
                if self.command == "GET" and len(parts) == 5 and parts[3] == "operations":
                    standin.read_operation(parts[4])
                status, payload = standin.handle(
                    self.command, split.path, parse_qs(split.query, keep_blank_values=True), body
                )
            headers: dict[str, str] = {}
        except _ApiError as error:
            status, payload, headers = error.status, _error(error.code, error.message), error.headers
        if fault == "slow":
            time.sleep(standin.faults.slow_s)  # applied, but the answer comes after the client gave up
        self._reply(status, payload, headers)

    def _reply(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = b"" if payload is None else json.dumps(payload).encode("utf-8")
        try:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            if data:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
            self.close_connection = True

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve  # noqa: N815 - http.server names them


def _error(code: str, message: str) -> Json:
    return {"code": code, "message": message, "request_id": f"standin-{code.lower()}"}


#: When the requests the helpers below build were made.
REQUESTED_AT = datetime(2026, 1, 1, tzinfo=UTC)


def requests_for(
    standin: TolokaStandIn,
    count: int,
    *,
    seed: int = 5,
    prefix: str = "ev",
    classes: tuple[str, ...] = ("positive", "negative"),
) -> list[LabelRequest]:
    """``count`` low-confidence LabelRequests whose true labels the stand-in's Tolokers know."""
    rng = random.Random(seed)
    requests = []
    for i in range(count):
        event_id = f"{prefix}-{i}"
        standin.truth[event_id] = rng.choice(classes)
        event = PredictionEvent(
            event_id=event_id,
            model_name="m",
            model_version="1",
            created_at=REQUESTED_AT,
            input=PredictionInput(text=f"case {i}", features={"x0": float(i)}),
            predicted_label=classes[0],
            scores={classes[0]: 0.55, classes[1]: 0.45},
        )
        requests.append(
            LabelRequest(
                prediction=event,
                route="low_confidence",
                reason="low confidence",
                priority=0.45,
                uncertainty=0.45,
                requested_at=REQUESTED_AT,
            )
        )
    return requests


async def label_all(
    backend: LabelingBackend, requests: list[LabelRequest], timeout_s: float = 60.0
) -> list[CrowdAnswer]:
    """Label every request at once through ``backend``; every answer reported, in order; then stop it."""
    answers: list[CrowdAnswer] = []

    async def keep(answer: CrowdAnswer) -> None:
        answers.append(answer)

    try:
        await asyncio.wait_for(asyncio.gather(*(backend.label(r, keep) for r in requests)), timeout=timeout_s)
    finally:
        await backend.stop()
    return answers
