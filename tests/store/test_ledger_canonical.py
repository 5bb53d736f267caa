"""The ledger's canonical JSON text is exactly what ``json.dumps`` gives with its options."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.ledger import _canonical_text

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=20,
)


def _dumps(value: Any) -> str:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


@settings(max_examples=300, deadline=None)
@given(data=st.dictionaries(st.text(max_size=6), JSON, max_size=6))
def test_canonical_text_is_json_dumps_with_the_canonical_options(data: dict[str, Any]) -> None:
    assert _canonical_text(data) == _dumps(data)


@pytest.mark.parametrize("bad", [{"x": math.nan}, {"x": [math.inf]}, {"x": object()}])
def test_what_json_dumps_refuses_is_refused_the_same_way(bad: dict[str, Any]) -> None:
    with pytest.raises((ValueError, TypeError)) as expected:
        _dumps(bad)
    with pytest.raises(expected.type, match=str(expected.value).split(":")[0]):
        _canonical_text(bad)


def test_a_circular_value_is_refused() -> None:
    data: dict[str, Any] = {}
    data["self"] = data
    with pytest.raises(ValueError, match="Circular reference"):
        _canonical_text(data)
