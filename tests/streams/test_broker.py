"""Tests for the local broker launcher: config, artifacts, processes (no Java), then real Kafka."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import ValidationError

from streams.broker import (
    STAMP_NAME,
    BrokerError,
    BrokerSettings,
    LocalBroker,
    is_reachable,
    java_major_version,
    log4j2_properties,
    render_properties,
    scram_listener_properties,
    server_properties,
    wait_until_reachable,
)
from streams.broker.probes import parse_bootstrap

JAVA_17 = 'openjdk version "17.0.15" 2025-04-15'


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _script(path: Path, body: str) -> str:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


@pytest.fixture
def make_broker(tmp_path: Path) -> Callable[[], LocalBroker]:
    """A broker on free ports whose home and pom live in tmp_path."""
    pom = tmp_path / "pom.xml"
    pom.write_text("<project>v1</project>\n")

    def make() -> LocalBroker:
        port, controller_port = _free_port(), _free_port()
        settings = BrokerSettings(
            port=port, controller_port=controller_port, home=tmp_path / "kafka", pom=pom
        )
        return LocalBroker(settings)

    return make


@pytest.fixture
def tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str | None]:
    """shutil.which answers from this dict: a fake Java 17 and a fake mvn that counts its runs.

    The fake mvn writes `kafka-<run>.jar` into -DoutputDirectory and logs its arguments.
    """
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    found: dict[str, str | None] = {
        "java": _script(bin_dir / "java", f"echo '{JAVA_17}' >&2\n"),
        "mvn": _script(
            bin_dir / "mvn",
            'echo "$@" >> "$(dirname "$0")/mvn-runs"\n'
            'run=$(($(wc -l < "$(dirname "$0")/mvn-runs")))\n'
            'for arg in "$@"; do case "$arg" in -DoutputDirectory=*) '
            'out="${arg#-DoutputDirectory=}";; esac; done\n'
            'mkdir -p "$out" && touch "$out/kafka-$run.jar"\n',
        ),
    }
    monkeypatch.setattr(shutil, "which", found.get)
    return found


def _mvn_runs(found: dict[str, str | None]) -> int:
    runs = Path(str(found["mvn"])).parent / "mvn-runs"
    return len(runs.read_text().splitlines()) if runs.exists() else 0


# --- configuration ----------------------------------------------------------------------


def test_server_properties_follow_the_recipe() -> None:
    settings = BrokerSettings(port=19092, controller_port=19093)
    props = server_properties(settings, Path("/srv/kafka/data"))
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert props["log.dirs"] == "/srv/kafka/data"
    assert props["auto.create.topics.enable"] == "false"
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert props["num.partitions"] == "1"
    assert props["log.cleaner.enable"] == "true"
    replication = {key: value for key, value in props.items() if "replication.factor" in key}
    assert set(replication) == {
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "share.coordinator.state.topic.replication.factor",
    }
    assert set(replication.values()) == {"1"}


def test_extra_properties_extend_and_override() -> None:
    extra = {"sasl.enabled.mechanisms": "SCRAM-SHA-512", "num.partitions": "3"}
    props = server_properties(BrokerSettings(), Path("/d"), extra)
    assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert props["num.partitions"] == "3"


def test_render_properties_escapes_backslashes_and_refuses_line_breaks() -> None:
    text = render_properties({"log.dirs": "C:\\kafka", "node.id": "1"}, header="made here")
    assert text == "# made here\nlog.dirs=C:\\\\kafka\nnode.id=1\n"
    with pytest.raises(ValueError, match="one line"):
        render_properties({"listeners": "PLAINTEXT://:9092\nnode.id=2"})
    with pytest.raises(ValueError, match="invalid property name"):
        render_properties({"bad key": "x"})


def test_log4j2_logs_to_the_given_file_and_quiets_noisy_packages(tmp_path: Path) -> None:
    props = log4j2_properties(tmp_path / "server.log")
    assert props["appender.file.fileName"] == str(tmp_path / "server.log")
    assert props["appender.file.type"] == "File"
    assert props["rootLogger.level"] == "INFO"
    quiet = {props[key] for key in props if key.startswith("logger.") and key.endswith(".name")}
    assert {"kafka.log.LogCleaner", "org.apache.kafka.storage"} <= quiet


def test_settings_read_the_env_and_are_frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABELLOOP_BROKER_PORT", "19999")
    settings = BrokerSettings()
    assert settings.port == 19999
    assert LocalBroker(settings).bootstrap == "127.0.0.1:19999"
    with pytest.raises(ValidationError):
        settings.port = 1  # type: ignore[misc]
    with pytest.raises(ValidationError, match="must differ"):
        BrokerSettings(port=9092, controller_port=9092)


@pytest.mark.parametrize(
    ("output", "major"),
    [
        (JAVA_17, 17),
        ('java version "1.8.0_351"', 8),
        ('openjdk version "21" 2023-09-19', 21),
        ('openjdk version "25-ea" 2025-09-16', 25),
        ("command not found", None),
    ],
)
def test_java_major_version(output: str, major: int | None) -> None:
    assert java_major_version(output) == major


@pytest.mark.parametrize(
    ("bootstrap", "endpoints"),
    [
        ("127.0.0.1:19092", [("127.0.0.1", 19092)]),
        ("kafka://a:1, b:2", [("a", 1), ("b", 2)]),
        ("[::1]:9093", [("::1", 9093)]),
        ("localhost", [("localhost", 9092)]),
    ],
)
def test_bootstrap_strings_are_parsed(bootstrap: str, endpoints: list[tuple[str, int]]) -> None:
    assert parse_bootstrap(bootstrap) == endpoints


# --- artifacts (fake java and mvn) ------------------------------------------------------


def test_missing_java_points_at_docker_compose(
    make_broker: Callable[[], LocalBroker], tools: dict[str, str | None]
) -> None:
    tools["java"] = None
    with pytest.raises(BrokerError, match=r"`java` is not on PATH.*docker compose up"):
        make_broker().ensure_artifacts()


def test_missing_mvn_points_at_docker_compose(
    make_broker: Callable[[], LocalBroker], tools: dict[str, str | None]
) -> None:
    tools["mvn"] = None
    with pytest.raises(BrokerError, match=r"`mvn` is not on PATH.*docker compose up"):
        make_broker().ensure_artifacts()


def test_java_older_than_17_is_refused(
    make_broker: Callable[[], LocalBroker], tools: dict[str, str | None], tmp_path: Path
) -> None:
    tools["java"] = _script(tmp_path / "java11", "echo 'openjdk version \"11.0.2\"' >&2\n")
    with pytest.raises(BrokerError, match=r"Java 17 or newer.*Java 11"):
        make_broker().ensure_artifacts()


def test_jars_are_fetched_once_per_pom(
    make_broker: Callable[[], LocalBroker], tools: dict[str, str | None], tmp_path: Path
) -> None:
    broker = make_broker()
    assert not broker.artifacts_ready()
    broker.ensure_artifacts()
    broker.ensure_artifacts()
    assert _mvn_runs(tools) == 1
    assert broker.artifacts_ready()
    assert sorted(p.name for p in broker.libs_dir.iterdir()) == [STAMP_NAME, "kafka-1.jar"]

    (tmp_path / "pom.xml").write_text("<project>v2</project>\n")
    assert not broker.artifacts_ready()
    broker.ensure_artifacts()
    assert _mvn_runs(tools) == 2
    # The old pom's jars are gone: two Kafka versions never share the classpath.
    assert sorted(p.name for p in broker.libs_dir.iterdir()) == [STAMP_NAME, "kafka-2.jar"]
    assert "-DincludeScope=runtime" in (Path(str(tools["mvn"])).parent / "mvn-runs").read_text()


def test_a_missing_jar_is_fetched_again(
    make_broker: Callable[[], LocalBroker], tools: dict[str, str | None]
) -> None:
    broker = make_broker()
    broker.ensure_artifacts()
    (broker.libs_dir / "kafka-1.jar").unlink()
    broker.ensure_artifacts()
    assert _mvn_runs(tools) == 2
    assert broker.artifacts_ready()


def test_mvn_failure_is_reported_with_its_output(
    make_broker: Callable[[], LocalBroker], tools: dict[str, str | None], tmp_path: Path
) -> None:
    tools["mvn"] = _script(tmp_path / "mvn-offline", "echo '[ERROR] Could not resolve'\nexit 1\n")
    broker = make_broker()
    with pytest.raises(BrokerError, match=r"(?s)exit 1.*Could not resolve"):
        broker.ensure_artifacts()
    assert not broker.artifacts_ready()


def test_missing_pom_is_a_broker_error(
    make_broker: Callable[[], LocalBroker], tools: dict[str, str | None], tmp_path: Path
) -> None:
    (tmp_path / "pom.xml").unlink()
    with pytest.raises(BrokerError, match="LABELLOOP_BROKER_POM"):
        make_broker().ensure_artifacts()


# --- process handling without a broker --------------------------------------------------


def test_status_and_stop_when_nothing_runs(make_broker: Callable[[], LocalBroker]) -> None:
    broker = make_broker()
    status = broker.status()
    assert (status.pid, status.running, status.reachable) == (None, False, False)
    assert status.bootstrap == broker.bootstrap
    assert broker.stop() is False
    assert broker.stop() is False


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to tell processes apart")
def test_a_stale_pid_file_never_signals_another_process(
    make_broker: Callable[[], LocalBroker],
) -> None:
    broker = make_broker()
    broker.home.mkdir(parents=True)
    broker.pid_file.write_text(f"{os.getpid()}\n")  # alive, but not a Kafka broker
    assert broker.status().pid is None
    assert broker.stop() is False
    assert not broker.pid_file.exists()


def test_start_refuses_a_port_held_by_something_else(
    make_broker: Callable[[], LocalBroker], tools: dict[str, str | None]
) -> None:
    tools["java"] = tools["mvn"] = None  # the port check comes before any Java work
    broker = make_broker()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", broker.settings.port))
        squatter.listen()
        assert not is_reachable(broker.bootstrap, timeout_s=0.5)
        with pytest.raises(BrokerError, match=f"127.0.0.1:{broker.settings.port} is taken"):
            broker.start()


def test_start_refuses_an_extra_listener_port_a_client_socket_holds(
    make_broker: Callable[[], LocalBroker], tools: dict[str, str | None], tmp_path: Path
) -> None:
    """A bound, non-listening socket (a client connection's local port) blocks the JVM's bind too.

    Kafka would exit during startup with only its shutdown in the log tail; the
    launcher names the port before any Java work.
    """
    tools["java"] = tools["mvn"] = None
    broker = make_broker()
    with socket.socket() as client_side:
        client_side.bind(("127.0.0.1", 0))
        held = client_side.getsockname()[1]
        extra = scram_listener_properties(broker.settings, sasl_plaintext_port=held)
        with pytest.raises(BrokerError, match=f"127.0.0.1:{held} is taken by another socket"):
            broker.start(extra)


def test_a_startup_failure_names_the_first_error_lines_of_the_log(
    make_broker: Callable[[], LocalBroker],
) -> None:
    broker = make_broker()
    broker.logs_dir.mkdir(parents=True)
    lines = [f"[2026-12-01 21:11:0{i},000] INFO shutting down part {i} (kafka.server)" for i in range(9)]
    lines.insert(2, "[2026-12-01 21:11:01,968] ERROR Unable to start acceptor for SASL_SSL (kafka.network)")
    lines += [f"[2026-12-01 21:11:59,000] INFO noise {i} (kafka.server)" for i in range(60)]
    (broker.logs_dir / "server.log").write_text("\n".join(lines) + "\n")
    tail = broker._log_tail()
    assert "ERROR Unable to start acceptor for SASL_SSL" in tail  # 70 lines back: not in the tail
    assert tail.index("first ERROR lines") < tail.index("last 40 lines")
    assert "noise 59" in tail


def test_wait_until_reachable_gives_up_with_the_bootstrap_in_the_message() -> None:
    bootstrap = f"127.0.0.1:{_free_port()}"
    with pytest.raises(BrokerError, match=f"at {bootstrap} within 0.5 s"):
        wait_until_reachable(bootstrap, timeout_s=0.5)


# --- a real broker ----------------------------------------------------------------------


def _broker_processes(broker: LocalBroker) -> list[int]:
    """Pids of JVMs running kafka.Kafka on this broker's server.properties."""
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if b"kafka.Kafka" in args and bytes(broker.server_properties_file) in args:
            pids.append(int(cmdline.parent.name))
    return pids


@pytest.mark.kafka
def test_start_twice_reuses_the_running_broker(kafka_bootstrap: str, local_broker: LocalBroker) -> None:
    if kafka_bootstrap != local_broker.bootstrap:
        pytest.skip("the session uses an external broker: no local process to inspect")
    before = local_broker.status()
    assert before.reachable
    if before.pid is None:
        pytest.skip("the broker on this port was started from another checkout: its pid file is not ours")
    assert before.running
    assert before.bootstrap == kafka_bootstrap

    again = LocalBroker(local_broker.settings)  # as a second CLI call would
    assert again.start() == kafka_bootstrap
    assert again.start() == kafka_bootstrap

    assert again.status().pid == before.pid
    if Path("/proc").is_dir():
        assert _broker_processes(again) == [before.pid]
