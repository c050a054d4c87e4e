"""``make drill``: inject one fault class at a time into a stream of events and count what survives.

Each fault class gets a fresh loop (its own topic prefix and consumer group on
the broker) with a real ``labelloop worker`` process, a stream of simulated
predictions published at a steady rate (1 % of them published twice, as a
retrying producer would), and one fault injected while the stream runs:

==================  ====================================================================
sigkill             the worker is SIGKILLed three times mid-stream, a new one started each time
broker_restart      the (private) broker is stopped and started again mid-stream
poison              a burst of malformed records of many kinds, a 10 MB record among them
crowd_outage        the crowd backend (Toloka, against the stand-in) answers 429, 500 and
                    timeouts for a period
stray_answers       crowd answers for tasks that never existed and for tasks already decided
clock_skew          the producer's clock runs hours ahead or behind the worker's
disk_full           the model store (the learner's checkpoints) sits on a full filesystem
==================  ====================================================================

At the end every label and DLQ record is read back into a
:class:`bench.drill_ledger.Ledger`, which prints the table (events in, labels
out, DLQ, duplicates, losses per fault class) and the D1 goal line. Losses and
duplicates must be zero.

Run ``python -m bench.drill`` (``make drill``: 20,000 events per fault class);
``--events 2000`` for a short run, ``--faults sigkill,poison`` for a subset.
The broker restart runs on a private broker (ports 29830/29831), never on the
shared one; the full disk needs root (a 64 kB tmpfs is mounted for the model store).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from agents.simulation.poison import poison_records, unusual_records
from agents.simulation.stream import SimulatedEvent, StreamSettings, simulate
from bench.drill_ledger import FaultCounts, Ledger, goal, table
from bench.drill_loop import GHOST_WORKER, DrillSettings, Loop, Publisher, Reader, worker_logs
from schemas import CrowdAnswer
from streams.broker import BrokerSettings, LocalBroker
from streams.sdk import PredictionPublisher
from streams.settings import Settings
from streams.topic_admin import delete_topics

log = logging.getLogger("labelloop.drill")

REPO_ROOT = Path(__file__).resolve().parent.parent
FAULTS = (
    "sigkill",
    "broker_restart",
    "poison",
    "crowd_outage",
    "stray_answers",
    "clock_skew",
    "disk_full",
)
#: The private broker of the broker-restart drill (never the shared one).
DRILL_BROKER = BrokerSettings(
    port=29830, controller_port=29831, home=REPO_ROOT / ".labelloop" / "drill-kafka"
)
#: A 10 MB record needs a topic (and producer) limit above it; the drill's predictions topic gets this.
BIG_RECORD_LIMIT = 12 * 1024 * 1024
#: What each fault class must have done before its run may end (else the drill fails).
REQUIRED = {
    "sigkill": frozenset({"kill at 0.2", "kill at 0.45", "kill at 0.7"}),
    "broker_restart": frozenset({"restart"}),
    "poison": frozenset({"burst"}),
    "crowd_outage": frozenset({"outage", "healthy"}),
    "stray_answers": frozenset({"unknown", "closed"}),
}


# --- the fault classes ------------------------------------------------------------------------

#: What a fault class does while the stream runs: called with the drill's state every ~0.2 s.
Injector = Callable[["Run"], None]


@dataclass
class Run:
    """The state of one fault class's run, for its injector."""

    loop: Loop
    ledger: Ledger
    publisher: Publisher
    stream: list[SimulatedEvent]
    #: A producer of the drill's own for what it injects (poison, forged answers), flushed at once.
    side: PredictionPublisher
    #: The steps the fault class must have taken before the run may end.
    required: frozenset[str] = frozenset()
    done: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)

    @property
    def injected(self) -> bool:
        return self.required <= self.done

    def send(self, records: list[tuple[bytes | None, bytes | None, str | None]]) -> None:
        """Publish ``(key, value, topic)`` records (the predictions topic when None) and wait for them."""
        for key, value, topic in records:
            self.side.publish_raw(key, value, topic)
        self.side.flush(timeout_s=120)

    def once(self, step: str, when: bool) -> bool:
        """True the first time ``when`` holds for ``step``."""
        if when and step not in self.done:
            self.done.add(step)
            return True
        return False


def _inject_sigkill(run: Run) -> None:
    for share in (0.2, 0.45, 0.7):
        if run.once(f"kill at {share}", run.publisher.progress >= share):
            run.loop.kill_worker(run.loop.workers[-1], signal.SIGKILL)
            run.loop.start_worker()
            run.notes.append(f"SIGKILL at {share:.0%} of the stream")


def _inject_broker_restart(broker: LocalBroker) -> Injector:
    def inject(run: Run) -> None:
        if run.once("restart", run.publisher.progress >= 0.4):
            started = time.monotonic()
            broker.stop()
            time.sleep(3)
            broker.start()
            run.notes.append(f"broker down and back in {time.monotonic() - started:.1f} s")

    return inject


def _inject_poison(run: Run) -> None:
    if run.once("burst", run.publisher.progress >= 0.5):
        seeds = [simulated.event for simulated in run.stream[:3]]
        burst = [record for event in seeds for record in poison_records(event)]
        burst += unusual_records(seeds[0], ten_mb=True)
        for record in burst:
            run.ledger.sent_poison(record.kind, record.key, record.value)
        run.send([(record.key, record.value, None) for record in burst])
        run.notes.append(f"{len(burst)} poison records of {len({r.kind for r in burst})} kinds")


def _inject_stray_answers(run: Run) -> None:
    """Answers for tasks that never existed, then for tasks whose label is out (closed)."""
    if run.once("unknown", run.publisher.progress >= 0.3):
        answers = [_ghost_answer(f"never-published-{n}", n) for n in range(50)]
        _send_answers(run, answers)
        run.notes.append("50 answers for unknown tasks")
    if "unknown" in run.done and "closed" not in run.done:
        decided = run.ledger.human_labeled()[:50]
        if len(decided) >= 10 and run.once("closed", True):
            _send_answers(run, [_ghost_answer(event_id, n) for n, event_id in enumerate(decided)])
            run.notes.append(f"{len(decided)} answers for closed tasks")


def _ghost_answer(event_id: str, n: int) -> CrowdAnswer:
    return CrowdAnswer(
        event_id=event_id,
        task_id=f"{event_id}-ghost",
        pool="simulated",
        worker_id=f"{GHOST_WORKER}-{n % 5}",
        label="positive",
        time_spent_s=1.0,
        answered_at=datetime.now(UTC),
        overlap=1,
    )


def _send_answers(run: Run, answers: list[CrowdAnswer]) -> None:
    topic = run.loop.names.crowd_answers
    run.send([(answer.event_id.encode(), answer.to_json_bytes(), topic) for answer in answers])


# --- one fault class, end to end ---------------------------------------------------------------


def _stream(
    loop: Loop, drill: DrillSettings, clock: Callable[[], datetime] | None = None
) -> list[SimulatedEvent]:
    settings = StreamSettings(events=drill.events, train_size=500, run_id=loop.settings.app_id, drift_at=2.0)
    return list(simulate(settings, clock) if clock is not None else simulate(settings))


def _skewed_clock() -> Callable[[], datetime]:
    """A producer clock that is 3 hours ahead for a while, then 6 hours behind, then right."""
    count = 0

    def clock() -> datetime:
        nonlocal count
        count += 1
        phase = count % 3
        skew = {0: timedelta(hours=3), 1: timedelta(hours=-6), 2: timedelta(0)}[phase]
        return datetime.now(UTC) + skew

    return clock


@contextlib.contextmanager
def _full_disk(folder: Path) -> Iterator[None]:
    """A 64 kB tmpfs at ``folder``, filled to the last byte (needs root)."""
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)], check=True)
    try:
        descriptor = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while os.write(descriptor, b"\0" * 512):
                pass
        except OSError:  # ENOSPC: full
            pass
        finally:
            os.close(descriptor)
        yield
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def run_fault(fault: str, drill: DrillSettings, bootstrap: str) -> FaultCounts:
    """Run one fault class on a fresh loop and return its row of the table."""
    ledger = Ledger(fault)
    env: dict[str, str] = {}
    inject: Injector = lambda run: None  # noqa: E731 - a fault class that injects nothing itself
    clock = None
    producer_options: dict[str, Any] = {}
    exits = contextlib.ExitStack()
    broker: LocalBroker | None = None
    if fault == "broker_restart":
        broker = LocalBroker(DRILL_BROKER)
        bootstrap = broker.start()
        exits.callback(broker.stop)
        inject = _inject_broker_restart(broker)
    loop = Loop(fault, bootstrap, drill, **env)
    required = REQUIRED.get(fault, frozenset())
    if fault == "sigkill":
        inject = _inject_sigkill
    elif fault == "poison":
        inject = _inject_poison
        producer_options["max_request_size"] = BIG_RECORD_LIMIT
    elif fault == "stray_answers":
        inject = _inject_stray_answers
    elif fault == "clock_skew":
        clock = _skewed_clock()
    elif fault == "crowd_outage":
        inject = _inject_crowd_outage(exits.enter_context(_crowd_on_toloka(loop)))
    elif fault == "disk_full":
        loop.env["LABELLOOP_LEARNER__CHECKPOINT_EVERY_S"] = "1"
        exits.enter_context(_full_disk(loop.settings.data_dir / "models"))
    elif fault != "broker_restart":
        raise ValueError(f"unknown fault class {fault!r}; known: {', '.join(FAULTS)}")
    with exits:
        loop.create()
        if fault == "poison":
            _raise_topic_limit(loop.settings, loop.names.predictions, BIG_RECORD_LIMIT)
        stream = _stream(loop, drill, clock)
        reader = Reader(loop, ledger)
        publisher = Publisher(loop, ledger, stream, drill, **producer_options)
        side = exits.enter_context(PredictionPublisher(loop.settings, **producer_options))
        run = Run(loop, ledger, publisher, stream, side, required)
        started = time.monotonic()
        try:
            loop.start_worker()
            publisher.start()
            deadline: float | None = None
            while True:
                inject(run)
                reader.poll()
                counts = ledger.counts()
                if not publisher.is_alive():
                    if publisher.error is not None:
                        raise RuntimeError(f"{fault}: publishing failed: {publisher.error!r}")
                    deadline = deadline or time.monotonic() + drill.drain_s
                    if (counts.losses == 0 and run.injected) or time.monotonic() > deadline:
                        break
            settle_until = time.monotonic() + drill.settle_s
            while time.monotonic() < settle_until:
                reader.poll()
        finally:
            reader.close()
            loop.stop(delete=False)
        elapsed = time.monotonic() - started
        if not run.injected:
            raise RuntimeError(f"{fault}: the fault was not injected: {sorted(run.required - run.done)}")
        counts = ledger.counts()
        if fault == "clock_skew":
            run.notes.append("created_at 3 h ahead, 6 h behind or right, in turn")
        if fault == "disk_full":
            refused = sum(text.count("No space left") for text in worker_logs(loop))
            run.notes.append(f"{refused} log lines about checkpoints refused for lack of space")
        if counts.holds:
            with contextlib.suppress(Exception):
                delete_topics(loop.settings)
        else:
            run.notes.append(f"logs and topics kept: {loop.home}, prefix {loop.settings.topics.prefix}")
    if counts.holds:
        shutil.rmtree(loop.home, ignore_errors=True)
    note = "; ".join([*run.notes, f"{elapsed:.0f} s", *counts.examples])
    print(f"{fault}: {note}", flush=True)
    return counts


@contextlib.contextmanager
def _crowd_on_toloka(loop: Loop) -> Iterator[Any]:
    """The crowd tier on Toloka (toloka-kit against the stand-in) for this loop's worker."""
    from tests.standin.toloka import TolokaStandIn

    standin = TolokaStandIn()
    with standin.serve():
        token_file = loop.home / "toloka-token"
        token_file.write_text(uuid.uuid4().hex)
        loop.env |= {
            "LABELLOOP_POOLS__TOLOKA__ENABLED": "true",
            "LABELLOOP_POOLS__TOLOKA__URL": standin.url,
            "LABELLOOP_POOLS__TOLOKA__TOKEN_FILE": str(token_file),
            "LABELLOOP_POOLS__TOLOKA__POLL_INTERVAL_S": "0.5",
            "LABELLOOP_POOLS__TOLOKA__REQUEST_TIMEOUT_S": "2",
        }
        yield standin


def _inject_crowd_outage(standin: Any, outage_s: float = 15.0) -> Injector:
    """Every Toloka request fails (429 with Retry-After, 500, or a timeout) from 30 % of the stream
    for at least ``outage_s`` and until 70 % of it is published; then the backend is healthy again."""
    from tests.standin.toloka import Faults

    began: list[float] = []

    def inject(run: Run) -> None:
        if run.once("outage", run.publisher.progress >= 0.3):
            standin.faults = Faults.total(1.0, slow_s=3.0, retry_after="1")
            began.append(time.monotonic())
        over = bool(began) and time.monotonic() - began[0] >= outage_s
        if run.once("healthy", over and run.publisher.progress >= 0.7):
            standin.faults = Faults()
            injected = dict(standin.faults_injected)
            run.notes.append(f"Toloka failing for {time.monotonic() - began[0]:.0f} s: {injected}")

    return inject


def _raise_topic_limit(settings: Settings, topic: str, limit: int) -> None:
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

    admin = KafkaAdminClient(client_id="labelloop-drill", **settings.kafka.kafka_python_options())
    try:
        resource = ConfigResource(ConfigResourceType.TOPIC, topic, configs={"max.message.bytes": str(limit)})
        admin.alter_configs([resource])
    finally:
        admin.close()


def drill(faults: list[str], settings: DrillSettings, bootstrap: str) -> list[FaultCounts]:
    """Run each fault class in turn; print the table and the D1 goal line."""
    rows = [run_fault(fault, settings, bootstrap) for fault in faults]
    print(table(rows))
    print(goal(rows).line())
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.drill", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=DrillSettings.events)
    parser.add_argument("--rate", type=float, default=DrillSettings.rate_per_s)
    parser.add_argument("--faults", default=",".join(FAULTS))
    parser.add_argument("--guarantee", choices=("at_least_once", "exactly_once"), default="at_least_once")
    parser.add_argument("--bootstrap", default=os.environ.get("LABELLOOP_TEST_BOOTSTRAP", "127.0.0.1:19092"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    # The clients' retries on fresh topics and during the faults (NotLeaderForPartition, reconnects)
    # are expected here; what they led to is what the ledger counts.
    for client in ("kafka", "aiokafka"):
        logging.getLogger(client).setLevel(logging.CRITICAL)
    faults = [fault.strip() for fault in args.faults.split(",") if fault.strip()]
    if unknown := set(faults) - set(FAULTS):
        parser.error(f"unknown fault classes {sorted(unknown)}; known: {', '.join(FAULTS)}")
    settings = DrillSettings(events=args.events, rate_per_s=args.rate, guarantee=args.guarantee)
    print(
        f"drill: {len(faults)} fault classes, {settings.events} events each at {settings.rate_per_s:g}/s, "
        f"{settings.guarantee} workers"
    )
    rows = drill(faults, settings, args.bootstrap)
    return 0 if goal(rows).holds else 1


if __name__ == "__main__":
    sys.exit(main())
