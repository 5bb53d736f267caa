"""Ledger evidence: the one-walk conversion equals ``jsonable`` followed by the plainness check."""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.policy import _json_data, _plain, jsonable


class _Colour(enum.StrEnum):
    RED = "red"


class _Size(enum.IntEnum):
    BIG = 3


class _Odd:
    def __str__(self) -> str:
        return "odd"


SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(allow_nan=False),
    st.text(max_size=3),
    st.just(_Colour.RED),
    st.just(_Size.BIG),
    st.just(datetime(2026, 1, 5, tzinfo=UTC)),
    st.just(_Odd()),
)
KEYS = st.one_of(st.text(max_size=2), st.integers(0, 3), st.just(_Colour.RED), st.just(_Size.BIG))
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(KEYS, inner, max_size=3),
        st.frozensets(st.integers(0, 3), max_size=2),
    ),
    max_leaves=12,
)


def _same(a: Any, b: Any) -> None:
    """Equal, with the same types all the way down (keys included)."""
    assert type(a) is type(b)
    if isinstance(a, dict):
        assert list(a) == list(b)
        assert [type(k) for k in a] == [type(k) for k in b]
        for key in a:
            _same(a[key], b[key])
    elif isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _same(x, y)
    else:
        assert a == b


@settings(max_examples=400, deadline=None)
@given(value=st.dictionaries(KEYS, VALUES, max_size=4))
def test_one_walk_equals_jsonable_then_plain(value: dict[Any, Any]) -> None:
    data, plain = _json_data(value)
    expected = jsonable(value)
    _same(data, expected)
    assert plain is _plain(expected)
