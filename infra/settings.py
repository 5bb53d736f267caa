"""Deployment settings: CDK context first, then ``PLANPOLICY_*`` variables, then defaults.

=====================  ==============================  =======================================
context key            environment variable            meaning (default)
=====================  ==============================  =======================================
``stack_name``         ``PLANPOLICY_STACK_NAME``       CloudFormation stack name (``PlanPolicy``)
``table_prefix``       ``PLANPOLICY_TABLE_PREFIX``     prefix of the table names (``planpolicy-``)
``schedule_rate``      ``PLANPOLICY_SCHEDULE_RATE``    poll schedule, ``rate(5 minutes)`` or ``cron(...)``
``jwt_issuer``         ``PLANPOLICY_JWT_ISSUER``       issuer URL of the callers' JWTs (required)
``jwt_audience``       ``PLANPOLICY_JWT_AUDIENCE``     accepted ``aud`` values, comma-separated (``plans-api``)
``executor_url``       ``PLANPOLICY_EXECUTOR_URL``     base URL of the execution service's intents API (required)
``log_retention_days`` ``PLANPOLICY_LOG_RETENTION``    days of Lambda and access logs (``90``)
``alarm_email``        ``PLANPOLICY_ALARM_EMAIL``      subscribe this address to the alarm topic (none)
``deps_dir``           ``PLANPOLICY_DEPS_DIR``         the built dependency layer (``build/lambda-deps``)
``synth_only``         ``PLANPOLICY_SYNTH_ONLY``       ``1``: synthesize without a built layer (``0``)
=====================  ==============================  =======================================

A setting that cannot be used raises :class:`SettingsError` naming the key,
before anything is synthesized.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["LOG_RETENTION_DAYS", "DeploySettings", "SettingsError", "check_schedule"]

LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731,
    1096, 1827, 2192, 2557, 2922, 3288, 3653,
)  # fmt: skip
"""The retention periods CloudWatch Logs accepts."""

_RATE = re.compile(r"^rate\((?P<n>[1-9][0-9]*) (?P<unit>minute|minutes|hour|hours|day|days)\)$")
_CRON = re.compile(r"^cron\(\S+( \S+){5}\)$")
_PREFIX = re.compile(r"^[A-Za-z0-9_.-]{0,200}$")  # what the store URL accepts
_STACK = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,127}$")


class SettingsError(ValueError):
    """A deployment setting is missing or malformed; the message names it."""


def check_schedule(expression: str) -> str:
    """``expression`` if EventBridge accepts it as a schedule, else :class:`SettingsError`.

    EventBridge wants the singular unit for 1 (``rate(1 minute)``) and the plural
    otherwise (``rate(5 minutes)``); a bare ``5 minutes`` is read as ``rate(5 minutes)``.
    """
    text = expression.strip()
    if not text.startswith(("rate(", "cron(")):
        text = f"rate({text})"
    if _CRON.match(text):
        return text
    match = _RATE.match(text)
    if match is None:
        raise SettingsError(
            f"schedule_rate `{expression}`: use `rate(N minutes|hours|days)` or `cron(...)`"
        )
    singular = match["n"] == "1"
    if singular == match["unit"].endswith("s"):
        unit = match["unit"].rstrip("s") if singular else match["unit"] + "s"
        raise SettingsError(
            f"schedule_rate `{expression}`: EventBridge needs `rate({match['n']} {unit})`"
        )
    return text


@dataclass(frozen=True)
class DeploySettings:
    """Everything the stack reads from outside; see the module docstring."""

    jwt_issuer: str
    executor_url: str
    stack_name: str = "PlanPolicy"
    table_prefix: str = "planpolicy-"
    schedule_rate: str = "rate(5 minutes)"
    jwt_audience: tuple[str, ...] = ("plans-api",)
    log_retention_days: int = 90
    alarm_email: str | None = None
    deps_dir: Path = Path("build/lambda-deps")
    synth_only: bool = False

    def __post_init__(self) -> None:
        if not _STACK.match(self.stack_name):
            raise SettingsError(f"stack_name `{self.stack_name}`: letters, digits and `-`")
        if not _PREFIX.match(self.table_prefix):
            raise SettingsError(
                f"table_prefix `{self.table_prefix}`: letters, digits, `_`, `-` and `.` only"
            )
        object.__setattr__(self, "schedule_rate", check_schedule(self.schedule_rate))
        if not self.jwt_issuer.startswith("https://"):
            raise SettingsError(f"jwt_issuer `{self.jwt_issuer}`: an https:// URL is required")
        if not self.executor_url.startswith(("https://", "http://")):
            raise SettingsError(f"executor_url `{self.executor_url}`: an http(s) URL is required")
        if not self.jwt_audience or not all(self.jwt_audience):
            raise SettingsError("jwt_audience: name at least one audience")
        if self.log_retention_days not in LOG_RETENTION_DAYS:
            raise SettingsError(
                f"log_retention_days `{self.log_retention_days}`: CloudWatch accepts "
                + ", ".join(map(str, LOG_RETENTION_DAYS))
            )
        if self.alarm_email is not None and "@" not in self.alarm_email:
            raise SettingsError(f"alarm_email `{self.alarm_email}` is not an address")

    @classmethod
    def resolve(
        cls,
        context: Callable[[str], Any],
        env: Mapping[str, str] | None = None,
    ) -> DeploySettings:
        """Settings from ``context(key)`` (CDK's ``try_get_context``), then ``env``."""
        env = os.environ if env is None else env
        names = {
            "stack_name": "PLANPOLICY_STACK_NAME",
            "table_prefix": "PLANPOLICY_TABLE_PREFIX",
            "schedule_rate": "PLANPOLICY_SCHEDULE_RATE",
            "jwt_issuer": "PLANPOLICY_JWT_ISSUER",
            "jwt_audience": "PLANPOLICY_JWT_AUDIENCE",
            "executor_url": "PLANPOLICY_EXECUTOR_URL",
            "log_retention_days": "PLANPOLICY_LOG_RETENTION",
            "alarm_email": "PLANPOLICY_ALARM_EMAIL",
            "deps_dir": "PLANPOLICY_DEPS_DIR",
            "synth_only": "PLANPOLICY_SYNTH_ONLY",
        }
        raw: dict[str, Any] = {}
        for key, variable in names.items():
            value = context(key)
            if value is None:
                value = env.get(variable) or None
            if value is not None:
                raw[key] = value
        for key in ("jwt_issuer", "executor_url"):
            if key not in raw:
                raise SettingsError(f"{key}: pass `-c {key}=https://...` or set {names[key]}")
        values: dict[str, Any] = dict(raw)
        if "jwt_audience" in raw:
            audience = raw["jwt_audience"]
            if isinstance(audience, str):
                audience = [part.strip() for part in audience.split(",")]
            values["jwt_audience"] = tuple(audience)
        if "log_retention_days" in raw:
            try:
                values["log_retention_days"] = int(raw["log_retention_days"])
            except (TypeError, ValueError):
                raise SettingsError(
                    f"log_retention_days `{raw['log_retention_days']}` is not a number"
                ) from None
        if "deps_dir" in raw:
            values["deps_dir"] = Path(raw["deps_dir"])
        if "synth_only" in raw:
            values["synth_only"] = str(raw["synth_only"]).lower() in ("1", "true", "yes")
        return cls(**values)
