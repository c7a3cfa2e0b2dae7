"""Database health check (``manage.py check``).

`check_database(engine)` returns a list of coded `Problem`s (empty when all is well):

- the database itself: SQLite ``PRAGMA integrity_check`` (and foreign keys), PostgreSQL a query;
- every form version's spec parses with `engine.spec.parse_spec`; every form's current version exists;
- every live submission is readable with its own version: the version exists, each data key is a
  value-storing field of that version, and each stored value re-coerces without error through the
  field type (inactive choices allowed: they were valid when stored);
- tally events point to live submissions, and to a counter of the event's form;
- the audit log is not empty when there are forms or records.

Submissions are read in keyset batches, so the check runs in constant memory at any size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.engine import Engine

from engine.db import is_postgres
from engine.errors import Problem
from engine.messages import register, render
from models.spec import FieldSpec, FormSpec
from models.tables import AuditEvent, Form, FormVersion, Submission, TallyEvent

BATCH = 2000
MAX_PER_KIND = 200  # stop listing one kind of problem after this many (the count is still reported)

register(
    {
        "check.integrity": {
            "zh": "数据库完整性检查未通过：{detail}",
            "en": "Database integrity check failed: {detail}",
        },
        "check.foreign_key": {
            "zh": "数据表 {table} 第 {rowid} 行引用了不存在的 {parent} 记录",
            "en": "Table {table} row {rowid} points to a missing {parent} row",
        },
        "check.unreachable": {
            "zh": "无法查询数据库：{detail}",
            "en": "The database does not answer: {detail}",
        },
        "check.spec_invalid": {
            "zh": "第 {version} 版表单定义无法解析：{detail}",
            "en": "Version {version} of the form does not parse: {detail}",
        },
        "check.current_missing": {
            "zh": "当前版本为第 {version} 版，但该版本不存在",
            "en": "The current version is {version}, but that version does not exist",
        },
        "check.version_missing": {
            "zh": "记录 #{id} 使用的第 {version} 版表单不存在",
            "en": "Record #{id} uses version {version} of the form, which does not exist",
        },
        "check.data_not_object": {
            "zh": "记录 #{id} 的数据不是键值对象",
            "en": "The data of record #{id} is not an object",
        },
        "check.unknown_key": {
            "zh": "记录 #{id} 含有第 {version} 版表单中没有的字段「{key}」",
            "en": "Record #{id} has a key '{key}' that version {version} of the form does not define",
        },
        "check.bad_value": {
            "zh": "记录 #{id} 的值无法按字段类型读取：{detail}",
            "en": "Record #{id} holds a value its field type cannot read: {detail}",
        },
        "check.tally_orphan": {
            "zh": "{count} 条计数记录指向不存在或已删除的活动记录（如 #{example}）",
            "en": "{count} tally event(s) point to a missing or deleted record (e.g. #{example})",
        },
        "check.tally_counter": {
            "zh": "活动记录 #{id} 有计数项「{counter}」，但该表单没有这个计数器",
            "en": "Record #{id} has tallies for '{counter}', which is not a counter of its form",
        },
        "check.no_audit": {
            "zh": "审计日志为空，但数据库中已有 {forms} 个表单、{records} 条记录",
            "en": "The audit log is empty although there are {forms} form(s) and {records} record(s)",
        },
        "check.audit_missing": {
            "zh": "{records} 条记录中有 {missing} 条在审计日志中没有新增（或导入）记录",
            "en": "{missing} of {records} record(s) have no create (or import) event in the audit log",
        },
        "check.more": {
            "zh": "……同类问题还有 {count} 个未列出",
            "en": "... {count} more problem(s) of this kind not listed",
        },
        "check.ok": {
            "zh": "检查完成：{forms} 个表单、{versions} 个版本、{records} 条记录、{tallies} 条计数，未发现问题。",
            "en": "Check finished: {forms} form(s), {versions} version(s), {records} record(s), {tallies} tally "
            "event(s); no problems found.",
        },
        "check.failed": {
            "zh": "检查完成：发现 {count} 个问题。",
            "en": "Check finished: {count} problem(s) found.",
        },
    }
)


class _AnyValue(frozenset):
    """`allow_inactive` that allows every value: stored values were valid when stored."""

    def __contains__(self, item: object) -> bool:
        return True

    def __bool__(self) -> bool:
        return True


def _context(choice_lists: dict[str, Any]) -> Any:
    try:
        from engine.validate import ValidationContext
    except ImportError:
        return SimpleNamespace(lang="zh", today=None, choice_lists=choice_lists, allow_inactive=_AnyValue())
    return ValidationContext(lang="zh", today=None, choice_lists=choice_lists, allow_inactive=_AnyValue())


class _Collector:
    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.per_kind: dict[str, int] = {}

    def add(self, problem: Problem) -> None:
        n = self.per_kind.get(problem.code, 0) + 1
        self.per_kind[problem.code] = n
        if n <= MAX_PER_KIND:
            self.problems.append(problem)

    def finish(self) -> list[Problem]:
        for code, n in self.per_kind.items():
            if n > MAX_PER_KIND:
                self.problems.append(Problem("check.more", {"count": n - MAX_PER_KIND, "kind": code}))
        return self.problems


# --------------------------------------------------------------------------------------------


def check_database(engine: Engine, progress: Callable[[int, int], None] | None = None) -> list[Problem]:
    """Every problem found (empty list: the database is healthy)."""
    out = _Collector()
    if not _check_engine(engine, out):
        return out.finish()
    specs = _check_specs(engine, out)
    _check_submissions(engine, specs, out, progress)
    _check_tallies(engine, specs, out)
    _check_audit(engine, out)
    return out.finish()


def _check_engine(engine: Engine, out: _Collector) -> bool:
    try:
        with engine.connect() as conn:
            if is_postgres(engine):
                conn.execute(text("SELECT 1")).scalar_one()
                return True
            rows = [r[0] for r in conn.execute(text("PRAGMA integrity_check")).fetchall()]
            if rows != ["ok"]:
                out.add(Problem("check.integrity", {"detail": "; ".join(rows[:5])}))
                return False
            for table, rowid, parent, _fk in conn.execute(text("PRAGMA foreign_key_check")).fetchall():
                out.add(Problem("check.foreign_key", {"table": table, "rowid": rowid, "parent": parent}))
    except Exception as exc:  # the database is broken or gone: report it, do not go on
        out.add(
            Problem(
                "check.unreachable", {"detail": str(exc).splitlines()[0] if str(exc) else type(exc).__name__}
            )
        )
        return False
    return True


def _check_specs(engine: Engine, out: _Collector) -> dict[tuple[int, int], FormSpec]:
    """Parse every stored version; returns {(form_id, version): spec} of those that parse."""
    from engine.errors import SpecError
    from engine.forms import choice_lists
    from engine.spec import parse_spec

    lists = set(choice_lists(engine))
    specs: dict[tuple[int, int], FormSpec] = {}
    with engine.connect() as conn:
        forms = conn.execute(select(Form.id, Form.slug, Form.current_version)).all()
        slugs = {f.slug for f in forms}
        by_id = {f.id: f for f in forms}
        rows = conn.execute(
            select(FormVersion.form_id, FormVersion.version, FormVersion.spec).order_by(
                FormVersion.form_id, FormVersion.version
            )
        )
        for form_id, version, data in rows:
            slug = by_id[form_id].slug if form_id in by_id else f"#{form_id}"
            try:
                specs[(form_id, version)] = parse_spec(dict(data or {}), known_lists=lists, known_forms=slugs)
            except SpecError as exc:
                detail = "; ".join(p.describe("en") for p in exc.problems[:3]) or exc.describe("en")
                out.add(Problem("check.spec_invalid", {"version": version, "detail": detail}, form=slug))
            except Exception as exc:  # anything else that stops a spec from loading
                out.add(Problem("check.spec_invalid", {"version": version, "detail": str(exc)}, form=slug))
        existing = {(fid, v) for fid, v in conn.execute(select(FormVersion.form_id, FormVersion.version))}
    for f in forms:
        if f.current_version and (f.id, f.current_version) not in existing:
            out.add(Problem("check.current_missing", {"version": f.current_version}, form=f.slug))
    return specs


def _submission_batches(engine: Engine) -> Iterator[list[Any]]:
    last = 0
    cols = (Submission.id, Submission.form_id, Submission.form_version, Submission.data)
    while True:
        with engine.connect() as conn:
            rows = conn.execute(
                select(*cols)
                .where(Submission.deleted_at.is_(None), Submission.id > last)
                .order_by(Submission.id)
                .limit(BATCH)
            ).all()
        if not rows:
            return
        yield rows
        last = rows[-1].id


def _check_submissions(
    engine: Engine,
    specs: dict[tuple[int, int], FormSpec],
    out: _Collector,
    progress: Callable[[int, int], None] | None,
) -> None:
    from engine.fields import REGISTRY, FieldProblem
    from engine.forms import choice_lists

    ctx = _context(choice_lists(engine))
    with engine.connect() as conn:
        slugs = dict(conn.execute(select(Form.id, Form.slug)).all())
        versions = {(fid, v) for fid, v in conn.execute(select(FormVersion.form_id, FormVersion.version))}
        total = int(
            conn.execute(
                select(func.count()).select_from(Submission).where(Submission.deleted_at.is_(None))
            ).scalar_one()
        )
    fields: dict[tuple[int, int], dict[str, FieldSpec]] = {
        key: {f.key: f for f in spec.fields if _stores(REGISTRY, f)} for key, spec in specs.items()
    }
    done = 0
    for rows in _submission_batches(engine):
        for sid, form_id, version, data in rows:
            slug = slugs.get(form_id, f"#{form_id}")
            key = (form_id, version)
            if key not in versions:
                out.add(Problem("check.version_missing", {"id": sid, "version": version}, form=slug))
                continue
            known = fields.get(key)
            if known is None:  # the version exists but does not parse: reported with the spec
                continue
            if not isinstance(data, dict):
                out.add(Problem("check.data_not_object", {"id": sid}, form=slug))
                continue
            for k, value in data.items():
                fs = known.get(k)
                if fs is None:
                    out.add(
                        Problem(
                            "check.unknown_key", {"id": sid, "key": k, "version": version}, form=slug, field=k
                        )
                    )
                    continue
                try:
                    REGISTRY[fs.type].coerce(value, fs, ctx)
                except FieldProblem as exc:
                    detail = render(exc.code, "en", **exc.params)
                    out.add(
                        Problem(
                            "check.bad_value",
                            {"id": sid, "detail": detail, "value": _short(value)},
                            form=slug,
                            field=k,
                        )
                    )
                except Exception as exc:  # a type that fails in an unexpected way is still a finding
                    out.add(
                        Problem(
                            "check.bad_value",
                            {"id": sid, "detail": repr(exc), "value": _short(value)},
                            form=slug,
                            field=k,
                        )
                    )
        done += len(rows)
        if progress:
            progress(done, max(done, total))


def _stores(registry: dict[str, Any], f: FieldSpec) -> bool:
    ft = registry.get(f.type)
    return bool(ft and ft.stores_value)


def _short(value: Any) -> str:
    text_ = str(value)
    return text_ if len(text_) <= 60 else text_[:57] + "..."


def _check_tallies(engine: Engine, specs: dict[tuple[int, int], FormSpec], out: _Collector) -> None:
    with engine.connect() as conn:
        orphan = conn.execute(
            select(func.count(), func.min(TallyEvent.id))
            .select_from(TallyEvent)
            .outerjoin(Submission, Submission.id == TallyEvent.submission_id)
            .where((Submission.id.is_(None)) | (Submission.deleted_at.is_not(None)))
        ).one()
        if orphan[0]:
            out.add(Problem("check.tally_orphan", {"count": int(orphan[0]), "example": orphan[1]}))
        pairs = conn.execute(
            select(TallyEvent.submission_id, TallyEvent.counter, Submission.form_id, Submission.form_version)
            .join(Submission, Submission.id == TallyEvent.submission_id)
            .where(Submission.deleted_at.is_(None))
            .group_by(
                TallyEvent.submission_id, TallyEvent.counter, Submission.form_id, Submission.form_version
            )
        ).all()
        slugs = dict(conn.execute(select(Form.id, Form.slug)).all())
    counters_by_form: dict[int, set[str]] = {}
    for (form_id, _v), spec in specs.items():
        counters_by_form.setdefault(form_id, set()).update(f.key for f in spec.fields if f.type == "counter")
    for sid, counter, form_id, _version in pairs:
        if counter not in counters_by_form.get(form_id, set()):
            out.add(Problem("check.tally_counter", {"id": sid, "counter": counter}, form=slugs.get(form_id)))


def _check_audit(engine: Engine, out: _Collector) -> None:
    """The audit log is there, and every record (deleted ones too) has its create or import event."""
    with engine.connect() as conn:
        audits = conn.execute(select(func.count()).select_from(AuditEvent)).scalar_one()
        forms = conn.execute(select(func.count()).select_from(Form)).scalar_one()
        per_form = dict(
            conn.execute(
                select(Form.slug, func.count(Submission.id))
                .join(Submission, Submission.form_id == Form.id)
                .group_by(Form.slug)
            ).all()
        )
        if not audits:
            if forms or per_form:
                out.add(Problem("check.no_audit", {"forms": forms, "records": sum(per_form.values())}))
            return
        creates = dict(
            conn.execute(
                select(AuditEvent.form_slug, func.count())
                .where(AuditEvent.action == "create", AuditEvent.entity == "submission")
                .group_by(AuditEvent.form_slug)
            ).all()
        )
        imported: dict[str, int] = {}
        for slug, detail in conn.execute(
            select(AuditEvent.form_slug, AuditEvent.detail).where(
                AuditEvent.action == "import", AuditEvent.entity == "submission"
            )
        ):
            count = (detail or {}).get("count") if isinstance(detail, dict) else None
            if isinstance(count, int):
                imported[slug] = imported.get(slug, 0) + count
    for slug, records in sorted(per_form.items()):
        audited = creates.get(slug, 0) + imported.get(slug, 0)
        if audited < records:
            out.add(
                Problem("check.audit_missing", {"missing": records - audited, "records": records}, form=slug)
            )


def summary_line(engine: Engine, problems: list[Problem], lang: str = "zh") -> str:
    if problems:
        return render("check.failed", lang, count=len(problems))
    with engine.connect() as conn:
        counts = {
            "forms": conn.execute(select(func.count()).select_from(Form)).scalar_one(),
            "versions": conn.execute(select(func.count()).select_from(FormVersion)).scalar_one(),
            "records": conn.execute(
                select(func.count()).select_from(Submission).where(Submission.deleted_at.is_(None))
            ).scalar_one(),
            "tallies": conn.execute(select(func.count()).select_from(TallyEvent)).scalar_one(),
        }
    return render("check.ok", lang, **counts)
