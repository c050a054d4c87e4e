"""Two judges of the wire contract agree: the models and a JSON Schema validator of the exported schema.

Producers in other languages validate against ``schemas/json/``; the loop validates with the pydantic
models. Hypothesis generates valid PredictionEvent and Label documents and mutates them (wrong types,
numbers out of range, missing and extra fields, odd Unicode, deep nesting, huge values); every one
goes through the DLQ path (``handle_record`` + ``DeadLetters`` + ``dlq_headers``) with a fake Sender.
The loop accepts a document exactly when the ``jsonschema`` package accepts it and the rules the
schema cannot express (stated in the schema's description) hold; every refusal reaches the DLQ with a
reason that names the field.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # no stubs of its own; the test needs none
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from agents.simulation.stream import StreamSettings, simulate
from bench.throughput import prediction_records
from schemas import Label, PredictionEvent, RouteReason, RoutingTrace, WireModel
from schemas.base import MAX_RECORD_BYTES
from schemas.export import schema_path
from schemas.predictions import SCORE_SUM_TOLERANCE
from streams.codec import H_ERROR_KIND, H_ERROR_MESSAGE, decode, headers_dict
from streams.runtime import DeadLetters, Record, handle_record
from tests import factories
from tests.factories import FakeTopic

#: Examples per model: enough to meet every mutation many times, few enough for a shared machine.
EXAMPLES = 400
#: Arrays and objects the loop's JSON parser takes nested inside a record's own object (stated in
#: the schemas' descriptions; measured: 201 levels counting the record's object are read, 202 not).
MAX_INNER_DEPTH = 200

Document = dict[str, Any]
Path = tuple[str | int, ...]


# --- the JSON Schema judge -----------------------------------------------------------------


def _ecma_pattern(
    validator: jsonschema.protocols.Validator, pattern: str, instance: object, schema: object
) -> Iterator[jsonschema.ValidationError]:
    """``pattern`` with ECMA-262's ``$`` (the end of the input), as JSON Schema defines patterns.

    jsonschema runs patterns with Python's ``re``, whose ``$`` also matches before a final newline:
    it would take ``"tx-1\\n"`` as an id, which the spec's regex dialect (and the loop) refuses.
    """
    anchored = pattern[:-1] + r"\Z" if pattern.endswith("$") and not pattern.endswith(r"\$") else pattern
    yield from jsonschema._keywords.pattern(validator, anchored, instance, schema)


JUDGE = jsonschema.validators.extend(jsonschema.Draft202012Validator, validators={"pattern": _ecma_pattern})
#: The same judge with integers as the loop reads them: written without a fraction (a rule the
#: schema cannot state: JSON Schema's ``integer`` admits ``1.0``).
EXACT_INTEGERS = jsonschema.validators.extend(
    JUDGE,
    type_checker=JUDGE.TYPE_CHECKER.redefine(
        "integer", lambda _, value: isinstance(value, int) and not isinstance(value, bool)
    ),
)


@dataclass(frozen=True)
class Contract:
    """One public model and its exported schema, judged both ways."""

    model: type[WireModel]
    schema: dict[str, Any]

    @classmethod
    def of(cls, name: str, model: type[WireModel]) -> Contract:
        schema = json.loads(schema_path(name).read_text(encoding="utf-8"))
        JUDGE.check_schema(schema)
        return cls(model, schema)

    def schema_errors(self, document: Document) -> list[jsonschema.ValidationError]:
        return list(JUDGE(self.schema).iter_errors(document))

    def fractional_integers(self, document: Document) -> list[Path]:
        """Where an integer is written with a fraction (``1.0``): the schema takes it, the loop does not."""
        schema_errors = {tuple(error.absolute_path) for error in self.schema_errors(document)}
        return [
            path
            for path in (
                tuple(error.absolute_path) for error in EXACT_INTEGERS(self.schema).iter_errors(document)
            )
            if path not in schema_errors
        ]

    def unstated_rules_broken(self, document: Document) -> list[Path]:
        """Where a document the schema accepts breaks a rule the schema's description states instead."""
        broken = self.fractional_integers(document)
        if self.model is PredictionEvent:
            scores: dict[str, float] = document["scores"]
            if abs(math.fsum(scores.values()) - 1.0) > SCORE_SUM_TOLERANCE:
                broken.append(("scores",))
            if document["predicted_label"] not in scores:
                broken.append(("scores",))
        return broken


PREDICTION_EVENT = Contract.of("prediction-event", PredictionEvent)
LABEL = Contract.of("label", Label)


def depth(value: object) -> int:
    """Arrays and objects on the deepest path into ``value``, itself included (0 for a scalar)."""
    if isinstance(value, dict):
        return 1 + max(map(depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth, value), default=0)
    return 0


def named_paths(error: jsonschema.ValidationError) -> Iterator[Path]:
    """The fields a schema error is about (a missing property is named by the property)."""
    path = tuple(error.absolute_path)
    if error.validator == "required" and isinstance(error.instance, dict):
        yield from ((*path, name) for name in error.validator_value if name not in error.instance)
    else:
        yield path
    for inner in error.context or ():
        yield from named_paths(inner)


def dotted(path: Path) -> str:
    """A field path as the DLQ reason writes it (pydantic's loc joined by dots)."""
    return ".".join(str(part) for part in path)


# --- the loop: decode through the DLQ path ---------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    accepted: bool
    kind: str = ""
    message: str = ""


def loop_verdict(runner: asyncio.Runner, model: type[WireModel], raw: bytes) -> Verdict:
    """Send ``raw`` through ``handle_record`` as a stage would: decoded, or dead-lettered with why."""
    topic = FakeTopic()
    letters = DeadLetters(topic, stage="router", clock=lambda: factories.WHEN)

    async def handler(record: Record) -> None:
        decode(model, record.value)

    record = Record(key=b"k", value=raw, topic="labelloop.predictions", partition=0, offset=7)
    if runner.run(handle_record(record, handler, letters)):
        assert topic.sent == []
        return Verdict(accepted=True)
    [sent] = topic.sent
    assert sent.value == raw
    headers = headers_dict(sent.headers)
    return Verdict(accepted=False, kind=headers[H_ERROR_KIND], message=headers[H_ERROR_MESSAGE])


# --- valid documents -------------------------------------------------------------------------

#: Characters an id may hold: no whitespace, no control characters; odd ones (astral, private use,
#: zero-width, combining) welcome.
ID_CHARS = st.characters(exclude_categories=["Cc", "Cs", "Zs", "Zl", "Zp"])
ids = st.text(ID_CHARS, min_size=1, max_size=40)
#: Any text JSON can carry as UTF-8 (no lone surrogates: they are not UTF-8).
texts = st.text(st.characters(exclude_categories=["Cs"]), max_size=60)
labels = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=30)
offsets = st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
instants = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=offsets)
timestamps = st.one_of(
    instants.map(datetime.isoformat),
    instants.map(lambda when: when.astimezone(UTC).isoformat().replace("+00:00", "Z")),
    instants.map(lambda when: when.isoformat().replace("T", "t").replace("+00:00", "z")),
)
IMAGE_URLS = [
    "https://example.com/a.png",
    "HTTP://EXAMPLE.COM/CAT.JPG",
    "s3://bucket/key/ünïcode.png",
    "gs://bucket/x",
    "https://例え.jp/猫.png",
]
numbers = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False), st.integers(min_value=-(10**300), max_value=10**300)
)


@st.composite
def score_tables(draw: st.DrawFn) -> tuple[dict[str, float], str]:
    names = draw(st.lists(labels, min_size=1, max_size=6, unique=True))
    weights = draw(st.lists(st.floats(0.0, 1.0), min_size=len(names), max_size=len(names)))
    total = math.fsum(weights)
    scores = {
        name: (weight / total if total > 1e-6 else 1.0 / len(names))
        for name, weight in zip(names, weights, strict=True)
    }
    return scores, draw(st.sampled_from(names))


@st.composite
def prediction_documents(draw: st.DrawFn) -> Document:
    scores, predicted = draw(score_tables())
    model_input: Document = {}
    while not model_input:
        if draw(st.booleans()):
            model_input["text"] = draw(texts)
        if draw(st.booleans()):
            model_input["image_url"] = draw(st.sampled_from(IMAGE_URLS))
        if draw(st.booleans()):
            model_input["features"] = draw(st.dictionaries(labels, numbers, min_size=1, max_size=6))
    document: Document = {
        "event_id": draw(ids),
        "model_name": draw(ids),
        "model_version": draw(st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=20)),
        "created_at": draw(timestamps),
        "input": model_input,
        "predicted_label": predicted,
        "scores": scores,
    }
    if draw(st.booleans()):
        document["schema_version"] = 1
    if draw(st.booleans()):
        document["task"] = draw(ids)
    if draw(st.booleans()):
        document["metadata"] = draw(
            st.dictionaries(texts.filter(lambda key: len(key) <= 64), texts, max_size=4)
        )
    return document


probabilities = st.one_of(st.floats(0.0, 1.0), st.sampled_from([0, 1]))


@st.composite
def label_documents(draw: st.DrawFn) -> Document:
    provenance: Document = {
        "model_name": draw(ids),
        "model_version": draw(st.text(min_size=1, max_size=10)),
        "model_label": draw(labels),
        "model_confidence": draw(probabilities),
    }
    if draw(st.booleans()):
        provenance |= {
            "n_answers": draw(st.integers(0, 1_000)),
            "pool": draw(ids),
            "worker_ids": draw(st.lists(ids, max_size=5)),
        }
    if draw(st.booleans()):
        provenance |= {"operator": draw(ids), "operator_reason": draw(labels), "action_id": draw(ids)}
    document: Document = {
        "event_id": draw(ids),
        "label": draw(labels),
        "source": draw(st.sampled_from(["model", "crowd", "expert"])),
        "confidence": draw(probabilities),
        "route": draw(st.sampled_from(["accepted", "low_confidence", "control", "audit", "escalation"])),
        "decided_at": draw(timestamps),
        "prediction_created_at": draw(timestamps),
        "provenance": provenance,
    }
    if draw(st.booleans()):
        document |= {"revision": draw(st.integers(1, 10**20)), "supersedes": draw(st.integers(1, 50))}
    if draw(st.booleans()):
        document |= {"inclusion_probability": draw(st.floats(1e-9, 1.0)), "reason": draw(labels)}
    if draw(st.booleans()):
        document["routing"] = {
            "measure": draw(st.sampled_from(["max_probability", "margin", "entropy"])),
            "uncertainty": draw(probabilities),
            "threshold": draw(probabilities),
            "policy_version": draw(st.integers(0, 100)),
            "disagreement": draw(st.booleans()),
            "audited_class": draw(labels),
            "budget": draw(texts),
        }
    return document


# --- mutations -------------------------------------------------------------------------------


def nodes(value: object, path: Path = ()) -> Iterator[Path]:
    """Every place in a document, the root's fields first."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*path, key)
            yield from nodes(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield (*path, index)
            yield from nodes(item, (*path, index))


def container_of(document: Document, path: Path) -> Any:
    parent: Any = document
    for part in path[:-1]:
        parent = parent[part]
    return parent


def retyped(value: object) -> object:
    """``value`` as a buggy serialiser writes it: a number as a string or a flag, a flag as a number,
    an integer with a fraction, a string as a number."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return float(value) if abs(value) < 2**53 else str(value)
    if isinstance(value, float):
        return str(value) if value not in (0.0, 1.0) else bool(value)
    if isinstance(value, str):
        return len(value)
    return str(value)


def nested(depth: int) -> object:
    value: object = []
    for _ in range(depth - 1):
        value = [value]
    return value


#: A value of another JSON type, a number off its range, a huge one: what a buggy producer writes.
REPLACEMENTS = st.one_of(
    st.sampled_from(["0.97", "1", "true", "", " ", "tx 1", "tx-1\n", "1700000000", "2026-01-01T12:00:00"]),
    st.sampled_from([True, False, None, [], {}, [1, 2], {"a": 1}, 0, 1, 1.0, 3.0, -1, 1.5, -0.5, 2]),
    st.sampled_from([1e308, -1e308, 10**400, -(10**400), 2**63, 1e-320, 0.0005, 1.0005]),
    st.sampled_from(["2026-01-01 12:00:00Z", "2026-01-01T12:00Z", "2026-01-01T12:00:00+0100"]),
    st.sampled_from(["file:///etc/passwd", "ftp://x/y", "not a url", "https://"]),
    st.builds(
        lambda char, count: char * count,
        st.sampled_from(["x", "é", "😀"]),
        st.sampled_from([64, 65, 128, 129, 256, 257, 512, 513, 2_049, 20_001]),
    ),
    texts,
    numbers,
    st.builds(nested, st.sampled_from([2, 3, MAX_INNER_DEPTH])),
)
#: Values for a field no model knows (a tolerant reader ignores them, whatever their shape).
EXTRAS = st.one_of(
    st.none(),
    st.booleans(),
    numbers,
    texts,
    st.builds(
        nested, st.sampled_from([1, 50, MAX_INNER_DEPTH - 1, MAX_INNER_DEPTH, MAX_INNER_DEPTH + 1, 300])
    ),
    st.builds(lambda size: {f"k{index}": index for index in range(size)}, st.sampled_from([10, 2_000])),
)


@st.composite
def mutated(draw: st.DrawFn, documents: st.SearchStrategy[Document]) -> tuple[Document, list[str]]:
    """A valid document, then 0 to 3 mutations of it; with the names of the mutations made."""
    document = draw(documents)
    made: list[str] = []
    for _ in range(draw(st.sampled_from([1, 2, 3, 1, 0]))):
        places = list(nodes(document))
        path = draw(st.sampled_from(places))
        parent = container_of(document, path)
        kind = draw(st.sampled_from(["replace", "extra", "retype", "remove", "rename", "grow"]))
        if kind == "retype":
            parent[path[-1]] = retyped(parent[path[-1]])
        elif kind == "replace":
            parent[path[-1]] = draw(REPLACEMENTS)
        elif kind == "remove" and isinstance(parent, dict):
            del parent[path[-1]]
        elif kind == "extra":
            target = parent if isinstance(parent, dict) else document
            target[draw(texts)] = draw(EXTRAS)
        elif kind == "rename" and isinstance(parent, dict):
            parent[draw(texts)] = parent.pop(path[-1])
        elif kind == "grow" and isinstance(parent[path[-1]], dict | list):
            grown = parent[path[-1]]
            size = draw(st.sampled_from([33, 1_001, 1_025]))
            if isinstance(grown, dict):
                grown.update({f"g{index}": 0.0 for index in range(size)})
            else:
                grown.extend([grown[0] if grown else "w"] * size)
        else:
            continue
        made.append(kind)
    return document, made


# --- the property ----------------------------------------------------------------------------


def judge_both(contract: Contract, document: Document, ensure_ascii: bool, runner: asyncio.Runner) -> str:
    """Check that the two judges agree on ``document``; returns the outcome's name for the tally."""
    raw = json.dumps(document, ensure_ascii=ensure_ascii).encode("utf-8")
    # What the judge reads is the JSON itself (a dict key turned into a string, as JSON has only those).
    read = json.loads(raw)
    errors = contract.schema_errors(read)
    too_deep = depth(read) > 1 + MAX_INNER_DEPTH
    unstated = [] if errors or too_deep else contract.unstated_rules_broken(read)
    verdict = loop_verdict(runner, contract.model, raw)
    if len(raw) > MAX_RECORD_BYTES:
        assert (verdict.accepted, verdict.kind) == (False, "too_large")
        return "refused: too large"
    if too_deep:
        assert (verdict.accepted, verdict.kind) == (False, "not_json"), verdict
        assert "recursion limit" in verdict.message
        return "refused: nested too deep"
    schema_accepts = not errors
    assert verdict.accepted == (schema_accepts and not unstated), (
        f"the loop {'accepted' if verdict.accepted else 'refused'} what the schema "
        f"{'accepted' if schema_accepts else 'refused'}: {[error.message for error in errors]} "
        f"unstated {unstated}; loop: {verdict.message}"
    )
    if verdict.accepted:
        return "accepted by both"
    named = {dotted(path) for error in errors for path in named_paths(error)}
    named |= {dotted(path) for path in [*unstated, *contract.fractional_integers(read)]}
    assert any(
        name and (f"{name}:" in verdict.message or f"{name}." in verdict.message) for name in named
    ) or (verdict.kind == "unknown_schema_version" and "schema_version" in named), (
        f"the DLQ reason names none of {sorted(named)}: {verdict.message}"
    )
    return "refused by both" if schema_accepts is False else "refused by the loop: unstated rule"


@pytest.mark.parametrize(
    ("contract", "documents"),
    [(PREDICTION_EVENT, prediction_documents()), (LABEL, label_documents())],
    ids=["PredictionEvent", "Label"],
)
def test_the_loop_accepts_exactly_what_the_json_schema_accepts(
    contract: Contract, documents: st.SearchStrategy[Document]
) -> None:
    tally: Counter[str] = Counter()
    mutations: Counter[str] = Counter()
    with asyncio.Runner() as runner:

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=[
                HealthCheck.too_slow,
                HealthCheck.data_too_large,
                HealthCheck.large_base_example,
            ],
            database=None,
        )
        @given(case=mutated(documents), ensure_ascii=st.booleans())
        def agree(case: tuple[Document, list[str]], ensure_ascii: bool) -> None:
            document, made = case
            outcome = judge_both(contract, document, ensure_ascii, runner)
            event(outcome)
            tally[outcome] += 1
            mutations.update(made or ["none"])

        agree()
    cases = sum(tally.values())
    print(
        f"\n{contract.model.__name__}: the judges agreed on {cases} generated cases "
        f"({', '.join(f'{count} {name}' for name, count in sorted(tally.items()))}; "
        f"mutations {dict(sorted(mutations.items()))})"
    )
    assert tally["accepted by both"] > 0
    assert tally["refused by both"] > 0


# --- the cases the issue names, and the rules the schema cannot state ------------------------


def event_document(**changes: Any) -> Document:
    document: Document = json.loads(factories.prediction().to_json_bytes())
    return document | changes


def label_document(**changes: Any) -> Document:
    document: Document = json.loads(factories.human_label(revision=2).to_json_bytes())
    return document | changes


def verdict_of(contract: Contract, document: Document) -> Verdict:
    with asyncio.Runner() as runner:
        return loop_verdict(runner, contract.model, json.dumps(document).encode())


@pytest.mark.parametrize(
    ("document", "fields"),
    [
        (event_document(scores={"ok": "0.97", "fraud": "0.03"}), ["scores.ok", "scores.fraud"]),
        (
            event_document(input={"features": {"amount": 12.5, "is_fraud": True, "flag": False}}),
            ["input.features.is_fraud", "input.features.flag"],
        ),
        (event_document(created_at="1700000000"), ["created_at"]),
        (event_document(created_at=1_700_000_000), ["created_at"]),
        (event_document(schema_version=True), ["schema_version"]),
    ],
    ids=["decimal_strings_as_scores", "boolean_features", "epoch_string", "epoch_number", "version_true"],
)
def test_a_serialisation_bug_goes_to_the_dlq_with_the_field_named(
    document: Document, fields: list[str]
) -> None:
    assert PREDICTION_EVENT.schema_errors(document), "the schema accepts it: not a case for this test"
    verdict = verdict_of(PREDICTION_EVENT, document)
    assert not verdict.accepted
    print(f"\nDLQ {verdict.kind}: {verdict.message}")
    if fields == ["schema_version"]:
        assert verdict.kind == "unknown_schema_version"
        assert "schema_version" in verdict.message
    else:
        assert verdict.kind == "invalid"
        for field in fields:
            assert f"{field}: " in verdict.message


@pytest.mark.parametrize(
    ("contract", "document", "field"),
    [
        (PREDICTION_EVENT, event_document(scores={"ok": 0.6, "fraud": 0.3}), "scores"),
        (PREDICTION_EVENT, event_document(predicted_label="unicorn"), "scores"),
        (PREDICTION_EVENT, event_document(schema_version=1.0), "schema_version"),
        (LABEL, label_document(revision=2.0), "revision"),
        (LABEL, label_document(supersedes=1e0), "supersedes"),
    ],
    ids=["scores_sum_to_0.9", "predicted_label_not_scored", "version_1.0", "revision_2.0", "supersedes_1e0"],
)
def test_the_loop_refuses_what_the_schema_cannot_state(
    contract: Contract, document: Document, field: str
) -> None:
    assert contract.schema_errors(document) == []
    assert contract.unstated_rules_broken(document)
    verdict = verdict_of(contract, document)
    assert not verdict.accepted
    assert field in verdict.message


def test_a_record_nested_deeper_than_the_parser_reads_is_refused_though_the_schema_takes_it() -> None:
    for extra_depth, accepted in [(MAX_INNER_DEPTH, True), (MAX_INNER_DEPTH + 1, False)]:
        # The extra field's own arrays sit one level inside the record's object.
        document = event_document(added_later=nested(extra_depth))
        assert PREDICTION_EVENT.schema_errors(document) == []
        verdict = verdict_of(PREDICTION_EVENT, document)
        assert (verdict.accepted, depth(document)) == (accepted, 1 + extra_depth)
        assert accepted or verdict.kind == "not_json"


@pytest.mark.parametrize("name", ["prediction-event", "label"])
def test_the_exported_descriptions_state_the_rules_the_schema_cannot(name: str) -> None:
    description = json.loads(schema_path(name).read_text(encoding="utf-8"))["description"]
    assert "cannot express" in description
    assert "``1.0``" in description
    assert "200 levels" in description
    if name == "prediction-event":
        assert "sum to 1" in description
        assert "``predicted_label`` is one of the ``scores``" in description


ROUTES: list[RouteReason] = ["accepted", "audit", "control", "escalation"]


def test_the_repos_producers_write_records_both_judges_accept() -> None:
    # The bench's prefill records are the simulation's events; the SDK publishes the events it is given.
    events = [raw for _, raw in prediction_records(200)]
    events += [
        simulated.event.to_json_bytes() for simulated in simulate(StreamSettings(events=200, run_id="j"))
    ]
    events += [factories.prediction(f"tx-{n}", confidence=n / 10).to_json_bytes() for n in range(1, 10)]
    labels_ = [factories.human_label(route, revision=n).to_json_bytes() for n, route in enumerate(ROUTES, 1)]
    labels_ += [
        factories.human_label(
            "low_confidence",
            routing=RoutingTrace(
                measure="margin", uncertainty=0.4, threshold=0.5, policy_version=3, disagreement=True
            ),
        ).to_json_bytes()
    ]
    for contract, records in [(PREDICTION_EVENT, events), (LABEL, labels_)]:
        for raw in records:
            assert contract.schema_errors(json.loads(raw)) == [], raw
            assert contract.unstated_rules_broken(json.loads(raw)) == [], raw
            decode(contract.model, raw)
