"""Records (submissions): create, edit, delete/restore, workflow steps, reads, bulk import.

Every write is one transaction (`engine.db.session_scope`) holding the change, its audit event
and the "data:<slug>" stamp bump, so a failed write leaves neither record nor audit row.

- A record is validated against the form's current version when created and against its OWN
  version when edited; fields retired since (in the current version) are kept untouched. Later
  fields that already hold a value on the record (an audited backfill) are shown and edited with it,
  validated by their own rules (`edit_spec_for`).
- Edits and workflow steps use optimistic locking (`UPDATE ... WHERE id = :id AND revision = :rev`):
  a stale save is refused with `ConflictError` naming who changed the record and when.
- Audit details never hold sensitive values in clear: they are masked as in lists.
"""

from __future__ import annotations

import dataclasses
import json
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import and_, func, select, text
from sqlalchemy import update as sql_update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from engine import audit, numbering, stamps, workflow
from engine.access import Actor, form_allows
from engine.db import is_postgres, raw_write, session_scope, url_key
from engine.errors import ConflictError, EngineError, NotFound, PermissionDenied, Problem, ValidationFailed
from engine.fields import is_empty, maskers
from engine.forms import (
    FormRef,
    cached_ref,
    choice_lists,
    choice_lists_at,
    form_ref,
    get_spec,
    on_clear_caches,
    shared_choice_lists,
)
from engine.hotpath import FormHead, RawTx, submission_from
from engine.messages import register
from engine.queries import ListQuery, RecordPage, json_field, list_records
from engine.validate import ValidationContext, visible_fields
from engine.validate import validate as run_validation
from models.spec import FieldSpec, FormSpec, ltext
from models.tables import AuditEvent, Form, Submission, utcnow

register({
    "record.not_found": {"zh": "记录 #{id} 不存在。", "en": "Record #{id} does not exist."},
    "record.deleted": {
        "zh": "记录 #{id} 已被删除，不能修改。",
        "en": "Record #{id} has been deleted and cannot be changed.",
    },
    "record.not_deleted": {"zh": "记录 #{id} 没有被删除。", "en": "Record #{id} is not deleted."},
    "record.purged": {
        "zh": "记录 #{id} 已按数据保留期限清除，内容已不存在，不能恢复。",
        "en": "Record #{id} was purged under the retention rules; its content is gone and it cannot be restored.",
    },
    "record.forbidden_submit": {
        "zh": "您的角色不能在表单「{form}」中新增记录。",
        "en": "Your role may not add records to form '{form}'.",
    },
    "record.forbidden_edit": {
        "zh": "您的角色不能修改表单「{form}」的记录。",
        "en": "Your role may not edit records of form '{form}'.",
    },
    "record.forbidden_edit_own": {
        "zh": "您只能修改自己登记的记录；此记录由 {owner} 登记。",
        "en": "You may only edit records you entered; this one was entered by {owner}.",
    },
    "record.forbidden_delete": {"zh": "只有管理员可以删除记录。", "en": "Only administrators may delete records."},
    "record.forbidden_restore": {"zh": "只有管理员可以恢复记录。", "en": "Only administrators may restore records."},
    "record.conflict": {
        "zh": "此记录已于 {at} 被 {by} 修改。为免覆盖对方的修改，您这次的保存没有生效；请重新加载记录后再修改。",
        "en": "This record was changed by {by} at {at}. Your changes were not saved, so as not to overwrite "
              "theirs; please reload the record and make your changes again.",
    },
    "record.conflict_deleted": {
        "zh": "此记录已于 {at} 被 {by} 删除，您这次的保存没有生效。",
        "en": "This record was deleted by {by} at {at}; your changes were not saved.",
    },
    "record.duplicate": {
        "zh": "「{field}」的值已被另一条记录（#{other}）使用，不能重复。",
        "en": "The value of '{field}' is already used by another record (#{other}); it must be unique.",
    },
    "record.restore_duplicate": {
        "zh": "不能恢复：「{field}」的值已被记录 #{other} 使用。",
        "en": "Cannot restore: the value of '{field}' is now used by record #{other}.",
    },
    "record.reference_missing": {
        "zh": "「{field}」所选的记录 #{value} 不存在或已删除。",
        "en": "The record #{value} chosen for '{field}' does not exist or was deleted.",
    },
    "record.parent_required": {
        "zh": "表单「{form}」的记录必须属于一条「{parent}」记录。",
        "en": "A record of form '{form}' must belong to a '{parent}' record.",
    },
    "record.parent_not_found": {
        "zh": "所属的「{parent}」记录 #{id} 不存在或已删除。",
        "en": "The '{parent}' record #{id} does not exist or was deleted.",
    },
    "record.parent_unexpected": {
        "zh": "表单「{form}」的记录不属于其他记录。",
        "en": "Records of form '{form}' do not belong to another record.",
    },
    "import.invalid": {
        "zh": "表单「{form}」的导入数据有 {count} 处问题，没有导入任何记录。",
        "en": "The import into form '{form}' has {count} problem(s); nothing was imported.",
    },
    "import.forbidden": {
        "zh": "您的角色不能向表单「{form}」导入记录。",
        "en": "Your role may not import records into form '{form}'.",
    },
    "import.bad_state": {
        "zh": "流程状态「{state}」不存在。",
        "en": "Workflow state '{state}' does not exist.",
    },
    "import.bad_meta": {
        "zh": "列「{key}」的值「{value}」无效。",
        "en": "The value '{value}' in column '{key}' is not valid.",
    },
    "import.unknown_meta": {"zh": "未知的列「{key}」。", "en": "Unknown column '{key}'."},
    "import.duplicate_in_file": {
        "zh": "「{field}」的值与第 {other} 行重复。",
        "en": "The value of '{field}' repeats row {other}.",
    },
})

UNIQUE_LOCK_CLASS = 7_245_101  # pg_advisory_xact_lock(class, form_id): unique checks of one form
META_KEYS: frozenset[str] = frozenset({"_created_at", "_created_by", "_state", "_parent_id", "_due_at"})
MAX_IMPORT_PROBLEMS = 500
UNIQUE_CHUNK = 5000  # values per "already stored?" query (one table scan each without an index)


@dataclass
class Record:
    """One record with the spec of its own version, ready to show."""

    submission: Submission
    spec: FormSpec  # the version the record was made with
    slug: str
    current_version: int
    edit_spec: FormSpec  # its own version, with fields retired since marked retired (kept, not editable),
    # plus later fields holding a value on this record (e.g. backfilled; shown and editable)
    history: list[AuditEvent]  # newest first

    @property
    def id(self) -> int:
        return int(self.submission.id or 0)

    @property
    def version(self) -> int:
        return self.submission.form_version

    @property
    def data(self) -> dict[str, Any]:
        return self.submission.data

    @property
    def deleted(self) -> bool:
        return self.submission.deleted_at is not None

    @property
    def outdated(self) -> bool:
        """Made with an older version of the form than the current one."""
        return self.submission.form_version < self.current_version


# --- helpers -----------------------------------------------------------------------------------
def _title(spec: FormSpec, actor: Actor) -> str:
    return ltext(spec.title, actor.language) or spec.slug


def _stored_values(data: Mapping[str, Any]) -> set[str]:
    """Every scalar value a record holds (so inactive choices it already uses stay valid)."""
    out: set[str] = set()
    for value in data.values():
        if isinstance(value, list | tuple | set):
            out.update(str(v) for v in value if not isinstance(v, dict | list))
        elif value is not None and not isinstance(value, dict):
            out.add(str(value))
    return out


def _lists(engine: Engine, session: Session | None) -> Mapping[str, Any]:
    return shared_choice_lists(session, engine) if session is not None else choice_lists(engine)


def _context(engine: Engine, actor: Actor, ctx: ValidationContext | None,
             allow_inactive: set[str] | None = None, session: Session | None = None) -> ValidationContext:
    if ctx is None:
        ctx = ValidationContext(lang=actor.language, choice_lists=_lists(engine, session))
    elif not ctx.choice_lists:
        ctx = dataclasses.replace(ctx, choice_lists=_lists(engine, session))
    if allow_inactive:
        ctx = dataclasses.replace(ctx, allow_inactive=set(ctx.allow_inactive or ()) | allow_inactive)
    return ctx


def _validate(spec: FormSpec, raw: Mapping[str, Any], ctx: ValidationContext, title: str) -> dict[str, Any]:
    clean, errors = run_validation(spec, dict(raw), ctx)
    if errors:
        raise ValidationFailed(title, errors)
    return clean


def mask_data(spec: FormSpec, data: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `data` with sensitive fields masked (for audit details and logs)."""
    out = dict(data)
    for key, mask in maskers(spec):
        value = out.get(key)
        if value is not None and value != "":
            out[key] = mask(value if isinstance(value, str) else str(value))
    return out


def edit_spec_for(own: FormSpec, current: FormSpec, data: Mapping[str, Any] | None = None) -> FormSpec:
    """The record's own version, with the fields retired in the current version marked retired,
    plus later fields that already hold a value on this record (e.g. set by an audited backfill)."""
    retired = {f.key for f in current.fields if f.retired}
    own_keys = {f.key for f in own.fields}
    later = [
        f for f in current.fields
        if f.key not in own_keys and not f.retired and data and not is_empty(data.get(f.key))
    ]
    if not later and not any(f.key in retired and not f.retired for f in own.fields):
        return own
    fields = [f.model_copy(update={"retired": True}) if f.key in retired else f for f in own.fields] + later
    return own.model_copy(update={"fields": fields})


def _merge_kept(spec: FormSpec, old: Mapping[str, Any], clean: Mapping[str, Any],
                keep: Iterable[str] = ()) -> dict[str, Any]:
    """New data: the validated values, plus stored values of retired / unknown keys (and of `keep`), untouched."""
    active = {f.key for f in spec.fields if not f.retired}
    keep = set(keep)
    kept = {k: v for k, v in old.items() if k not in active or k in keep}
    return {**kept, **clean}


def _edited_data(engine: Engine, actor: Actor, own: FormSpec, spec: FormSpec, sub: Submission,
                 raw: Mapping[str, Any], title: str) -> dict[str, Any]:
    """The record's new data after an edit, validated against `spec` (`edit_spec_for(own, current, sub.data)`).

    Later fields (not in the record's own version, shown because they hold a value, e.g. from a
    backfill) are validated by their own rules like the record's fields, with two safeguards for a
    value the editor did not touch: a later key missing from `raw` keeps its stored value, and a
    later field that the form hides (show_if) both before and after the edit keeps its stored value
    (the editor never saw it). Retired and unknown keys are kept as they are."""
    own_keys = {f.key for f in own.fields}
    later = [f.key for f in spec.fields if f.key not in own_keys and not f.retired]
    raw = dict(raw)
    for key in later:
        if key not in raw and key in sub.data:
            raw[key] = sub.data[key]
    clean = _validate(spec, raw, _context(engine, actor, None, _stored_values(sub.data)), title)
    unseen: set[str] = set()
    if later:
        seen = {f.key for f in visible_fields(spec, sub.data)} | {f.key for f in visible_fields(spec, raw)}
        unseen = {key for key in later if key not in seen}
    return _merge_kept(spec, sub.data, clean, keep=unseen)


def _fmt_at(at: datetime | None) -> str:
    if at is None:
        return "?"
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _conflict(current: Submission | None, sub_id: int) -> EngineError:
    if current is None:
        return NotFound("record.not_found", id=sub_id)
    if current.deleted_at is not None:
        return ConflictError("record.conflict_deleted", id=sub_id, by=current.deleted_by or "?",
                             at=_fmt_at(current.deleted_at))
    return ConflictError("record.conflict", id=sub_id, by=current.updated_by or "?", at=_fmt_at(current.updated_at),
                         revision=current.revision)


def _lock_form(session: Session, engine: Engine, spec: FormSpec, form_id: int) -> None:
    # Unique checks then insert must not interleave between two writers of one form. SQLite:
    # the write transaction already holds the database lock. PostgreSQL: a transaction lock.
    if spec.unique_fields() and is_postgres(engine):
        session.execute(text("SELECT pg_advisory_xact_lock(:c, :o)"), {"c": UNIQUE_LOCK_CLASS, "o": form_id})


def _unique_problems(session: Session, engine: Engine, spec: FormSpec, form_id: int, data: Mapping[str, Any],
                     exclude_id: int | None, lang: str, code: str = "record.duplicate") -> list[Problem]:
    problems: list[Problem] = []
    dialect = engine.dialect.name
    for f in spec.unique_fields():
        if is_empty(data.get(f.key)):
            continue
        value = data[f.key]
        stmt = select(Submission.id).where(
            Submission.form_id == form_id, col(Submission.deleted_at).is_(None),
            json_field(dialect, f.key) == _json_value(dialect, value),
        )
        if exclude_id is not None:
            stmt = stmt.where(Submission.id != exclude_id)
        other = session.execute(stmt.limit(1)).scalar()
        if other is not None:
            problems.append(Problem(code, {"field": ltext(f.label, lang) or f.key, "other": other},
                                    form=spec.slug, field=f.key))
    return problems


def _json_value(dialect: str, value: Any) -> Any:
    if dialect == "postgresql":
        return ("true" if value else "false") if isinstance(value, bool) else str(value)
    return (1 if value else 0) if isinstance(value, bool) else value


def _ref_fields(spec: FormSpec) -> list[FieldSpec]:
    return spec.reference_fields()


def _ref_ids(value: Any) -> list[int] | None:
    values = value if isinstance(value, list | tuple) else [value]
    out: list[int] = []
    for v in values:
        if isinstance(v, bool):
            return None
        if isinstance(v, int):
            out.append(v)
        elif isinstance(v, str) and v.strip().isdigit():
            out.append(int(v))
        else:
            return None
    return out


def _form_ids(session: Session, slugs: Iterable[str]) -> dict[str, int]:
    wanted = sorted(set(slugs))
    if not wanted:
        return {}
    rows = session.execute(select(Form.slug, Form.id).where(col(Form.slug).in_(wanted))).all()
    return {slug: int(fid) for slug, fid in rows}


def _live_ids(session: Session, form_id: int | None, ids: Iterable[int]) -> set[int]:
    wanted = sorted(set(ids))
    found: set[int] = set()
    if form_id is None:
        return found
    for i in range(0, len(wanted), 500):
        chunk = wanted[i:i + 500]
        found.update(session.execute(select(Submission.id).where(
            Submission.form_id == form_id, col(Submission.deleted_at).is_(None), col(Submission.id).in_(chunk),
        )).scalars().all())
    return found


def _reference_problems(session: Session, spec: FormSpec, data: Mapping[str, Any], lang: str) -> list[Problem]:
    fields = [f for f in _ref_fields(spec) if not is_empty(data.get(f.key))]
    if not fields:
        return []
    form_ids = _form_ids(session, [f.reference_form for f in fields if f.reference_form])
    problems: list[Problem] = []
    for f in fields:
        ids = _ref_ids(data[f.key])
        live = _live_ids(session, form_ids.get(f.reference_form or ""), ids or [])
        missing = [i for i in ids or [data[f.key]] if i not in live]
        if missing:
            problems.append(Problem("record.reference_missing", {"field": ltext(f.label, lang) or f.key,
                                                                 "value": missing[0]}, form=spec.slug, field=f.key))
    return problems


def _check_parent(session: Session, spec: FormSpec, parent_id: int | None, lang: str) -> None:
    if not spec.parent:
        if parent_id is not None:
            raise EngineError("record.parent_unexpected", form=ltext(spec.title, lang) or spec.slug)
        return
    if parent_id is None:
        raise EngineError("record.parent_required", form=ltext(spec.title, lang) or spec.slug, parent=spec.parent)
    pid = _form_ids(session, [spec.parent]).get(spec.parent)
    if int(parent_id) not in _live_ids(session, pid, [int(parent_id)]):
        raise NotFound("record.parent_not_found", parent=spec.parent, id=parent_id)


MIN_ID, MAX_ID = 1, 2**31 - 1  # record ids are INTEGER columns (32-bit on PostgreSQL)


def _load(engine: Engine, sub_id: int) -> tuple[Submission, str, int]:
    """(submission, form slug, form's current version) or NotFound."""
    if not MIN_ID <= int(sub_id) <= MAX_ID:  # e.g. ?id=99999999999999999999: no such record, not a database error
        raise NotFound("record.not_found", id=sub_id)
    with session_scope(engine, write=False) as session:
        row = session.execute(
            select(Submission, Form.slug, Form.current_version).join(Form, Form.id == Submission.form_id)
            .where(Submission.id == int(sub_id))
        ).first()
    if row is None:
        raise NotFound("record.not_found", id=sub_id)
    return row[0], row[1], int(row[2])


def _load_live(engine: Engine, sub_id: int) -> tuple[Submission, str, int]:
    sub, slug, current = _load(engine, sub_id)
    if sub.deleted_at is not None:
        raise NotFound("record.deleted", id=sub_id)
    return sub, slug, current


def _check_edit(actor: Actor, current_spec: FormSpec, sub: Submission) -> None:
    if not form_allows(actor, current_spec, "edit"):
        raise PermissionDenied("record.forbidden_edit", form=_title(current_spec, actor))
    if sub.created_by != actor.username and not actor.can("records.all"):
        raise PermissionDenied("record.forbidden_edit_own", owner=sub.created_by or "?")


def _guarded_update(session: Session, sub: Submission, values: dict[str, Any]) -> Submission:
    """UPDATE ... WHERE id AND revision (and not deleted); a stale revision raises ConflictError."""
    stmt = (
        sql_update(Submission)
        .where(Submission.id == sub.id, Submission.revision == sub.revision, col(Submission.deleted_at).is_(None))
        .values(**values, revision=sub.revision + 1)
    )
    result = session.execute(stmt)
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise _conflict(session.get(Submission, sub.id, populate_existing=True), int(sub.id or 0))
    fresh = session.get(Submission, sub.id, populate_existing=True)
    assert fresh is not None
    return fresh


# --- create ------------------------------------------------------------------------------------
@dataclass
class _Prepared:
    """A record checked against one reading of its form (`head`): the clean values, or the refusal
    to raise once that reading is confirmed inside the write transaction."""

    head: FormHead
    ref: FormRef
    title: str
    clean: dict[str, Any] | None = None
    refusal: EngineError | None = None

    def same_form(self, head: FormHead) -> bool:
        return (self.head.form_id, self.head.version, self.head.archived, self.head.lists_stamp) == (
            head.form_id, head.version, head.archived, head.lists_stamp)


# engine -> {slug: the form as this process last read it}
_HEADS: weakref.WeakKeyDictionary[Engine, dict[str, FormHead]] = weakref.WeakKeyDictionary()


# (database, slug, form reading, role, language) -> (form, title, validation context) of a save that
# passed the gate: the rights and archive checks depend on nothing else (Actor.role, the spec's access)
_GATES: dict[tuple[Any, ...], tuple[FormRef, str, ValidationContext]] = {}
_GATES_SIZE = 256
on_clear_caches(_GATES.clear)


def _prepare(engine: Engine, slug: str, head: FormHead, raw: Mapping[str, Any], actor: Actor,
             ctx: ValidationContext | None) -> _Prepared:
    """Check the actor's rights and validate `raw` against the form as `head` describes it."""
    if ctx is None:
        key = (url_key(engine), slug, head.form_id, head.version, head.archived, head.lists_stamp, actor.role,
               actor.language)
        gate = _GATES.get(key)
        if gate is None:
            gate = _gate(engine, slug, head, actor)
            if gate is None:
                return _prepare_once(engine, slug, head, raw, actor, None)
            if len(_GATES) >= _GATES_SIZE:
                _GATES.clear()
            _GATES[key] = gate
        ref, title, known = gate
        prepared = _Prepared(head, ref, title)
        try:
            prepared.clean = _validate(ref.spec, raw, known, title)
        except EngineError as refusal:
            prepared.refusal = refusal
        return prepared
    return _prepare_once(engine, slug, head, raw, actor, ctx)


def _gate(engine: Engine, slug: str, head: FormHead, actor: Actor) -> tuple[FormRef, str, ValidationContext] | None:
    """The form, title and validation context of a save by `actor` (None: the save is refused)."""
    ref = cached_ref(engine, slug, head.form_id, head.version, head.archived)
    if ref.archived or not form_allows(actor, ref.spec, "submit"):
        return None
    lists = choice_lists_at(engine, head.lists_stamp)
    return ref, _title(ref.spec, actor), ValidationContext(lang=actor.language, choice_lists=lists)


def _prepare_once(engine: Engine, slug: str, head: FormHead, raw: Mapping[str, Any], actor: Actor,
                  ctx: ValidationContext | None) -> _Prepared:
    """`_prepare` without the remembered gate: a caller's own context, or a save to refuse (naming why)."""
    ref = cached_ref(engine, slug, head.form_id, head.version, head.archived)
    prepared = _Prepared(head, ref, _title(ref.spec, actor))
    try:
        if not form_allows(actor, ref.spec, "submit"):
            raise PermissionDenied("record.forbidden_submit", form=prepared.title)
        if ref.archived:
            raise PermissionDenied("form.archived", form=prepared.title)
        if ctx is None or not ctx.choice_lists:
            lists = choice_lists_at(engine, head.lists_stamp)
            ctx = (ValidationContext(lang=actor.language, choice_lists=lists) if ctx is None
                   else dataclasses.replace(ctx, choice_lists=lists))
        prepared.clean = _validate(ref.spec, raw, ctx, prepared.title)
    except EngineError as refusal:
        prepared.refusal = refusal
    return prepared


def _write_checks(core: Any, engine: Engine, spec: FormSpec, form_id: int, clean: Mapping[str, Any],
                  parent_id: int | None, title: str, lang: str) -> None:
    """A new record's checks against other rows, in its write transaction: the parent record, the
    records it links to, and unique values (ValidationFailed / NotFound)."""
    _lock_form(core, engine, spec, form_id)
    _check_parent(core, spec, parent_id, lang)
    problems = _reference_problems(core, spec, clean, lang)
    problems += _unique_problems(core, engine, spec, form_id, clean, None, lang)
    if problems:
        raise ValidationFailed(title, {p.field or str(i): p for i, p in enumerate(problems)})


class _StaleHead(Exception):
    """The form changed since this process last read it: its save starts again (rolled back)."""


def _has_write_checks(spec: FormSpec, parent_id: int | None) -> bool:
    return bool(spec.parent or parent_id is not None or spec.reference_fields() or spec.unique_fields())


def create(engine: Engine, slug: str, raw: Mapping[str, Any], *, actor: Actor, parent_id: int | None = None,
           ctx: ValidationContext | None = None) -> Submission:
    """Validate `raw` against the form's current version and store it (ValidationFailed if invalid).

    Data entry's hot path. The record is validated first, against the form as this process last read
    it; one write transaction then reads the form's current version (with the reference lists' stamp
    and the numbering setting) and, only if that reading differs, validates again before it numbers,
    inserts the record and its audit event and bumps the stamp. So SQLite's write lock is held for
    the database work alone, and the statements go to the driver directly (`engine.hotpath`).

    When the form numbers its records and has no checks against other rows, that reading and the
    next number are one statement, made on the guess that the form is as last read; a wrong guess
    (the form, its lists or its numbering changed) rolls back and the save runs once more."""
    heads = _HEADS.get(engine)
    if heads is None:
        heads = _HEADS.setdefault(engine, {})
    guess = heads.get(slug)
    prepared = _prepare(engine, slug, guess, raw, actor, ctx) if guess is not None else None
    try:
        return _store_new(engine, slug, raw, actor, parent_id, ctx, heads, prepared)
    except _StaleHead:
        return _store_new(engine, slug, raw, actor, parent_id, ctx, heads, prepared, guess=False)


def _store_new(engine: Engine, slug: str, raw: Mapping[str, Any], actor: Actor, parent_id: int | None,
               ctx: ValidationContext | None, heads: dict[str, FormHead], prepared: _Prepared | None,
               guess: bool = True) -> Submission:
    """`create`'s write transaction (`_StaleHead`: the guessed form was not the current one)."""
    with raw_write(engine) as fairy:
        tx = RawTx(engine, fairy)
        now = utcnow()
        setting_key = numbering.PATTERN_PREFIX + slug
        # a save refused on the guess reads the form first (no counter to move for nothing)
        expected = prepared.head if guess and prepared is not None and prepared.refusal is None else None
        numbered, seq = None, None
        if expected is not None and not _has_write_checks(prepared.ref.spec, parent_id):
            numbered = numbering.numbered(expected.number_setting, slug, now)
        if numbered is not None:
            head, seq = tx.head_and_next(slug, setting_key, numbered.scope)
            if head != expected:
                raise _StaleHead
        else:
            head = tx.head(slug, setting_key)
        if head is None:
            raise NotFound("form.not_found", form=slug)
        heads[slug] = head
        if prepared is None or not prepared.same_form(head):
            prepared = _prepare(engine, slug, head, raw, actor, ctx)
        if prepared.refusal is not None:
            raise prepared.refusal
        spec, ref, clean = prepared.ref.spec, prepared.ref, prepared.clean or {}
        values: dict[str, Any] = {
            "form_id": ref.id, "form_version": ref.version, "data": clean, "parent_id": parent_id,
            "created_by": actor.username, "created_at": now, "updated_by": actor.username, "updated_at": now,
            "revision": 1, **workflow.initial_values(spec, now),
        }
        if _has_write_checks(spec, parent_id):
            _write_checks(tx.lazy_core, engine, spec, ref.id, clean, parent_id, prepared.title, actor.language)
        if seq is None:
            numbered = numbering.numbered(head.number_setting, slug, now)
            if numbered is not None:  # in this transaction: a rollback frees no number
                seq = tx.next_value(slug, numbered.scope)
        if numbered is not None and seq is not None:
            values["number"] = numbered.render(seq)
            values["data"] = numbering.with_number(spec, clean, values["number"])
        # Both rows are made before the first write, so that between the writes and the commit (which
        # writes out every page they changed) there is as little else as possible.
        converted: dict[int, Any] = {}  # `now`, converted once for both rows
        sub_row = tx.bind("submissions", values, converted)
        audit_row = tx.bind("audit_events", audit.event_row(actor, "create", "submission", None, form_slug=slug, detail={
            "version": ref.version, "data": mask_data(spec, values["data"]), "parent_id": parent_id,
            "state": values.get("state"), "number": values.get("number"),
        }, plain=True, at=now), converted)
        values["id"] = tx.insert_bound("submissions", sub_row)
        audit_row[tx.column_index("audit_events", "entity_id")] = str(values["id"])
        tx.insert_bound("audit_events", audit_row)
        tx.bump_two(*stamps.expand(stamps.data_scope(slug)))
    return submission_from(values)


# --- update ------------------------------------------------------------------------------------
def update(engine: Engine, sub_id: int, raw: Mapping[str, Any], *, actor: Actor, revision: int) -> Submission:
    """Save an edit, validated against the record's own version plus the later fields it holds a value
    for (`edit_spec_for`, as the record page shows it). Stale `revision` -> ConflictError."""
    sub, slug, current_version = _load_live(engine, sub_id)
    current = get_spec(engine, slug, current_version)
    _check_edit(actor, current, sub)
    if sub.revision != revision:
        raise _conflict(sub, sub_id)
    own = get_spec(engine, slug, sub.form_version)
    spec = edit_spec_for(own, current, sub.data)  # as the record page shows it: with backfilled later fields
    title = _title(spec, actor)
    new_data = _edited_data(engine, actor, own, spec, sub, raw, title)
    if new_data == sub.data:
        return sub
    with session_scope(engine) as session:
        _lock_form(session, engine, spec, sub.form_id)
        problems = _reference_problems(session, spec, new_data, actor.language)
        problems += _unique_problems(session, engine, spec, sub.form_id, new_data, sub.id, actor.language)
        if problems:
            raise ValidationFailed(title, {p.field or str(i): p for i, p in enumerate(problems)})
        fresh = _guarded_update(session, sub, {"data": new_data, "updated_by": actor.username,
                                               "updated_at": utcnow()})
        audit.record(session, actor, "update", "submission", sub.id, form_slug=slug, detail={
            "version": sub.form_version, "revision": fresh.revision,
            "changes": audit.diff(mask_data(spec, sub.data), mask_data(spec, new_data)),
        })
        stamps.bump(session, stamps.data_scope(slug))
    return fresh


# --- delete / restore --------------------------------------------------------------------------
def soft_delete(engine: Engine, sub_id: int, *, actor: Actor, revision: int | None = None) -> Submission:
    """Mark a record deleted (admins only). It stays in the database and can be restored."""
    if not actor.can("records.delete"):
        raise PermissionDenied("record.forbidden_delete")
    sub, slug, _current = _load_live(engine, sub_id)
    if revision is not None and sub.revision != revision:
        raise _conflict(sub, sub_id)
    now = utcnow()
    with session_scope(engine) as session:
        fresh = _guarded_update(session, sub, {"deleted_at": now, "deleted_by": actor.username,
                                               "updated_by": actor.username, "updated_at": now})
        audit.record(session, actor, "delete", "submission", sub.id, form_slug=slug,
                     detail={"revision": fresh.revision})
        stamps.bump(session, stamps.data_scope(slug))
    return fresh


def restore(engine: Engine, sub_id: int, *, actor: Actor) -> Submission:
    """Undo a soft delete (admins only); refused if a unique value was taken meanwhile."""
    if not actor.can("records.restore"):
        raise PermissionDenied("record.forbidden_restore")
    sub, slug, _current = _load(engine, sub_id)
    if sub.deleted_at is None:
        raise EngineError("record.not_deleted", id=sub_id)
    spec = get_spec(engine, slug, sub.form_version)
    now = utcnow()
    with session_scope(engine) as session:
        retained = session.execute(select(AuditEvent.detail).where(  # purged by engine.retention: emptied
            AuditEvent.action == "retention", AuditEvent.entity == "submission",
            AuditEvent.entity_id == str(sub.id))).scalars().all()
        if any(isinstance(d, dict) and d.get("mode") == "purge" for d in retained):
            raise EngineError("record.purged", id=sub_id)
        _lock_form(session, engine, spec, sub.form_id)
        dup = _unique_problems(session, engine, spec, sub.form_id, sub.data, sub.id, actor.language,
                               code="record.restore_duplicate")
        if dup:
            raise ConflictError("record.restore_duplicate", problems=dup, **dup[0].params)
        stmt = (
            sql_update(Submission)
            .where(Submission.id == sub.id, Submission.revision == sub.revision, col(Submission.deleted_at).isnot(None))
            .values(deleted_at=None, deleted_by=None, updated_by=actor.username, updated_at=now,
                    revision=sub.revision + 1)
        )
        if session.execute(stmt).rowcount != 1:  # type: ignore[attr-defined]
            raise _conflict(session.get(Submission, sub.id, populate_existing=True), sub_id)
        fresh = session.get(Submission, sub.id, populate_existing=True)
        assert fresh is not None
        audit.record(session, actor, "restore", "submission", sub.id, form_slug=slug,
                     detail={"revision": fresh.revision, "deleted_by": sub.deleted_by})
        stamps.bump(session, stamps.data_scope(slug))
    return fresh


# --- workflow ----------------------------------------------------------------------------------
def transition(engine: Engine, sub_id: int, key: str, *, actor: Actor, reason: str | None = None,
               values: Mapping[str, Any] | None = None, revision: int | None = None) -> Submission:
    """Take workflow step `key` on a record (roles, from-state, reason and needed field checked)."""
    sub, slug, current_version = _load_live(engine, sub_id)
    current = get_spec(engine, slug, current_version)
    if not form_allows(actor, current, "view"):
        raise PermissionDenied("record.forbidden_view", form=_title(current, actor))
    own = get_spec(engine, slug, sub.form_version)
    t = workflow.check_transition(own, sub, key, actor)
    why = workflow.require_reason(t, reason, actor.language)
    if revision is not None and sub.revision != revision:
        raise _conflict(sub, sub_id)
    spec = edit_spec_for(own, current, sub.data)
    title = _title(spec, actor)
    new_data = dict(sub.data)
    if values:
        new_data = _edited_data(engine, actor, own, spec, sub, {**sub.data, **dict(values)}, title)
    if t.needs_field and is_empty(new_data.get(t.needs_field)):
        f = spec.field(t.needs_field)
        label = (ltext(f.label, actor.language) if f else "") or t.needs_field
        problem = Problem("workflow.field_required", {"field": label, "transition": workflow.transition_label(
            t, actor.language)}, form=slug, field=t.needs_field)
        raise ValidationFailed(title, {t.needs_field: problem})
    step = workflow.apply(own, sub, t, utcnow())
    with session_scope(engine) as session:
        changes: dict[str, list[Any]] = {}
        if new_data != sub.data:
            _lock_form(session, engine, spec, sub.form_id)
            problems = _reference_problems(session, spec, new_data, actor.language)
            problems += _unique_problems(session, engine, spec, sub.form_id, new_data, sub.id, actor.language)
            if problems:
                raise ValidationFailed(title, {p.field or str(i): p for i, p in enumerate(problems)})
            changes = audit.diff(mask_data(spec, sub.data), mask_data(spec, new_data))
        fresh = _guarded_update(session, sub, {**step.as_values(), "data": new_data, "updated_by": actor.username,
                                               "updated_at": step.state_since})
        audit.record(session, actor, "transition", "submission", sub.id, form_slug=slug, detail={
            "transition": t.key, "from": sub.state, "to": step.state, "reason": why, "changes": changes,
            "due_at": step.due_at, "paused": step.paused_at is not None, "revision": fresh.revision,
        })
        stamps.bump(session, stamps.data_scope(slug))
    return fresh


def available_transitions(engine: Engine, sub: Submission, *, actor: Actor) -> list[Any]:
    """Workflow steps this actor may take on the record now (from its own version's workflow)."""
    with session_scope(engine, write=False) as session:
        slug = session.execute(select(Form.slug).where(Form.id == sub.form_id)).scalar_one()
    return workflow.available(get_spec(engine, slug, sub.form_version), sub, actor)


# --- reads -------------------------------------------------------------------------------------
def get_record(engine: Engine, sub_id: int, *, actor: Actor, history_limit: int = 200) -> Record:
    """A record with its own version's spec and its history (view access; deleted: admins only)."""
    sub, slug, current_version = _load(engine, sub_id)
    current = get_spec(engine, slug, current_version)
    if sub.deleted_at is not None and not actor.can("records.restore"):
        raise NotFound("record.not_found", id=sub_id)
    if not form_allows(actor, current, "view"):
        raise PermissionDenied("record.forbidden_view", form=_title(current, actor))
    own = get_spec(engine, slug, sub.form_version)
    with session_scope(engine, write=False) as session:
        history = audit.history(session, "submission", sub.id, limit=history_limit)
    return Record(submission=sub, spec=own, slug=slug, current_version=current_version,
                  edit_spec=edit_spec_for(own, current, sub.data), history=history)


def children(engine: Engine, parent_id: int, slug: str, q: ListQuery | None = None, *, actor: Actor) -> RecordPage:
    """Child records (form `slug`) of one parent record, paged."""
    q = dataclasses.replace(q or ListQuery(), parent_id=int(parent_id))
    return list_records(engine, slug, q, actor=actor)


# --- bulk import / demo data -------------------------------------------------------------------
def _as_utc(value: Any) -> datetime:
    if isinstance(value, datetime):
        dt = value
    else:
        dt = datetime.fromisoformat(str(value))
    return dt.replace(tzinfo=UTC) if dt.utcoffset() is None else dt.astimezone(UTC)


@dataclass
class _BulkState:
    problems: list[Problem]
    unique_seen: dict[str, dict[Any, int]]
    count: int = 0
    first_id: int | None = None
    last_id: int | None = None

    def add(self, problem: Problem) -> None:
        if len(self.problems) < MAX_IMPORT_PROBLEMS:
            self.problems.append(problem)


def _split_meta(row: Mapping[str, Any], n: int, spec: FormSpec, st: _BulkState) -> tuple[dict, dict] | None:
    meta: dict[str, Any] = {}
    data: dict[str, Any] = {}
    ok = True
    for key, value in row.items():
        if isinstance(key, str) and key.startswith("_"):
            if key not in META_KEYS:
                st.add(Problem("import.unknown_meta", {"key": key}, form=spec.slug, row=n))
                ok = False
                continue
            if value is None or value == "":
                continue
            try:
                if key in ("_created_at", "_due_at"):
                    value = _as_utc(value)
                elif key == "_parent_id":
                    value = int(value)
                else:
                    value = str(value)
            except (TypeError, ValueError):
                st.add(Problem("import.bad_meta", {"key": key, "value": str(value)[:40]}, form=spec.slug, row=n))
                ok = False
                continue
            meta[key] = value
        else:
            data[key] = value
    if "_state" in meta and (spec.workflow is None or workflow.state_spec(spec.workflow, meta["_state"]) is None):
        st.add(Problem("import.bad_state", {"state": meta["_state"]}, form=spec.slug, row=n))
        ok = False
    return (meta, data) if ok else None


def _bulk_unique_in_file(spec: FormSpec, clean: Mapping[str, Any], n: int, st: _BulkState, lang: str) -> bool:
    ok = True
    for f in spec.fields:
        if not f.unique or f.retired or is_empty(clean.get(f.key)):
            continue
        seen = st.unique_seen.setdefault(f.key, {})
        value = clean[f.key]
        hashable = value if not isinstance(value, list | dict) else repr(value)
        if hashable in seen:
            st.add(Problem("import.duplicate_in_file", {"field": ltext(f.label, lang) or f.key,
                                                         "other": seen[hashable]}, form=spec.slug, field=f.key, row=n))
            ok = False
        else:
            seen[hashable] = n
    return ok


def _bulk_db_checks(session: Session, engine: Engine, spec: FormSpec, form_id: int,
                    pending: list[tuple[int, dict[str, Any]]], st: _BulkState, lang: str) -> None:
    """Set-based checks of one batch: parents, referenced records, unique values already stored."""
    dialect = engine.dialect.name
    if spec.parent:
        pid = _form_ids(session, [spec.parent]).get(spec.parent)
        live = _live_ids(session, pid, [v["parent_id"] for _n, v in pending if v["parent_id"] is not None])
        for n, v in pending:
            if v["parent_id"] is None:
                st.add(Problem("record.parent_required", {"form": ltext(spec.title, lang) or spec.slug,
                                                          "parent": spec.parent}, form=spec.slug, row=n))
            elif v["parent_id"] not in live:
                st.add(Problem("record.parent_not_found", {"parent": spec.parent, "id": v["parent_id"]},
                               form=spec.slug, row=n))
    else:
        for n, v in pending:
            if v["parent_id"] is not None:
                st.add(Problem("record.parent_unexpected", {"form": ltext(spec.title, lang) or spec.slug},
                               form=spec.slug, row=n))
    ref_fields = _ref_fields(spec)
    if ref_fields:
        form_ids = _form_ids(session, [f.reference_form for f in ref_fields if f.reference_form])
        for f in ref_fields:
            wanted = {n: _ref_ids(v["data"].get(f.key)) for n, v in pending if not is_empty(v["data"].get(f.key))}
            live = _live_ids(session, form_ids.get(f.reference_form or ""),
                             [i for ids in wanted.values() for i in ids or []])
            for n, ids in wanted.items():
                bad = [i for i in ids or [-1] if i not in live]
                if bad:
                    st.add(Problem("record.reference_missing", {"field": ltext(f.label, lang) or f.key,
                                                                "value": bad[0]}, form=spec.slug, field=f.key, row=n))
    for f in spec.fields:
        if not f.unique or f.retired:
            continue
        by_value = {_json_value(dialect, v["data"][f.key]): n for n, v in pending if not is_empty(v["data"].get(f.key))}
        keys = list(by_value)
        for i in range(0, len(keys), UNIQUE_CHUNK):
            chunk = keys[i:i + UNIQUE_CHUNK]
            expr = json_field(dialect, f.key)
            rows = session.execute(select(expr, Submission.id).where(
                Submission.form_id == form_id, col(Submission.deleted_at).is_(None), expr.in_(chunk))).all()
            for value, other in rows:
                n = by_value.get(value, by_value.get(str(value)))
                st.add(Problem("record.duplicate", {"field": ltext(f.label, lang) or f.key, "other": other},
                               form=spec.slug, field=f.key, row=n))


_BULK_COLUMNS: tuple[str, ...] = (
    "form_id", "form_version", "data", "number", "state", "state_since", "due_at", "paused_at", "parent_id",
    "created_by", "created_at", "updated_by", "updated_at", "revision", "deleted_at", "deleted_by",
)


def _bulk_insert(session: Session, values: list[dict[str, Any]], st: _BulkState) -> None:
    """Insert one batch: Core executemany on SQLite, COPY on PostgreSQL (both far faster than the ORM)."""
    if not values:
        return
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        ids = _copy_postgres(conn, values)
    else:
        ids = _executemany_sqlite(conn, values)
    st.first_id = min(ids) if st.first_id is None else min(st.first_id, min(ids))
    st.last_id = max(ids) if st.last_id is None else max(st.last_id, max(ids))
    st.count += len(values)


def _executemany_sqlite(conn: Any, values: list[dict[str, Any]]) -> list[int]:
    """One DB-API executemany with values converted by the columns' own SQLAlchemy bind processors
    (so they are stored exactly as the ORM stores them); equal datetimes are converted once."""
    table = Submission.__table__  # type: ignore[attr-defined]
    procs = [table.c[c].type._cached_bind_processor(conn.dialect) for c in _BULK_COLUMNS]
    memo: dict[tuple[int, Any], Any] = {}

    def convert(i: int, value: Any) -> Any:
        proc = procs[i]
        if proc is None or value is None:
            return value
        if isinstance(value, datetime):
            key = (i, value)
            if key not in memo:
                memo[key] = proc(value)
            return memo[key]
        return proc(value)

    rows = [tuple(convert(i, row[c]) for i, c in enumerate(_BULK_COLUMNS)) for row in values]
    sql = f"INSERT INTO submissions ({', '.join(_BULK_COLUMNS)}) VALUES ({', '.join('?' * len(_BULK_COLUMNS))})"
    before = conn.execute(select(func.max(table.c.id))).scalar() or 0
    conn.exec_driver_sql(sql, rows)  # the write lock (BEGIN IMMEDIATE) keeps the new ids contiguous
    after = conn.execute(select(func.max(table.c.id))).scalar() or 0
    return [before + 1, after]


def _copy_postgres(conn: Any, values: list[dict[str, Any]]) -> list[int]:
    ids = sorted(conn.execute(
        text("SELECT nextval(pg_get_serial_sequence('submissions', 'id')) FROM generate_series(1, :n)"),
        {"n": len(values)},
    ).scalars().all())
    cursor = conn.connection.driver_connection.cursor()
    cols = ", ".join(("id", *_BULK_COLUMNS))
    with cursor.copy(f"COPY submissions ({cols}) FROM STDIN") as copy:
        for sid, row in zip(ids, values, strict=True):
            copy.write_row((sid, *(_json_text(row[c]) if c == "data" else row[c] for c in _BULK_COLUMNS)))
    return ids


def _json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def bulk_create(engine: Engine, slug: str, rows: Iterable[Mapping[str, Any]], *, actor: Actor,
                validate: bool = True, batch: int = 5000, created_at: datetime | None = None,
                ctx: ValidationContext | None = None) -> int:
    """Store many records at once (imports, demo data): all of them, or none.

    Each row is validated (unless `validate=False`); problems carry their 1-based row number and
    any problem raises EngineError "import.invalid" with nothing written. Rows may carry
    `_created_at`, `_created_by`, `_state`, `_parent_id`, `_due_at` overrides (demo data).
    One transaction, Core executemany per batch, one audit event for the whole import.
    """
    ref = form_ref(engine, slug)
    spec = ref.spec
    title = _title(spec, actor)
    if not (actor.can("import") and (form_allows(actor, spec, "submit") or actor.role == "admin")):
        raise PermissionDenied("import.forbidden", form=title)
    vctx = _context(engine, actor, ctx) if validate else None
    batch = max(1, int(batch))
    default_at = _as_utc(created_at) if created_at is not None else utcnow()
    st = _BulkState(problems=[], unique_seen={})
    initial = spec.workflow.initial if spec.workflow else None
    with session_scope(engine) as session:
        _lock_form(session, engine, spec, ref.id)
        pending: list[tuple[int, dict[str, Any]]] = []

        def flush() -> None:
            if not pending:
                return
            _bulk_db_checks(session, engine, spec, ref.id, pending, st, actor.language)
            if not st.problems:
                values = [v for _n, v in pending]
                numbering.number_rows(session, spec, values)  # in this transaction: gap-free
                _bulk_insert(session, values, st)
            pending.clear()

        for n, row in enumerate(rows, start=1):
            split = _split_meta(row, n, spec, st)
            if split is None:
                continue
            meta, data = split
            if validate:
                clean, errors = run_validation(spec, data, vctx)
                if errors:
                    for p in errors.values():
                        st.add(dataclasses.replace(p, row=n, form=p.form or spec.slug))
                    continue
            else:
                clean = data
            if not _bulk_unique_in_file(spec, clean, n, st, actor.language) or st.problems:
                continue  # after the first problem: keep checking rows, stop writing
            at = meta.get("_created_at", default_at)
            who = meta.get("_created_by", actor.username)
            state = meta.get("_state", initial)
            pending.append((n, {
                "form_id": ref.id, "form_version": ref.version, "data": clean, "number": None,
                "state": state, "state_since": at if state is not None else None, "due_at": meta.get("_due_at"),
                "paused_at": None, "parent_id": meta.get("_parent_id"), "created_by": who, "created_at": at,
                "updated_by": who, "updated_at": at, "revision": 1, "deleted_at": None, "deleted_by": None,
            }))
            if len(pending) >= batch:
                flush()
        flush()
        if st.problems:
            raise EngineError("import.invalid", problems=list(st.problems), form=title, count=len(st.problems))
        if st.count:
            audit.record(session, actor, "import", "submission", "", form_slug=slug, detail={
                "count": st.count, "first_id": st.first_id, "last_id": st.last_id, "version": ref.version,
                "validated": bool(validate),
            })
            stamps.bump(session, stamps.data_scope(slug))
    return st.count


def count_live(engine: Engine, slug: str) -> int:
    """Live records of a form (no access check: for admin tools and tests)."""
    ref = form_ref(engine, slug)
    with session_scope(engine, write=False) as session:
        return int(session.execute(select(func.count()).select_from(Submission).where(
            and_(Submission.form_id == ref.id, col(Submission.deleted_at).is_(None)))).scalar_one())


__all__ = [
    "ListQuery", "Record", "RecordPage", "available_transitions", "bulk_create", "children", "count_live", "create",
    "edit_spec_for", "get_record", "list_records", "mask_data", "restore", "soft_delete", "transition", "update",
]
