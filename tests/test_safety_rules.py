"""Rules the source keeps: nothing from a topic or a request is unpickled, tokens compare in constant time.

Read from the code itself (``ast``), so a new module that breaks a rule fails here
before it ships. The only unpickling allowed is the learner's checkpoint store:
local files this worker wrote and verified by sha256, never bytes from Kafka or HTTP.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from streams.app import create_app
from streams.settings import Settings

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("schemas", "streams", "agents", "bench")
#: Modules allowed to unpickle, and why.
UNPICKLERS = {Path("agents/learner/checkpoint.py"): "local checkpoints it wrote, verified by sha256"}
#: Deserialisers that run code or build arbitrary objects from bytes.
UNSAFE_CALLS = {
    ("pickle", "load"),
    ("pickle", "loads"),
    ("pickle", "Unpickler"),
    ("marshal", "load"),
    ("marshal", "loads"),
    ("shelve", "open"),
    ("dill", "loads"),
    ("cloudpickle", "loads"),
    ("jsonpickle", "decode"),
    ("yaml", "load"),
    ("yaml", "unsafe_load"),
    ("yaml", "full_load"),
    ("joblib", "load"),
}


def _sources() -> list[Path]:
    return sorted(
        path.relative_to(REPO_ROOT) for package in PACKAGES for path in (REPO_ROOT / package).rglob("*.py")
    )


def _unsafe_calls(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    imported: dict[str, tuple[str, str]] = {}  # `from pickle import loads as x` -> x: (pickle, loads)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                imported[alias.asname or alias.name] = (node.module.split(".")[0], alias.name)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        function = node.func
        if isinstance(function, ast.Attribute) and isinstance(function.value, ast.Name):
            pair = (function.value.id, function.attr)
        elif isinstance(function, ast.Name) and function.id in imported:
            pair = imported[function.id]
        else:
            continue
        if pair in UNSAFE_CALLS:
            found.append((node.lineno, ".".join(pair)))
    return found


def test_nothing_is_unpickled_outside_the_checkpoint_store() -> None:
    sources = _sources()
    assert len(sources) > 50, "the source tree was not found"
    offenders = []
    for path in sources:
        if path in UNPICKLERS:
            continue
        for line, call in _unsafe_calls(ast.parse((REPO_ROOT / path).read_text(encoding="utf-8"))):
            offenders.append(f"{path}:{line}: {call}")
    assert offenders == [], "deserialisers that can run code, outside the checkpoint store: " + ", ".join(
        offenders
    )


def test_the_rule_catches_every_spelling() -> None:
    tree = ast.parse(
        "import pickle\nfrom pickle import loads as l\npickle.loads(b'')\nl(b'')\nyaml.load(s)\n"
    )
    assert [call for _, call in _unsafe_calls(tree)] == ["pickle.loads", "pickle.loads", "yaml.load"]


def test_faust_moves_raw_bytes_only(tmp_path: Path) -> None:
    # faust's default serializers include pickle; ours are raw bytes everywhere and our codecs parse JSON.
    app = create_app(Settings(data_dir=tmp_path / "worker"))
    assert (app.conf.key_serializer, app.conf.value_serializer) == ("raw", "raw")
    table_source = (REPO_ROOT / "agents" / "loop.py").read_text(encoding="utf-8")
    assert 'key_serializer="raw", value_serializer="raw"' in table_source
    for path in _sources():
        text = (REPO_ROOT / path).read_text(encoding="utf-8")
        assert "serializer='pickle'" not in text, path
        assert 'serializer="pickle"' not in text, path


@pytest.mark.parametrize("path", ["agents/operator_api.py", "agents/pools/experts/server.py"])
def test_tokens_are_compared_in_constant_time(path: str) -> None:
    tree = ast.parse((REPO_ROOT / path).read_text(encoding="utf-8"))
    digests = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "hmac.compare_digest"
    ]
    assert digests, f"{path} compares no token with hmac.compare_digest"
    for node in ast.walk(tree):
        # `presented == token.get_secret_value()` leaks the token's prefix through timing.
        if isinstance(node, ast.Compare) and any(isinstance(op, ast.Eq | ast.NotEq) for op in node.ops):
            text = ast.unparse(node)
            assert "get_secret_value" not in text, f"{path}:{node.lineno}: {text}"
            assert "_token" not in text, f"{path}:{node.lineno}: {text}"
