"""Indented JSON text: the same text ``json.dumps(value, indent=2)`` writes."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from planpolicy.jsontext import indented

# Floats Python and orjson spell alike: zero, or at least 1e-4 in magnitude.
SPELLED_ALIKE = st.floats(allow_nan=False, allow_infinity=False).filter(
    lambda f: f == 0 or abs(f) >= 1e-4
)
TEXT = st.text(st.characters(codec="utf-8"))  # any character, astral ones included
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), SPELLED_ALIKE, TEXT)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)),
    max_leaves=30,
)


def reference(value: Any) -> str:
    return json.dumps(value, indent=2) + "\n"


@settings(max_examples=400, deadline=None)
@given(VALUES)
def test_the_text_is_what_json_dumps_writes(value: Any) -> None:
    assert indented(value) == reference(value)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=5))
def test_small_floats_are_the_same_numbers(values: list[float]) -> None:
    text = indented(values)
    assert text.isascii()
    assert json.loads(text) == values
    assert text.replace(" ", "").count("\n") == reference(values).replace(" ", "").count("\n")


def test_characters_beyond_the_basic_plane_are_surrogate_pairs() -> None:
    assert indented({"k\u00e9": "\U0001f600"}) == '{\n  "k\\u00e9": "\\ud83d\\ude00"\n}\n'


def test_values_orjson_refuses_are_written_by_json_dumps() -> None:
    for value in ({1: "a", None: [True]}, [2**70, -(2**65)], ["\ud800"], {"a": {2.5: 1}}):
        assert indented(value) == reference(value)


def test_nan_and_infinities_are_null() -> None:
    assert json.loads(indented([math.nan, math.inf, -math.inf, 1.5])) == [None, None, None, 1.5]


def test_empty_containers_and_nesting() -> None:
    value = {"a": [], "b": {}, "c": [[{}], {"d": [None]}]}
    assert indented(value) == reference(value)
