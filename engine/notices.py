"""Notices of an intake record as Chinese PDFs, from admin-editable text templates.

Kinds (`KINDS`): 接收凭证 receipt for received materials, 补充材料通知 one-time notice of missing
materials (with a deadline), 给予法律援助决定书 grant, 不予法律援助决定书 refusal (reason and how to
object), 指派通知书 assignment notice to the lawyer / law firm.

The wording lives in templates, never in this code: `data/notices/<kind>.md` is the default; the
admin's edited text is Setting "notice_template:<kind>" (`{"text": ...}`) and wins; resetting deletes
it. Saving refuses unknown placeholders, listing the allowed ones (`PLACEHOLDERS`). Filling never
evaluates anything: templates are parsed with string.Formatter and only the names in `PLACEHOLDERS`
are substituted (no attribute / index access, conversions or format specs).

Template lines (one block per line):

    # title              heading (## for a sub-heading)
    | label | value |    a label / value row (consecutive rows make one grid)
    - text               a list item; `- {materials_received}` gives one item per material
    [sign] a | b         signature lines "a：____  b：____"
    >> text              a right-aligned line (office name, date, number)
    %% comment           ignored
    anything else        a paragraph (an empty line only separates)

A list placeholder used inside text is joined with "、".
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from engine import audit
from engine.access import Actor, form_allows, may_reveal
from engine.config import ROOT
from engine.db import session_scope
from engine.eligibility import INTAKE, load_intake, office, read_setting, require_admin, write_setting
from engine.errors import EngineError, PermissionDenied
from engine.fields import LOCAL_TZ, is_empty, mask_value
from engine.messages import register
from models.spec import FieldSpec, FormSpec, LText, ltext
from models.tables import AuditEvent, Submission, utcnow

register({
    "notices.unknown_kind": {"zh": "没有「{kind}」这种文书。", "en": "There is no notice '{kind}'."},
    "notices.unknown_placeholder": {
        "zh": "模板中有无法识别的占位符：{names}。可用的占位符：{allowed}",
        "en": "The template has unknown placeholders: {names}. Allowed: {allowed}",
    },
    "notices.bad_template": {
        "zh": "模板格式有误：{problem}（花括号须成对，字面的花括号写作 {{{{ 和 }}}}）。",
        "en": "The template is malformed: {problem} (braces come in pairs; write literal braces as {{{{ and }}}}).",
    },
    "notices.empty_template": {"zh": "模板不能为空。", "en": "The template cannot be empty."},
    "notices.forbidden": {
        "zh": "您的角色不能打印此记录的文书。",
        "en": "Your role may not print notices of this record.",
    },
})

TEMPLATE_DIR = ROOT / "data" / "notices"
SETTING_PREFIX = "notice_template:"


@dataclass(frozen=True)
class NoticeKind:
    key: str
    label: LText
    needs_state: frozenset[str] = frozenset()  # offered once the record has been in one of these states


KINDS: dict[str, NoticeKind] = {k.key: k for k in (
    NoticeKind("receipt", {"zh": "申请材料接收凭证", "en": "Receipt for materials"}),
    NoticeKind("missing_materials", {"zh": "补充材料通知书", "en": "Notice of missing materials"}),
    NoticeKind("grant", {"zh": "给予法律援助决定书", "en": "Decision to grant legal aid"}, frozenset({"granted"})),
    NoticeKind("refusal", {"zh": "不予法律援助决定书", "en": "Decision to refuse legal aid"}, frozenset({"refused"})),
    NoticeKind("assignment", {"zh": "指派通知书", "en": "Assignment notice"}, frozenset({"assigned"})),
)}

PLACEHOLDERS: dict[str, LText] = {
    "office_name": {"zh": "法律援助机构名称", "en": "Office name"},
    "office_address": {"zh": "机构地址", "en": "Office address"},
    "office_phone": {"zh": "机构电话", "en": "Office phone"},
    "justice_bureau": {"zh": "受理异议的司法行政部门", "en": "Justice bureau hearing objections"},
    "number": {"zh": "申请编号", "en": "Application number"},
    "today": {"zh": "出具日期（今天）", "en": "Date of issue (today)"},
    "name": {"zh": "申请人姓名", "en": "Applicant's name"},
    "sex": {"zh": "性别", "en": "Sex"},
    "id_number": {"zh": "证件号码（无权查看时遮蔽）", "en": "Document number (masked unless revealed)"},
    "phone": {"zh": "联系电话（无权查看时遮蔽）", "en": "Phone (masked unless revealed)"},
    "application_date": {"zh": "申请日期", "en": "Application date"},
    "accepted_date": {"zh": "受理日期", "en": "Date accepted"},
    "decision_date": {"zh": "决定日期", "en": "Date of the decision"},
    "assigned_date": {"zh": "指派日期", "en": "Date assigned"},
    "case_category": {"zh": "案件类别", "en": "Case category"},
    "case_cause": {"zh": "案由", "en": "Cause of action"},
    "service_type": {"zh": "援助形式", "en": "Service"},
    "stage": {"zh": "所处阶段", "en": "Stage"},
    "opposing_parties": {"zh": "对方当事人", "en": "Opposing parties"},
    "materials_received": {"zh": "已收材料（清单）", "en": "Materials received (list)"},
    "materials_count": {"zh": "已收材料件数", "en": "Number of materials received"},
    "materials_missing": {"zh": "需补充的材料（清单）", "en": "Materials missing (list)"},
    "materials_deadline": {"zh": "补充材料截止日期", "en": "Deadline for missing materials"},
    "materials_days": {"zh": "补充材料期限（日）", "en": "Days allowed for missing materials"},
    "grounds": {"zh": "给予援助的法律依据（清单）", "en": "Legal grounds (list)"},
    "refusal_reason": {"zh": "不予援助的原因及理由", "en": "Reason for refusal"},
    "lawyer": {"zh": "承办律师", "en": "Assigned lawyer"},
    "law_firm": {"zh": "律师事务所", "en": "Law firm"},
}
LIST_PLACEHOLDERS = frozenset({"materials_received", "materials_missing", "grounds"})
_FORMATTER = string.Formatter()


# --- templates ------------------------------------------------------------------------------------
def _kind(kind: str) -> NoticeKind:
    found = KINDS.get(kind)
    if found is None:
        raise EngineError("notices.unknown_kind", kind=str(kind)[:40])
    return found


def default_template(kind: str) -> str:
    _kind(kind)
    return (TEMPLATE_DIR / f"{kind}.md").read_text(encoding="utf-8")


def template_text(engine: Engine, kind: str) -> tuple[str, bool]:
    """(the template in force, True when it is the admin's edited text)."""
    _kind(kind)
    value = read_setting(engine, SETTING_PREFIX + kind)
    if isinstance(value, Mapping) and isinstance(value.get("text"), str):
        return value["text"], True
    return default_template(kind), False


def placeholders_in(text: str) -> list[str]:
    try:
        return [name for _l, name, _s, _c in _FORMATTER.parse(text) if name is not None]
    except ValueError as exc:
        raise EngineError("notices.bad_template", problem=str(exc)) from None


def check_template(text: str) -> str:
    """The template (normalised line ends), or EngineError naming unknown placeholders / bad braces."""
    text = str(text or "").replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise EngineError("notices.empty_template")
    unknown: list[str] = []
    try:
        parts = list(_FORMATTER.parse(text))
    except ValueError as exc:
        raise EngineError("notices.bad_template", problem=str(exc)) from None
    for _literal, name, spec, conversion in parts:
        if name is None:
            continue
        shown = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
        if (name not in PLACEHOLDERS or spec or conversion) and shown not in unknown:
            unknown.append(shown)
    if unknown:
        raise EngineError("notices.unknown_placeholder", names="、".join(unknown),
                          allowed=" ".join("{" + k + "}" for k in PLACEHOLDERS))
    return text


def save_template(engine: Engine, kind: str, text: str, *, actor: Actor) -> str:
    require_admin(actor)
    _kind(kind)
    text = check_template(text)
    with session_scope(engine) as session:
        write_setting(session, SETTING_PREFIX + kind, {"text": text, "by": actor.username,
                                                       "at": utcnow().isoformat(timespec="seconds")},
                      actor, detail={"notice": kind, "length": len(text)})
    return text


def reset_template(engine: Engine, kind: str, *, actor: Actor) -> str:
    require_admin(actor)
    _kind(kind)
    with session_scope(engine) as session:
        write_setting(session, SETTING_PREFIX + kind, None, actor, detail={"notice": kind, "reset": True})
    return default_template(kind)


# --- filling --------------------------------------------------------------------------------------
def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return "、".join(str(v) for v in value if str(v))
    return str(value)


def fill(text: str, context: Mapping[str, Any]) -> str:
    """Substitute the allowed placeholders of one template line (lists joined with 、)."""
    out = []
    for literal, name, _spec, _conv in _FORMATTER.parse(text):
        out.append(literal)
        if name is not None:
            out.append(_text(context.get(name)) if name in PLACEHOLDERS else "")
    return "".join(out)


@dataclass(frozen=True)
class Block:
    kind: str  # heading / heading2 / kv / item / sign / right / paragraph
    text: str = ""
    rows: tuple[tuple[str, str], ...] = ()
    labels: tuple[str, ...] = ()


def blocks(template: str, context: Mapping[str, Any]) -> list[Block]:
    """The template's lines as layout blocks, filled from `context`."""
    out: list[Block] = []
    kv: list[tuple[str, str]] = []

    def flush() -> None:
        if kv:
            out.append(Block("kv", rows=tuple(kv)))
            kv.clear()

    for raw in template.replace("\r\n", "\n").split("\n"):
        line = raw.strip()
        if not line or line.startswith("%%"):
            flush()
            continue
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            kv.append((fill(cells[0], context), fill(" ".join(cells[1:]), context)))
            continue
        flush()
        if line.startswith("## "):
            out.append(Block("heading2", fill(line[3:].strip(), context)))
        elif line.startswith("# "):
            out.append(Block("heading", fill(line[2:].strip(), context)))
        elif line.startswith(">>"):
            out.append(Block("right", fill(line[2:].strip(), context)))
        elif line.startswith("[sign]"):
            out.append(Block("sign", labels=tuple(fill(p.strip(), context) for p in line[6:].split("|") if p.strip())))
        elif line.startswith("- "):
            body = line[2:].strip()
            names = placeholders_in(body)
            if len(names) == 1 and body == "{" + names[0] + "}" and names[0] in LIST_PLACEHOLDERS:
                items = [str(v) for v in context.get(names[0]) or []]
                out.extend(Block("item", i) for i in (items or ["（无）"]))
            else:
                out.append(Block("item", fill(body, context)))
        else:
            out.append(Block("paragraph", fill(line, context)))
    flush()
    return out


def render_pdf(template: str, context: Mapping[str, Any], *, title: str = "") -> bytes:
    """Lay the filled template out with engine.pdf.Document (A4, Chinese font embedded)."""
    from fpdf.enums import Align, XPos, YPos

    from engine.pdf import Document

    doc = Document(title=title, office=str(context.get("office_name") or "") or None)
    for b in blocks(template, context):
        if b.kind == "heading":
            doc.heading(b.text, 1)
        elif b.kind == "heading2":
            doc.heading(b.text, 2)
        elif b.kind == "kv":
            doc.kv(list(b.rows))
        elif b.kind == "item":
            doc.paragraph("· " + b.text)
        elif b.kind == "sign":
            doc.signature_lines(list(b.labels), per_row=max(1, min(len(b.labels), 3)))
        elif b.kind == "right":
            doc.pdf.multi_cell(0, doc.base_size * 0.6, b.text, align=Align.R, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        else:
            doc.paragraph(b.text)
    return doc.output()


# --- the record's context -------------------------------------------------------------------------
def cn_date(value: date | datetime | str | None) -> str:
    """2026年3月16日 (aware datetimes in China Standard Time)."""
    if value is None or value == "":
        return ""
    if isinstance(value, datetime):
        value = value.astimezone(LOCAL_TZ).date() if value.tzinfo else value.date()
    elif isinstance(value, str):
        try:
            value = date.fromisoformat(value[:10])
        except ValueError:
            return value
    return f"{value.year}年{value.month}月{value.day}日"


def _choice_text(field: FieldSpec | None, value: Any, lists: Mapping[str, Any], lang: str = "zh") -> str:
    if field is None or is_empty(value):
        return ""
    choices = field.choices or (lists.get(field.choice_list) if field.choice_list else None) or []
    for c in choices:
        if str(c.value) == str(value):
            return ltext(c.label, lang) or str(value)
    return str(value)


def _checklist(spec: FormSpec, data: Mapping[str, Any], key: str, answer: str) -> list[str]:
    f = spec.field(key)
    value = data.get(key)
    if f is None or not f.items or not isinstance(value, Mapping):
        return []
    out = []
    for item in f.items:
        entry = value.get(item.key)
        got = entry.get("answer") if isinstance(entry, Mapping) else entry
        if str(got or "") == answer:
            note = entry.get("note") if isinstance(entry, Mapping) else ""
            label = ltext(item.label, "zh") or item.key
            out.append(f"{label}（{note}）" if note else label)
    return out


def _first_step_dates(engine: Engine, sub_id: int) -> tuple[dict[str, datetime], dict[str, str]]:
    """{state: when the record last entered it} and {state: the reason given} from the audit trail."""
    with session_scope(engine, write=False) as session:
        rows = session.execute(select(AuditEvent.at, AuditEvent.detail).where(
            AuditEvent.entity == "submission", AuditEvent.entity_id == str(sub_id),
            AuditEvent.action == "transition").order_by(AuditEvent.id)).all()
    when: dict[str, datetime] = {}
    reasons: dict[str, str] = {}
    for at, detail in rows:
        to = (detail or {}).get("to") if isinstance(detail, Mapping) else None
        if to:
            when[str(to)] = at
            reasons[str(to)] = str((detail or {}).get("reason") or "")
    return when, reasons


def context_for(engine: Engine, sub_id: int, *, actor: Actor, reveal: bool = False,
                today: date | None = None) -> dict[str, Any]:
    """Every placeholder's value for one intake record (sensitive values masked unless revealed)."""
    from engine.eligibility import screen_submission
    from engine.forms import choice_lists, get_spec
    from engine.pdf import office_name

    with session_scope(engine, write=False) as session:
        sub, slug = load_intake(session, sub_id)
    spec = get_spec(engine, slug, sub.form_version)
    current = get_spec(engine, slug)
    if not form_allows(actor, current, "view"):
        raise PermissionDenied("notices.forbidden")
    show = reveal and may_reveal(actor, current)
    data = sub.data or {}
    lists = choice_lists(engine)
    prof = office(engine)
    today = today or datetime.now(LOCAL_TZ).date()
    when, reasons = _first_step_dates(engine, int(sub.id or 0))

    def plain(key: str) -> str:
        f = spec.field(key)
        value = data.get(key)
        if f is None or is_empty(value):
            return ""
        if f.type in ("select", "reference"):
            return _choice_text(f, value, lists)
        text = str(value)
        return text if (show or not f.sensitive) else mask_value(f, text)

    missing = [line.strip() for line in str(data.get("missing_materials") or "").splitlines() if line.strip()]
    missing += [m for m in _checklist(spec, data, "materials", "no") if m not in missing]
    received = _checklist(spec, data, "materials", "yes")
    lawyer_field = spec.field("lawyer")
    law_firm = str(data.get("law_firm") or "")
    if not law_firm and lawyer_field is not None and lawyer_field.choice_list and not is_empty(data.get("lawyer")):
        law_firm = str(_item_extra(engine, lawyer_field.choice_list, data["lawyer"]).get("law_firm") or "")
    refusal = _choice_text(spec.field("refusal_reason"), data.get("refusal_reason"), lists)
    why = reasons.get("refused", "")
    screening = screen_submission(engine, sub, today=today, spec=spec)
    return {
        "office_name": office_name(engine),
        "office_address": prof.get("address") or "",
        "office_phone": prof.get("phone") or "",
        "justice_bureau": prof.get("justice_bureau") or "司法行政部门",
        "number": sub.number or str(data.get("application_no") or "") or f"#{sub.id}",
        "today": cn_date(today),
        "name": str(data.get("name") or ""),
        "sex": plain("sex"),
        "id_number": plain("id_number"),
        "phone": plain("phone"),
        "application_date": cn_date(data.get("application_date")) or cn_date(sub.created_at),
        "accepted_date": cn_date(when.get("accepted")) or cn_date(today),
        "decision_date": cn_date(when.get("granted") or when.get("refused")) or cn_date(today),
        "assigned_date": cn_date(when.get("assigned")) or cn_date(today),
        "case_category": plain("case_category"),
        "case_cause": plain("case_cause"),
        "service_type": plain("service_type"),
        "stage": plain("stage"),
        "opposing_parties": [line.strip() for line in str(data.get("opposing_parties") or "").splitlines()
                             if line.strip()],
        "materials_received": received,
        "materials_count": str(len(received)),
        "materials_missing": missing,
        "materials_deadline": cn_date(today + timedelta(days=int(prof.get("materials_days") or 15))),
        "materials_days": str(prof.get("materials_days") or 15),
        "grounds": [ltext(g, "zh") for g in screening.grounds],
        "refusal_reason": "：".join(t for t in (refusal, why) if t) or "不符合法律援助条件",
        "lawyer": plain("lawyer"),
        "law_firm": law_firm,
        "_revealed": show,  # not a placeholder: for the audit
    }


def _item_extra(engine: Engine, list_name: str, value: Any) -> dict[str, Any]:
    from models.tables import ChoiceItem, ChoiceList

    with session_scope(engine, write=False) as session:
        extra = session.execute(select(ChoiceItem.extra).join(ChoiceList, ChoiceList.id == ChoiceItem.list_id).where(
            ChoiceList.name == list_name, ChoiceItem.value == str(value))).scalar()
    return dict(extra) if isinstance(extra, Mapping) else {}


def available(engine: Engine, sub: Submission) -> list[NoticeKind]:
    """The notices a record offers now (decisions and the assignment once the record got there)."""
    when, _ = _first_step_dates(engine, int(sub.id or 0))
    seen = set(when) | ({sub.state} if sub.state else set())
    return [k for k in KINDS.values() if not k.needs_state or k.needs_state & seen]


def notice_pdf(engine: Engine, sub_id: int, kind: str, *, actor: Actor, reveal: bool = False,
               today: date | None = None, reason: str | None = None) -> bytes:
    """The notice as PDF bytes. Audited as an export (and says whether sensitive values were shown)."""
    nk = _kind(kind)
    context = context_for(engine, sub_id, actor=actor, reveal=reveal, today=today)
    template, custom = template_text(engine, kind)
    pdf = render_pdf(template, context, title=ltext(nk.label, "zh"))
    with session_scope(engine) as session:
        audit.record(session, actor, "export", "submission", sub_id, form_slug=INTAKE, detail={
            "notice": kind, "custom_template": custom, "revealed": bool(context.get("_revealed")),
            "reason": (reason or "").strip()[:500] or None})
    return pdf


def template_path(kind: str) -> Path:
    return TEMPLATE_DIR / f"{_kind(kind).key}.md"


__all__ = [
    "KINDS", "LIST_PLACEHOLDERS", "PLACEHOLDERS", "Block", "NoticeKind", "available", "blocks", "check_template",
    "cn_date", "context_for", "default_template", "fill", "notice_pdf", "render_pdf", "reset_template",
    "save_template", "template_path", "template_text",
]
