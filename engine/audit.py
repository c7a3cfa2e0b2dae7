"""The audit log: one `AuditEvent` per write, added in the write's own transaction.

`record(...)` only adds the row to the session; the caller's `session_scope` commits it
together with the change it describes (so a failed write leaves no audit row, and a write
never lands without one). Detail dicts must not carry sensitive values in clear: callers
mask them first (see `engine.storage`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from sqlmodel import Session, col, select

from engine.access import Actor
from models.tables import AuditEvent, utcnow

ACTIONS: frozenset[str] = frozenset({
    "create", "update", "delete", "restore", "transition", "publish", "login", "login_failed", "logout",
    "reveal", "export", "import", "backup", "restore_db", "user_create", "user_update", "backfill",
    "choice_list_update", "eligibility_decision", "conflict_decision", "setting_update", "retention",
})


def actor_name(actor: Actor | str | None) -> str:
    if actor is None:
        return ""
    return actor.username if isinstance(actor, Actor) else str(actor)


_PLAIN: frozenset[type] = frozenset({type(None), bool, int, float, str})


def jsonable(value: Any) -> Any:
    """A JSON-safe copy of `value` (dates and decimals as ISO / exact strings)."""
    if type(value) in _PLAIN:
        return value
    if isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [jsonable(v) for v in value]
        return sorted(items, key=str) if isinstance(value, set | frozenset) else items
    return str(value)


def record(session: Session, actor: Actor | str | None, action: str, entity: str, entity_id: Any,
           form_slug: str | None = None, detail: Mapping[str, Any] | None = None) -> AuditEvent:
    """Add one audit event to `session` (committed with the caller's transaction)."""
    event = AuditEvent(**event_row(actor, action, entity, entity_id, form_slug, detail))
    session.add(event)
    return event


def event_row(
    actor: Actor | str | None,
    action: str,
    entity: str,
    entity_id: Any,
    form_slug: str | None = None,
    detail: Mapping[str, Any] | None = None,
    *,
    plain: bool = False,
    at: datetime | None = None,
) -> dict[str, Any]:
    """The column values of one audit event (for writers that insert it without the ORM).
    `plain=True`: the detail holds JSON types only (validated record values), so it is not copied.
    `at`: the moment of the audited write, when the writer has it (else now)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    if detail is not None:
        detail = dict(detail) if plain else jsonable(dict(detail))
    return {
        "at": at or utcnow(), "username": actor_name(actor)[:64], "action": action, "entity": entity[:32],
        "entity_id": "" if entity_id is None else str(entity_id)[:64], "form_slug": form_slug, "detail": detail,
    }


def diff(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> dict[str, list[Any]]:
    """`{key: [old, new]}` for every key whose value differs (a missing key counts as None)."""
    before = before or {}
    after = after or {}
    out: dict[str, list[Any]] = {}
    for key in list(before) + [k for k in after if k not in before]:
        old, new = before.get(key), after.get(key)
        if old != new:
            out[key] = [jsonable(old), jsonable(new)]
    return out


def history(session: Session, entity: str, entity_id: Any, limit: int = 200) -> list[AuditEvent]:
    """Audit events about one entity, newest first."""
    stmt = (
        select(AuditEvent)
        .where(AuditEvent.entity == entity, AuditEvent.entity_id == str(entity_id))
        .order_by(col(AuditEvent.id).desc())
        .limit(limit)
    )
    return list(session.exec(stmt).all())
