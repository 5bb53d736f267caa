"""Ledger drafts: what the policy runtime's short ways give equals what validation gives.

The evidence is converted and checked for plainness in one walk (it must equal
``jsonable`` followed by ``_plain``); a draft of exactly typed values is built
without validation (it must equal ``LedgerDraft(...)``, and never be built
for values validation refuses).
"""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from orchestrator.ledger import LedgerDraft, LedgerEvent
from orchestrator.policy import _built_draft, _draft_of, _json_data, _plain, jsonable


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


VALID_TIME = st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=2))]))
TIMES = st.one_of(
    VALID_TIME,
    VALID_TIME,
    VALID_TIME,
    st.datetimes(),  # naive: refused
    st.just(datetime(2026, 1, 5, fold=1, tzinfo=UTC)),
    st.just("2026-01-05T00:00:00Z"),
)
VALID_TEXT = st.text(alphabet=st.characters(max_codepoint=127), min_size=1, max_size=8)
TEXTS = st.one_of(
    VALID_TEXT,
    VALID_TEXT,
    VALID_TEXT,
    st.just(""),
    st.text(min_size=1, max_size=5),
    st.text(alphabet="ab", min_size=250, max_size=260),
    st.text(alphabet="ab", min_size=3995, max_size=4005),
    st.just("\ud800"),
    st.just(_Colour.RED),
    st.just(5),
)
EVENTS = st.one_of(st.sampled_from(list(LedgerEvent)), st.sampled_from(["note", "bogus"]))
STEP_IDS = st.one_of(st.none(), st.uuids(), st.uuids(), st.just(str(uuid.uuid4())))
ATTEMPTS = st.one_of(st.none(), st.integers(1, 3), st.integers(-2, 0), st.just(True))


def _compare(now: Any, actor: Any, event: Any, reason: Any, step_id: Any, attempt: Any) -> bool:
    """Check the short way against validation; True when the short way was taken."""
    stamps = {
        "bundle_digest": "sha256:" + "ab" * 32,
        "document_versions": {"PlanType/RENEWAL_DEFENSE": 1},
        "evidence": {"k": [1, "x", None]},
    }
    quick = _draft_of(now, actor, event, reason, step_id, attempt)
    try:
        validated = LedgerDraft(
            time=now,
            actor=actor,
            event=event,
            reason=reason,
            step_id=step_id,
            attempt=attempt,
            **stamps,
        )
    except ValidationError:
        assert quick is None, "built a draft validation refuses"
        return False
    if quick is None:
        return False
    values, fields_set = quick
    values.update(stamps)
    built = _built_draft(values, fields_set)
    assert built == validated
    assert built.model_fields_set == validated.model_fields_set
    assert list(built.__dict__) == list(validated.__dict__)
    for name, value in built.__dict__.items():
        assert type(value) is type(validated.__dict__[name]), name
    assert built.time.tzinfo is validated.time.tzinfo
    assert built.model_dump_json() == validated.model_dump_json()
    return True


@settings(max_examples=300, deadline=None)
@given(now=TIMES, actor=TEXTS, event=EVENTS, reason=TEXTS, step_id=STEP_IDS, attempt=ATTEMPTS)
def test_a_draft_is_never_built_for_values_validation_refuses(
    now: Any, actor: Any, event: Any, reason: Any, step_id: Any, attempt: Any
) -> None:
    _compare(now, actor, event, reason, step_id, attempt)


@settings(max_examples=300, deadline=None)
@given(
    now=VALID_TIME,
    actor=VALID_TEXT,
    event=st.sampled_from(list(LedgerEvent)),
    reason=st.one_of(st.just(""), VALID_TEXT),
    step_id=st.one_of(st.none(), st.uuids()),
    attempt=st.one_of(st.none(), st.integers(1, 1000)),
)
def test_a_draft_built_without_validation_equals_the_validated_one(
    now: Any, actor: Any, event: Any, reason: Any, step_id: Any, attempt: Any
) -> None:
    assert _compare(now, actor, event, reason, step_id, attempt)
