"""The simulated world around the production orchestrator.

Three adapters of the orchestrator's ports, nothing else: they decide nothing
about plans, they only stand in for the outside world and for time.

- :class:`TimelineAccounts` (``AccountFacts``): the scenario's account facts,
  changing at the times its timeline says.
- :class:`ScriptedExecutor` (``ActionExecutor``): the in-memory executor with
  the scenario's outcomes per action type, attempt and plan; a probabilistic
  outcome is drawn from a hash of the seed and the idempotency key, so a draw
  does not depend on the order in which plans are processed.
- :class:`SkippingStore` (``PlanStore``): the in-memory store behind a due
  index, so the simulation can jump from one due time to the next instead of
  ticking through empty polls.

Eliding idle polls
------------------
A real poll loop looks at every ACTIVE plan once per ``recheck`` (an hour) and
at every plan with a pending step once per ``pending_poll`` (five minutes),
even when nothing can have changed. Over months and thousands of plans those
looks are almost all of the work, so :class:`SkippingStore` skips the ones
whose result is known in advance and accounts for them exactly:

* After a write of the scheduler that ends a plan's turn with **no ledger
  entry**, the plan *sleeps* when the next look would provably be idle too:
  ACTIVE with nothing in flight, its objective, step preconditions and timing
  do not read ``now`` or ``plan`` (so same facts, same answers), and no step
  falls due before the look; or one step in flight whose outcome the
  scripted executor will report only later.
* A sleeping plan wakes, and is processed for real, at the first poll of its
  own cadence at or after the earliest of: a change
  of its account's facts, a step falling due, the in-flight outcome's time,
  expiry. A person's command or any other write wakes it at once.
* Each skipped look would have taken a lease and written the plan once: the
  store adds those to the plan's version and to the fence tokens it hands out,
  and re-chains ledger hashes over the corrected versions on read. The ledger,
  attempts and plan records therefore equal a real loop's, byte for byte
  (``--exact`` runs every look, and the tests compare both).

A plan looked at on tick ``T`` is due again at ``T + period``, which a loop
ticking every ``tick`` reaches at ``T + step`` with ``step = ceil(period /
tick) * tick``: its idle looks fall at ``since + k * step``, in closed form.

The predicate checks the scheduler's own result (``next_due_at`` must be what
its rule gives); anything else keeps the plan awake, so a change in the
scheduler makes the simulation slower, never different.

This module imports :mod:`orchestrator` at import time: the engine imports it
only inside :mod:`planpolicy.simulate`, when a simulation runs.
"""

from __future__ import annotations

import bisect
import hashlib
import heapq
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from orchestrator.accounts import AccountSnapshot
from orchestrator.adapters.memory import MemoryStore
from orchestrator.adapters.memory_executor import MemoryExecutor, Outcome
from orchestrator.clock import Clock
from orchestrator.execution import ActionIntent, idempotency_key
from orchestrator.ledger import (
    GENESIS_HASH,
    LedgerDraft,
    LedgerEntry,
    data_hash,
    rechained,
)
from orchestrator.policy import PolicyRuntime
from orchestrator.records import Fence, Page, PlanRef, StepAttempt
from planpolicy.plan import PlanStatus, RevenuePlanV1, StepStatus, replaced
from planpolicy.scenario import FactChange, ScriptOutcome, ScriptRule, ceil_to_grid

__all__ = ["ScriptedExecutor", "SkippingStore", "TimelineAccounts", "uniform"]

_BEGINNING = datetime.min.replace(tzinfo=UTC)


# --- account facts over time ------------------------------------------------------------


def _with(data: Mapping[str, Any], path: Sequence[str], value: Any) -> dict[str, Any]:
    """A copy of ``data`` with ``path`` set to ``value`` (``None`` removes it)."""
    out = dict(data)
    head = path[0]
    if len(path) == 1:
        if value is None:
            out.pop(head, None)
        else:
            out[head] = value
        return out
    inner = out.get(head)
    out[head] = _with(inner if isinstance(inner, Mapping) else {}, path[1:], value)
    return out


class TimelineAccounts:
    """Account facts of one tenant as they stand at any time of the scenario."""

    def __init__(
        self,
        tenant_id: str,
        accounts: Mapping[str, tuple[Mapping[str, Any], Mapping[str, Any]]],
        changes: Sequence[FactChange],
    ) -> None:
        self.tenant_id = tenant_id
        self._times: dict[str, list[datetime]] = {}
        self._states: dict[str, list[AccountSnapshot]] = {}
        for name, (account, signals) in accounts.items():
            self._times[name] = [_BEGINNING]
            self._states[name] = [(dict(account), dict(signals))]
        for change in sorted(changes, key=lambda c: c.at):
            if change.account not in self._states:
                continue
            account, signals = self._states[change.account][-1]
            roots = {"account": dict(account), "signals": dict(signals)}
            for path, value in change.values:
                roots[path[0]] = _with(roots[path[0]], path[1:], value)
            self._times[change.account].append(change.at)
            self._states[change.account].append((roots["account"], roots["signals"]))

    def snapshot(self, tenant_id: str, account_id: str, now: datetime) -> AccountSnapshot:
        """The facts in force at ``now`` (changes at ``now`` included)."""
        times = self._times.get(account_id)
        if tenant_id != self.tenant_id or times is None:
            return ({"account_id": account_id}, {})
        return self._states[account_id][bisect.bisect_right(times, now) - 1]

    def next_change(self, tenant_id: str, account_id: str, after: datetime) -> datetime | None:
        """The first time after ``after`` at which the account's facts change."""
        times = self._times.get(account_id)
        if tenant_id != self.tenant_id or times is None:
            return None
        index = bisect.bisect_right(times, after)
        return times[index] if index < len(times) else None


# --- the execution service ------------------------------------------------------------------


def uniform(seed: str, key: str) -> float:
    """A number in [0, 1) drawn from ``seed`` and ``key`` alone (order-independent)."""
    digest = hashlib.sha256(f"{seed}|{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def _outcome(spec: ScriptOutcome) -> Outcome:
    if spec.kind == "fail":
        return Outcome.fail(spec.error or "action failed")
    if spec.kind == "timeout":
        return Outcome.timeout()
    if spec.kind == "pending":
        return Outcome.pending(for_=spec.pending_for, then=spec.then, error=spec.error)
    return Outcome.succeed()


class ScriptedExecutor(MemoryExecutor):
    """The in-memory executor answering as the scenario scripts (unscripted: success).

    Each key is executed at most once, as in production; its outcome is chosen
    when it is first submitted. ``draws`` records each probabilistic draw
    (key -> the scripted outcome happened).
    """

    def __init__(self, clock: Clock, rules: Sequence[ScriptRule], *, seed: str) -> None:
        super().__init__(clock, {})
        self.seed = seed
        self._rules: dict[str, list[ScriptRule]] = {}
        for rule in sorted(rules, key=lambda r: -r.specificity):
            self._rules.setdefault(rule.action_type, []).append(rule)
        self._chosen: dict[str, tuple[datetime, Outcome]] = {}
        self.draws: dict[str, bool] = {}

    def rule_for(self, intent: ActionIntent) -> ScriptRule | None:
        """The most specific rule matching the intent's action type, attempt and plan."""
        for rule in self._rules.get(intent.action_type, ()):
            if rule.plan_id not in (None, intent.plan_id):
                continue
            if rule.attempt not in (None, intent.attempt):
                continue
            return rule
        return None

    def _outcome_for(self, intent: ActionIntent) -> Outcome:
        rule = self.rule_for(intent)
        spec = ScriptOutcome("succeed") if rule is None else rule.outcome
        if rule is not None and rule.probability is not None:
            hit = uniform(self.seed, intent.key) < rule.probability
            self.draws[intent.key] = hit
            if not hit and rule.otherwise is not None:
                spec = rule.otherwise
        outcome = _outcome(spec)
        self._chosen[intent.key] = (self.clock.now(), outcome)
        return outcome

    def pending_until(self, key: str) -> datetime | None:
        """When the attempt under ``key`` stops answering PENDING (None: not a pending one)."""
        chosen = self._chosen.get(key)
        if chosen is None or chosen[1].kind != "pending" or chosen[1].then == "pending":
            return None
        return chosen[0] + chosen[1].pending_for


# --- the store with a due index -------------------------------------------------------------


@dataclass(slots=True)
class _Sleep:
    """A plan whose next looks are idle until ``wake_at``."""

    since: datetime  # time of the write that put it to sleep (a tick)
    period: timedelta  # its polling cadence: recheck or pending poll
    step: timedelta  # ticks between two looks: the period rounded up to whole ticks
    wake_at: datetime  # the tick at which it is processed for real again
    bound: datetime | None  # recheck: the earlier next_due_at (a step due, expiry)
    bucket: tuple[timedelta, timedelta]  # (step, phase) for the per-tick count

    def looks(self, until: datetime, *, inclusive: bool) -> int:
        """Idle looks since ``since``: polls before ``until`` (or at it) and before ``wake_at``."""
        if inclusive:
            before_until = (until - self.since) // self.step
        else:
            before_until = -((self.since - until) // self.step) - 1
        before_wake = -((self.since - self.wake_at) // self.step) - 1
        return max(0, min(before_until, before_wake))

    def state_after(self, looks: int) -> tuple[datetime, datetime]:
        """(updated_at, next_due_at) of the plan after ``looks`` idle looks (``looks`` > 0)."""
        last = self.since + looks * self.step
        due = last + self.period
        if self.bound is not None:
            due = min(due, self.bound)
        return last, due


@dataclass(slots=True)
class _Track:
    """What the store knows about one plan beyond the inner store."""

    tenant_id: str
    plan_id: str
    account_id: str
    plan_type: str
    due: datetime | None = None  # next_due_at as a real store holds it (awake plans)
    token: int = 0  # the valid heap entry
    skipped: int = 0  # idle looks elided so far: each is one write and one lease
    sleep: _Sleep | None = None
    overlay: dict[str, Any] | None = None  # plan fields changed by idle looks since the last write
    entries: int = 0  # ledger entries so far
    offsets: list[tuple[int, int]] = field(default_factory=list)  # (first seq, skipped) per write
    # the last view handed out: (inner plan, fields replaced, view); see SkippingStore._view
    view: tuple[RevenuePlanV1, dict[str, Any], RevenuePlanV1] | None = None


class SkippingStore:
    """A :class:`~orchestrator.ports.PlanStore` over :class:`MemoryStore` with a due index.

    ``next_due()`` tells the simulation when the next tick has work. With
    ``elide`` idle polls are skipped as the module docstring explains; without
    it the store only indexes and passes everything through.
    """

    def __init__(
        self,
        *,
        clock: Clock,
        runtime: PolicyRuntime,
        start: datetime,
        tick: timedelta,
        recheck: timedelta,
        pending_poll: timedelta,
        max_plans_per_tick: int,
        next_change: Callable[[str, str, datetime], datetime | None],
        pending_until: Callable[[str], datetime | None],
        elide: bool = True,
    ) -> None:
        self.inner = MemoryStore()
        self.clock = clock
        self.runtime = runtime
        self.start = start
        self.tick = tick
        self.recheck = recheck
        self.pending_poll = pending_poll
        self.max_plans_per_tick = max_plans_per_tick
        self.next_change = next_change
        self.pending_until = pending_until
        self.elide = elide
        self.skipped = 0
        self._tracks: dict[tuple[str, str], _Track] = {}
        # (microseconds since the epoch, tenant, plan, token, time): integers compare
        # faster than aware datetimes, whose tzinfo objects are asked for offsets
        self._heap: list[tuple[int, str, str, int, datetime]] = []
        self._buckets: dict[tuple[timedelta, timedelta], set[tuple[str, str]]] = {}
        self._quiet_types: dict[str, bool] = {}
        self._checked_at: datetime | None = None
        self._attempt_fences: dict[tuple[str, str, str, int], int] = {}
        self._attempts: dict[tuple[str, str], set[tuple[uuid.UUID, int]]] = {}

    # -- the due index -----------------------------------------------------------------

    def next_due(self) -> datetime | None:
        """The earliest time at which some plan needs a real look (None: none ever)."""
        heap = self._heap
        while heap:
            _key, tenant, plan_id, token, at = heap[0]
            if self._tracks[(tenant, plan_id)].token == token:
                return at
            heapq.heappop(heap)
        return None

    def _index(self, track: _Track) -> None:
        track.token += 1
        at = track.sleep.wake_at if track.sleep is not None else track.due
        if at is not None:
            heapq.heappush(
                self._heap, (_micros(at), track.tenant_id, track.plan_id, track.token, at)
            )

    def _pop_due(self, now: datetime) -> list[_Track]:
        """Every valid index entry at or before ``now``, removed from the heap."""
        found: dict[tuple[str, str], _Track] = {}
        heap = self._heap
        bound = _micros(now)
        while heap and heap[0][0] <= bound:
            _key, tenant, plan_id, token, _at = heapq.heappop(heap)
            track = self._tracks[(tenant, plan_id)]
            if track.token == token:
                found[(tenant, plan_id)] = track
        return list(found.values())

    def due_plans(self, now: datetime, *, limit: int = 100) -> list[PlanRef]:
        """See :meth:`orchestrator.ports.PlanStore.due_plans` (sleeping plans are left out)."""
        if not self.elide:
            return self.inner.due_plans(now, limit=limit)
        tracks = self._pop_due(now)
        for track in tracks:
            if track.sleep is not None:
                self._wake(track, now, processed=True)
        if self._checked_at != now:
            self._checked_at = now
            tracks += self._crowded(now, len(tracks))
        tracks.sort(key=lambda t: (t.due, t.tenant_id, t.plan_id))
        for track in tracks:  # they stay due until a write says otherwise
            due = track.due
            assert due is not None
            heapq.heappush(
                self._heap, (_micros(due), track.tenant_id, track.plan_id, track.token, due)
            )
        return [PlanRef(t.tenant_id, t.plan_id, t.due) for t in tracks[:limit]]

    def _crowded(self, now: datetime, awake: int) -> list[_Track]:
        """Wake plans whose idle look falls at ``now`` if a real tick could not look at all."""
        if awake + sum(map(len, self._buckets.values())) <= self.max_plans_per_tick:
            return []  # even if every sleeping plan's look fell at `now`
        buckets = [
            keys
            for (step, phase), keys in self._buckets.items()
            if keys and (now - self.start) % step == phase
        ]
        if awake + sum(len(keys) for keys in buckets) <= self.max_plans_per_tick:
            return []
        members = [key for keys in buckets for key in keys]
        woken = []
        for key in members:
            track = self._tracks[key]
            if track.sleep is not None:
                self._wake(track, now, processed=True)
                track.token += 1  # its entry at `wake_at` no longer counts
                woken.append(track)
        return woken

    def _wake(self, track: _Track, at: datetime, *, processed: bool) -> None:
        """End ``track``'s sleep at ``at``: count its idle looks before ``at``, overlay them.

        ``track.due`` becomes the ``next_due_at`` a real store holds at ``at``.
        """
        sleep = track.sleep
        assert sleep is not None
        self._count(track, sleep, sleep.looks(at, inclusive=False))
        self._forget(track)

    def _count(self, track: _Track, sleep: _Sleep, looks: int) -> None:
        if looks > 0:
            track.skipped += looks
            self.skipped += looks
            updated, due = sleep.state_after(looks)
            track.overlay = {"updated_at": updated, "next_due_at": due}
            track.due = due

    def _forget(self, track: _Track) -> None:
        if track.sleep is not None:
            self._buckets.get(track.sleep.bucket, set()).discard((track.tenant_id, track.plan_id))
            track.sleep = None

    def finish(self, last_tick: datetime) -> None:
        """Account for the idle looks of sleeping plans up to the last tick of the run."""
        for track in self._tracks.values():
            sleep = track.sleep
            if sleep is not None:
                self._count(track, sleep, sleep.looks(last_tick, inclusive=True))
                self._forget(track)
                self._index(track)

    # -- putting plans to sleep --------------------------------------------------------

    def _quiet(self, plan_type: str) -> bool:
        """True when the rules a look re-evaluates read neither ``now`` nor ``plan``."""
        known = self._quiet_types.get(plan_type)
        if known is None:
            ptype = self.runtime.bundle.plan_type(plan_type)
            known = ptype is not None
            if ptype is not None:
                conditions = list(ptype.objective)
                for spec in ptype.steps.values():
                    conditions += [c for c in (spec.when, spec.not_before) if c is not None]
                known = not any({"now", "plan"} & c.expr.roots for c in conditions)
            self._quiet_types[plan_type] = known
        return known

    def _step(self, period: timedelta) -> timedelta:
        """Ticks between two looks of a plan polled every ``period``."""
        return -((-period) // self.tick) * self.tick

    @staticmethod
    def _chain(since: datetime, step: timedelta, at: datetime) -> datetime:
        """The first look ``since + k * step`` (k >= 1) at or after ``at``."""
        looks = max(1, -((since - at) // step))
        return since + looks * step

    def _settle(self, track: _Track, plan: RevenuePlanV1, entries: Sequence[LedgerDraft]) -> None:
        """After a write: index the plan, asleep if its next looks are idle."""
        self._forget(track)
        track.due = plan.next_due_at
        if entries or plan.next_due_at is None:
            self._index(track)
            return
        since = plan.updated_at
        on_grid = (since - self.start) % self.tick == timedelta(0)
        inflight = [s for s in plan.steps if s.status == StepStatus.DISPATCHED]
        sleep = None
        if not (on_grid and self.elide):
            pass
        elif not inflight and plan.status == PlanStatus.ACTIVE:
            sleep = self._recheck_sleep(track, plan, since)
        elif len(inflight) == 1:
            sleep = self._pending_sleep(
                track, plan, since, inflight[0].step_id, inflight[0].attempts
            )
        if sleep is not None:
            track.sleep = sleep
            self._buckets.setdefault(sleep.bucket, set()).add((track.tenant_id, track.plan_id))
        self._index(track)

    def _recheck_sleep(self, track: _Track, plan: RevenuePlanV1, since: datetime) -> _Sleep | None:
        if not self._quiet(plan.plan_type):
            return None
        planner = self.runtime.steps
        bound = plan.expires_at
        for item in plan.steps:
            if item.status != StepStatus.FAILED:
                continue
            spec = planner.spec(plan, item)
            if spec is not None and item.attempts >= spec.retry.limit:
                return None
        for item in planner.ready(plan):
            if item.due_at is not None and item.due_at > since:
                bound = min(bound, item.due_at)
        period = self.recheck
        if plan.next_due_at != min(since + period, bound):
            return None
        step = self._step(period)
        wake_at = ceil_to_grid(bound, self.start, self.tick)
        change = self.next_change(plan.tenant_id, plan.account_id, since)
        if change is not None:
            wake_at = min(wake_at, self._chain(since, step, change))
        if wake_at <= since + step:
            return None
        return _Sleep(since, period, step, wake_at, bound, (step, (since - self.start) % step))

    def _pending_sleep(
        self, track: _Track, plan: RevenuePlanV1, since: datetime, step_id: uuid.UUID, attempt: int
    ) -> _Sleep | None:
        if plan.status not in (PlanStatus.ACTIVE, PlanStatus.PAUSED):
            return None
        period = self.pending_poll
        if plan.next_due_at != since + period:
            return None
        done = self.pending_until(idempotency_key(plan.plan_id, step_id, attempt))
        if done is None or done <= since:
            return None
        triggers = [done, plan.expires_at]
        if plan.status == PlanStatus.ACTIVE:
            if not self._quiet(plan.plan_type):
                return None
            change = self.next_change(plan.tenant_id, plan.account_id, since)
            if change is not None:
                triggers.append(change)
        step = self._step(period)
        wake_at = min(self._chain(since, step, t) for t in triggers)
        if wake_at <= since + step:
            return None
        return _Sleep(since, period, step, wake_at, None, (step, (since - self.start) % step))

    # -- reads and writes, as a real store would show them -----------------------------

    def _track(self, tenant_id: str, plan_id: str) -> _Track | None:
        return self._tracks.get((tenant_id, plan_id))

    def _view(self, plan: RevenuePlanV1, track: _Track | None) -> RevenuePlanV1:
        """The plan as a real store would hold it now (idle looks applied).

        ``plan`` is the inner store's plan (sealed, shared): a plan with idle
        looks applied is a copy of it with those fields replaced. The last such
        copy is handed out again while it would be made the same (the same
        inner plan, the same fields): a poll reads a plan twice in one turn.
        """
        if track is None:
            return plan
        update: dict[str, Any] = {}
        skipped = track.skipped
        if track.overlay:
            update.update(track.overlay)
        if track.sleep is not None:
            looks = track.sleep.looks(self.clock.now(), inclusive=False)
            if looks:
                skipped += looks
                updated, due = track.sleep.state_after(looks)
                update.update({"updated_at": updated, "next_due_at": due})
        if skipped:
            update["version"] = plan.version + skipped
        if not update:
            return plan
        last = track.view
        if last is not None and last[0] is plan and last[1] == update:
            return last[2]
        view = replaced(plan, update)
        track.view = (plan, update, view)
        return view

    def _realize(self, track: _Track) -> None:
        """Someone other than the poll loop writes the plan now: its sleep ends."""
        if track.sleep is not None:
            self._wake(track, self.clock.now(), processed=False)

    def _unfence(self, fence: Fence | None, track: _Track | None) -> Fence | None:
        if fence is None or track is None or not track.skipped:
            return fence
        return _with_token(fence, fence.token - track.skipped)

    def _note_entries(self, track: _Track, count: int) -> None:
        if count:
            if not track.offsets or track.offsets[-1][1] != track.skipped:
                track.offsets.append((track.entries + 1, track.skipped))
            track.entries += count

    def init(self) -> None:
        """Nothing to create."""
        self.inner.init()

    def close(self) -> None:
        """Nothing to release."""
        self.inner.close()

    def create_plan(self, plan: RevenuePlanV1, entries: Sequence[LedgerDraft]) -> RevenuePlanV1:
        """See :meth:`orchestrator.ports.PlanStore.create_plan`."""
        stored = self.inner.create_plan(plan, entries)
        track = _Track(plan.tenant_id, plan.plan_id, plan.account_id, plan.plan_type)
        self._tracks[(plan.tenant_id, plan.plan_id)] = track
        self._note_entries(track, len(entries))
        self._settle(track, stored, entries)
        return stored

    def get_plan(self, tenant_id: str, plan_id: str) -> RevenuePlanV1:
        """See :meth:`orchestrator.ports.PlanStore.get_plan`."""
        return self._view(self.inner.get_plan(tenant_id, plan_id), self._track(tenant_id, plan_id))

    def list_plans(
        self,
        tenant_id: str,
        *,
        status: str | None = None,
        account_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[RevenuePlanV1]:
        """See :meth:`orchestrator.ports.PlanStore.list_plans`."""
        page = self.inner.list_plans(
            tenant_id, status=status, account_id=account_id, limit=limit, cursor=cursor
        )
        items = [self._view(p, self._track(p.tenant_id, p.plan_id)) for p in page.items]
        return Page(items=items, next_cursor=page.next_cursor)

    def update_plan(
        self,
        plan: RevenuePlanV1,
        *,
        expected_version: int,
        entries: Sequence[LedgerDraft] = (),
        fence: Fence | None = None,
        activate_guard: bool = False,
        release_guard: bool = False,
        attempts: Sequence[StepAttempt] = (),
    ) -> RevenuePlanV1:
        """See :meth:`orchestrator.ports.PlanStore.update_plan`."""
        track = self._track(plan.tenant_id, plan.plan_id)
        if track is None:
            return self.inner.update_plan(
                plan,
                expected_version=expected_version,
                entries=entries,
                fence=fence,
                activate_guard=activate_guard,
                release_guard=release_guard,
                attempts=attempts,
            )
        self._realize(track)
        stored = self.inner.update_plan(
            plan,
            expected_version=expected_version - track.skipped,
            entries=entries,
            fence=self._unfence(fence, track),
            activate_guard=activate_guard,
            release_guard=release_guard,
            attempts=attempts,
        )
        if fence is not None:
            for attempt in attempts:
                self._attempt_fences[_attempt_key(attempt)] = fence.token
        self._note_entries(track, len(entries))
        track.overlay = None
        self._settle(track, stored, entries)
        return self._view(stored, track)

    def active_plan_for(self, tenant_id: str, account_id: str, plan_type: str) -> str | None:
        """See :meth:`orchestrator.ports.PlanStore.active_plan_for`."""
        return self.inner.active_plan_for(tenant_id, account_id, plan_type)

    def acquire_lease(
        self, tenant_id: str, plan_id: str, owner: str, now: datetime, ttl: timedelta
    ) -> Fence | None:
        """See :meth:`orchestrator.ports.PlanStore.acquire_lease`."""
        fence = self.inner.acquire_lease(tenant_id, plan_id, owner, now, ttl)
        track = self._track(tenant_id, plan_id)
        if fence is None or track is None or not track.skipped:
            return fence
        return _with_token(fence, fence.token + track.skipped)

    def release_lease(self, fence: Fence) -> None:
        """See :meth:`orchestrator.ports.PlanStore.release_lease`."""
        inner = self._unfence(fence, self._track(fence.tenant_id, fence.plan_id))
        assert inner is not None
        self.inner.release_lease(inner)

    def put_attempt(self, attempt: StepAttempt, fence: Fence) -> bool:
        """See :meth:`orchestrator.ports.PlanStore.put_attempt`."""
        inner = self._unfence(fence, self._track(attempt.tenant_id, attempt.plan_id))
        assert inner is not None
        fresh = self.inner.put_attempt(attempt, inner)
        self._attempts.setdefault((attempt.tenant_id, attempt.plan_id), set()).add(
            (attempt.step_id, attempt.attempt)
        )
        if fresh:
            self._attempt_fences[_attempt_key(attempt)] = fence.token
        return fresh

    def _attempt_view(self, attempt: StepAttempt) -> StepAttempt:
        token = self._attempt_fences.get(_attempt_key(attempt))
        if token is None or token == attempt.fence:
            return attempt
        return attempt.model_copy(update={"fence": token})

    def get_attempt(
        self, tenant_id: str, plan_id: str, step_id: uuid.UUID, attempt: int
    ) -> StepAttempt:
        """See :meth:`orchestrator.ports.PlanStore.get_attempt`."""
        return self._attempt_view(self.inner.get_attempt(tenant_id, plan_id, step_id, attempt))

    def update_attempt(self, attempt: StepAttempt, fence: Fence) -> StepAttempt:
        """See :meth:`orchestrator.ports.PlanStore.update_attempt`."""
        inner = self._unfence(fence, self._track(attempt.tenant_id, attempt.plan_id))
        assert inner is not None
        stored = self.inner.update_attempt(attempt, inner)
        self._attempt_fences[_attempt_key(attempt)] = fence.token
        return self._attempt_view(stored)

    def list_attempts(self, tenant_id: str, plan_id: str) -> list[StepAttempt]:
        """See :meth:`orchestrator.ports.PlanStore.list_attempts` (by key, not by a scan)."""
        keys = sorted(self._attempts.get((tenant_id, plan_id), ()), key=lambda k: (str(k[0]), k[1]))
        return [self.get_attempt(tenant_id, plan_id, step_id, n) for step_id, n in keys]

    def ledger(self, tenant_id: str, plan_id: str) -> list[LedgerEntry]:
        """See :meth:`orchestrator.ports.PlanStore.ledger` (versions and hashes as a real loop's)."""
        entries = self.inner.ledger(tenant_id, plan_id)
        track = self._track(tenant_id, plan_id)
        if track is None or not any(skipped for _seq, skipped in track.offsets):
            return entries
        starts = [seq for seq, _ in track.offsets]
        out: list[LedgerEntry] = []
        prev = GENESIS_HASH
        for entry in entries:
            index = bisect.bisect_right(starts, entry.seq) - 1
            extra = track.offsets[index][1] if index >= 0 else 0
            if not extra and entry.prev_hash == prev:
                # written before the first idle look: stored exactly as a real loop's
                out.append(entry)
            else:
                out.append(
                    rechained(entry, plan_version=entry.plan_version + extra, prev_hash=prev)
                )
            prev = out[-1].hash
        return out

    def ledger_data(self, tenant_id: str, plan_id: str) -> list[dict[str, Any]]:
        """:meth:`ledger` as JSON data (each entry's ``model_dump(mode="json")``).

        Made from the inner store's JSON data; every entry is chained here, once,
        over the versions a real loop's writes give it (idle looks included).
        """
        docs = self.inner.ledger_data(tenant_id, plan_id)
        track = self._track(tenant_id, plan_id)
        offsets = track.offsets if track is not None else []
        starts = [seq for seq, _ in offsets]
        out: list[dict[str, Any]] = []
        prev = GENESIS_HASH
        for data in docs:
            index = bisect.bisect_right(starts, data["seq"]) - 1
            extra = offsets[index][1] if index >= 0 else 0
            if extra or data.get("prev_hash") != prev or "hash" not in data:
                # what rechained_data gives, made in the inner store's fresh copy
                data["plan_version"] += extra
                data["prev_hash"] = prev
                data["hash"] = data_hash(data)
            out.append(data)
            prev = data["hash"]
        return out

    def append_ledger(
        self,
        tenant_id: str,
        plan_id: str,
        entries: Sequence[LedgerDraft],
        *,
        fence: Fence | None = None,
    ) -> list[LedgerEntry]:
        """See :meth:`orchestrator.ports.PlanStore.append_ledger`."""
        track = self._track(tenant_id, plan_id)
        if track is not None:
            self._realize(track)
            self._note_entries(track, len(entries))
        chained = self.inner.append_ledger(
            tenant_id, plan_id, entries, fence=self._unfence(fence, track)
        )
        if track is not None and track.due is not None:
            self._index(track)
        if track is None or not track.skipped:
            return chained
        return (
            [e for e in self.ledger(tenant_id, plan_id) if e.seq >= chained[0].seq]
            if chained
            else []
        )

    def scan_plans(self) -> Iterator[PlanRef]:
        """Every plan, as its due index sees it."""
        return iter(PlanRef(t.tenant_id, t.plan_id, t.due) for t in self._tracks.values())


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _micros(at: datetime) -> int:
    """``at`` as whole microseconds since the epoch (the same order as the times)."""
    return (at - _EPOCH) // _MICROSECOND


def _with_token(fence: Fence, token: int) -> Fence:
    """``fence`` with another token (what ``dataclasses.replace`` gives, made directly)."""
    return Fence(fence.tenant_id, fence.plan_id, fence.owner, token, fence.expires_at)


def _attempt_key(attempt: StepAttempt) -> tuple[str, str, str, int]:
    return (attempt.tenant_id, attempt.plan_id, str(attempt.step_id), attempt.attempt)
