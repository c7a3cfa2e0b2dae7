"""Reading the audit log (paged and filtered in SQL). The log is append-only: nothing here writes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from engine.db import session_scope
from models.tables import AuditEvent

PAGE_SIZES = (20, 50, 100)


@dataclass(frozen=True)
class AuditQuery:
    action: str | None = None
    username: str | None = None
    form_slug: str | None = None
    entity_id: str | None = None
    date_from: datetime | None = None
    date_to: datetime | None = None  # exclusive
    page: int = 1
    page_size: int = 50


@dataclass(frozen=True)
class AuditPage:
    rows: list[AuditEvent]
    total: int
    page: int
    page_size: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))


def _where(q: AuditQuery) -> list[Any]:
    conds: list[Any] = []
    if q.action:
        conds.append(AuditEvent.action == q.action)
    if q.username:
        conds.append(AuditEvent.username == q.username.strip().lower())
    if q.form_slug:
        conds.append(AuditEvent.form_slug == q.form_slug)
    if q.entity_id:
        conds.append(AuditEvent.entity_id == q.entity_id.strip())
    if q.date_from:
        conds.append(AuditEvent.at >= q.date_from)
    if q.date_to:
        conds.append(AuditEvent.at < q.date_to)
    return conds


def search(engine: Engine, q: AuditQuery) -> AuditPage:
    """One page of audit events, newest first; the count and the page come from SQL."""
    size = q.page_size if q.page_size in PAGE_SIZES else 50
    page = max(1, int(q.page))
    conds = _where(q)
    with session_scope(engine, write=False) as s:
        total = s.exec(select(func.count()).select_from(AuditEvent).where(*conds)).scalar_one()  # type: ignore[call-overload]
        rows = (
            s.exec(  # type: ignore[call-overload]
                select(AuditEvent).where(*conds).order_by(AuditEvent.id.desc()).offset((page - 1) * size).limit(size)  # type: ignore[union-attr]
            )
            .scalars()
            .all()
        )
    return AuditPage(rows=list(rows), total=int(total), page=page, page_size=size)


def actions_in_use(engine: Engine) -> list[str]:
    with session_scope(engine, write=False) as s:
        return sorted(s.exec(select(AuditEvent.action).distinct()).scalars().all())  # type: ignore[call-overload]
