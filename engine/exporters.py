"""Record exports (CSV for Excel, XLSX), streamed.

`export_records` reads a form's records in keyset batches of `BATCH` ids, so memory does not grow
with the number of rows; each batch is written out before the next is read.

Columns: the meta columns (id, number, state) first, then every field of the form's *current*
spec in spec order, retired fields included (old records keep their answers), then any field
only found in older versions, counter totals (SUM of tally events), and finally created_by,
created_at and form_version. Values are rendered by the field type's `export`; sensitive
columns are masked unless the caller asks to reveal and may (`engine.access.may_reveal`).

Every cell that a spreadsheet would read as a formula (first character ``= + - @``, tab or
carriage return) is prefixed with a single quote; `unescape_cell` undoes that for importers.
An export with sensitive columns (masked or not) writes an audit event.
"""

from __future__ import annotations

import codecs
import csv
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, BinaryIO, Protocol

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from engine.access import SYSTEM, Actor, form_allows, may_reveal
from engine.db import session_scope
from engine.errors import NotFound, PermissionDenied
from engine.messages import register
from models.spec import FieldSpec, FormSpec, LText, ltext
from models.tables import Form, FormVersion, Submission, TallyEvent

BATCH = 2000
FORMULA_CHARS = ("=", "+", "-", "@", "\t", "\r")
HEADER_MODES = ("label", "key")

register(
    {
        "export.unknown_format": {
            "zh": "不支持的导出格式「{fmt}」（可用：{formats}）。",
            "en": "Unknown export format '{fmt}' (available: {formats}).",
        },
        "export.no_form": {"zh": "表单「{form}」不存在。", "en": "Form '{form}' does not exist."},
        "export.forbidden": {
            "zh": "您的角色（{role}）不能导出表单「{form}」的记录。",
            "en": "Your role ({role}) may not export the records of form '{form}'.",
        },
        "export.reveal_forbidden": {
            "zh": "您的角色（{role}）不能导出表单「{form}」未遮蔽的敏感信息。",
            "en": "Your role ({role}) may not export unmasked sensitive data of form '{form}'.",
        },
        "export.bad_headers": {
            "zh": "表头方式应为 label 或 key，而不是「{headers}」。",
            "en": "Headers must be 'label' or 'key', not '{headers}'.",
        },
    }
)

META_LABELS: dict[str, LText] = {
    "id": {"zh": "记录ID", "en": "Record ID"},
    "number": {"zh": "编号", "en": "Number"},
    "state": {"zh": "状态", "en": "State"},
    "created_by": {"zh": "登记人", "en": "Created by"},
    "created_at": {"zh": "登记时间", "en": "Created at"},
    "form_version": {"zh": "表单版本", "en": "Form version"},
}
HEAD_META = ("id", "number", "state")
TAIL_META = ("created_by", "created_at", "form_version")
RETIRED_SUFFIX: LText = {"zh": "（已停用）", "en": " (retired)"}


# --------------------------------------------------------------------------------------------
# cells


def _dangerous(text: str) -> bool:
    """Starts (after any leading quotes) with a character a spreadsheet reads as a formula."""
    return text.lstrip("'").startswith(FORMULA_CHARS)


def neutralise(text: str) -> str:
    """Prefix a quote to a cell a spreadsheet would run as a formula (CSV / formula injection).

    A text that already starts with quotes before such a character gets one more, so that
    `unescape_cell` restores every text exactly.
    """
    if text and _dangerous(text):
        return "'" + text
    return text


def unescape_cell(text: str) -> str:
    """Undo `neutralise` (for importers reading a file this module wrote)."""
    if text.startswith("'") and _dangerous(text):
        return text[1:]
    return text


# --------------------------------------------------------------------------------------------
# writers (the EXPORTERS registry)


class Writer(Protocol):
    def header(self, cells: list[str]) -> None: ...
    def row(self, cells: list[Any]) -> None: ...
    def close(self) -> None: ...


class CsvWriter:
    """CSV in UTF-8 with a BOM, so that Excel opens Chinese text correctly."""

    extension = "csv"
    mime = "text/csv"

    def __init__(self, out: BinaryIO, title: str = "") -> None:
        self._out = out
        self._text = codecs.getwriter("utf-8")(out)
        out.write(codecs.BOM_UTF8)
        self._csv = csv.writer(self._text, lineterminator="\r\n")

    def header(self, cells: list[str]) -> None:
        self._csv.writerow([neutralise(c) for c in cells])

    def row(self, cells: list[Any]) -> None:
        self._csv.writerow(["" if c is None else neutralise(str(c)) for c in cells])

    def close(self) -> None:
        self._text.flush()


class XlsxWriter:
    """XLSX through openpyxl's write-only workbook (rows go to a temporary file, not memory)."""

    extension = "xlsx"
    typed_numbers = True
    mime = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

    def __init__(self, out: BinaryIO, title: str = "records") -> None:
        from openpyxl import Workbook

        self._out = out
        self._wb = Workbook(write_only=True)
        self._ws = self._wb.create_sheet(title=_sheet_title(title))
        self._widths: list[int] = []

    def header(self, cells: list[str]) -> None:
        from openpyxl.cell import WriteOnlyCell
        from openpyxl.styles import Font
        from openpyxl.utils import get_column_letter

        for i, cell in enumerate(cells, start=1):
            width = min(max(10, _display_width(cell) + 2), 40)
            self._ws.column_dimensions[get_column_letter(i)].width = width
        self._ws.freeze_panes = "A2"
        row = []
        for text in cells:
            c = WriteOnlyCell(self._ws, value=_xlsx_text(neutralise(text)))
            c.font = Font(bold=True)
            row.append(c)
        self._ws.append(row)

    def row(self, cells: list[Any]) -> None:
        self._ws.append([_xlsx_value(self._ws, c) for c in cells])

    def close(self) -> None:
        self._wb.save(self._out)


def _sheet_title(title: str) -> str:
    bad = set("[]:*?/\\")
    clean = "".join("_" if ch in bad else ch for ch in title).strip("'") or "records"
    return clean[:31]


def _display_width(text: str) -> int:
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)


_XLSX_ESCAPE = re.compile(r"_(x[0-9A-Fa-f]{4}_)")
_XLSX_UNESCAPE = re.compile(r"_x([0-9A-Fa-f]{4})_")


def _xlsx_text(text: str) -> str:
    """Control characters XML cannot hold, written as OOXML escapes (``_x001B_``), which Excel decodes.

    A literal ``_xHHHH_`` in the text has its underscore escaped (``_x005F_``) so that it stays literal.
    """
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    text = _XLSX_ESCAPE.sub(r"_x005F_\1", text)
    return ILLEGAL_CHARACTERS_RE.sub(lambda m: f"_x{ord(m.group()):04X}_", text)


def xlsx_unescape(text: str) -> str:
    """Undo `_xlsx_text` (for importers reading a workbook with openpyxl, which keeps the escapes)."""
    return _XLSX_UNESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)


def _xlsx_value(ws: Any, value: Any) -> Any:
    if value is None or value == "":
        return None  # no cell at all: smaller and faster than an empty string cell
    if isinstance(value, NumberCell):
        if not value.fmt:
            return value.number
        from openpyxl.cell import WriteOnlyCell

        cell = WriteOnlyCell(ws, value=value.number)
        cell.number_format = value.fmt
        return cell
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return value
    return _xlsx_text(neutralise(str(value)))


EXPORTERS: dict[str, type] = {"csv": CsvWriter, "xlsx": XlsxWriter}


# --------------------------------------------------------------------------------------------
# columns


@dataclass(frozen=True)
class Column:
    key: str
    label: LText
    kind: str  # "meta" | "field" | "counter"
    field: FieldSpec | None = None
    sensitive: bool = False
    retired: bool = False

    def header(self, mode: str, lang: str) -> str:
        if mode == "key":
            return self.key
        text = ltext(self.label, lang) or self.key
        if self.retired:
            text += ltext(RETIRED_SUFFIX, lang)
        return text


@dataclass
class ExportPlan:
    slug: str
    form_id: int
    spec: FormSpec
    columns: list[Column]
    version_specs: dict[int, FormSpec] = field(default_factory=dict)

    @property
    def sensitive_columns(self) -> list[str]:
        return [c.key for c in self.columns if c.sensitive]


def _stores_value(fs: FieldSpec) -> bool:
    from engine.fields import REGISTRY

    ft = REGISTRY.get(fs.type)
    return bool(ft.stores_value) if ft is not None else fs.type not in ("note", "counter")


def plan_export(engine: Engine, slug: str) -> ExportPlan:
    """The columns an export of `slug` has (current spec, retired fields, older versions' keys)."""
    from engine.forms import get_spec

    with session_scope(engine, write=False) as s:
        form = s.execute(select(Form.id, Form.current_version).where(Form.slug == slug)).first()
        if form is None or not form.current_version:
            raise NotFound("export.no_form", form=slug)
        versions = [
            v
            for (v,) in s.execute(
                select(FormVersion.version)
                .where(FormVersion.form_id == form.id)
                .order_by(FormVersion.version)
            )
        ]
    spec = get_spec(engine, slug)
    version_specs = {v: get_spec(engine, slug, v) for v in versions}
    columns: list[Column] = [Column(k, META_LABELS[k], "meta") for k in HEAD_META]
    seen: set[str] = set()
    counters: list[Column] = []
    for fs in spec.fields:
        seen.add(fs.key)
        if fs.type == "counter":
            counters.append(Column(fs.key, fs.label, "counter", fs, retired=fs.retired))
        elif _stores_value(fs):
            columns.append(Column(fs.key, fs.label, "field", fs, sensitive=fs.sensitive, retired=fs.retired))
    for v in sorted(version_specs, reverse=True):  # keys only older versions know (newest label wins)
        for fs in version_specs[v].fields:
            if fs.key in seen:
                continue
            seen.add(fs.key)
            if fs.type == "counter":
                counters.append(Column(fs.key, fs.label, "counter", fs, retired=True))
            elif _stores_value(fs):
                columns.append(Column(fs.key, fs.label, "field", fs, sensitive=fs.sensitive, retired=True))
    columns += counters
    columns += [Column(k, META_LABELS[k], "meta") for k in TAIL_META]
    return ExportPlan(slug=slug, form_id=form.id, spec=spec, columns=columns, version_specs=version_specs)


# --------------------------------------------------------------------------------------------
# rows


ROW_COLUMNS = (
    Submission.id,
    Submission.number,
    Submission.state,
    Submission.created_by,
    Submission.created_at,
    Submission.form_version,
    Submission.data,
)
ID, NUMBER, STATE, CREATED_BY, CREATED_AT, VERSION, DATA = range(len(ROW_COLUMNS))


def _batches(engine: Engine, form_id: int, size: int | None = None) -> Iterator[list[Any]]:
    """Live records of a form in id order, `size` at a time (keyset pagination, short reads)."""
    size = size or BATCH
    last = 0
    while True:
        with engine.connect() as conn:
            rows = conn.execute(
                select(*ROW_COLUMNS)
                .where(Submission.form_id == form_id, Submission.deleted_at.is_(None), Submission.id > last)
                .order_by(Submission.id)
                .limit(size)
            ).all()
        if not rows:
            return
        yield [tuple(r) for r in rows]
        last = rows[-1][ID]
        if len(rows) < size:
            return


def _counter_totals(engine: Engine, ids: list[int]) -> dict[tuple[int, str], int]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(TallyEvent.submission_id, TallyEvent.counter, func.sum(TallyEvent.delta))
            .where(TallyEvent.submission_id.in_(ids))
            .group_by(TallyEvent.submission_id, TallyEvent.counter)
        ).all()
    return {(sid, counter): int(total or 0) for sid, counter, total in rows}


def _format_dt(value: datetime | None) -> str:
    """Aware ISO text in China Standard Time (what the office reads), e.g. 2026-03-15T09:30:00+08:00."""
    from engine.fields import LOCAL_TZ

    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(LOCAL_TZ).isoformat(timespec="seconds")


_PLAIN_NUMBER = re.compile(r"-?[0-9]{1,15}(\.[0-9]{1,10})?")


class NumberCell(str):
    """A number's exact text (what CSV writes) carrying the number and an Excel format (what XLSX writes)."""

    number: int | Decimal
    fmt: str | None

    def __new__(cls, text: str, number: int | Decimal, fmt: str | None = None) -> NumberCell:
        cell = super().__new__(cls, text)
        cell.number = number
        cell.fmt = fmt
        return cell


def _typed_number(text: str, type_name: str) -> str:
    """A number cell for XLSX (so Excel can sum it); anything else stays text."""
    if not _PLAIN_NUMBER.fullmatch(text):
        return text
    if len(text.lstrip("-").replace(".", "").lstrip("0")) > 15:
        return text  # more digits than a spreadsheet number holds: keep it exact, as text
    if "." not in text:
        return NumberCell(text, int(text), "#,##0.00" if type_name == "money" else None)
    places = len(text.split(".", 1)[1])
    fmt = "#,##0.00" if type_name == "money" else "0." + "0" * places
    return NumberCell(text, Decimal(text), fmt)


_FieldEntry = tuple[
    FieldSpec, Callable[[Any, FieldSpec], str], Callable[[FieldSpec, str], str] | None, str | None
]


class _CellMaker:
    """Turns one stored record into the cells of one row (column getters are built once per export)."""

    def __init__(self, plan: ExportPlan, headers: str, lang: str, reveal: bool, typed: bool = False) -> None:
        from engine.fields import REGISTRY, mask_value

        self.plan = plan
        self.registry = REGISTRY
        self.mask_value = mask_value
        self.headers = headers
        self.lang = lang
        self.reveal = reveal
        self.typed = typed  # XLSX: numbers as numbers
        self._entries: dict[tuple[int, str], _FieldEntry] = {}
        self._states: dict[str | None, str] = {}
        self._getters = [self._getter(col) for col in plan.columns]

    def _entry(self, version: int, col: Column) -> _FieldEntry:
        """The field as the record's own version defined it (else the current one), its export and mask."""
        key = (version, col.key)
        entry = self._entries.get(key)
        if entry is None:
            vspec = self.plan.version_specs.get(version)
            fs = (vspec.field(col.key) if vspec else None) or col.field
            assert fs is not None
            ft = self.registry.get(fs.type)
            export = ft.export if ft is not None else _as_text
            mask = self.mask_value if col.sensitive and not self.reveal else None
            typed = fs.type if self.typed and ft is not None and ft.value_kind == "number" else None
            entry = self._entries[key] = (fs, export, mask, typed)
        return entry

    def value(self, col: Column, version: int, raw: Any) -> Any:
        if raw is None:
            return ""
        fs, export, mask, typed = self._entry(version, col)
        try:
            text = export(raw, fs)
        except Exception:  # a value the type no longer understands: export it as stored
            text = _as_text(raw, fs)
        if not text:
            return ""
        if mask is not None:
            return mask(fs, text)
        if typed is not None:
            return _typed_number(text, typed)
        return text

    def state(self, key: str | None) -> str:
        label = self._states.get(key)
        if label is None:
            label = key or ""
            if key and self.headers != "key" and self.plan.spec.workflow:
                found = next((st for st in self.plan.spec.workflow.states if st.key == key), None)
                label = (ltext(found.label, self.lang) or key) if found else key
            self._states[key] = label
        return label

    def _getter(self, col: Column) -> Callable[[Any, dict[str, Any], dict[tuple[int, str], int]], Any]:
        key = col.key
        if col.kind == "field":
            return lambda sub, data, _t: self.value(col, sub[VERSION], data.get(key))
        if col.kind == "counter":
            return lambda sub, _d, totals: totals.get((sub[ID], key), 0)
        meta: dict[str, Callable[[Any, dict[str, Any], dict[tuple[int, str], int]], Any]] = {
            "id": lambda sub, _d, _t: sub[ID],
            "number": lambda sub, _d, _t: sub[NUMBER] or "",
            "state": lambda sub, _d, _t: self.state(sub[STATE]),
            "created_by": lambda sub, _d, _t: sub[CREATED_BY] or "",
            "created_at": lambda sub, _d, _t: _format_dt(sub[CREATED_AT]),
            "form_version": lambda sub, _d, _t: sub[VERSION],
        }
        return meta[key]

    def row(self, sub: Any, totals: dict[tuple[int, str], int]) -> list[Any]:
        """`sub`: a result row of `_batches` (a tuple in ROW_COLUMNS order)."""
        data = sub[DATA] or {}
        return [get(sub, data, totals) for get in self._getters]


def _as_text(value: Any, _field: Any = None) -> str:
    return value if isinstance(value, str) else str(value)


# --------------------------------------------------------------------------------------------
# the export


@dataclass
class ExportResult:
    slug: str
    fmt: str
    count: int
    columns: list[str]
    sensitive: list[str]
    revealed: bool


def count_records(engine: Engine, form_id: int) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(func.count())
                .select_from(Submission)
                .where(Submission.form_id == form_id, Submission.deleted_at.is_(None))
            ).scalar_one()
        )


def check_export_allowed(actor: Actor, spec: FormSpec, reveal: bool) -> None:
    if not actor.can("export") or not (form_allows(actor, spec, "view") or actor.can("records.all")):
        raise PermissionDenied("export.forbidden", role=actor.role, form=spec.slug)
    if reveal and not may_reveal(actor, spec):
        raise PermissionDenied("export.reveal_forbidden", role=actor.role, form=spec.slug)


def export_records(
    engine: Engine,
    slug: str,
    out: BinaryIO,
    fmt: str = "csv",
    *,
    actor: Actor = SYSTEM,
    headers: str = "label",
    lang: str = "zh",
    reveal: bool = False,
    progress: Callable[[int, int], None] | None = None,
    reason: str | None = None,
) -> ExportResult:
    """Stream the live records of `slug` to `out` as `fmt` ("csv" | "xlsx").

    `reason`: why sensitive data is exported unmasked; kept in the export's audit event."""
    writer_cls = EXPORTERS.get(fmt)
    if writer_cls is None:
        from engine.errors import EngineError

        raise EngineError("export.unknown_format", fmt=fmt, formats=", ".join(EXPORTERS))
    if headers not in HEADER_MODES:
        from engine.errors import EngineError

        raise EngineError("export.bad_headers", headers=headers)
    plan = plan_export(engine, slug)
    check_export_allowed(actor, plan.spec, reveal)
    maker = _CellMaker(plan, headers, lang, reveal, typed=getattr(writer_cls, "typed_numbers", False))
    total = count_records(engine, plan.form_id)
    writer = writer_cls(out, slug)
    writer.header([c.header(headers, lang) for c in plan.columns])
    has_counters = any(c.kind == "counter" for c in plan.columns)
    done = 0
    if progress:
        progress(0, total)
    for rows in _batches(engine, plan.form_id):
        totals = _counter_totals(engine, [r[ID] for r in rows]) if has_counters else {}
        for sub in rows:
            writer.row(maker.row(sub, totals))
        done += len(rows)
        if progress:
            progress(done, max(total, done))
    writer.close()
    result = ExportResult(
        slug=slug,
        fmt=fmt,
        count=done,
        columns=[c.key for c in plan.columns],
        sensitive=plan.sensitive_columns,
        revealed=bool(reveal and plan.sensitive_columns),
    )
    if result.sensitive:
        _audit(engine, actor, result, reason)
    return result


def _audit(engine: Engine, actor: Actor, result: ExportResult, reason: str | None = None) -> None:
    from engine.audit import record

    with session_scope(engine) as s:
        record(
            s,
            actor,
            "export",
            "form",
            result.slug,
            form_slug=result.slug,
            detail={
                "form": result.slug,
                "format": result.fmt,
                "count": result.count,
                "columns": result.columns,
                "sensitive": result.sensitive,
                "revealed": result.revealed,
                "reason": (reason or "").strip()[:500] or None,
            },
        )
