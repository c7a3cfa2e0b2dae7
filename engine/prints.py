"""Printable PDFs (Chinese first) built with `engine.pdf.Document`.

Per-record prints — `print_record(engine, sub_id, kind, *, actor, reveal=False, lang="zh")`:
- `application`: the intake application form (法律援助申请表): every visible field of the record's
  OWN form version, by section, checklists as tables, then signature and date lines
  (申请人签名 / 日期, 受理人签名 / 日期);
- `receipt`: the receipt for materials received (接收凭证): the materials checklist item by item;
- `evaluation`: the court-hearing evaluation (庭审旁听评价表) with its score table;
- `record`: the generic print of any form: sections, fields and checklist tables.
`available_prints(slug)` lists the kinds a form offers (`record` always). Sensitive values are
masked unless `reveal=True` and the role may reveal them; such a print is audited as a reveal.

The year-end report — `report_pdf(report, lang)`: a title page (office, period), the statistics
tables with the previous period and the change, and bar charts (cases by category, events by target
group, consultations by channel) drawn in the PDF.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta, timezone
from typing import Any

from sqlalchemy.engine import Engine

from engine.access import Actor, may_reveal
from engine.errors import EngineError, PermissionDenied
from engine.messages import register
from engine.pdf import Document, office_name
from models.spec import FieldSpec, FormSpec, LText, ltext

register(
    {
        "print.unknown_kind": {
            "zh": "表单「{form}」没有「{kind}」这种打印格式（可用：{kinds}）。",
            "en": "Form '{form}' has no print '{kind}' (available: {kinds}).",
        },
        "print.reveal_forbidden": {
            "zh": "您的角色不能打印未遮蔽的敏感信息。",
            "en": "Your role may not print sensitive data unmasked.",
        },
    }
)

LOCAL_TZ = timezone(timedelta(hours=8))
ANSWER_TEXT: dict[str, dict[str, str]] = {
    "zh": {"yes": "是", "no": "否", "na": "不适用"},
    "en": {"yes": "Yes", "no": "No", "na": "N/A"},
}
RECEIPT_TEXT: dict[str, dict[str, str]] = {
    "zh": {"yes": "已收到", "no": "未收到", "na": "不适用"},
    "en": {"yes": "Received", "no": "Not received", "na": "N/A"},
}
SKIP_TYPES = frozenset({"note", "counter"})


def _w(lang: str, zh: str, en: str) -> str:
    return zh if lang == "zh" else en


@dataclass(frozen=True)
class PrintKind:
    key: str
    label: LText
    render: Callable[[_Ctx], None]


# --------------------------------------------------------------------------------------------------
# what a print needs
# --------------------------------------------------------------------------------------------------
@dataclass
class _Ctx:
    doc: Document
    spec: FormSpec  # the record's own version
    data: dict[str, Any]
    record: Any  # engine.storage.Record
    lang: str
    reveal: bool
    lists: dict[str, Any]

    def field(self, key: str) -> FieldSpec | None:
        return self.spec.field(key)

    def label(self, f: FieldSpec) -> str:
        return ltext(f.label, self.lang) or f.key

    def text(self, f: FieldSpec) -> str:
        """The display text of a stored value (masked when sensitive and not revealed)."""
        from engine.fields import REGISTRY, display_lists, is_empty, mask_value

        value = self.data.get(f.key)
        if value is None or is_empty(value):
            return ""
        ft = REGISTRY.get(f.type)
        with display_lists(self.lists):
            try:
                shown = ft.display(value, f, self.lang) if ft is not None else str(value)
            except Exception:
                shown = str(value)
        if f.sensitive and not self.reveal and shown:
            return mask_value(f, shown)
        return shown

    def value(self, key: str) -> str:
        f = self.field(key)
        return self.text(f) if f is not None else ""


def _visible(spec: FormSpec, data: dict[str, Any]) -> list[FieldSpec]:
    from engine.validate import visible_fields

    return [f for f in visible_fields(spec, data) if f.type not in SKIP_TYPES]


def _sections(ctx: _Ctx) -> list[tuple[str, list[FieldSpec]]]:
    """(section title, its visible fields) in spec order; fields without a section come first."""
    fields = _visible(ctx.spec, ctx.data)
    out: list[tuple[str, list[FieldSpec]]] = []
    loose = [f for f in fields if not f.section or not any(s.key == f.section for s in ctx.spec.sections)]
    if loose:
        out.append(("", loose))
    for s in ctx.spec.sections:
        mine = [f for f in fields if f.section == s.key]
        if mine:
            out.append((ltext(s.title, ctx.lang) or s.key, mine))
    return out


def _checklist_table(ctx: _Ctx, f: FieldSpec, words: dict[str, dict[str, str]] | None = None) -> None:
    answers = (words or ANSWER_TEXT).get(ctx.lang, ANSWER_TEXT["zh"])
    value = ctx.data.get(f.key) or {}
    rows = []
    for i, item in enumerate(f.items or [], start=1):
        entry = value.get(item.key) or {}
        rows.append((str(i), ltext(item.label, ctx.lang) or item.key, answers.get(entry.get("answer", ""), ""),
                     entry.get("note") or ""))
    ctx.doc.table([_w(ctx.lang, "序号", "No."), _w(ctx.lang, "项目", "Item"), _w(ctx.lang, "情况", "Answer"),
                   _w(ctx.lang, "说明", "Note")], rows, widths=[12, 95, 25, 42], align_numbers=False)


def _fields_block(ctx: _Ctx, fields: list[FieldSpec]) -> None:
    pairs: list[tuple[str, str]] = []
    for f in fields:
        if f.type == "checklist":
            if pairs:
                ctx.doc.kv(pairs)
                pairs = []
            ctx.doc.paragraph(ctx.label(f))
            _checklist_table(ctx, f)
        else:
            pairs.append((ctx.label(f), ctx.text(f)))
    if pairs:
        ctx.doc.kv(pairs)


def _meta(ctx: _Ctx) -> None:
    from engine.workflow import state_label

    sub = ctx.record.submission
    rows = [(_w(ctx.lang, "记录编号", "Record"), f"#{sub.id}" + (f"（{sub.number}）" if sub.number else ""))]
    if sub.state:
        rows.append((_w(ctx.lang, "办理状态", "State"), state_label(ctx.spec, sub.state, ctx.lang)))
    created = sub.created_at.astimezone(LOCAL_TZ) if sub.created_at.tzinfo else sub.created_at
    rows.append((_w(ctx.lang, "登记", "Entered"), f"{created:%Y-%m-%d %H:%M} {sub.created_by}"))
    rows.append((_w(ctx.lang, "表单版本", "Form version"), f"v{sub.form_version}"))
    ctx.doc.kv(rows)


# --------------------------------------------------------------------------------------------------
# the prints
# --------------------------------------------------------------------------------------------------
def _generic(ctx: _Ctx) -> None:
    ctx.doc.heading(ltext(ctx.spec.title, ctx.lang) or ctx.spec.slug, 1)
    _meta(ctx)
    for title, fields in _sections(ctx):
        if title:
            ctx.doc.heading(title, 2)
        _fields_block(ctx, fields)
    ctx.doc.signature_lines([_w(ctx.lang, "填表人签名", "Filled in by"), _w(ctx.lang, "日期", "Date"),
                             _w(ctx.lang, "审核人签名", "Checked by"), _w(ctx.lang, "日期", "Date")])


def _application(ctx: _Ctx) -> None:
    ctx.doc.heading(_w(ctx.lang, "法律援助申请表", "Legal Aid Application Form"), 1)
    no = ctx.value("application_no")
    if no:
        ctx.doc.paragraph(_w(ctx.lang, f"申请编号：{no}", f"Application number: {no}"))
    _meta(ctx)
    for title, fields in _sections(ctx):
        if title:
            ctx.doc.heading(title, 2)
        _fields_block(ctx, fields)
    ctx.doc.paragraph(_w(
        ctx.lang,
        "申请人承诺：以上所填内容及所提交材料真实、完整；如有虚假，愿承担相应法律责任。",
        "The applicant declares that the information above and the documents submitted are true and "
        "complete, and accepts the legal consequences of any false statement.",
    ))
    ctx.doc.signature_lines([_w(ctx.lang, "申请人签名", "Applicant's signature"), _w(ctx.lang, "日期", "Date"),
                             _w(ctx.lang, "受理人签名", "Received by"), _w(ctx.lang, "日期", "Date")])


def _receipt(ctx: _Ctx) -> None:
    doc, lang = ctx.doc, ctx.lang
    doc.heading(_w(lang, "法律援助申请材料接收凭证", "Receipt for Legal Aid Application Materials"), 1)
    name = ctx.value("name") or "＿＿＿＿"
    no = ctx.value("application_no") or f"#{ctx.record.id}"
    day = ctx.value("application_date") or "＿＿＿＿"
    doc.paragraph(_w(lang, f"兹收到申请人 {name}（申请编号：{no}）于 {day} 提交的法律援助申请材料，清单如下：",
                     f"Received from the applicant {name} (application {no}) on {day} the following materials:"))
    materials = ctx.field("materials")
    if materials is not None and materials.type == "checklist":
        _checklist_table(ctx, materials, RECEIPT_TEXT)
    missing = ctx.value("missing_materials")
    if missing:
        doc.paragraph(_w(lang, f"需补充的材料：{missing}", f"Materials still needed: {missing}"))
    doc.paragraph(_w(
        lang,
        "本凭证仅证明已收到上述材料，不表示已决定给予法律援助。法律援助机构将在收到申请之日起七日内作出决定；"
        "补充材料所需时间不计入审查期限。",
        "This receipt only confirms that the materials above were received; it is not a decision to grant "
        "legal aid. The decision is due within 7 days of the application; time spent waiting for missing "
        "materials is not counted.",
    ))
    doc.paragraph(f"{doc.office_name}")
    doc.signature_lines([_w(lang, "接收人签名", "Received by"), _w(lang, "日期", "Date"),
                         _w(lang, "申请人签名", "Applicant's signature"), _w(lang, "日期", "Date")])


def _evaluation(ctx: _Ctx) -> None:
    doc, lang = ctx.doc, ctx.lang
    doc.heading(_w(lang, "庭审旁听评价表", "Court-Hearing Evaluation"), 1)
    _meta(ctx)
    visible = _visible(ctx.spec, ctx.data)
    ratings = [f for f in visible if f.type == "rating"]
    info = [f for f in visible if f.type not in ("rating", "checklist") and f.section != "feedback"
            and f.key != "total_score"]
    doc.heading(_w(lang, "庭审信息", "Hearing"), 2)
    doc.kv([(ctx.label(f), ctx.text(f)) for f in info])
    doc.heading(_w(lang, "评分", "Scores"), 2)
    rows, total = [], 0
    for i, f in enumerate(ratings, start=1):
        v = ctx.data.get(f.key)
        top = int(f.max) if f.max else 5
        if isinstance(v, int):
            total += v
        rows.append((str(i), ctx.label(f), "" if v is None else f"{v} / {top}"))
    stored = ctx.data.get("total_score")
    full = sum(int(f.max) if f.max else 5 for f in ratings)
    rows.append(("", _w(lang, "总分", "Total"), f"{stored if stored is not None else total} / {full}"))
    doc.table([_w(lang, "序号", "No."), _w(lang, "评价项目", "Item"), _w(lang, "得分", "Score")], rows,
              widths=[12, 120, 40])
    feedback = [f for f in visible if f.section == "feedback"]
    if feedback:
        doc.heading(_w(lang, "评价与反馈", "Comments and feedback"), 2)
        _fields_block(ctx, feedback)
    doc.signature_lines([_w(lang, "旁听人签名", "Observer"), _w(lang, "日期", "Date"),
                         _w(lang, "负责人签名", "Head of office"), _w(lang, "日期", "Date")])


GENERIC = PrintKind("record", {"zh": "记录打印", "en": "Record print"}, _generic)
PRINTS: dict[str, list[PrintKind]] = {
    "intake": [
        PrintKind("application", {"zh": "法律援助申请表", "en": "Application form"}, _application),
        PrintKind("receipt", {"zh": "材料接收凭证", "en": "Receipt"}, _receipt),
    ],
    "hearing_observation": [PrintKind("evaluation", {"zh": "庭审旁听评价表", "en": "Hearing evaluation"}, _evaluation)],
}


def available_prints(slug: str) -> list[PrintKind]:
    """The prints of a form: its special ones, then the generic record print."""
    return [*PRINTS.get(slug, []), GENERIC]


def print_record(engine: Engine, sub_id: int, kind: str = "record", *, actor: Actor, reveal: bool = False,
                 lang: str | None = None, reason: str | None = None) -> bytes:
    """A PDF of one record (view access checked; `reveal` needs the reveal right and is audited,
    with `reason`: why it is printed unmasked)."""
    from engine import audit
    from engine.db import session_scope
    from engine.forms import choice_lists
    from engine.storage import get_record

    lang = lang or actor.language or "zh"
    rec = get_record(engine, sub_id, actor=actor, history_limit=1)
    kinds = {k.key: k for k in available_prints(rec.slug)}
    chosen = kinds.get(kind)
    if chosen is None:
        raise EngineError("print.unknown_kind", form=rec.slug, kind=kind, kinds=", ".join(kinds))
    sensitive = [f.key for f in rec.spec.fields if f.sensitive and rec.data.get(f.key) not in (None, "")]
    if reveal and not may_reveal(actor, rec.spec):
        raise PermissionDenied("print.reveal_forbidden")
    doc = Document(title=ltext(rec.spec.title, lang) or rec.slug, office=office_name(engine, lang), lang=lang)
    ctx = _Ctx(doc, rec.spec, dict(rec.data or {}), rec, lang, reveal, choice_lists(engine))
    chosen.render(ctx)
    pdf = doc.output()
    if reveal and sensitive:
        with session_scope(engine) as s:
            audit.record(s, actor, "reveal", "submission", rec.id, form_slug=rec.slug,
                         detail={"fields": sensitive, "via": f"print:{kind}",
                                 "reason": (reason or "").strip()[:500] or None})
    return pdf


# --------------------------------------------------------------------------------------------------
# the year-end report
# --------------------------------------------------------------------------------------------------
def report_pdf(report: Any, lang: str = "zh") -> bytes:
    """The year-end report (engine.reports.Report) as a PDF: title page, tables, comparison, charts."""
    from engine.reports import CHARTS, format_change

    period = report.period_label(lang)
    title = _w(lang, f"{period}法律援助工作统计", f"Legal aid statistics {period}")
    doc = Document(title=title, office=report.office or None, lang=lang)
    # title page
    doc.spacer(40)
    doc.heading(doc.office_name, 1)
    doc.spacer(6)
    doc.heading(_w(lang, f"{period}法律援助工作统计报告", f"Legal Aid Work Report {period}"), 1)
    doc.spacer(20)
    generated = report.generated_at.astimezone(LOCAL_TZ)
    rows = [(_w(lang, "统计期间", "Period"), f"{report.date_from.isoformat()} — {report.date_to.isoformat()}")]
    if report.previous_from:
        rows.append((_w(lang, "对比期间", "Compared with"),
                     f"{report.previous_from.isoformat()} — {report.previous_to.isoformat()}"))
    rows.append((_w(lang, "生成时间", "Generated"), f"{generated:%Y-%m-%d %H:%M}"))
    doc.kv(rows, label_width=40)
    doc.paragraph(_w(
        lang,
        "说明：本报告各项数字均由系统根据登记记录自动统计（已删除记录不计）；案件以申请日期、活动以活动日期计入期间。"
        "“受理”指已进入受理及以后各环节（含不予援助、终止）的案件。",
        "Note: every figure is counted by the console from the stored records (deleted records excluded); "
        "cases are dated by their application date, events by their date. 'Accepted' covers every case that "
        "reached acceptance or a later step (refused and terminated included).",
    ))
    doc.page_break()
    # statistics
    headers = [_w(lang, "项目", "Item"), _w(lang, "单位", "Unit"), _w(lang, "本期", "This period"),
               _w(lang, "上期", "Previous"), _w(lang, "增减", "Change")]
    indent = "　" if lang == "zh" else "  "
    for section in report.sections:
        doc.heading(ltext(section.title, lang), 2)
        table = [
            (indent * f.level + f.label_for(lang), f.unit_label(lang), _number(f.value, f.unit),
             _number(f.previous, f.unit), format_change(f.change, f.unit))
            for f in section.figures
        ]
        doc.table(headers, table, widths=[80, 22, 28, 24, 22] if lang == "zh" else [70, 30, 28, 24, 22])
    # charts
    doc.page_break()
    doc.heading(_w(lang, "统计图", "Charts"), 2)
    for name in CHARTS:
        chart_title, bars = report.chart(name, lang)
        doc.bar_chart(chart_title, bars)
    return doc.output()


def _number(value: Any, unit: str) -> str:
    from engine.reports import format_value

    text = format_value(value, unit)
    return text[:-1] if unit == "percent" and text.endswith("%") else text


__all__ = ["GENERIC", "PRINTS", "PrintKind", "available_prints", "print_record", "report_pdf"]
