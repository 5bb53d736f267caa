"""Deployment settings: context over environment, and clear errors for unusable values."""

from __future__ import annotations

from pathlib import Path

import pytest
from infra.settings import DeploySettings, SettingsError, check_schedule

REQUIRED = {"jwt_issuer": "https://issuer.example.com/", "executor_url": "https://x.example.com"}


def _resolve(context: dict[str, object], env: dict[str, str] | None = None) -> DeploySettings:
    return DeploySettings.resolve(context.get, env or {})


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("rate(5 minutes)", "rate(5 minutes)"),
        ("rate(1 minute)", "rate(1 minute)"),
        ("2 hours", "rate(2 hours)"),
        ("cron(0/15 * * * ? *)", "cron(0/15 * * * ? *)"),
    ],
)
def test_schedules_eventbridge_accepts(given: str, expected: str) -> None:
    assert check_schedule(given) == expected


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("rate(1 minutes)", "rate(1 minute)"),
        ("rate(5 minute)", "rate(5 minutes)"),
        ("rate(0 minutes)", "use `rate"),
        ("every 5 minutes", "use `rate"),
    ],
)
def test_schedules_eventbridge_refuses(given: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_schedule(given)


def test_context_wins_over_the_environment() -> None:
    settings = _resolve(
        {**REQUIRED, "schedule_rate": "rate(10 minutes)", "log_retention_days": "30"},
        {
            "PLANPOLICY_SCHEDULE_RATE": "rate(1 minute)",
            "PLANPOLICY_TABLE_PREFIX": "prod-",
            "PLANPOLICY_JWT_AUDIENCE": "a, b",
            "PLANPOLICY_SYNTH_ONLY": "1",
        },
    )
    assert settings.schedule_rate == "rate(10 minutes)"
    assert settings.table_prefix == "prod-"
    assert settings.jwt_audience == ("a", "b")
    assert settings.log_retention_days == 30
    assert settings.synth_only is True
    assert settings.deps_dir == Path("build/lambda-deps")


@pytest.mark.parametrize("missing", ["jwt_issuer", "executor_url"])
def test_required_settings_are_named_when_missing(missing: str) -> None:
    context = {k: v for k, v in REQUIRED.items() if k != missing}
    with pytest.raises(SettingsError, match=missing):
        _resolve(context)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("jwt_issuer", "http://issuer.example.com/"),
        ("log_retention_days", 42),
        ("table_prefix", "bad prefix"),
        ("stack_name", "1stack"),
        ("alarm_email", "nobody"),
        ("jwt_audience", ""),
    ],
)
def test_unusable_values_are_refused(key: str, value: object) -> None:
    with pytest.raises(SettingsError, match=key):
        _resolve({**REQUIRED, key: value})
