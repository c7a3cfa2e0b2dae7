"""Record imports from CSV or XLSX (e.g. last year's Excel sheets), all-or-nothing and undoable.

- Files: CSV in UTF-8 (with or without BOM), else GB18030 (old Excel "CSV" saved on Chinese
  Windows); delimiter `,` `;` or tab; or XLSX (first sheet). Over 20 MB or 50,000 rows: refused
  with a clear message. Cells written by `engine.exporters` (formula-neutralised with a quote) are
  read back exactly (`unescape_cell`), so an export re-imports as the same values.
- Columns map to fields by key or label (zh or en, a trailing "*" or the export's "(retired)"
  suffix ignored) — `map_columns`; the export's meta columns are recognised and ignored, except the
  workflow state (by key or label), which is kept. Counter and retired columns are ignored (and
  said so).
- `dry_run` reads every row through the field types' `parse_cell` and `engine.validate.validate`,
  plus the checks against the database (unique values, linked records): every problem names its
  file row (the header is row 1) and field, in the user's language. Nothing is written.
- `commit` runs the same checks and then stores every row with `engine.storage.bulk_create` (one
  transaction, one audit event); a single problem and nothing is stored. The audit event of the
  import identifies the batch; `undo_import(engine, audit_id, actor=...)` soft-deletes exactly the
  records of that batch in one audited transaction.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Engine

from engine import audit, stamps
from engine.access import Actor, form_allows
from engine.db import session_scope
from engine.errors import EngineError, NotFound, PermissionDenied, Problem
from engine.messages import register
from models.spec import FieldSpec, FormSpec, LText, ltext
from models.tables import AuditEvent, Submission, utcnow

register(
    {
        "import.too_large": {
            "zh": "文件太大（{size} MB）：一次最多导入 {max} MB。请把文件拆分后分批导入。",
            "en": "The file is too large ({size} MB): at most {max} MB can be imported at once. Split it "
                  "and import the parts one by one.",
        },
        "import.too_many_rows": {
            "zh": "文件超过 {max} 行：一次最多导入 {max} 行记录。请把文件拆分后分批导入。",
            "en": "The file has more than {max} rows: at most {max} records can be imported at once. Split "
                  "it and import the parts one by one.",
        },
        "import.empty": {"zh": "文件中没有可导入的记录。", "en": "The file holds no record to import."},
        "import.no_header": {"zh": "文件第一行应为列标题，但它是空的。",
                             "en": "The first row of the file must hold the column headers; it is empty."},
        "import.bad_encoding": {
            "zh": "无法识别文件的文字编码：请在 Excel 中另存为“CSV UTF-8”或 .xlsx 文件后再导入。",
            "en": "The file's text encoding is not recognised: save it from Excel as 'CSV UTF-8' or as .xlsx "
                  "and import that.",
        },
        "import.xls_unsupported": {
            "zh": "不支持旧版 Excel（.xls）文件：请在 Excel 中另存为 .xlsx 或 CSV 后再导入。",
            "en": "Old Excel (.xls) files are not supported: save the sheet as .xlsx or CSV and import that.",
        },
        "import.bad_xlsx": {"zh": "无法读取 Excel 文件：{detail}", "en": "The Excel file cannot be read: {detail}"},
        "import.no_columns": {
            "zh": "没有一列能对应到表单「{form}」的字段。请检查列标题（可用字段名称或字段键）。",
            "en": "No column matches a field of form '{form}'. Check the headers (field labels or keys).",
        },
        "import.bad_mapping": {
            "zh": "列「{column}」不能对应到「{target}」：表单中没有这个字段。",
            "en": "Column '{column}' cannot be mapped to '{target}': the form has no such field.",
        },
        "import.batch_not_found": {"zh": "找不到导入批次 #{id}。", "en": "Import batch #{id} was not found."},
        "import.batch_undone": {"zh": "导入批次 #{id} 已经撤销过了。", "en": "Import batch #{id} was already undone."},
        "import.batch_unclear": {
            "zh": "无法确定导入批次 #{id} 的记录（应有 {count} 条，找到 {found} 条），未作任何更改。",
            "en": "The records of import batch #{id} cannot be identified ({count} expected, {found} found); "
                  "nothing was changed.",
        },
        "import.undo_forbidden": {
            "zh": "只有导入人或管理员可以撤销这次导入。",
            "en": "Only the person who imported, or an administrator, may undo this import.",
        },
    }
)

MAX_BYTES = 20 * 1024 * 1024  # = server.maxUploadSize in .streamlit/config.toml
MAX_ROWS = 50_000
MAX_PROBLEMS = 500
STATE_KEY = "_state"
XLSX_MAGIC = b"PK\x03\x04"
XLS_MAGIC = b"\xd0\xcf\x11\xe0"
RETIRED_SUFFIXES = ("（已停用）", "(retired)")
META_IGNORED = ("id", "number", "created_by", "created_at", "form_version")

FileLike = str | Path | bytes | BinaryIO | Any


# --------------------------------------------------------------------------------------------------
# reading files
# --------------------------------------------------------------------------------------------------
@dataclass
class Table:
    headers: list[str]
    fmt: str  # "csv" | "xlsx"
    encoding: str
    _rows: Any  # callable -> iterator of (file row number, [cell texts])

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        return self._rows()


def _read_bytes(file: FileLike) -> tuple[bytes, str]:
    """(content, file name) of a path, bytes, or a binary file object (e.g. Streamlit's UploadedFile)."""
    if isinstance(file, str | Path):
        size = os.path.getsize(file)
        _check_size(size)
        return Path(file).read_bytes(), str(file)
    if isinstance(file, bytes | bytearray | memoryview):
        data = bytes(file)
        _check_size(len(data))
        return data, ""
    name = str(getattr(file, "name", "") or "")
    size = getattr(file, "size", None)
    if isinstance(size, int):
        _check_size(size)
    if hasattr(file, "seek"):
        file.seek(0)
    data = file.read(MAX_BYTES + 1)
    _check_size(len(data))
    return bytes(data), name


def _check_size(size: int) -> None:
    if size > MAX_BYTES:
        raise EngineError("import.too_large", size=f"{size / 1024 / 1024:.1f}", max=MAX_BYTES // (1024 * 1024))


def _cell_text(value: Any) -> str:
    from engine.exporters import unescape_cell

    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        if value.time() == time(0, 0) and value.tzinfo is None:
            return value.date().isoformat()
        return value.isoformat(timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, time):
        return value.strftime("%H:%M")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return format(Decimal(repr(value)), "f")
    if isinstance(value, Decimal):
        return format(value, "f")
    return unescape_cell(str(value))


def _blank(cells: list[str]) -> bool:
    return all(not c.strip() for c in cells)


def _decode(data: bytes) -> tuple[str, str]:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding), encoding
        except UnicodeDecodeError:
            continue
    raise EngineError("import.bad_encoding")


def _csv_table(data: bytes) -> Table:
    text, encoding = _decode(data)
    sample = text[:65536]
    try:  # only the delimiter is guessed: a cell starting with ' must not make ' the quote character
        delimiter = csv.Sniffer().sniff(sample, delimiters=",;\t").delimiter
    except csv.Error:
        delimiter = ","
    dialect: Any = type("_Dialect", (csv.excel,), {"delimiter": delimiter})
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    first = next(reader, None)
    if first is None or _blank(first):
        raise EngineError("import.no_header")
    headers = [_cell_text(h).strip() for h in first]

    def rows() -> Iterator[tuple[int, list[str]]]:
        inner = csv.reader(io.StringIO(text, newline=""), dialect)
        next(inner, None)
        for line in inner:
            yield inner.line_num, [_cell_text(c) for c in line]

    return Table(headers, "csv", encoding, rows)


def _xlsx_table(data: bytes) -> Table:
    from openpyxl import load_workbook

    def open_sheet() -> Any:
        try:
            wb = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        except Exception as exc:
            raise EngineError("import.bad_xlsx", detail=str(exc)[:200]) from exc
        return wb, wb.active

    wb, ws = open_sheet()
    try:
        first = next(ws.iter_rows(min_row=1, max_row=1, values_only=True), None)
    finally:
        wb.close()
    if first is None or _blank([_cell_text(c) for c in first]):
        raise EngineError("import.no_header")
    headers = [_cell_text(h).strip() for h in first]

    def rows() -> Iterator[tuple[int, list[str]]]:
        book, sheet = open_sheet()
        try:
            for n, values in enumerate(sheet.iter_rows(min_row=2, values_only=True), start=2):
                yield n, [_cell_text(v) for v in values]
        finally:
            book.close()

    return Table(headers, "xlsx", "xlsx", rows)


def read_table(file: FileLike) -> Table:
    """The headers and rows of a CSV or XLSX file (size checked; rows read lazily)."""
    data, name = _read_bytes(file)
    if data.startswith(XLS_MAGIC) or name.lower().endswith(".xls"):
        raise EngineError("import.xls_unsupported")
    if data.startswith(XLSX_MAGIC):
        return _xlsx_table(data)
    return _csv_table(data)


# --------------------------------------------------------------------------------------------------
# mapping columns to fields
# --------------------------------------------------------------------------------------------------
def _norm(text: str) -> str:
    t = unicodedata.normalize("NFKC", str(text or "")).strip()
    for suffix in RETIRED_SUFFIXES:
        suffix = unicodedata.normalize("NFKC", suffix)
        if t.endswith(suffix):
            t = t[: -len(suffix)].strip()
    return t.rstrip("*").strip().casefold()


@dataclass(frozen=True)
class ColumnMatch:
    index: int
    header: str
    target: str | None  # field key, "_state", or None (not imported)
    status: str  # "field" | "state" | "meta" | "counter" | "retired" | "display" | "unknown" | "skipped"


@dataclass
class ColumnMapping:
    columns: list[ColumnMatch]

    @property
    def mapping(self) -> dict[int, str]:
        """column index -> target (field key or "_state") of the columns that are imported."""
        return {c.index: c.target for c in self.columns if c.target}

    @property
    def unknown(self) -> list[str]:
        return [c.header for c in self.columns if c.status == "unknown"]

    @property
    def ignored(self) -> list[ColumnMatch]:
        return [c for c in self.columns if not c.target and c.status not in ("unknown",)]


def _targets(spec: FormSpec) -> dict[str, tuple[str, str]]:
    """normalised name -> (target, status) for every way a column may name something of the form."""
    from engine.exporters import META_LABELS

    names: dict[str, tuple[str, str]] = {}

    def add(name: str, target: str, status: str) -> None:
        key = _norm(name)
        if key and key not in names:
            names[key] = (target, status)

    ordered = sorted(spec.fields, key=lambda f: f.retired)  # active fields win over retired ones
    for f in ordered:
        status = _field_status(f)
        for name in (f.key, *f.label.values()):
            add(name, f.key, status)
    if spec.workflow is not None:
        for name in ("state", "_state", *META_LABELS["state"].values()):
            add(name, STATE_KEY, "state")
    for meta in META_IGNORED + (() if spec.workflow is not None else ("state",)):
        for name in (meta, *META_LABELS[meta].values()):
            add(name, "", "meta")
    return names


def _field_status(f: FieldSpec) -> str:
    if f.retired:
        return "retired"
    if f.type == "counter":
        return "counter"
    if f.type == "note":
        return "display"
    return "field"


def map_columns(spec: FormSpec, headers: list[str], mapping: dict[Any, str | None] | None = None) -> ColumnMapping:
    """Match each header to a field (by key, zh or en label), the workflow state, or nothing.

    `mapping` overrides the guess per column (by index or by header text): a field key, "_state", or
    None / "" to skip the column.
    """
    names = _targets(spec)
    chosen: dict[int, str | None] = {}
    for key, target in (mapping or {}).items():
        if isinstance(key, int):
            chosen[key] = target
        else:
            for i, h in enumerate(headers):
                if h == key or _norm(h) == _norm(str(key)):
                    chosen[i] = target
    out: list[ColumnMatch] = []
    used: set[str] = set()
    for i, header in enumerate(headers):
        if i in chosen:
            target = chosen[i] or None
            if target is None:
                out.append(ColumnMatch(i, header, None, "skipped"))
                continue
            if target == STATE_KEY and spec.workflow is not None:
                out.append(ColumnMatch(i, header, STATE_KEY, "state"))
                used.add(target)
                continue
            f = spec.field(target)
            if f is None or _field_status(f) != "field":
                raise EngineError("import.bad_mapping", column=header, target=target)
            out.append(ColumnMatch(i, header, target, "field"))
            used.add(target)
            continue
        if not header.strip():
            out.append(ColumnMatch(i, header, None, "skipped"))
            continue
        target, status = names.get(_norm(header), (None, "unknown"))
        if status in ("field", "state") and target not in used:
            out.append(ColumnMatch(i, header, target, status))
            used.add(target or "")
        else:
            out.append(ColumnMatch(i, header, None, "skipped" if status in ("field", "state") else status))
    return ColumnMapping(out)


# --------------------------------------------------------------------------------------------------
# the report of a dry run
# --------------------------------------------------------------------------------------------------
@dataclass
class ImportReport:
    slug: str
    title: LText
    columns: ColumnMapping
    fmt: str
    encoding: str
    rows_total: int = 0
    rows_ok: int = 0
    problems: list[Problem] = field(default_factory=list)
    problems_total: int = 0  # all problems found (the list keeps the first MAX_PROBLEMS)
    spec: FormSpec | None = None

    @property
    def ok(self) -> bool:
        return self.rows_total > 0 and self.problems_total == 0

    @property
    def rows_refused(self) -> int:
        return self.rows_total - self.rows_ok

    def field_label(self, key: str | None, lang: str = "zh") -> str:
        if not key:
            return ""
        if key == STATE_KEY:
            return "状态" if lang == "zh" else "State"
        f = self.spec.field(key) if self.spec else None
        return (ltext(f.label, lang) or key) if f else key

    def messages(self, lang: str = "zh") -> list[dict[str, Any]]:
        """[{row, field, message}] in `lang`, in file order."""
        order = {c.target: c.index for c in self.columns.columns if c.target}
        ordered = sorted(self.problems, key=lambda p: (p.row or 0, order.get(p.field, len(order)), p.field or ""))
        return [{"row": p.row, "field": self.field_label(p.field, lang), "message": p.message(lang)}
                for p in ordered]


@dataclass
class ImportResult:
    slug: str
    count: int
    audit_id: int | None
    ids: list[int]
    report: ImportReport


class ImportRefused(EngineError):
    """An import with problems: nothing was stored. `report` holds every per-row problem."""

    def __init__(self, report: ImportReport, lang: str = "zh") -> None:
        self.report = report
        super().__init__("import.invalid", problems=list(report.problems),
                         form=ltext(report.title, lang) or report.slug, count=report.problems_total)


# --------------------------------------------------------------------------------------------------
# reading rows into raw records
# --------------------------------------------------------------------------------------------------
def _check_allowed(actor: Actor, spec: FormSpec) -> None:
    if not (actor.can("import") and (form_allows(actor, spec, "submit") or actor.role == "admin")):
        raise PermissionDenied("import.forbidden", form=ltext(spec.title, actor.language) or spec.slug)


def _state_key(spec: FormSpec, text: str) -> str | None:
    if spec.workflow is None:
        return None
    wanted = _norm(text)
    for st in spec.workflow.states:
        if _norm(st.key) == wanted or any(_norm(v) == wanted for v in st.label.values()):
            return st.key
    return None


def _raw_rows(spec: FormSpec, table: Table, columns: ColumnMapping, ctx: Any,
              problems: list[Problem]) -> Iterator[tuple[int, dict[str, Any], set[str]]]:
    """(file row, raw values, keys whose cell did not parse) for every non-blank row (at most MAX_ROWS)."""
    from engine.fields import REGISTRY, FieldProblem

    mapping = columns.mapping
    fields = {i: spec.field(t) for i, t in mapping.items() if t != STATE_KEY}
    count = 0
    for n, cells in table.rows():
        if _blank(cells):
            continue
        count += 1
        if count > MAX_ROWS:
            raise EngineError("import.too_many_rows", max=MAX_ROWS)
        raw: dict[str, Any] = {}
        bad: set[str] = set()
        for i, target in mapping.items():
            text = cells[i] if i < len(cells) else ""
            if target == STATE_KEY:
                if text.strip():
                    state = _state_key(spec, text)
                    if state is None:
                        problems.append(Problem("import.bad_state", {"state": text.strip()[:40]}, form=spec.slug,
                                                field=STATE_KEY, row=n))
                        bad.add(STATE_KEY)
                    else:
                        raw[STATE_KEY] = state
                continue
            f = fields[i]
            ft = REGISTRY.get(f.type) if f is not None else None
            if f is None or ft is None:
                continue
            try:
                value = ft.parse_cell(text, f, ctx)
            except FieldProblem as exc:
                problems.append(Problem(exc.code, dict(exc.params), form=spec.slug, field=f.key, row=n))
                bad.add(f.key)
                continue
            if value is not None:
                raw[f.key] = value
        yield n, raw, bad


def _context(engine: Engine, actor: Actor, lang: str) -> Any:
    from engine.forms import choice_lists
    from engine.validate import ValidationContext

    return ValidationContext(lang=lang, choice_lists=choice_lists(engine))


def _db_checks(engine: Engine, spec: FormSpec, form_id: int, pending: list[tuple[int, dict[str, Any]]],
               problems: list[Problem], lang: str) -> None:
    """Unique values already stored, and linked records that do not exist (problems per row)."""
    from engine.queries import json_field

    dialect = engine.dialect.name
    with engine.connect() as conn:
        for f in spec.active_fields:
            if f.unique:
                values = {}
                for n, clean in pending:
                    v = clean.get(f.key)
                    if v is not None:
                        values[str(v) if dialect == "postgresql" else v] = n
                keys = list(values)
                for i in range(0, len(keys), 500):
                    expr = json_field(dialect, f.key)
                    rows = conn.execute(select(expr, Submission.id).where(
                        Submission.form_id == form_id, Submission.deleted_at.is_(None), expr.in_(keys[i:i + 500])))
                    for value, other in rows:
                        n = values.get(value, values.get(str(value)))
                        problems.append(Problem("record.duplicate", {"field": ltext(f.label, lang) or f.key,
                                                                     "other": other}, form=spec.slug, field=f.key,
                                                row=n))
            if f.type == "reference" and f.reference_form and not f.choice_list:
                wanted = {n: clean[f.key] for n, clean in pending if isinstance(clean.get(f.key), int)}
                if not wanted:
                    continue
                from engine.forms import form_ref

                try:
                    target_id = form_ref(engine, f.reference_form).id
                except NotFound:
                    target_id = -1
                ids = sorted(set(wanted.values()))
                live: set[int] = set()
                for i in range(0, len(ids), 500):
                    live |= {int(x) for (x,) in conn.execute(select(Submission.id).where(
                        Submission.form_id == target_id, Submission.deleted_at.is_(None),
                        Submission.id.in_(ids[i:i + 500])))}
                for n, value in wanted.items():
                    if value not in live:
                        problems.append(Problem("record.reference_missing", {"field": ltext(f.label, lang) or f.key,
                                                                             "value": value}, form=spec.slug,
                                                field=f.key, row=n))


def count_rows(table: Table) -> int:
    """Non-blank data rows of a table; EngineError "import.too_many_rows" past MAX_ROWS."""
    n = 0
    for _line, cells in table.rows():
        if not _blank(cells):
            n += 1
            if n > MAX_ROWS:
                raise EngineError("import.too_many_rows", max=MAX_ROWS)
    return n


def dry_run(engine: Engine, slug: str, file: FileLike, mapping: dict[Any, str | None] | None = None, *,
            actor: Actor, lang: str = "zh") -> ImportReport:
    """Check a file as an import into `slug` would, writing nothing: per-row, per-field problems."""
    from engine.forms import form_ref
    from engine.validate import validate

    ref = form_ref(engine, slug)
    spec = ref.spec
    _check_allowed(actor, spec)
    table = read_table(file)
    columns = map_columns(spec, table.headers, mapping)
    if not columns.mapping:
        raise EngineError("import.no_columns", form=ltext(spec.title, lang) or slug)
    report = ImportReport(slug, spec.title, columns, table.fmt, table.encoding, spec=spec)
    count_rows(table)  # refuse an over-long file before checking any row
    ctx = _context(engine, actor, lang)
    problems: list[Problem] = []
    unique_seen: dict[str, dict[Any, int]] = {}
    pending: list[tuple[int, dict[str, Any]]] = []
    for n, raw, bad in _raw_rows(spec, table, columns, ctx, problems):
        report.rows_total += 1
        data = {k: v for k, v in raw.items() if k != STATE_KEY}
        clean, errors = validate(spec, data, ctx)
        for key, p in errors.items():
            if key not in bad:  # a cell that did not parse is reported once
                problems.append(dataclasses.replace(p, row=n, form=p.form or slug))
        ok = not bad and not errors
        for f in spec.active_fields:  # unique within the file
            if ok and f.unique and clean.get(f.key) is not None:
                seen = unique_seen.setdefault(f.key, {})
                value = repr(clean[f.key])
                if value in seen:
                    problems.append(Problem("import.duplicate_in_file", {"field": ltext(f.label, lang) or f.key,
                                                                         "other": seen[value]}, form=slug,
                                            field=f.key, row=n))
                    ok = False
                else:
                    seen[value] = n
        if ok:
            pending.append((n, clean))
            if len(pending) >= 5000:
                _db_checks(engine, spec, ref.id, pending, problems, lang)
                pending = []
    if pending:
        _db_checks(engine, spec, ref.id, pending, problems, lang)
    report.rows_ok = max(0, report.rows_total - len({p.row for p in problems if p.row is not None}))
    report.problems_total = len(problems)
    report.problems = problems[:MAX_PROBLEMS]
    return report


# --------------------------------------------------------------------------------------------------
# commit and undo
# --------------------------------------------------------------------------------------------------
def commit(engine: Engine, slug: str, file: FileLike, mapping: dict[Any, str | None] | None = None, *,
           actor: Actor, lang: str = "zh") -> ImportResult:
    """Store every row of the file, or none (ImportRefused with the per-row problems)."""
    from engine.forms import form_ref
    from engine.storage import bulk_create

    report = dry_run(engine, slug, file, mapping, actor=actor, lang=lang)
    if report.rows_total == 0:
        raise EngineError("import.empty")
    if report.problems_total:
        raise ImportRefused(report, lang)
    spec = form_ref(engine, slug).spec
    table = read_table(file)
    ctx = _context(engine, actor, lang)
    file_rows: list[int] = []
    ignored: list[Problem] = []

    def rows() -> Iterator[dict[str, Any]]:
        for n, raw, _bad in _raw_rows(spec, table, report.columns, ctx, ignored):
            file_rows.append(n)
            yield raw

    batch_at = utcnow()
    with session_scope(engine, write=False) as s:
        before = int(s.execute(select(func.coalesce(func.max(AuditEvent.id), 0))).scalar_one())
    try:
        count = bulk_create(engine, slug, rows(), actor=actor, created_at=batch_at)
    except EngineError as exc:
        if exc.code != "import.invalid":
            raise
        fixed = [dataclasses.replace(p, row=file_rows[p.row - 1] if p.row and p.row <= len(file_rows) else p.row)
                 for p in exc.problems]
        report.problems, report.problems_total = fixed[:MAX_PROBLEMS], len(fixed)
        report.rows_ok = max(0, report.rows_total - len({p.row for p in fixed if p.row is not None}))
        raise ImportRefused(report, lang) from exc
    event = _find_batch_event(engine, slug, actor, before, count)
    ids = batch_ids(engine, event) if event is not None else []
    return ImportResult(slug, count, event.id if event is not None else None, ids, report)


def _find_batch_event(engine: Engine, slug: str, actor: Actor, after_id: int, count: int) -> AuditEvent | None:
    with session_scope(engine, write=False) as s:
        events = s.execute(select(AuditEvent).where(
            AuditEvent.id > after_id, AuditEvent.action == "import", AuditEvent.form_slug == slug,
            AuditEvent.username == actor.username).order_by(AuditEvent.id.desc())).scalars().all()
    return next((e for e in events if (e.detail or {}).get("count") == count), None)


def batch_ids(engine: Engine, event: AuditEvent) -> list[int]:
    """The record ids of one import batch (its audit event): the ids listed in the event, else the
    records of the event's id range that share the first record's form, creator and creation time
    (one import stamps all its records with the same time)."""
    detail = event.detail or {}
    if isinstance(detail.get("ids"), list):
        return [int(i) for i in detail["ids"]]
    first, last, count = detail.get("first_id"), detail.get("last_id"), int(detail.get("count") or 0)
    if not first or not last:
        return []
    with session_scope(engine, write=False) as s:
        anchor = s.execute(select(Submission.form_id, Submission.created_at, Submission.created_by)
                           .where(Submission.id == int(first))).first()
        if anchor is None:
            return []
        ids = [int(i) for (i,) in s.execute(select(Submission.id).where(
            Submission.form_id == anchor[0], Submission.id >= int(first), Submission.id <= int(last),
            Submission.created_at == anchor[1], Submission.created_by == anchor[2]).order_by(Submission.id))]
    if len(ids) != count:
        raise EngineError("import.batch_unclear", id=event.id, count=count, found=len(ids))
    return ids


@dataclass(frozen=True)
class ImportBatch:
    audit_id: int
    slug: str
    username: str
    at: datetime
    count: int
    undone: bool


def _undone(session: Any, audit_id: int) -> bool:
    return session.execute(select(AuditEvent.id).where(
        AuditEvent.action == "delete", AuditEvent.entity == "import", AuditEvent.entity_id == str(audit_id)
    ).limit(1)).first() is not None


def recent_imports(engine: Engine, slug: str, *, actor: Actor, limit: int = 10) -> list[ImportBatch]:
    """The latest import batches into `slug` (the actor's own; all of them for administrators)."""
    stmt = select(AuditEvent).where(AuditEvent.action == "import", AuditEvent.form_slug == slug)
    if not actor.can("records.delete"):
        stmt = stmt.where(AuditEvent.username == actor.username)
    with session_scope(engine, write=False) as s:
        events = s.execute(stmt.order_by(AuditEvent.id.desc()).limit(limit)).scalars().all()
        return [ImportBatch(int(e.id or 0), slug, e.username, e.at, int((e.detail or {}).get("count") or 0),
                            _undone(s, int(e.id or 0))) for e in events]


def undo_import(engine: Engine, batch_audit_id: int, actor: Actor) -> int:
    """Soft-delete exactly the records of one import batch (one audited transaction); returns how many."""
    with session_scope(engine, write=False) as s:
        event = s.get(AuditEvent, int(batch_audit_id))
        if event is None or event.action != "import":
            raise NotFound("import.batch_not_found", id=batch_audit_id)
        if _undone(s, event.id):
            raise EngineError("import.batch_undone", id=batch_audit_id)
    if not actor.can("import") or (event.username != actor.username and not actor.can("records.delete")):
        raise PermissionDenied("import.undo_forbidden")
    ids = batch_ids(engine, event)
    slug = event.form_slug or ""
    now = utcnow()
    deleted = 0
    with session_scope(engine) as s:
        if _undone(s, event.id):
            raise EngineError("import.batch_undone", id=batch_audit_id)
        for i in range(0, len(ids), 1000):
            chunk = ids[i:i + 1000]
            live = [int(x) for (x,) in s.execute(select(Submission.id).where(
                Submission.id.in_(chunk), Submission.deleted_at.is_(None)))]
            if not live:
                continue
            s.execute(update(Submission).where(Submission.id.in_(live), Submission.deleted_at.is_(None)).values(
                deleted_at=now, deleted_by=actor.username, updated_by=actor.username, updated_at=now,
                revision=Submission.revision + 1))
            s.execute(insert(AuditEvent), [
                {"at": now, "username": actor.username[:64], "action": "delete", "entity": "submission",
                 "entity_id": str(sid), "form_slug": slug, "detail": {"undo_import": int(batch_audit_id)}}
                for sid in live])
            deleted += len(live)
        audit.record(s, actor, "delete", "import", batch_audit_id, form_slug=slug,
                     detail={"undo_import": int(batch_audit_id), "count": deleted, "ids": ids})
        stamps.bump(s, stamps.data_scope(slug))
    return deleted


__all__ = [
    "MAX_BYTES", "MAX_ROWS", "ColumnMapping", "ColumnMatch", "ImportBatch", "ImportRefused", "ImportReport",
    "ImportResult", "Table", "batch_ids", "commit", "dry_run", "map_columns", "read_table", "recent_imports",
    "undo_import",
]
