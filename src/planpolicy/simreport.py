"""Reports of simulations: a readable timeline, the full JSON trace, and an HTML page.

- ``text``: the timeline (day, time, plan or account, event, who, why), each
  plan at the horizon, and the expectations with expected and actual;
- ``json``: everything, including the ledger and attempt records each plan
  would have (see :func:`run_json` for the shape);
- ``html``: one self-contained file (inline CSS and SVG, no scripts, no
  external references) with a chart of plans and steps over time.

The same three formats exist for Monte Carlo runs and policy comparisons.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from html import escape
from typing import Any

from planpolicy.jsontext import indented
from planpolicy.scenario import Scenario, describe_time, format_duration
from planpolicy.simulate import (
    CompareResult,
    Divergence,
    ExpectationResult,
    MonteCarloResult,
    PlanDistribution,
    PlanResult,
    RunResult,
    TimelineItem,
)

__all__ = [
    "FORMATS",
    "compare_html",
    "compare_json",
    "compare_text",
    "monte_carlo_html",
    "monte_carlo_json",
    "monte_carlo_text",
    "run_html",
    "run_json",
    "run_text",
]

FORMATS = ("text", "json", "html")


def _plural(count: int, word: str, plural: str | None = None) -> str:
    return f"{count:,} {word if count == 1 else plural or word + 's'}"


def _short_digest(digest: str) -> str:
    return digest[:19]


def _header(scenario: Scenario, tick: timedelta, digest: str) -> list[str]:
    lines = [
        f"scenario `{scenario.name}`"
        + (f": {scenario.description}" if scenario.description else "")
    ]
    accounts = {p.plan.account_id for p in scenario.plans}
    lines.append(
        f"  {_plural(len(scenario.plans), 'plan')} for {_plural(len(accounts), 'account')} over "
        f"{scenario.horizon.days} days from {scenario.start:%Y-%m-%d %H:%M} UTC; "
        f"poll every {format_duration(tick)}; policies {_short_digest(digest)}"
    )
    return lines


def _end_text(scenario: Scenario, plan: PlanResult) -> str:
    reason = f" ({plan.completion_reason})" if plan.completion_reason else ""
    when = f" on {scenario.when(plan.ended_at)}" if plan.ended_at else ""
    return f"{plan.status}{reason}{when}"


def _expectation_lines(results: Sequence[ExpectationResult]) -> list[str]:
    if not results:
        return []
    failed = sum(1 for r in results if not r.passed)
    lines = [f"expectations: {len(results) - failed} passed, {failed} failed"]
    for result in results:
        exp = result.expectation
        if result.passed:
            lines.append(f"  pass  {exp.text}")
        else:
            where = f"{exp.location}: " if exp.location else ""
            lines.append(f"  FAIL  {where}{exp.text}")
            lines.append(f"        expected: {exp.text}")
            lines.append(f"        actual:   {result.actual}")
    return lines


# --- text ---------------------------------------------------------------------------------


def _timeline_rows(scenario: Scenario, items: Iterable[TimelineItem]) -> list[str]:
    rows = [f"{'day':<7} {'time':<5}  {'plan / account':<22} {'event':<20} {'by':<14} reason"]
    for item in items:
        day, clock = describe_time(scenario.start, item.time).split(" ")[1:]
        who = item.plan_id or item.account_id or ""
        rows.append(
            f"day {day:<3} {clock:<5}  {who:<22} {item.event:<20} {item.actor or '':<14} {item.reason}".rstrip()
        )
    return rows


def run_text(result: RunResult) -> str:
    """The readable timeline of one run."""
    scenario = result.scenario
    lines = _header(scenario, result.tick, result.bundle_digest)
    lines.append("")
    lines += _timeline_rows(scenario, result.timeline)
    lines.append("")
    lines.append(f"plans at day {scenario.horizon.days}:")
    for plan in result.plans:
        lines.append(f"  {plan.plan_id}  {_end_text(scenario, plan)}")
        width = max(len(s.action_type) for s in plan.steps)
        for step in plan.steps:
            why = step.skip_reason if step.status == "SKIPPED" else step.last_error
            lines.append(
                f"    {step.action_type:<{width}}  {step.status:<10} {_plural(step.attempts, 'attempt')}"
                + (f"  ({why})" if why else "")
            )
    if result.refusals:
        lines.append(f"refused commands: {len(result.refusals)}")
    checks = _expectation_lines(result.expectations)
    if checks:
        lines += ["", *checks]
    stats = result.stats
    lines += [
        "",
        f"ran {stats.ticks:,} of {stats.ticks_modelled:,} ticks ({format_duration(result.tick)}) "
        f"in {stats.seconds:.2f} s: {_plural(stats.plan_turns, 'plan turn')}, "
        f"{_plural(stats.idle_looks_skipped, 'idle poll')} skipped, "
        f"{_plural(stats.executions, 'action')} executed",
    ]
    return "\n".join(lines) + "\n"


# --- json ---------------------------------------------------------------------------------


def _scenario_json(scenario: Scenario, tick: timedelta) -> dict[str, Any]:
    return {
        "name": scenario.name,
        "description": scenario.description,
        "file": scenario.path,
        "start": scenario.start.isoformat(),
        "end": scenario.end.isoformat(),
        "horizon_days": scenario.horizon.days,
        "tick": format_duration(tick),
        "tenant": scenario.tenant,
    }


def _expectations_json(results: Sequence[ExpectationResult]) -> list[dict[str, Any]]:
    out = []
    for result in results:
        loc = result.expectation.location
        out.append(
            {
                "expectation": result.expectation.text,
                "passed": result.passed,
                "actual": result.actual,
                "file": loc.file if loc else None,
                "line": loc.line if loc else None,
                "column": loc.column if loc else None,
            }
        )
    return out


def run_data(result: RunResult) -> dict[str, Any]:
    """The full trace of one run as plain JSON data."""
    scenario = result.scenario
    stats = result.stats
    return {
        "scenario": _scenario_json(scenario, result.tick),
        "policies": {"digest": result.bundle_digest, "versions": dict(result.versions)},
        "run": {
            "seed": result.seed,
            "run": result.run,
            "exact": result.exact,
            "ticks_run": stats.ticks,
            "ticks_modelled": stats.ticks_modelled,
            "plan_turns": stats.plan_turns,
            "idle_polls_skipped": stats.idle_looks_skipped,
            "executions": stats.executions,
            "seconds": round(stats.seconds, 4),
        },
        "ok": result.ok,
        "expectations": _expectations_json(result.expectations),
        "timeline": [item.as_dict(scenario.start) for item in result.timeline],
        "refusals": [
            {
                "time": r.time.isoformat(),
                "day": scenario.when(r.time),
                "plan": r.plan_id,
                "command": r.command,
                "by": r.by,
                "message": r.message,
            }
            for r in result.refusals
        ],
        "plans": [
            {
                "plan_id": plan.plan_id,
                "account_id": plan.account_id,
                "plan_type": plan.plan_type,
                "status": plan.status,
                "completion_reason": plan.completion_reason,
                "ended_at": plan.ended_at.isoformat() if plan.ended_at else None,
                "steps": [
                    {
                        "step_id": s.step_id,
                        "action_type": s.action_type,
                        "status": s.status,
                        "attempts": s.attempts,
                        "human_touch": s.human_touch,
                        "approved_by": s.approved_by,
                        "skip_reason": s.skip_reason,
                        "last_error": s.last_error,
                    }
                    for s in plan.steps
                ],
                "record": dict(plan.record),
                "ledger": [dict(e) for e in plan.ledger],
                "attempts": [dict(a) for a in plan.attempts],
            }
            for plan in result.plans
        ],
    }


def run_json(result: RunResult) -> str:
    """The full trace of one run, including each plan's ledger and attempt records."""
    return indented(run_data(result))


# --- html: the chart ----------------------------------------------------------------------

_STATUS_COLORS = {
    "DRAFT": "#cbd5e1",
    "APPROVED": "#93c5fd",
    "ACTIVE": "#4ade80",
    "PAUSED": "#fbbf24",
    "COMPLETED": "#15803d",
    "EXPIRED": "#64748b",
    "ABORTED": "#dc2626",
}
_ENTERS = {
    "created": "DRAFT",
    "approved": "APPROVED",
    "activated": "ACTIVE",
    "paused": "PAUSED",
    "resumed": "ACTIVE",
    "completed": "COMPLETED",
    "expired": "EXPIRED",
    "aborted": "ABORTED",
}
_TERMINAL = ("COMPLETED", "EXPIRED", "ABORTED")
_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#0f172a;margin:0;background:#f8fafc}
main{max-width:1240px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.sub{color:#475569;margin:0 0 16px}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:12px 0}
.card{background:#fff;border:1px solid #e2e8f0;border-radius:8px;padding:8px 14px;min-width:110px}
.card b{display:block;font-size:20px}.card span{color:#475569;font-size:12px}
.chart{background:#fff;border:1px solid #e2e8f0;border-radius:8px;padding:8px;overflow-x:auto}
svg text{font-family:inherit}
table{border-collapse:collapse;width:100%;background:#fff;font-size:13px}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #e2e8f0;vertical-align:top}
th{background:#f1f5f9;position:sticky;top:0}
td.t{white-space:nowrap;color:#475569}
.pass{color:#15803d;font-weight:600}.fail{color:#b91c1c;font-weight:600}
.exp li{margin:4px 0}.exp .why{color:#475569;display:block;margin-left:3.2em}
.facts td{color:#7c3aed}.refused td{color:#b91c1c}
.legend{display:flex;flex-wrap:wrap;gap:14px;color:#475569;font-size:12px;margin:8px 4px}
.sw{display:inline-block;width:12px;height:12px;border-radius:2px;vertical-align:-2px;margin-right:4px}
.bar{height:14px;display:flex;border-radius:3px;overflow:hidden;min-width:300px}
"""


class _Chart:
    """An SVG timeline: one row per plan, one row per step under it (for small scenarios)."""

    LEFT = 280
    WIDTH = 1180
    TOP = 46
    PLAN_H = 24
    STEP_H = 17
    GAP = 10

    def __init__(
        self, scenario: Scenario, plans: Sequence[PlanResult], timeline: Sequence[TimelineItem]
    ):
        self.scenario = scenario
        self.plans = plans
        self.timeline = timeline
        self.span = max(scenario.horizon.total_seconds(), 1.0)
        self.with_steps = len(plans) <= 25
        facts = [item for item in timeline if item.kind == "facts"]
        # Many changes: mark each on its own account's plans instead of across the chart.
        self.facts_per_row = len(facts) > 12
        self.facts_by_account: dict[str, list[TimelineItem]] = {}
        for item in facts:
            self.facts_by_account.setdefault(item.account_id or "", []).append(item)

    def x(self, at: datetime) -> float:
        """The horizontal position of a time (clamped to the horizon)."""
        frac = (at - self.scenario.start).total_seconds() / self.span
        return round(self.LEFT + max(0.0, min(1.0, frac)) * (self.WIDTH - self.LEFT), 1)

    def render(self) -> str:
        """The chart as an inline ``<svg>`` element."""
        body: list[str] = []
        y = self.TOP
        shown = self.plans[:200]
        for plan in shown:
            y = self._plan(body, plan, y)
        height = y + 16
        head = self._axis(height) + self._facts(height)
        note = ""
        if len(self.plans) > len(shown):
            note = f'<text x="{self.LEFT}" y="{height - 2}" fill="#64748b" font-size="12">showing {len(shown)} of {len(self.plans)} plans</text>'
        return (
            f'<svg viewBox="0 0 {self.WIDTH + 20} {height + 8}" '
            f'width="{self.WIDTH + 20}" height="{height + 8}" role="img" aria-label="plans over time">'
            '<defs><pattern id="pend" width="6" height="6" patternUnits="userSpaceOnUse" '
            'patternTransform="rotate(45)"><rect width="6" height="6" fill="#e2e8f0"/>'
            '<rect width="3" height="6" fill="#94a3b8"/></pattern></defs>'
            + head
            + "".join(body)
            + note
            + "</svg>"
        )

    def _axis(self, height: int) -> str:
        days = self.scenario.horizon.days
        every = 7 if days <= 120 else 14 if days <= 365 else 30
        out = []
        for day in range(0, days + 1, every):
            at = self.scenario.start + timedelta(days=day)
            x = self.x(at)
            out.append(
                f'<line x1="{x}" y1="{self.TOP - 8}" x2="{x}" y2="{height}" stroke="#e2e8f0"/>'
                f'<text x="{x}" y="14" font-size="11" text-anchor="middle" fill="#334155">day {day}</text>'
                f'<text x="{x}" y="27" font-size="10" text-anchor="middle" fill="#94a3b8">{at:%b %d}</text>'
            )
        return "".join(out)

    def _facts(self, height: int) -> str:
        if self.facts_per_row:
            return ""
        out = []
        number = 0
        for item in self.timeline:
            if item.kind != "facts":
                continue
            number += 1
            x = self.x(item.time)
            tip = escape(f"{self.scenario.when(item.time)} {item.account_id}: {item.reason}")
            out.append(
                f"<g><title>{tip}</title>"
                f'<line x1="{x}" y1="{self.TOP - 8}" x2="{x}" y2="{height}" stroke="#a78bfa" stroke-dasharray="3 3"/>'
                f'<circle cx="{x}" cy="{self.TOP - 10}" r="7" fill="#7c3aed"/>'
                f'<text x="{x}" y="{self.TOP - 6.5}" font-size="9" fill="#fff" text-anchor="middle">{number}</text></g>'
            )
        return "".join(out)

    def _plan(self, body: list[str], plan: PlanResult, y: int) -> int:
        scenario = self.scenario
        label = escape(plan.plan_id)
        body.append(
            f'<text x="4" y="{y + 16}" font-size="13" font-weight="600">{label}</text>'
            f'<text x="{self.LEFT - 8}" y="{y + 16}" font-size="11" text-anchor="end" '
            f'fill="{_STATUS_COLORS.get(plan.status, "#334155")}">{escape(plan.status)}</text>'
        )
        status, since = None, None
        segments: list[tuple[str, datetime, datetime]] = []
        marks: list[str] = []
        for entry in plan.ledger:
            at = datetime.fromisoformat(str(entry["time"]))
            event = str(entry["event"])
            new = _ENTERS.get(event)
            if new is not None:
                if status is not None and since is not None and status not in _TERMINAL:
                    segments.append((status, since, at))
                status, since = new, at
            tip = escape(
                f"{scenario.when(at)} {event} by {entry['actor']}: {entry.get('reason') or ''}"
            )
            x = self.x(at)
            if event == "activation_rejected":
                marks.append(
                    f'<g><title>{tip}</title><path d="M{x - 5} {y + 7} l10 10 m0 -10 l-10 10" '
                    'stroke="#dc2626" stroke-width="2.5"/></g>'
                )
            elif event in _TERMINAL_EVENTS:
                color = _STATUS_COLORS[_ENTERS[event]]
                marks.append(
                    f'<g><title>{tip}</title><circle cx="{x}" cy="{y + 12}" r="7" fill="{color}" stroke="#fff" stroke-width="2"/></g>'
                )
            elif entry["actor"] != "orchestrator" and event != "created":
                marks.append(
                    f'<g><title>{tip}</title><path d="M{x - 6} {y - 1} h12 l-6 8 z" fill="#0f172a"/></g>'
                )
        if status is not None and since is not None and status not in _TERMINAL:
            segments.append((status, since, self.scenario.end))
        for seg_status, begin, end in segments:
            x1, x2 = self.x(begin), self.x(end)
            tip = escape(f"{seg_status} from {scenario.when(begin)} to {scenario.when(end)}")
            body.append(
                f'<g><title>{tip}</title><rect x="{x1}" y="{y + 4}" width="{max(x2 - x1, 2):.1f}" '
                f'height="16" rx="3" fill="{_STATUS_COLORS.get(seg_status, "#cbd5e1")}"/></g>'
            )
        for item in self.timeline:
            if item.kind == "refused" and item.plan_id == plan.plan_id:
                x = self.x(item.time)
                tip = escape(
                    f"{scenario.when(item.time)} {item.event} ({item.actor}): {item.reason}"
                )
                marks.append(
                    f'<g><title>{tip}</title><path d="M{x - 6} {y - 1} h12 l-6 8 z" fill="#fff" '
                    'stroke="#dc2626" stroke-width="1.5"/></g>'
                )
        if self.facts_per_row:
            for item in self.facts_by_account.get(plan.account_id, []):
                x = self.x(item.time)
                tip = escape(f"{scenario.when(item.time)} {item.account_id}: {item.reason}")
                marks.insert(  # under the plan's own marks
                    0,
                    f'<g><title>{tip}</title><circle cx="{x}" cy="{y + 12}" r="3.5" '
                    'fill="#7c3aed" stroke="#fff"/></g>',
                )
        body.extend(marks)
        y += self.PLAN_H
        if self.with_steps:
            for step in plan.steps:
                y = self._step(body, plan, step.step_id, step.action_type, step.status, y)
        return y + self.GAP

    def _step(
        self, body: list[str], plan: PlanResult, step_id: str, name: str, status: str, y: int
    ) -> int:
        scenario = self.scenario
        body.append(
            f'<text x="16" y="{y + 12}" font-size="11" fill="#334155">{escape(name)}</text>'
            f'<text x="{self.LEFT - 8}" y="{y + 12}" font-size="10" text-anchor="end" fill="#64748b">{escape(status)}</text>'
            f'<line x1="{self.LEFT}" y1="{y + 8}" x2="{self.WIDTH}" y2="{y + 8}" stroke="#f1f5f9"/>'
        )
        started: dict[int, datetime] = {}
        for entry in plan.ledger:
            if str(entry.get("step_id")) != step_id:
                continue
            at = datetime.fromisoformat(str(entry["time"]))
            event = str(entry["event"])
            attempt = entry.get("attempt")
            x = self.x(at)
            tip_text = f"{scenario.when(at)} {event}: {entry.get('reason') or ''}"
            if event == "step_intent" and isinstance(attempt, int):
                started[attempt] = at
            elif event == "step_outcome" and isinstance(attempt, int):
                begin = started.pop(attempt, at)
                ok = (entry.get("evidence") or {}).get("status") == "SUCCEEDED"
                color = "#16a34a" if ok else "#dc2626"
                x1 = self.x(begin)
                if x - x1 > 4:
                    body.append(
                        f'<rect x="{x1}" y="{y + 3}" width="{x - x1:.1f}" height="11" fill="url(#pend)"><title>'
                        f"{escape(f'attempt {attempt} pending from {scenario.when(begin)} to {scenario.when(at)}')}</title></rect>"
                    )
                body.append(
                    f'<g><title>{escape(tip_text)}</title><rect x="{x - 2.5}" y="{y + 2}" width="5" height="13" rx="1" fill="{color}"/></g>'
                )
            elif event == "skipped":
                body.append(
                    f'<g><title>{escape(tip_text)}</title><path d="M{x} {y + 2} l6 6.5 l-6 6.5 l-6 -6.5 z" fill="#94a3b8"/></g>'
                )
            elif event == "step_approved":
                body.append(
                    f"<g><title>{escape(tip_text + ' by ' + str(entry['actor']))}</title>"
                    f'<path d="M{x} {y + 2} l6 6.5 l-6 6.5 l-6 -6.5 z" fill="#7c3aed"/></g>'
                )
            elif event == "retried":
                body.append(
                    f'<g><title>{escape(tip_text)}</title><circle cx="{x}" cy="{y + 8.5}" r="2.5" fill="#f59e0b"/></g>'
                )
        for attempt, begin in started.items():  # still in flight at the horizon
            x1 = self.x(begin)
            body.append(
                f'<rect x="{x1}" y="{y + 3}" width="{max(self.x(scenario.end) - x1, 3):.1f}" height="11" '
                f'fill="url(#pend)"><title>{escape(f"attempt {attempt} in flight since {scenario.when(begin)}")}</title></rect>'
            )
        return y + self.STEP_H


_TERMINAL_EVENTS = ("completed", "expired", "aborted")


def _legend() -> str:
    parts = [
        f'<span><i class="sw" style="background:{color}"></i>{status}</span>'
        for status, color in _STATUS_COLORS.items()
    ]
    parts += [
        '<span><i class="sw" style="background:#16a34a"></i>attempt succeeded</span>',
        '<span><i class="sw" style="background:#dc2626"></i>attempt failed</span>',
        '<span><i class="sw" style="background:repeating-linear-gradient(45deg,#94a3b8 0 3px,#e2e8f0 3px 6px)"></i>pending</span>',
        '<span><i class="sw" style="background:#7c3aed"></i>fact change (numbered), step approved</span>',
        '<span><i class="sw" style="background:#0f172a"></i>a person\'s command (hollow red: refused)</span>',
        '<span><i class="sw" style="background:#94a3b8"></i>step skipped</span>',
    ]
    return '<div class="legend">' + "".join(parts) + "</div>"


def _page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8"/>'
        '<meta name="viewport" content="width=device-width, initial-scale=1"/>'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head>"
        f"<body><main>{body}</main></body></html>\n"
    )


def _cards(items: Sequence[tuple[str, str]]) -> str:
    return (
        '<div class="cards">'
        + "".join(
            f'<div class="card"><b>{escape(v)}</b><span>{escape(k)}</span></div>' for k, v in items
        )
        + "</div>"
    )


def _expectations_html(results: Sequence[ExpectationResult]) -> str:
    if not results:
        return ""
    items = []
    for result in results:
        exp = result.expectation
        mark = (
            '<span class="pass">pass</span>' if result.passed else '<span class="fail">FAIL</span>'
        )
        why = f'<span class="why">actual: {escape(result.actual)}</span>'
        items.append(f"<li>{mark} {escape(exp.text)}{why}</li>")
    return '<h2>Expectations</h2><ul class="exp">' + "".join(items) + "</ul>"


def _timeline_table(scenario: Scenario, items: Sequence[TimelineItem]) -> str:
    rows = []
    for item in items:
        cls = f' class="{item.kind}"' if item.kind != "ledger" else ""
        rows.append(
            f'<tr{cls}><td class="t">{escape(scenario.when(item.time))}</td>'
            f'<td class="t">{item.time:%Y-%m-%d %H:%M}</td>'
            f"<td>{escape(item.plan_id or item.account_id or '')}</td><td>{escape(item.event)}</td>"
            f"<td>{escape(item.actor or '')}</td><td>{escape(item.reason)}</td></tr>"
        )
    open_attr = ' open="open"' if len(rows) <= 400 else ""
    return (
        f'<details{open_attr}><summary><h2 style="display:inline">Timeline</h2> '
        f"({len(rows):,} events)</summary><table><thead><tr><th>when</th><th>UTC</th>"
        "<th>plan / account</th><th>event</th><th>by</th><th>reason</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table></details>"
    )


def _fact_list(scenario: Scenario, items: Sequence[TimelineItem]) -> str:
    facts = [i for i in items if i.kind == "facts"]
    if not facts:
        return ""
    if len(facts) > 12:
        rows = "".join(
            f"<li>{escape(scenario.when(i.time))} <code>{escape(i.account_id or '')}</code>: "
            f"{escape(i.reason)}</li>"
            for i in facts
        )
        return (
            f'<details><summary><h2 style="display:inline">Fact changes</h2> ({len(facts):,}, '
            "marked on each plan of the account)</summary>"
            f'<ul style="list-style:none;padding-left:0">{rows}</ul></details>'
        )
    lis = "".join(
        f"<li><b>{n}</b> {escape(scenario.when(i.time))} <code>{escape(i.account_id or '')}</code>: {escape(i.reason)}</li>"
        for n, i in enumerate(facts, start=1)
    )
    return f'<h2>Fact changes</h2><ol class="facts-list" style="list-style:none;padding-left:0">{lis}</ol>'


def _run_section(result: RunResult, title: str | None = None) -> str:
    scenario = result.scenario
    statuses: dict[str, int] = {}
    for plan in result.plans:
        statuses[plan.status] = statuses.get(plan.status, 0) + 1
    cards = [(status.lower(), f"{count:,}") for status, count in sorted(statuses.items())]
    if result.expectations:
        passed = sum(1 for r in result.expectations if r.passed)
        cards.append(("expectations passed", f"{passed}/{len(result.expectations)}"))
    chart = _Chart(scenario, result.plans, result.timeline).render()
    heading = f"<h2>{escape(title)}</h2>" if title else ""
    return (
        heading
        + _cards(cards)
        + f'<div class="chart">{chart}</div>'
        + _legend()
        + _fact_list(scenario, result.timeline)
        + _expectations_html(result.expectations)
    )


def _title(scenario: Scenario, tick: timedelta, digest: str, extra: str = "") -> str:
    return (
        f"<h1>{escape(scenario.name)}</h1>"
        f'<p class="sub">{escape(scenario.description)}<br/>'
        f"{scenario.horizon.days} days from {scenario.start:%Y-%m-%d %H:%M} UTC, poll every "
        f"{format_duration(tick)}, policies <code>{escape(_short_digest(digest))}</code>{escape(extra)}</p>"
    )


def run_html(result: RunResult) -> str:
    """A self-contained page: the chart of plans and steps over time, then the timeline."""
    scenario = result.scenario
    stats = result.stats
    footer = (
        f'<p class="sub">Simulated with the production engine and orchestrator: {stats.ticks:,} of '
        f"{stats.ticks_modelled:,} ticks run, {stats.idle_looks_skipped:,} idle polls skipped, "
        f"{stats.seconds:.2f} s.</p>"
    )
    body = (
        _title(scenario, result.tick, result.bundle_digest)
        + _run_section(result)
        + _timeline_table(scenario, result.timeline)
        + footer
    )
    return _page(f"simulation: {scenario.name}", body)


# --- Monte Carlo --------------------------------------------------------------------------


def _days(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _distribution_line(dist: PlanDistribution, runs: int) -> str:
    ends = ", ".join(
        f"{label} {count / runs:.0%}"
        for label, count in sorted(dist.ends.items(), key=lambda kv: -kv[1])
    )
    return (
        f"{ends}; days to end: median {_days(dist.median)}, p10 {_days(dist.quantile(0.1))}, "
        f"p90 {_days(dist.quantile(0.9))}"
    )


def monte_carlo_text(result: MonteCarloResult) -> str:
    """End states and durations over the runs, per plan and overall."""
    scenario = result.scenario
    lines = _header(scenario, result.tick, result.bundle_digest)
    lines.append(
        f"  {_plural(result.runs, 'run')}, seed {result.seed} (run i draws with seed `{result.seed}/i`)"
    )
    lines.append("")
    total_runs = result.runs * len(result.plans)
    lines.append(
        f"all plans ({total_runs:,} plan runs): {_distribution_line(result.overall, total_runs)}"
    )
    for dist in result.plans[:50]:
        lines.append(f"  {dist.plan_id}: {_distribution_line(dist, result.runs)}")
    if len(result.plans) > 50:
        lines.append(f"  ... {len(result.plans) - 50} more plans (see --format json)")
    if result.expectations:
        lines.append("")
        lines.append("expectations (runs in which each held):")
        for exp, held in result.expectations:
            mark = "pass" if held == result.runs else "FAIL"
            lines.append(f"  {mark}  {held}/{result.runs}  {exp.text}")
        for run_index, failure in result.failures[:5]:
            lines.append(f"        run {run_index}: actual: {failure.actual}")
    lines += ["", f"{_plural(result.runs, 'run')} in {result.seconds:.2f} s"]
    return "\n".join(lines) + "\n"


def _distribution_json(dist: PlanDistribution, runs: int) -> dict[str, Any]:
    return {
        "plan": dist.plan_id,
        "ends": {
            label: {"runs": count, "share": round(count / runs, 4)}
            for label, count in sorted(dist.ends.items())
        },
        "days_to_end": {
            "count": len(dist.days_to_end),
            "min": dist.days_to_end[0] if dist.days_to_end else None,
            "p10": dist.quantile(0.1),
            "median": dist.median,
            "p90": dist.quantile(0.9),
            "max": dist.days_to_end[-1] if dist.days_to_end else None,
        },
    }


def monte_carlo_data(result: MonteCarloResult) -> dict[str, Any]:
    """Monte Carlo results as plain JSON data."""
    return {
        "scenario": _scenario_json(result.scenario, result.tick),
        "policies": {"digest": result.bundle_digest},
        "runs": result.runs,
        "seed": result.seed,
        "ok": result.ok,
        "overall": _distribution_json(result.overall, result.runs * len(result.plans)),
        "plans": [_distribution_json(d, result.runs) for d in result.plans],
        "expectations": [
            {"expectation": exp.text, "held": held, "runs": result.runs}
            for exp, held in result.expectations
        ],
        "failures": [
            {"run": index, "expectation": f.expectation.text, "actual": f.actual}
            for index, f in result.failures
        ],
        "seconds": round(result.seconds, 4),
    }


def monte_carlo_json(result: MonteCarloResult) -> str:
    """Monte Carlo results as JSON text."""
    return indented(monte_carlo_data(result))


def _bar(ends: Mapping[str, int], runs: int) -> str:
    parts = []
    for label, count in sorted(ends.items(), key=lambda kv: -kv[1]):
        color = _STATUS_COLORS.get(label.split(" ")[0], "#cbd5e1")
        tip = escape(f"{label}: {count} of {runs}")
        parts.append(
            f'<span title="{tip}" style="background:{color};width:{100 * count / runs:.2f}%"></span>'
        )
    return f'<div class="bar">{"".join(parts)}</div>'


def _histogram(days: Sequence[float], horizon: int) -> str:
    if not days:
        return "<p>no plan ended within the horizon</p>"
    buckets = [0] * (horizon // 7 + 1)
    for value in days:
        buckets[min(int(value // 7), len(buckets) - 1)] += 1
    peak = max(buckets)
    width, height = 1180, 140
    bar = width / len(buckets)
    rects = []
    for index, count in enumerate(buckets):
        h = 0 if not peak else (height - 20) * count / peak
        tip = escape(f"days {index * 7}-{index * 7 + 6}: {count}")
        rects.append(
            f'<rect x="{index * bar + 1:.1f}" y="{height - 16 - h:.1f}" width="{bar - 2:.1f}" height="{h:.1f}" '
            f'fill="#60a5fa"><title>{tip}</title></rect>'
        )
        if index % 2 == 0:
            rects.append(
                f'<text x="{index * bar + bar / 2:.1f}" y="{height - 3}" font-size="10" text-anchor="middle" fill="#64748b">{index * 7}</text>'
            )
    return (
        f'<svg viewBox="0 0 {width} {height}" width="100%" height="{height}" '
        f'role="img" aria-label="days to end">{"".join(rects)}</svg>'
    )


def monte_carlo_html(result: MonteCarloResult) -> str:
    """A page with the end states of each plan as bars and a histogram of days to end."""
    scenario = result.scenario
    total_runs = result.runs * len(result.plans)
    rows = "".join(
        f"<tr><td>{escape(d.plan_id)}</td><td>{_bar(d.ends, result.runs)}</td>"
        f"<td>{escape(_distribution_line(d, result.runs))}</td></tr>"
        for d in result.plans[:500]
    )
    exps = "".join(
        f'<li><span class="{"pass" if held == result.runs else "fail"}">{held}/{result.runs}</span> {escape(exp.text)}</li>'
        for exp, held in result.expectations
    )
    body = (
        _title(
            scenario, result.tick, result.bundle_digest, f"; {result.runs} runs, seed {result.seed}"
        )
        + f"<h2>All plans ({total_runs:,} plan runs)</h2>{_bar(result.overall.ends, total_runs)}"
        + f"<p>{escape(_distribution_line(result.overall, total_runs))}</p>"
        + '<h2>Days from proposal to end</h2><div class="chart">'
        + _histogram(result.overall.days_to_end, scenario.horizon.days)
        + "</div>"
        + (f'<h2>Expectations</h2><ul class="exp">{exps}</ul>' if exps else "")
        + "<h2>Per plan</h2><table><thead><tr><th>plan</th><th>end states</th><th>summary</th></tr></thead>"
        + f"<tbody>{rows}</tbody></table>"
    )
    return _page(f"monte carlo: {scenario.name}", body)


# --- two policy versions ------------------------------------------------------------------


def _item_text(scenario: Scenario, item: TimelineItem | None) -> str:
    if item is None:
        return "nothing more"
    return f"{scenario.when(item.time)} {item.event} by {item.actor}: {item.reason}"


def _divergence_lines(scenario: Scenario, div: Divergence) -> list[str]:
    when = scenario.when(div.at) if div.at else "-"
    return [
        f"  {div.plan_id}: first differs at {when} (event {div.index + 1} of its course)",
        f"    policies: {_item_text(scenario, div.left)}",
        f"    other:    {_item_text(scenario, div.right)}",
        f"    ends:     {div.left_end}  vs  {div.right_end}",
    ]


def compare_text(result: CompareResult) -> str:
    """Where each plan's course first diverges under the other policies."""
    left, right = result.left, result.right
    scenario = left.scenario
    lines = _header(scenario, left.tick, left.bundle_digest)
    lines.append(f"  compared with policies {_short_digest(right.bundle_digest)}")
    changed = [
        f"{name} v{left.versions.get(name)} -> v{version}"
        for name, version in sorted(right.versions.items())
        if left.versions.get(name) != version
    ]
    if changed:
        lines.append(f"  documents changed: {', '.join(changed)}")
    lines.append("")
    same = len(left.plans) - len(result.divergences)
    lines.append(
        f"{_plural(len(result.divergences), 'plan')} diverge, {_plural(same, 'plan')} run the same course"
    )
    for div in result.divergences:
        lines += _divergence_lines(scenario, div)
    checks = _expectation_lines(left.expectations)
    if checks:
        lines += ["", "under the first policies:", *checks]
    other = [r for r in right.expectations if not r.passed]
    if right.expectations:
        lines.append(
            f"under the other policies: {len(right.expectations) - len(other)} passed, {len(other)} failed"
        )
        lines += [f"  FAIL  {r.expectation.text}: {r.actual}" for r in other]
    return "\n".join(lines) + "\n"


def compare_data(result: CompareResult) -> dict[str, Any]:
    """A comparison as plain JSON data (both full traces included)."""
    scenario = result.left.scenario

    def item(i: TimelineItem | None) -> dict[str, Any] | None:
        return None if i is None else i.as_dict(scenario.start)

    return {
        "divergences": [
            {
                "plan": d.plan_id,
                "at": d.at.isoformat() if d.at else None,
                "day": scenario.when(d.at) if d.at else None,
                "ledger_index": d.index,
                "policies": item(d.left),
                "other": item(d.right),
                "ends": {"policies": d.left_end, "other": d.right_end},
            }
            for d in result.divergences
        ],
        "ok": result.ok,
        "policies": run_data(result.left),
        "other": run_data(result.right),
    }


def compare_json(result: CompareResult) -> str:
    """A comparison as JSON text, both full traces included."""
    return indented(compare_data(result))


def compare_html(result: CompareResult) -> str:
    """Both runs' charts and the first divergence of each plan."""
    scenario = result.left.scenario
    rows = "".join(
        f'<tr><td>{escape(d.plan_id)}</td><td class="t">{escape(scenario.when(d.at) if d.at else "-")}</td>'
        f"<td>{escape(_item_text(scenario, d.left))}</td><td>{escape(_item_text(scenario, d.right))}</td>"
        f"<td>{escape(d.left_end)}<br/>{escape(d.right_end)}</td></tr>"
        for d in result.divergences
    )
    table = (
        "<h2>First divergence per plan</h2><table><thead><tr><th>plan</th><th>when</th>"
        "<th>policies</th><th>other policies</th><th>ends</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
        if rows
        else "<h2>No divergence</h2><p>Every plan runs the same course under both.</p>"
    )
    body = (
        _title(
            scenario,
            result.left.tick,
            result.left.bundle_digest,
            f" vs {_short_digest(result.right.bundle_digest)}",
        )
        + table
        + _run_section(result.left, f"policies {_short_digest(result.left.bundle_digest)}")
        + _run_section(result.right, f"other policies {_short_digest(result.right.bundle_digest)}")
    )
    return _page(f"policy comparison: {scenario.name}", body)
