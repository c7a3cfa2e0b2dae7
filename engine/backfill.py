"""Backfill: an explicit, audited bulk action that gives existing records a value for a (new) field.

Nothing is ever backfilled implicitly: publishing a field leaves old records without it. An office
that wants, say, "调解结果 = 未调解" on every 2025 case runs `backfill` with a filter (the same
`ListQuery` filters as the records list: workflow state, date range, creator, field values, search).

Rules:
- the value is checked by the field's type (and its options / reference list) first; an invalid
  value refuses the whole action, with the type's own coded message;
- only records where the field is *empty* are changed: a stored answer is never overwritten;
- the records keep their own form version; each one's revision is bumped (an editor holding an
  older revision gets the usual conflict message instead of overwriting the value);
- everything happens in one transaction: all chosen records are filled, or none.

Audit: one "backfill" event per record (entity "submission"), so each record's own history says
who set the value, when, and as part of which bulk action; plus one "backfill" event on the form
listing the filter, the value and every record id. Per-record events cost one row per record (the
same as an edit), and without them a record's history page would show a value appearing from
nowhere; the batch event ties them together and records the filter that chose them.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy import update as sql_update
from sqlalchemy.engine import Engine
from sqlmodel import col

from engine import audit, stamps
from engine.access import Actor
from engine.db import session_scope
from engine.errors import EngineError, PermissionDenied, Problem
from engine.fields import REGISTRY, FieldProblem, is_empty, mask_value
from engine.forms import choice_lists, form_ref
from engine.messages import register
from engine.queries import ListQuery, conditions, hidden_keys_for, json_field
from engine.validate import ValidationContext
from models.spec import FieldSpec, ltext
from models.tables import Submission, utcnow

__all__ = ["BATCH", "BackfillResult", "backfill", "backfill_fields", "check_value"]

BATCH = 500  # ids read per query

register({
    "backfill.forbidden": {
        "zh": "只有可以设计表单并查看全部记录的用户（管理员）才能批量回填。",
        "en": "Only users who may design forms and see all records (administrators) may backfill.",
    },
    "backfill.bad_field": {
        "zh": "表单「{form}」当前版本中没有可以回填的字段「{field}」（字段不存在、已停用或不保存数据）。",
        "en": "Form '{form}' has no field '{field}' that can be backfilled in its current version (it does not "
              "exist, is retired, or stores no value).",
    },
    "backfill.unique": {
        "zh": "字段「{field}」的值必须各不相同，不能给多条记录回填同一个值。",
        "en": "The values of field '{field}' must be unique: the same value cannot be backfilled into several records.",
    },
    "backfill.invalid_value": {
        "zh": "回填的值对字段「{field}」无效：{reason}。没有修改任何记录。",
        "en": "The value is not valid for field '{field}': {reason}. No record was changed.",
    },
    "backfill.empty_value": {
        "zh": "请填写要回填的值。", "en": "Enter the value to backfill.",
    },
})


@dataclass
class BackfillResult:
    count: int  # records filled (or, on a dry run, that would be)
    ids: list[int]
    batch: str | None  # the batch id written to the audit events (None on a dry run)


def backfill_fields(spec: Any) -> list[FieldSpec]:
    """Fields of a (current) spec that can be backfilled: active and storing a value, not unique."""
    return [f for f in spec.active_fields if REGISTRY.get(f.type) is not None and REGISTRY[f.type].stores_value
            and not f.unique]


def check_value(engine: Engine, spec: Any, field: FieldSpec, value: Any, lang: str = "zh") -> Any:
    """The clean value (the field type's own check); EngineError naming the type's problem if invalid."""
    label = ltext(field.label, lang) or field.key
    if is_empty(value):
        raise EngineError("backfill.empty_value")
    ctx = ValidationContext(lang=lang, choice_lists=choice_lists(engine))
    try:
        clean = REGISTRY[field.type].coerce(value, field, ctx)
    except FieldProblem as exc:
        problem = Problem(exc.code, dict(exc.params), form=spec.slug, field=field.key)
        raise EngineError("backfill.invalid_value", problems=[problem], field=label,
                          reason=problem.message(lang)) from None
    if is_empty(clean):
        raise EngineError("backfill.empty_value")
    return clean


def _empty_clause(dialect: str, key: str) -> Any:
    """The field holds nothing (missing, null, "", [] or {}); checked again in Python."""
    expr = json_field(dialect, key)
    return or_(expr.is_(None), expr == "", expr == "[]", expr == "{}")


def backfill(engine: Engine, slug: str, field_key: str, value: Any, *, filters: ListQuery | None = None,
             actor: Actor, dry_run: bool = False) -> int:
    """Set `field_key` = `value` on the live records of `slug` chosen by `filters` where the field is
    empty. Returns how many records were (dry run: would be) filled."""
    return run_backfill(engine, slug, field_key, value, filters=filters, actor=actor, dry_run=dry_run).count


def run_backfill(engine: Engine, slug: str, field_key: str, value: Any, *, filters: ListQuery | None = None,
                 actor: Actor, dry_run: bool = False) -> BackfillResult:
    """`backfill` with the ids and the audit batch id."""
    if not (actor.can("forms.design") and actor.can("records.all")):
        raise PermissionDenied("backfill.forbidden")
    ref = form_ref(engine, slug)
    spec = ref.spec
    f = spec.field(field_key)
    if f is None or f.retired or not REGISTRY.get(f.type) or not REGISTRY[f.type].stores_value:
        raise EngineError("backfill.bad_field", form=ltext(spec.title, actor.language) or slug, field=field_key)
    label = ltext(f.label, actor.language) or f.key
    if f.unique:
        raise EngineError("backfill.unique", field=label)
    clean = check_value(engine, spec, f, value, actor.language)
    q = filters or ListQuery()
    dialect = engine.dialect.name
    where = and_(*conditions(dialect, spec, ref.id, ListQuery(
        state=q.state, date_from=q.date_from, date_to=q.date_to, created_by=q.created_by,
        filters=dict(q.filters or {}), search=q.search, parent_id=q.parent_id,
    ), hidden_keys=hidden_keys_for(actor, spec)), _empty_clause(dialect, f.key))
    shown = mask_value(f, str(clean)) if f.sensitive else clean
    batch = None if dry_run else uuid.uuid4().hex[:16]
    ids: list[int] = []
    with session_scope(engine, write=not dry_run) as session:
        last = 0
        while True:
            rows = session.execute(
                select(Submission.id, Submission.data, Submission.revision)
                .where(where, Submission.id > last).order_by(Submission.id).limit(BATCH)
            ).all()
            if not rows:
                break
            last = int(rows[-1][0])
            now = utcnow()
            for sub_id, data, revision in rows:
                data = dict(data or {})
                if not is_empty(data.get(f.key)):
                    continue
                ids.append(int(sub_id))
                if dry_run:
                    continue
                data[f.key] = clean
                done = session.execute(
                    sql_update(Submission)
                    .where(Submission.id == sub_id, Submission.revision == revision,
                           col(Submission.deleted_at).is_(None))
                    .values(data=data, revision=revision + 1, updated_by=actor.username, updated_at=now)
                )
                if done.rowcount != 1:  # type: ignore[attr-defined]
                    ids.pop()  # changed meanwhile (cannot happen inside this write transaction)
                    continue
                audit.record(session, actor, "backfill", "submission", sub_id, form_slug=slug, detail={
                    "batch": batch, "field": f.key, "changes": {f.key: [None, shown]}, "revision": revision + 1,
                })
        if not dry_run and ids:
            audit.record(session, actor, "backfill", "form", slug, form_slug=slug, detail={
                "batch": batch, "field": f.key, "value": shown, "count": len(ids), "ids": ids,
                "filters": {"state": q.state, "date_from": q.date_from, "date_to": q.date_to,
                            "created_by": q.created_by, "filters": dict(q.filters or {}), "search": q.search},
            })
            stamps.bump(session, stamps.data_scope(slug))
    return BackfillResult(len(ids), ids, batch if ids else None)
