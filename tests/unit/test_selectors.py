"""Label and field selectors: the apiserver's syntax, matching, and its errors."""

from __future__ import annotations

import pytest

from model.selectors import (
    SelectorError,
    label_selector_from_spec,
    parse_field_selector,
    parse_label_selector,
)

LABELS = {"app": "web", "tier": "front", "version": "3", "example.com/team": "blue"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, True),
        ("", True),
        ("app=web", True),
        ("app==web", True),
        ("app=db", False),
        ("app!=db", True),
        ("missing!=x", True),
        ("app in (web,db)", True),
        ("app in (db, cache)", False),
        ("app notin (db,cache)", True),
        ("missing notin (x)", True),
        ("app notin (web)", False),
        ("app", True),
        ("missing", False),
        ("!missing", True),
        ("!app", False),
        ("app=web,tier=front", True),
        ("app=web,tier=back", False),
        ("app in (web),!missing, tier", True),
        ("example.com/team=blue", True),
        ("version>2", True),
        ("version<3", False),
        ("app=", False),
    ],
)
def test_label_selector_string(text: str | None, expected: bool) -> None:
    assert parse_label_selector(text).matches(LABELS) is expected


def test_empty_selector_matches_unlabelled_objects() -> None:
    assert parse_label_selector("").matches(None)
    assert parse_label_selector("!app").matches(None)
    assert not parse_label_selector("app").matches(None)


@pytest.mark.parametrize(
    "text",
    [
        "app=web,",
        "app in ()",
        "app=(x",
        "-bad=x",
        "app=bad value",
        "app=" + "x" * 64,
        "Bad_Prefix/x=y",
        "a b",
    ],
)
def test_invalid_label_selectors_are_rejected(text: str) -> None:
    with pytest.raises(SelectorError):
        parse_label_selector(text)


def test_invalid_label_value_message_names_the_value() -> None:
    with pytest.raises(SelectorError, match=r'Invalid value: "-x-"'):
        parse_label_selector("app=-x-")


def test_label_selector_spec() -> None:
    spec = {
        "matchLabels": {"app": "web"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["front", "edge"]},
            {"key": "legacy", "operator": "DoesNotExist"},
            {"key": "version", "operator": "Exists"},
            {"key": "example.com/team", "operator": "NotIn", "values": ["red"]},
        ],
    }
    selector = label_selector_from_spec(spec)
    assert selector.matches(LABELS)
    assert not selector.matches({**LABELS, "legacy": "yes"})
    assert not selector.matches({**LABELS, "tier": "back"})
    assert label_selector_from_spec(None).matches({})
    assert label_selector_from_spec({}).matches(LABELS)


@pytest.mark.parametrize(
    "spec",
    [
        {"matchExpressions": [{"key": "a", "operator": "Maybe"}]},
        {"matchExpressions": [{"key": "a", "operator": "In", "values": []}]},
        {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
        {"matchLabels": {"a": "not valid"}},
    ],
)
def test_invalid_label_selector_specs_are_rejected(spec: dict[str, object]) -> None:
    with pytest.raises(SelectorError):
        label_selector_from_spec(spec)


POD = {
    "metadata": {"name": "web-1", "namespace": "prod"},
    "spec": {"nodeName": "node-a", "hostNetwork": False},
    "status": {"phase": "Running"},
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, True),
        ("metadata.name=web-1", True),
        ("metadata.name==web-1", True),
        ("metadata.name!=web-1", False),
        ("metadata.namespace=prod,spec.nodeName=node-a", True),
        ("metadata.namespace=prod,spec.nodeName=node-b", False),
        ("status.phase!=Pending", True),
        ("spec.missing=", True),
        ("spec.missing!=", False),
        ("spec.hostNetwork=false", True),
        ("involvedObject.name=x", False),
    ],
)
def test_field_selector(text: str | None, expected: bool) -> None:
    assert parse_field_selector(text).matches(POD) is expected


def test_field_selector_escapes() -> None:
    obj = {"metadata": {"name": "a,b=c"}}
    assert parse_field_selector(r"metadata.name=a\,b\=c").matches(obj)


@pytest.mark.parametrize("text", ["metadata.name", "=x", "metadata..name=x", "metadata.name~x"])
def test_invalid_field_selectors_are_rejected(text: str) -> None:
    with pytest.raises(SelectorError):
        parse_field_selector(text)
