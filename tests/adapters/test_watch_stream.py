"""The watch stream parser on canned bytes: lines survive any chunking, truncation is detected."""

from __future__ import annotations

import json
from typing import Any

import pytest

from adapters.watch import iter_events, iter_lines


def _body(events: list[dict[str, Any]]) -> bytes:
    return b"".join(json.dumps(e).encode() + b"\n" for e in events)


EVENTS = [
    {"type": "ADDED", "object": {"metadata": {"name": f"o{i}", "resourceVersion": str(i)}, "data": "é" * i}}
    for i in range(1, 6)
]


@pytest.mark.parametrize("size", [1, 2, 7, 64, 10_000])
def test_events_survive_any_chunk_boundaries(size: int) -> None:
    body = _body(EVENTS)
    chunks = [body[i : i + size] for i in range(0, len(body), size)]

    assert list(iter_events(chunks)) == EVENTS


def test_several_events_in_one_chunk_and_blank_lines_are_skipped() -> None:
    body = b"\n" + _body(EVENTS[:2]) + b"\r\n\n" + _body(EVENTS[2:])

    assert list(iter_events([body])) == EVENTS


def test_a_last_line_without_newline_is_still_parsed() -> None:
    body = _body(EVENTS).rstrip(b"\n")

    assert list(iter_events([body[:10], body[10:]])) == EVENTS


def test_a_truncated_last_event_is_an_error() -> None:
    body = _body(EVENTS)[:-20]

    with pytest.raises(ValueError):  # noqa: PT011 - json's error is a ValueError
        list(iter_events([body]))


def test_lines_are_split_exactly() -> None:
    assert list(iter_lines([b"a", b"b\nc", b"\n", b"d\ne"])) == [b"ab", b"c", b"d", b"e"]
