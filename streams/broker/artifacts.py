"""The broker's runtime: Java 17+ found on PATH, the Kafka jars fetched by Maven from Maven Central.

``broker/pom.xml`` names the jars; they are copied into ``<home>/libs`` with a stamp (the pom's
sha256 and the jar names), so a changed pom fetches again and an interrupted fetch never leaves
half a classpath.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import subprocess
from pathlib import Path

from streams.broker.files import last_lines, write_atomic
from streams.broker.settings import DOCKER_HINT
from streams.errors import BrokerError

logger = logging.getLogger(__name__)

MIN_JAVA_MAJOR = 17  # Kafka 4.x brokers need Java 17+
STAMP_NAME = ".labelloop-stamp.json"
_MVN_TIMEOUT_S = 900.0
_JAVA_VERSION = re.compile(r'version "(\d+)(?:\.(\d+))?')


def java_major_version(version_output: str) -> int | None:
    """The major Java version from ``java -version`` output, None if it has none.

    Examples
    --------
    >>> java_major_version('openjdk version "17.0.15" 2025-04-15')
    17
    >>> java_major_version('java version "1.8.0_351"')
    8
    >>> java_major_version('openjdk version "21-ea" 2023-09-19')
    21
    """
    match = _JAVA_VERSION.search(version_output)
    if match is None:
        return None
    major = int(match[1])
    return int(match[2]) if major == 1 and match[2] else major


def find_java() -> str:
    java = require_tool("java", f"the Kafka broker runs on Java {MIN_JAVA_MAJOR}+")
    try:
        result = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BrokerError(f"`{java} -version` failed: {exc}") from exc
    output = result.stderr + result.stdout  # java -version writes to stderr
    major = java_major_version(output)
    if major is None:
        raise BrokerError(f"cannot read a Java version from `{java} -version`: {output.strip()!r}")
    if major < MIN_JAVA_MAJOR:
        raise BrokerError(
            f"Kafka 4 needs Java {MIN_JAVA_MAJOR} or newer, but {java} is Java {major}. "
            f"Put a newer JDK first on PATH, {DOCKER_HINT}"
        )
    return java


def require_tool(name: str, why: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BrokerError(f"`{name}` is not on PATH ({why}). Install it, {DOCKER_HINT}")
    return path


def pom_sha256(pom: Path) -> str:
    """The sha256 of the pom that names the jars (the stamp compares it)."""
    try:
        return hashlib.sha256(pom.read_bytes()).hexdigest()
    except OSError as exc:
        raise BrokerError(
            f"cannot read the broker pom {pom} ({exc.strerror}); set LABELLOOP_BROKER_POM, {DOCKER_HINT}"
        ) from exc


def artifacts_ready(libs_dir: Path, pom: Path) -> bool:
    """True when ``libs_dir`` holds every jar fetched for the current ``pom``."""
    try:
        stamp = json.loads((libs_dir / STAMP_NAME).read_text())
    except (OSError, ValueError):
        return False
    jars = stamp.get("jars") if isinstance(stamp, dict) else None
    return (
        stamp.get("pom_sha256") == pom_sha256(pom)
        and isinstance(jars, list)
        and bool(jars)
        and all((libs_dir / str(jar)).is_file() for jar in jars)
    )


def fetch_artifacts(home: Path, libs_dir: Path, pom: Path) -> None:
    """Fetch the jars ``pom`` names into ``libs_dir`` with Maven (via a staging folder in ``home``)."""
    mvn = require_tool("mvn", "Maven fetches the Kafka jars from Maven Central")
    digest = pom_sha256(pom)
    # Fetch into a fresh folder so jars of an older pom never share the classpath.
    staging = home / "libs.partial"
    shutil.rmtree(staging, ignore_errors=True)
    logger.info("fetching the Kafka broker jars named in %s (first time ~25 s)", pom)
    goal = ["dependency:copy-dependencies", "-DincludeScope=runtime"]
    command = [mvn, "-B", "-q", "-f", str(pom), *goal, f"-DoutputDirectory={staging}"]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=_MVN_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise BrokerError(f"mvn did not finish within {exc.timeout:g} s") from exc
    if result.returncode != 0:
        output = last_lines(result.stdout + result.stderr, 30)
        raise BrokerError(
            f"mvn could not fetch the Kafka jars (exit {result.returncode}):\n"
            f"{output}\nFix the above, {DOCKER_HINT}"
        )
    jars = sorted(jar.name for jar in staging.glob("*.jar"))
    if not jars:
        raise BrokerError(f"mvn copied no jars from {pom} into {staging}")
    stamp = {"pom": str(pom), "pom_sha256": digest, "jars": jars}
    write_atomic(staging / STAMP_NAME, json.dumps(stamp, indent=2) + "\n")
    shutil.rmtree(libs_dir, ignore_errors=True)
    staging.rename(libs_dir)
