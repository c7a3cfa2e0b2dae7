"""Live tallies on tablets: append-only tap events.

A counter's total is SUM(delta) over its TallyEvent rows, so taps from many tablets can never
overwrite each other. Each tap carries a client-made `tap_id`: a retried tap (shaky connection)
counts once. Undo writes a compensating row; nothing is rewritten. The TallyEvent rows are the
audit trail of taps (who, device, when, delta, what it undoes).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from engine import messages
from engine.access import Actor
from engine.db import session_scope
from engine.errors import EngineError, NotFound, PermissionDenied
from models.tables import Form, Submission, TallyEvent

MAX_STEP = 1000

messages.register(
    {
        "tally.no_event": {"zh": "活动记录 #{id} 不存在或已删除。", "en": "Event record #{id} does not exist or was deleted."},
        "tally.no_counter": {
            "zh": "表单「{form}」没有计数项「{counter}」。",
            "en": "Form '{form}' has no counter '{counter}'.",
        },
        "tally.bad_delta": {
            "zh": "每次计数必须是 1 到 {max} 之间的整数。",
            "en": "A tap must add a whole number from 1 to {max}.",
        },
        "tally.forbidden": {"zh": "您的角色不能进行现场计数。", "en": "Your role may not tally."},
        "tally.nothing_to_undo": {
            "zh": "这台设备在该计数项上没有可撤销的计数。",
            "en": "This device has no tap on this counter to undo.",
        },
    }
)


@dataclass(frozen=True)
class TapResult:
    tap_id: str
    event_id: int | None  # the TallyEvent id
    counted: bool  # False when the same tap_id was already stored (a retry): counted once
    total: int


def new_tap_id() -> str:
    return uuid.uuid4().hex


_VERSION_COUNTERS: dict[tuple[str, int, int], tuple[str, frozenset[str]]] = {}


def _version_counters(engine: Engine, sub: Submission) -> tuple[str, frozenset[str]]:
    """(form slug, counter keys) of the record's own form version; versions are immutable."""
    from engine.forms import get_spec

    key = (str(engine.url), sub.form_id, sub.form_version)
    hit = _VERSION_COUNTERS.get(key)
    if hit is None:
        with session_scope(engine, write=False) as s:
            slug = s.exec(select(Form.slug).where(Form.id == sub.form_id)).scalar_one()  # type: ignore[call-overload]
        spec = get_spec(engine, slug, sub.form_version)
        hit = _VERSION_COUNTERS[key] = (slug, frozenset(f.key for f in spec.counters))
    return hit


def _live_event(engine: Engine, event_id: int) -> Submission:
    with session_scope(engine, write=False) as s:
        sub = s.get(Submission, event_id)
    if sub is None or sub.deleted_at is not None:
        raise NotFound("tally.no_event", id=event_id)
    return sub


def check_counter(engine: Engine, event_id: int, counter: str) -> str:
    """Return the event's form slug; raise if the event or its counter does not exist.

    A counter is valid if the event's own form version declares it, or the current version does
    (a counter added later can be tallied on older events too).
    """
    from engine.forms import get_spec

    sub = _live_event(engine, event_id)
    slug, keys = _version_counters(engine, sub)
    if counter in keys or counter in {f.key for f in get_spec(engine, slug).counters}:
        return slug
    raise EngineError("tally.no_counter", form=slug, counter=counter)


def _sum(s: object, event_id: int, counter: str) -> int:
    q = select(func.coalesce(func.sum(TallyEvent.delta), 0)).where(
        TallyEvent.submission_id == event_id, TallyEvent.counter == counter
    )
    return int(s.exec(q).scalar_one())  # type: ignore[attr-defined]


def total(engine: Engine, event_id: int, counter: str) -> int:
    with session_scope(engine, write=False) as s:
        return _sum(s, event_id, counter)


def totals(engine: Engine, event_id: int, device: str | None = None) -> dict[str, int]:
    """{counter: total} for one event (all tablets, or one device)."""
    q = select(TallyEvent.counter, func.sum(TallyEvent.delta)).where(TallyEvent.submission_id == event_id)
    if device is not None:
        q = q.where(TallyEvent.device == device)
    q = q.group_by(TallyEvent.counter)
    with session_scope(engine, write=False) as s:
        return {c: int(v or 0) for c, v in s.exec(q).all()}  # type: ignore[call-overload]


def tap(
    engine: Engine,
    event_id: int,
    counter: str,
    delta: int,
    *,
    actor: Actor,
    device: str,
    tap_id: str | None = None,
    at: datetime | None = None,
) -> TapResult:
    """Record one tap. Idempotent on `tap_id`: retrying the same tap never counts twice."""
    if not actor.can("tally"):
        raise PermissionDenied("tally.forbidden")
    if not isinstance(delta, int) or isinstance(delta, bool) or not 1 <= delta <= MAX_STEP:
        raise EngineError("tally.bad_delta", max=MAX_STEP)
    check_counter(engine, event_id, counter)
    tap_id = tap_id or new_tap_id()
    row = TallyEvent(
        submission_id=event_id, counter=counter, delta=delta, username=actor.username, device=device, tap_id=tap_id
    )
    if at is not None:
        row.at = at
    return _insert(engine, row, event_id, counter)


def _insert(engine: Engine, row: TallyEvent, event_id: int, counter: str) -> TapResult:
    try:
        with session_scope(engine) as s:
            s.add(row)
            s.flush()
            return TapResult(tap_id=row.tap_id, event_id=row.id, counted=True, total=_sum(s, event_id, counter))
    except IntegrityError:
        # The same tap_id is already stored: a retry of a tap that did count.
        return TapResult(tap_id=row.tap_id, event_id=None, counted=False, total=total(engine, event_id, counter))


def _last_undoable(s: object, event_id: int, counter: str, device: str) -> TallyEvent | None:
    undone = select(TallyEvent.undoes).where(
        TallyEvent.submission_id == event_id, TallyEvent.undoes.is_not(None)  # type: ignore[union-attr]
    )
    q = (
        select(TallyEvent)
        .where(
            TallyEvent.submission_id == event_id,
            TallyEvent.counter == counter,
            TallyEvent.device == device,
            TallyEvent.delta > 0,
            TallyEvent.id.not_in(undone),  # type: ignore[union-attr]
        )
        .order_by(TallyEvent.id.desc())  # type: ignore[union-attr]
        .limit(1)
    )
    return s.exec(q).scalars().first()  # type: ignore[attr-defined]


def undo_last(
    engine: Engine, event_id: int, counter: str, *, actor: Actor, device: str, tap_id: str | None = None
) -> TapResult:
    """Compensate this device's most recent not-yet-undone tap on the counter.

    The look-up and the compensating insert share one write transaction, and `undoes` is unique,
    so two undos racing for the same tap can never both count.
    """
    if not actor.can("tally"):
        raise PermissionDenied("tally.forbidden")
    check_counter(engine, event_id, counter)
    tap_id = tap_id or new_tap_id()
    for _attempt in range(3):
        try:
            with session_scope(engine) as s:
                if s.exec(select(TallyEvent.id).where(TallyEvent.tap_id == tap_id)).first():  # type: ignore[call-overload]
                    break  # this undo was already stored (a retry)
                last = _last_undoable(s, event_id, counter, device)
                if last is None:
                    raise EngineError("tally.nothing_to_undo")
                row = TallyEvent(
                    submission_id=event_id, counter=counter, delta=-last.delta, username=actor.username,
                    device=device, tap_id=tap_id, undoes=last.id,
                )
                s.add(row)
                s.flush()
                return TapResult(tap_id=tap_id, event_id=row.id, counted=True, total=_sum(s, event_id, counter))
        except IntegrityError:
            continue  # another undo took that tap first: look again
    return TapResult(tap_id=tap_id, event_id=None, counted=False, total=total(engine, event_id, counter))


@dataclass(frozen=True)
class TimelineRow:
    at: datetime
    counter: str
    delta: int
    username: str
    device: str


def timeline(engine: Engine, event_id: int, limit: int = 500) -> list[TimelineRow]:
    q = (
        select(TallyEvent.at, TallyEvent.counter, TallyEvent.delta, TallyEvent.username, TallyEvent.device)
        .where(TallyEvent.submission_id == event_id)
        .order_by(TallyEvent.id.desc())  # type: ignore[union-attr]
        .limit(limit)
    )
    with session_scope(engine, write=False) as s:
        return [TimelineRow(*r) for r in s.exec(q).all()]  # type: ignore[call-overload]
