"""Duration literals are checked without cel-python, exactly as cel-python reads them."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from planpolicy.cel import duration_literal_seconds, int_literal_value

cv = pytest.importorskip("celpy.celtypes")


def _celpy(text: str) -> float | None:
    try:
        return float(cv.DurationType(text).total_seconds())
    except Exception:
        return None


def _ours(text: str) -> float | None:
    try:
        return duration_literal_seconds(text)
    except ValueError:
        return None


@settings(max_examples=2000, deadline=None)
@given(st.text(alphabet="0123456789.+-hmsnudaxµ \n", max_size=16))
@example("2880h")
@example("-1.5h")
@example("2h45m")
@example("1d")
@example("1ns")
@example("90d")
@example("1h\n")
@example(".h")
@example("h")
@example("3155760000001s")
@example("99999999999999999999999999h")
@example("+.5m")
@example("1µs")
def test_same_verdict_and_value_as_cel_python(text: str) -> None:
    assert _ours(text) == _celpy(text)


def test_common_literals() -> None:
    assert duration_literal_seconds("2880h") == 2880 * 3600
    assert duration_literal_seconds("-1.5h") == -5400
    assert duration_literal_seconds("2h45m") == 9900
    for bad in ("", "h", "1x", "1 h", "1H", "--1h", "1e3s"):
        with pytest.raises(ValueError):
            duration_literal_seconds(bad)


def _celpy_int(text: str, unsigned: bool) -> int | None:
    try:
        return int((cv.UintType if unsigned else cv.IntType)(text))
    except Exception:
        return None


def _our_int(text: str, unsigned: bool) -> int | None:
    try:
        return int_literal_value(text, unsigned=unsigned)
    except ValueError:
        return None


INT_LEXEMES = st.builds(
    lambda sign, hexa, digits: f"{sign}{'0x' if hexa else ''}{digits}",
    st.sampled_from(["", "-"]),
    st.booleans(),
    st.text(alphabet="0123456789abcdefABCDEF", min_size=1, max_size=22),
).filter(lambda t: "0x" in t or t.lstrip("-").isdigit())


@settings(max_examples=1500, deadline=None)
@given(INT_LEXEMES, st.booleans())
@example("9223372036854775807", False)
@example("9223372036854775808", False)
@example("-9223372036854775808", False)
@example("-9223372036854775809", False)
@example("18446744073709551615", True)
@example("18446744073709551616", True)
@example("-0x5", True)
@example("-0", True)
@example("-1", True)
@example("0x8000000000000000", False)
@example("-0x8000000000000000", False)
@example("0xFFFFFFFFFFFFFFFF", True)
@example("007", False)
def test_integer_literals_read_as_cel_python_reads_them(text: str, unsigned: bool) -> None:
    assert _our_int(text, unsigned) == _celpy_int(text, unsigned)
