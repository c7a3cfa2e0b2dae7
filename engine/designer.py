"""The form designer's engine: drafts, the spreadsheet grid, the condition builder, checks and impact.

Drafts (`Form.draft_spec`) are plain spec dicts that may still have problems: the designer shows
them next to their rows instead of refusing the edit. The published version is never touched until
`publish_draft`, which goes through `engine.forms.publish` (and so through `plan_publish`: removed
fields are retired, type changes refused, ...). Every draft write is audited ("create" / "update" /
"delete" on the entity "form_draft").

The grid (`fields_to_rows` / `rows_to_fields`) shows one row per field with the columns in
`GRID_COLUMNS`; whatever a row does not show (show_if, items, steps, inactive choices, lengths,
reference targets, ...) is kept from the draft by key, and a cell left as it was keeps the exact
stored value. So spec -> rows -> spec gives the same spec.

Conditions are built from parts (field, operator, value) and combined with all / any; nobody types
an expression. `describe_condition` reads one back in words, in the user's language.
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from engine import audit, forms
from engine.access import Actor
from engine.config import FORMS_DIR
from engine.db import session_scope, url_key
from engine.errors import ConflictError, EngineError, NotFound, PermissionDenied, Problem, SpecError
from engine.fields import REGISTRY, FieldProblem, display_lists, is_empty, mask_value
from engine.messages import register, render
from engine.spec import KEY_RE, check_spec, load_source
from engine.versioning import Change, PublishPlan, plan_publish
from models.spec import Condition, FieldSpec, FormSpec, as_ltext, ltext
from models.tables import Form, FormVersion, Submission, utcnow

__all__ = [
    "GRID_COLUMNS", "LIST_OPS", "NO_VALUE_OPS", "OPS", "DraftInfo", "FormEntry", "Impact", "SampleRecord",
    "SampleRow", "add_choice", "add_field", "check_draft", "choices_text", "combine", "condition_from_parts",
    "describe_condition", "discard_draft", "draft_info", "field_dicts", "fields_to_rows", "get_draft",
    "group_problems", "impact", "import_source", "list_designable", "move_field", "new_form_draft",
    "ops_for", "parse_choices", "publish_draft", "published_keys", "remove_field", "restore_field",
    "rows_to_fields", "save_draft", "split_condition", "template_data", "templates", "update_field",
    "choices_to_rows", "items_to_rows", "rows_to_choices", "rows_to_items", "rows_to_sections", "rows_to_workflow",
    "sections_to_rows", "states_to_rows", "transitions_to_rows", "ListImport", "merge_list_items",
    "next_list_value",
]

GRID_COLUMNS: tuple[str, ...] = (
    "key", "type", "label_zh", "label_en", "required", "choices", "help_zh", "help_en", "default", "min",
    "max", "pattern", "sensitive", "section", "retired", "order",
)
OPS: tuple[str, ...] = (
    "equals", "not_equals", "in", "not_in", "not_empty", "empty", "gt", "lt", "gte", "lte", "contains",
)
NO_VALUE_OPS = frozenset({"empty", "not_empty"})
LIST_OPS = frozenset({"in", "not_in"})
_CHOICE_TYPES = ("select", "multiselect")
_ORDERED_TYPES = ("integer", "decimal", "money", "rating", "date", "datetime", "time")
_NO_CONTROL_TYPES = ("note", "counter", "checklist")
SAMPLE_RECORDS = 3

register({
    "designer.forbidden": {"zh": "您没有设计表单的权限。", "en": "You may not design forms."},
    "designer.slug_invalid": {
        "zh": "表单标识「{slug}」不合格：只能用小写英文字母、数字和下划线，以字母开头，长度 2 到 64 个字符（例如 return_visit_2026）。",
        "en": "The form identifier '{slug}' is not valid: lowercase letters, digits and underscores only, starting "
              "with a letter, 2 to 64 characters (e.g. return_visit_2026).",
    },
    "designer.slug_taken": {
        "zh": "表单标识「{slug}」已被使用。请换一个新的标识；标识一经使用就不能再给别的表单。",
        "en": "The form identifier '{slug}' is already used. Choose a new one: an identifier is never reused.",
    },
    "designer.title_missing": {
        "zh": "请填写表单的中文标题。", "en": "Enter the form's Chinese title.",
    },
    "designer.template_unknown": {
        "zh": "没有名为「{name}」的内置模板。", "en": "There is no built-in template called '{name}'.",
    },
    "designer.draft_conflict": {
        "zh": "草稿已于 {at} 被 {by} 修改。为免覆盖对方的修改，您这次的修改没有保存；请重新打开草稿后再改。",
        "en": "The draft was changed by {by} at {at}. Your change was not saved, so as not to overwrite theirs; "
              "reopen the draft and make your change again.",
    },
    "designer.upload_too_large": {
        "zh": "文件「{name}」太大（{size} MB）：表单定义文件最多 {max} MB。",
        "en": "The file '{name}' is too large ({size} MB): a form definition file has at most {max} MB.",
    },
    "designer.upload_format": {
        "zh": "无法识别文件「{name}」。请上传 .yaml、.yml、.json 或 .xlsx（XLSForm）文件。",
        "en": "The file '{name}' is not recognised. Upload a .yaml, .yml, .json or .xlsx (XLSForm) file.",
    },
    "designer.upload_unreadable": {
        "zh": "文件「{name}」无法读取，没有导入任何内容。请按下面的提示修改文件后重新上传。",
        "en": "The file '{name}' cannot be read; nothing was imported. Fix the file as listed below and upload it again.",
    },
    "designer.field_key_invalid": {
        "zh": "字段标识「{key}」不合格：只能用小写英文字母、数字和下划线，以字母开头，长度 2 到 64 个字符（例如 phone_2）。",
        "en": "The field key '{key}' is not valid: lowercase letters, digits and underscores only, starting with a "
              "letter, 2 to 64 characters (e.g. phone_2).",
    },
    "designer.field_exists": {
        "zh": "字段标识「{key}」已经用过（包括已停用的字段）。标识不能重复使用：请换一个新的标识，或恢复已停用的字段。",
        "en": "The field key '{key}' is already used (retired fields included). Keys are never reused: choose a "
              "new key, or restore the retired field.",
    },
    "designer.field_unknown": {"zh": "没有字段「{key}」。", "en": "There is no field '{key}'."},
    "designer.field_type_unknown": {
        "zh": "请选择字段类型。可用的类型有：{known}。", "en": "Choose a field type. Available types: {known}.",
    },
    "designer.choice_exists": {
        "zh": "选项值「{value}」已经存在（可能是停用的选项）。请换一个值，或在选项表中重新启用它。",
        "en": "The option value '{value}' already exists (perhaps as an inactive option). Use another value, or "
              "reactivate it in the options table.",
    },
    "designer.choice_empty": {"zh": "请填写选项的值或名称。", "en": "Enter the option's value or label."},
    "designer.not_choice_field": {
        "zh": "字段「{key}」不是自带选项的选择题字段。", "en": "Field '{key}' is not a choice field with its own options.",
    },
    "designer.condition_incomplete": {
        "zh": "条件不完整：请选择字段、比较方式，并填写要比较的值。",
        "en": "The condition is incomplete: pick a field and a comparison, and give the value to compare with.",
    },
    "designer.nothing_to_publish": {
        "zh": "草稿与已发布的版本相同，没有需要发布的修改。", "en": "The draft equals the published version: nothing to publish.",
    },
    # condition words (describe_condition)
    "cond.equals": {"zh": "等于", "en": "is"},
    "cond.not_equals": {"zh": "不等于", "en": "is not"},
    "cond.in": {"zh": "是以下之一", "en": "is one of"},
    "cond.not_in": {"zh": "不是以下任何一个", "en": "is none of"},
    "cond.not_empty": {"zh": "已填写", "en": "is filled in"},
    "cond.empty": {"zh": "未填写", "en": "is empty"},
    "cond.gt": {"zh": "大于", "en": "is greater than"},
    "cond.lt": {"zh": "小于", "en": "is less than"},
    "cond.gte": {"zh": "大于或等于", "en": "is at least"},
    "cond.lte": {"zh": "小于或等于", "en": "is at most"},
    "cond.contains": {"zh": "包含", "en": "includes"},
    "cond.and": {"zh": " 并且 ", "en": " and "},
    "cond.or": {"zh": " 或者 ", "en": " or "},
    "cond.not": {"zh": "并非（{inner}）", "en": "not ({inner})"},
    "cond.list_sep": {"zh": "、", "en": ", "},
    "cond.yes": {"zh": "是", "en": "yes"},
    "cond.no": {"zh": "否", "en": "no"},
    "cond.always": {"zh": "总是显示", "en": "always shown"},
})


# =====================================================================================================
# Small helpers
# =====================================================================================================
def _require(actor: Actor) -> None:
    if not actor.can("forms.design"):
        raise PermissionDenied("designer.forbidden")


def _url(engine: Engine) -> str:
    return url_key(engine)


def plain(value: Any) -> Any:
    """A JSON-safe copy with Python natives only (numpy / pandas scalars from the grid unwrapped)."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return None if math.isnan(value) else float(value)
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, date | time):
        return value.isoformat()
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        try:
            return plain(item())
        except (TypeError, ValueError):
            pass
    if _is_na(value):
        return None
    return str(value)


def _is_na(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    try:
        import pandas as pd

        result = pd.isna(value)
        return bool(result) if isinstance(result, bool) or getattr(result, "shape", None) == () else False
    except (ImportError, TypeError, ValueError):
        return False


def _txt(value: Any) -> str:
    if _is_na(value):
        return ""
    return str(plain(value)).strip()


def _flag(value: Any) -> bool:
    if _is_na(value):
        return False
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "y", "是", "√")
    return bool(plain(value))


def _num(value: Any) -> Any:
    """A number cell: None when empty, float when it reads as a number, else the text (checked later)."""
    if _is_na(value):
        return None
    value = plain(value)
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        return text


def _put(target: dict[str, Any], name: str, value: Any) -> None:
    """Set an attribute, or drop it when it holds its default (nothing, false, empty)."""
    if value is None or value is False or value == "" or value == {} or value == []:
        target.pop(name, None)
    else:
        target[name] = value


def _spec_dict(spec: FormSpec | Mapping[str, Any] | None) -> dict[str, Any]:
    if spec is None:
        return {}
    if isinstance(spec, FormSpec):
        return spec.to_dict()
    return copy.deepcopy(dict(spec))


def _norm_item(item: Any, name: str) -> Any:
    """Options / items written as plain text mean value (key) = label = text."""
    if isinstance(item, str | int | float) and not isinstance(item, bool):
        text = str(item)
        return {name: text, "label": {"zh": text}}
    if isinstance(item, Mapping):
        out = dict(item)
        if "label" in out:
            out["label"] = as_ltext(out["label"])
        return out
    return item


def field_dicts(spec: FormSpec | Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The fields of a spec or draft as dicts (labels as {zh, en}; shorthand options expanded)."""
    out: list[dict[str, Any]] = []
    for raw in _spec_dict(spec).get("fields") or []:
        if not isinstance(raw, Mapping):
            continue
        f = dict(raw)
        for name in ("label", "help", "pattern_message"):
            if name in f:
                f[name] = as_ltext(f[name])
        if isinstance(f.get("choices"), list):
            f["choices"] = [_norm_item(c, "value") for c in f["choices"]]
        if isinstance(f.get("items"), list):
            f["items"] = [_norm_item(c, "key") for c in f["items"]]
        out.append(f)
    return out


def _field_spec(f: Mapping[str, Any]) -> FieldSpec | None:
    try:
        return FieldSpec.model_validate(dict(f))
    except Exception:  # an unfinished field in a draft: callers fall back to plain text
        return None


# =====================================================================================================
# Choices as one cell: "value=标签/label; ..." or "@list_name"
# =====================================================================================================
_SPECIAL = {"\\", ";", "；", "=", "/"}


def _esc(text: str) -> str:
    return "".join("\\" + ch if ch in _SPECIAL else ch for ch in text)


def _split(text: str, seps: str, limit: int = -1) -> list[str]:
    """Split on unescaped separator characters (escapes are kept for the next level)."""
    parts: list[str] = []
    buf: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            buf.append(text[i: i + 2])
            i += 2
            continue
        if ch in seps and (limit < 0 or len(parts) < limit):
            parts.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
        i += 1
    parts.append("".join(buf))
    return parts


def _unesc(text: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _choice_text(c: Mapping[str, Any]) -> str:
    value = str(c.get("value", ""))
    label = as_ltext(c.get("label"))
    if label == {"zh": value}:
        return _esc(value)
    zh, en = label.get("zh", ""), label.get("en", "")
    return f"{_esc(value)}={_esc(zh)}" + (f"/{_esc(en)}" if en else "")


def choices_text(f: Mapping[str, Any]) -> str:
    """The choices cell of a field: its reference list as ``@name``, else its *active* options; for a
    checklist, its items (``key=标签/label; ...``)."""
    if f.get("choice_list"):
        return "@" + str(f["choice_list"])
    if f.get("type") == "checklist":
        items = [_norm_item(c, "key") for c in f.get("items") or []]
        return "; ".join(_choice_text({"value": c.get("key", ""), "label": c.get("label")})
                         for c in items if isinstance(c, Mapping))
    items = [_norm_item(c, "value") for c in f.get("choices") or []]
    return "; ".join(_choice_text(c) for c in items if isinstance(c, Mapping) and c.get("active", True))


def parse_choices(text: str) -> tuple[str | None, list[dict[str, Any]]]:
    """``"@courts"`` -> ("courts", []); ``"a=甲/A; b=乙"`` -> (None, [{value, label}, ...])."""
    text = (text or "").strip()
    if text.startswith("@"):
        return text[1:].strip(), []
    out: list[dict[str, Any]] = []
    for part in _split(text.replace("\n", ";"), ";；"):
        if not part.strip():
            continue
        pieces = _split(part, "=", limit=1)
        if len(pieces) == 1:
            value = _unesc(pieces[0]).strip()
            out.append({"value": value, "label": {"zh": value}})
            continue
        value = _unesc(pieces[0]).strip()
        names = _split(pieces[1], "/", limit=1)
        zh = _unesc(names[0]).strip()
        en = _unesc(names[1]).strip() if len(names) > 1 else ""
        if not value:
            value = zh or en
        label = {k: v for k, v in (("zh", zh), ("en", en)) if v}
        out.append({"value": value, "label": label})
    return None, out


def _merge_choices(old: list[Any], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The typed options, plus the old *inactive* options (kept for stored answers, at their place)."""
    old_items = [_norm_item(c, "value") for c in old or [] if isinstance(_norm_item(c, "value"), Mapping)]
    typed = {c["value"] for c in new}
    merged = [dict(c) for c in new]
    anchor: str | None = None
    for c in old_items:
        if c.get("value") not in typed and not c.get("active", True):
            at = 0 if anchor is None else next(
                (i + 1 for i, m in enumerate(merged) if m.get("value") == anchor), len(merged))
            merged.insert(at, dict(c))
        anchor = c.get("value")
    return merged


# =====================================================================================================
# Default values as one cell
# =====================================================================================================
def _default_text(f: Mapping[str, Any]) -> str:
    value = f.get("default")
    if value is None:
        return ""
    fs = _field_spec(f)
    ftype = REGISTRY.get(str(f.get("type")))
    if fs is not None and ftype is not None and ftype.stores_value:
        try:
            return ftype.export(value, fs)
        except Exception:
            pass
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _default_value(text: str, f: Mapping[str, Any]) -> Any:
    """A typed default from its cell text (the field type's own parse + coerce); the text itself when it
    does not read (the checker then reports spec.default_invalid beside the row)."""
    if not text:
        return None
    probe = {k: v for k, v in f.items() if k != "default"}
    fs = _field_spec(probe)
    ftype = REGISTRY.get(str(f.get("type")))
    if fs is None or ftype is None or not ftype.stores_value:
        return text
    try:
        raw = ftype.parse_cell(text, fs, None)
        clean = ftype.coerce(raw, fs, None)
    except (FieldProblem, ValueError, TypeError):
        return text
    return text if clean is None else clean


# =====================================================================================================
# The grid
# =====================================================================================================
def _problem_text(problems: Iterable[Problem], lang: str) -> str:
    return " | ".join(f"[{p.code}] {p.message(lang)}" for p in problems)


def fields_to_rows(spec: FormSpec | Mapping[str, Any], lang: str = "zh",
                   problems: Mapping[str | None, list[Problem]] | None = None) -> list[dict[str, Any]]:
    """One grid row per field (columns `GRID_COLUMNS` plus a read-only "problems" text)."""
    rows: list[dict[str, Any]] = []
    for i, f in enumerate(field_dicts(spec), start=1):
        label, help_ = as_ltext(f.get("label")), as_ltext(f.get("help"))
        key = str(f.get("key") or "")
        rows.append({
            "key": key,
            "type": str(f.get("type") or ""),
            "label_zh": label.get("zh", ""),
            "label_en": label.get("en", ""),
            "required": bool(f.get("required", False)),
            "choices": choices_text(f),
            "help_zh": help_.get("zh", ""),
            "help_en": help_.get("en", ""),
            "default": _default_text(f),
            "min": f.get("min"),
            "max": f.get("max"),
            "pattern": str(f.get("pattern") or ""),
            "sensitive": bool(f.get("sensitive", False)),
            "section": str(f.get("section") or ""),
            "retired": bool(f.get("retired", False)),
            "order": i,
            "problems": _problem_text((problems or {}).get(key or f"#{i}", []), lang),
        })
    return rows


def _row_order(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    def key(item: tuple[int, Mapping[str, Any]]) -> tuple[float, int]:
        n = _num(item[1].get("order"))
        return (n if isinstance(n, float) else math.inf, item[0])

    return [r for _, r in sorted(enumerate(rows), key=key)]


def _blank_row(row: Mapping[str, Any]) -> bool:
    return not any(_txt(row.get(c)) for c in ("key", "type", "label_zh", "label_en", "choices"))


def _row_field(row: Mapping[str, Any], old: Mapping[str, Any] | None) -> dict[str, Any]:
    f: dict[str, Any] = copy.deepcopy(dict(old)) if old else {}
    old = old or {}
    before = fields_to_rows({"fields": [old]})[0] if old else {}
    key, ftype = _txt(row.get("key")), _txt(row.get("type"))
    f["key"] = key
    f["type"] = ftype
    if old and ftype != old.get("type") and ftype in REGISTRY:
        # A new type: settings the grid does not show and the new type cannot use are dropped
        # (a published field keeps its type anyway: plan_publish refuses the change).
        allowed = REGISTRY[ftype].allowed_attrs
        shown = {"label", "help", "required", "choices", "choice_list", "default", "min", "max", "pattern",
                 "sensitive", "section", "retired", "key", "type"}
        for name in [n for n in f if n not in shown and n not in allowed]:
            del f[name]
    for name, zh_col, en_col in (("label", "label_zh", "label_en"), ("help", "help_zh", "help_en")):
        lt = dict(as_ltext(old.get(name)))
        for lang, column in (("zh", zh_col), ("en", en_col)):
            text = _txt(row.get(column))
            if text:
                lt[lang] = text
            else:
                lt.pop(lang, None)
        _put(f, name, lt)
    _put(f, "required", _flag(row.get("required")))
    _put(f, "sensitive", _flag(row.get("sensitive")))
    _put(f, "section", _txt(row.get("section")) or None)
    _put(f, "pattern", _txt(row.get("pattern")) or None)
    for name in ("min", "max"):
        value = _num(row.get(name))
        if old and value == _num(old.get(name)):
            value = old.get(name)
        _put(f, name, value)
    text = _txt(row.get("choices"))
    if not old or text != before.get("choices") or ftype != old.get("type"):
        lst, items = parse_choices(text)
        f.pop("choices", None)
        f.pop("choice_list", None)
        if ftype == "checklist" and not lst:
            groups = {str(i.get("key")): i.get("group") for i in (_norm_item(x, "key") for x in old.get("items") or [])
                      if isinstance(i, Mapping) and i.get("group")}
            _put(f, "items", [{"key": c["value"], "label": c["label"],
                               **({"group": groups[c["value"]]} if c["value"] in groups else {})} for c in items])
        elif lst:
            f["choice_list"] = lst
        elif items:
            f["choices"] = _merge_choices(old.get("choices") or [], items) if not old.get("choice_list") else items
    text = _txt(row.get("default"))
    if not old or text != before.get("default") or ftype != old.get("type"):
        _put(f, "default", _default_value(text, f))
    f["retired"] = bool(old.get("retired", False))
    _put(f, "retired", f["retired"])
    return f


def rows_to_fields(rows: Sequence[Mapping[str, Any]], old_spec: FormSpec | Mapping[str, Any] | None, *,
                   keep: Iterable[str] = ()) -> list[dict[str, Any]]:
    """Field dicts from grid rows (sorted by their "order" cell), keeping by key every setting of the
    old draft that the grid does not show. Rows left blank are ignored. A field of `keep` (the keys
    of the published version) whose row was deleted is carried as retired at its old place: deleting
    a row never loses a field that records may hold."""
    old_fields = field_dicts(old_spec)
    old_by = {}
    for f in old_fields:
        old_by.setdefault(str(f.get("key")), f)
    out: list[dict[str, Any]] = []
    used: set[str] = set()
    for row in _row_order(rows):
        if _blank_row(row):
            continue
        key = _txt(row.get("key"))
        old = old_by.get(key) if key and key not in used else None
        used.add(key)
        out.append(_row_field(row, old))
    keep = set(keep)
    anchor: str | None = None
    for f in old_fields:
        k = str(f.get("key"))
        if k not in used and k in keep:
            carried = copy.deepcopy(f)
            carried["retired"] = True
            at = 0 if anchor is None else next((i + 1 for i, g in enumerate(out) if g.get("key") == anchor), len(out))
            out.insert(at, carried)
            used.add(k)
        if k in used:
            anchor = k
    return out


# =====================================================================================================
# Editing helpers on a draft dict (pure: they return a new draft)
# =====================================================================================================
def _with_fields(draft: Mapping[str, Any], fields: list[dict[str, Any]]) -> dict[str, Any]:
    out = copy.deepcopy(dict(draft))
    out["fields"] = fields
    return out


def _index(fields: list[dict[str, Any]], key: str) -> int:
    for i, f in enumerate(fields):
        if f.get("key") == key:
            return i
    raise EngineError("designer.field_unknown", key=key)


def add_field(draft: Mapping[str, Any], *, key: str, type: str, label_zh: str = "", label_en: str = "",
              choices: str = "", required: bool = False, section: str | None = None,
              after: str | None = None) -> dict[str, Any]:
    """A new draft with one more field (after `after`, else at the end). The key must be new: keys are
    never reused, retired ones included."""
    key = (key or "").strip()
    if not KEY_RE.match(key):
        raise EngineError("designer.field_key_invalid", key=key)
    if type not in REGISTRY:
        raise EngineError("designer.field_type_unknown", known=", ".join(REGISTRY))
    fields = field_dicts(draft)
    if any(f.get("key") == key for f in fields):
        raise EngineError("designer.field_exists", key=key)
    f: dict[str, Any] = {"key": key, "type": type}
    _put(f, "label", {k: v.strip() for k, v in (("zh", label_zh), ("en", label_en)) if v and v.strip()})
    _put(f, "required", bool(required) and REGISTRY[type].stores_value)
    _put(f, "section", section or None)
    lst, items = parse_choices(choices)
    if lst:
        f["choice_list"] = lst
    elif items:
        f["choices" if type != "checklist" else "items"] = (
            items if type != "checklist" else [{"key": c["value"], "label": c["label"]} for c in items])
    at = len(fields) if after is None else _index(fields, after) + 1
    fields.insert(at, f)
    return _with_fields(draft, fields)


def update_field(draft: Mapping[str, Any], key: str, changes: Mapping[str, Any]) -> dict[str, Any]:
    """A new draft with some settings of one field changed (None / empty removes a setting)."""
    fields = field_dicts(draft)
    i = _index(fields, key)
    f = fields[i]
    for name, value in changes.items():
        if name == "key":
            continue
        _put(f, name, plain(value))
    return _with_fields(draft, fields)


def move_field(draft: Mapping[str, Any], key: str, delta: int) -> dict[str, Any]:
    fields = field_dicts(draft)
    i = _index(fields, key)
    j = max(0, min(len(fields) - 1, i + delta))
    fields.insert(j, fields.pop(i))
    return _with_fields(draft, fields)


def remove_field(draft: Mapping[str, Any], key: str, published: Iterable[str] = ()) -> dict[str, Any]:
    """Remove a field: one that was published is retired (its answers stay readable); one that only
    the draft has is deleted."""
    fields = field_dicts(draft)
    i = _index(fields, key)
    if key in set(published):
        fields[i]["retired"] = True
    else:
        fields.pop(i)
    return _with_fields(draft, fields)


def restore_field(draft: Mapping[str, Any], key: str) -> dict[str, Any]:
    fields = field_dicts(draft)
    fields[_index(fields, key)].pop("retired", None)
    return _with_fields(draft, fields)


def add_choice(draft: Mapping[str, Any], key: str, value: str, label_zh: str = "",
               label_en: str = "") -> dict[str, Any]:
    """One more option for a select / multiselect with its own options (a value is never reused)."""
    fields = field_dicts(draft)
    f = fields[_index(fields, key)]
    if f.get("choice_list") or f.get("type") not in _CHOICE_TYPES:
        raise EngineError("designer.not_choice_field", key=key)
    value = (value or "").strip() or (label_zh or "").strip() or (label_en or "").strip()
    if not value:
        raise EngineError("designer.choice_empty")
    choices = list(f.get("choices") or [])
    if any(isinstance(c, Mapping) and c.get("value") == value for c in choices):
        raise EngineError("designer.choice_exists", value=value)
    label = {k: v.strip() for k, v in (("zh", label_zh), ("en", label_en)) if v and v.strip()} or {"zh": value}
    choices.append({"value": value, "label": label})
    f["choices"] = choices
    return _with_fields(draft, fields)


# =====================================================================================================
# Conditions
# =====================================================================================================
def ops_for(f: FieldSpec | Mapping[str, Any] | None) -> tuple[str, ...]:
    """The comparisons that make sense for a controlling field's type."""
    ftype = (f.type if isinstance(f, FieldSpec) else (f or {}).get("type")) if f is not None else None
    if ftype == "multiselect":
        return ("contains", "not_empty", "empty")
    if ftype in ("select", "reference", "user"):
        return ("equals", "not_equals", "in", "not_in", "not_empty", "empty")
    if ftype == "boolean":
        return ("equals", "not_empty", "empty")
    if ftype in _ORDERED_TYPES:
        return ("equals", "not_equals", "gt", "gte", "lt", "lte", "not_empty", "empty")
    return ("equals", "not_equals", "not_empty", "empty")


def condition_from_parts(field_key: str, op: str, value: Any = None) -> dict[str, Any]:
    """One leaf ``{field, op, value}``; refused (designer.condition_incomplete) when a part is missing."""
    if not field_key or op not in OPS:
        raise EngineError("designer.condition_incomplete")
    if op in NO_VALUE_OPS:
        return {"field": field_key, "op": op}
    value = plain(value)
    if op in LIST_OPS:
        value = [v for v in (value if isinstance(value, list) else [value]) if not is_empty(v)]
    if is_empty(value):
        raise EngineError("designer.condition_incomplete")
    return {"field": field_key, "op": op, "value": value}


def combine(conditions: Sequence[Mapping[str, Any]], mode: str = "all") -> dict[str, Any] | None:
    """All (and) / any (or) of some conditions; one condition is itself; none is no condition."""
    parts = [dict(c) for c in conditions if c]
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0]
    return {"any" if mode == "any" else "all": parts}


def split_condition(cond: Mapping[str, Any] | Condition | None) -> tuple[str, list[dict[str, Any]]] | None:
    """(mode, leaves) of a condition the builder can edit (one leaf, or all / any of leaves); None for
    other shapes (nested groups, not) — those can only be replaced or removed."""
    if cond is None:
        return ("all", [])
    data = cond.model_dump(by_alias=True, exclude_none=True) if isinstance(cond, Condition) else dict(cond)
    if "field" in data:
        return ("all", [data])
    for mode in ("all", "any"):
        leaves = data.get(mode)
        if isinstance(leaves, list) and len(data) == 1 and all(
                isinstance(c, Mapping) and "field" in c and not ({"all", "any", "not"} & set(c)) for c in leaves):
            return (mode, [dict(c) for c in leaves])
    return None


def _value_words(value: Any, f: Mapping[str, Any] | None, lang: str, lists: Mapping[str, Any]) -> str:
    if isinstance(value, list):
        return render("cond.list_sep", lang).join(_value_words(v, f, lang, lists) for v in value)
    if isinstance(value, bool):
        return render("cond.yes" if value else "cond.no", lang)
    choices: list[Any] = []
    if f is not None:
        choices = list(f.get("choices") or []) or list(lists.get(str(f.get("choice_list") or ""), []))
    for c in choices:
        c = c.model_dump() if hasattr(c, "model_dump") else _norm_item(c, "value")
        if isinstance(c, Mapping) and str(c.get("value")) == str(value):
            return f"「{ltext(as_ltext(c.get('label')), lang) or value}」" if lang == "zh" else \
                f"'{ltext(as_ltext(c.get('label')), lang) or value}'"
    return f"「{value}」" if lang == "zh" else f"'{value}'"


def describe_condition(cond: Mapping[str, Any] | Condition | None, spec: FormSpec | Mapping[str, Any] | None,
                       lang: str = "zh", lists: Mapping[str, Any] | None = None) -> str:
    """A condition in words, with field and option labels: 「案件类别」等于「民事」 并且 ..."""
    if cond is None:
        return render("cond.always", lang)
    data = cond.model_dump(by_alias=True, exclude_none=True) if isinstance(cond, Condition) else dict(cond)
    by_key = {str(f.get("key")): f for f in field_dicts(spec)}
    lists = lists or {}

    def words(c: Mapping[str, Any]) -> str:
        if "all" in c or "any" in c:
            mode = "all" if "all" in c else "any"
            parts = [words(x) for x in c.get(mode) or [] if isinstance(x, Mapping)]
            joined = render("cond.and" if mode == "all" else "cond.or", lang).join(parts)
            return joined if len(parts) <= 1 else f"（{joined}）" if lang == "zh" else f"({joined})"
        if "not" in c and isinstance(c["not"], Mapping):
            return render("cond.not", lang, inner=words(c["not"]))
        key = str(c.get("field") or "?")
        f = by_key.get(key)
        name = ltext(as_ltext(f.get("label")), lang) if f else ""
        name = name or key
        head = f"「{name}」" if lang == "zh" else f"'{name}'"
        op = str(c.get("op") or "")
        if op in NO_VALUE_OPS:
            return f"{head}{'' if lang == 'zh' else ' '}{render('cond.' + op, lang)}"
        sep = "" if lang == "zh" else " "
        return f"{head}{sep}{render('cond.' + op, lang)}{sep}{_value_words(c.get('value'), f, lang, lists)}"

    text = words(data)
    if text.startswith(("（", "(")) and text.endswith(("）", ")")) and not text.startswith(("并非", "not")):
        text = text[1:-1]
    return text


# =====================================================================================================
# Drafts
# =====================================================================================================
@dataclass(frozen=True)
class DraftInfo:
    slug: str
    draft: dict[str, Any]  # the draft, or the published spec when there is no draft
    has_draft: bool
    version: int  # the published version (0: never published)
    updated_by: str | None
    updated_at: datetime | None
    token: str  # pass back to save_draft: a save over someone else's newer change is refused

    @property
    def published(self) -> bool:
        return self.version > 0


@dataclass(frozen=True)
class FormEntry:
    """A form the designer can open: published ones and drafts of new forms."""

    slug: str
    title: dict[str, str]
    version: int
    has_draft: bool
    archived: bool = False

    def label(self, lang: str = "zh") -> str:
        return ltext(self.title, lang) or self.slug


def _token(form: Form) -> str:
    at = form.draft_updated_at.isoformat() if form.draft_updated_at else ""
    return f"{form.current_version}|{at}|{form.draft_updated_by or ''}"


def _published_dict(engine: Engine, slug: str, version: int) -> dict[str, Any] | None:
    if version < 1:
        return None
    return forms.get_spec(engine, slug, version).to_dict()


def list_designable(engine: Engine) -> list[FormEntry]:
    """Every form (archived included) with its version and whether it has a draft."""
    with session_scope(engine, write=False) as session:
        rows = session.exec(select(Form.slug, Form.title, Form.current_version, Form.draft_spec, Form.archived)
                            .order_by(Form.category, Form.slug)).all()
    return [FormEntry(slug, dict(title or {}), int(version), draft is not None, bool(archived))
            for slug, title, version, draft, archived in rows]


def draft_info(engine: Engine, slug: str) -> DraftInfo:
    """The form's draft (or, without one, its published spec) and who last changed it."""
    with session_scope(engine, write=False) as session:
        form = session.exec(select(Form).where(Form.slug == slug)).first()
        if form is None:
            raise NotFound("form.not_found", form=slug)
    return _info_from(engine, form)


def get_draft(engine: Engine, slug: str) -> dict[str, Any]:
    """The draft of form `slug`; the current published spec when there is no draft."""
    return draft_info(engine, slug).draft


def published_keys(engine: Engine, slug: str) -> set[str]:
    """Field keys of the published version (records may hold them: they are retired, never deleted)."""
    try:
        return {f.key for f in forms.get_spec(engine, slug).fields}
    except NotFound:
        return set()


def _form_for_update(session: Any, slug: str) -> Form:
    form = session.exec(select(Form).where(Form.slug == slug).with_for_update()).first()
    if form is None:
        raise NotFound("form.not_found", form=slug)
    return form


def _draft_summary(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> dict[str, Any]:
    """What a draft save changed: top-level settings and field keys (compact, for the audit log)."""
    before, after = dict(before or {}), dict(after or {})
    top = sorted(k for k in set(before) | set(after) if k != "fields" and before.get(k) != after.get(k))
    old_f = {str(f.get("key")): f for f in field_dicts(before)}
    new_f = {str(f.get("key")): f for f in field_dicts(after)}
    out: dict[str, Any] = {}
    if top:
        out["settings"] = top
    for name, keys in (
        ("fields_added", [k for k in new_f if k not in old_f]),
        ("fields_removed", [k for k in old_f if k not in new_f]),
        ("fields_changed", [k for k in new_f if k in old_f and old_f[k] != new_f[k]]),
    ):
        if keys:
            out[name] = keys[:100]
    if [k for k in old_f if k in new_f] != [k for k in new_f if k in old_f]:
        out["reordered"] = True
    return out


def save_draft(engine: Engine, slug: str, draft: Mapping[str, Any], *, actor: Actor,
               token: str | None = None) -> DraftInfo:
    """Store `draft` as the form's draft (problems are allowed: they are shown, not refused).

    The slug is the form's own and cannot change. With `token` (from DraftInfo), a save over a change
    made meanwhile by someone else is refused (ConflictError). A draft equal to the published version
    is simply no draft."""
    _require(actor)
    data = plain(dict(draft))
    data["slug"] = slug
    with session_scope(engine) as session:
        form = _form_for_update(session, slug)
        if token is not None and token != _token(form):
            at = form.draft_updated_at.strftime("%Y-%m-%d %H:%M") if form.draft_updated_at else "?"
            raise ConflictError("designer.draft_conflict", by=form.draft_updated_by or "?", at=at)
        published = _published_dict(engine, slug, form.current_version)
        before = form.draft_spec if form.draft_spec is not None else published
        if published is not None and data == published:
            data = None
        if data == form.draft_spec:
            return _info_from(engine, form)
        form.draft_spec = data
        form.draft_updated_by = actor.username[:64]
        form.draft_updated_at = utcnow()
        if form.current_version < 1 and data is not None and isinstance(data.get("title"), dict | str):
            form.title = dict(as_ltext(data.get("title"))) or form.title
        session.add(form)
        audit.record(session, actor, "update", "form_draft", slug, form_slug=slug,
                     detail={"reverted": data is None, **_draft_summary(before, data if data is not None else published)})
    return draft_info(engine, slug)


def _info_from(engine: Engine, form: Form) -> DraftInfo:
    draft = form.draft_spec
    has = draft is not None
    if draft is None:
        draft = _published_dict(engine, form.slug, form.current_version) or {"slug": form.slug,
                                                                            "title": dict(form.title or {})}
    return DraftInfo(form.slug, copy.deepcopy(dict(draft)), has, int(form.current_version), form.draft_updated_by,
                     form.draft_updated_at, _token(form))


def discard_draft(engine: Engine, slug: str, *, actor: Actor) -> bool:
    """Throw the draft away. A form that was never published goes with it (nothing can refer to it).
    Returns whether the form itself was removed."""
    _require(actor)
    with session_scope(engine) as session:
        form = _form_for_update(session, slug)
        if form.current_version < 1:
            count = session.exec(select(func.count()).select_from(FormVersion)
                                 .where(FormVersion.form_id == form.id)).one()
            if int(count) == 0:
                audit.record(session, actor, "delete", "form_draft", slug, form_slug=slug,
                             detail={"new_form": True, "fields": len(field_dicts(form.draft_spec))})
                session.delete(form)
                return True
        if form.draft_spec is None:
            return False
        audit.record(session, actor, "delete", "form_draft", slug, form_slug=slug,
                     detail={"fields": len(field_dicts(form.draft_spec))})
        form.draft_spec = None
        form.draft_updated_by = actor.username[:64]
        form.draft_updated_at = utcnow()
        session.add(form)
    return False


# --- templates and new forms -------------------------------------------------------------------------
def templates(forms_dir: Path | None = None) -> list[tuple[str, dict[str, str]]]:
    """(name, title) of the built-in templates in data/forms."""
    out = []
    for path in sorted(Path(forms_dir or FORMS_DIR).glob("*.yaml")):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(data, dict):
            out.append((path.stem, dict(as_ltext(data.get("title"))) or {"zh": path.stem}))
    return out


def template_data(name: str, forms_dir: Path | None = None) -> dict[str, Any]:
    base = Path(forms_dir or FORMS_DIR)
    path = base / f"{name}.yaml"
    if "/" in name or "\\" in name or not path.is_file():
        raise NotFound("designer.template_unknown", name=name)
    data, _lines, problems = load_source(path)
    if not isinstance(data, dict):
        raise SpecError("spec.invalid", problems=problems, form=name, count=len(problems))
    return data


def _fresh_copy(data: Mapping[str, Any], slug: str, title: Mapping[str, str]) -> dict[str, Any]:
    """A source spec as the first draft of a new form: new slug and title, no retired fields and no
    inactive options (a new form has no records to keep them for)."""
    spec, _problems = check_spec(dict(data))
    out = spec.to_dict() if spec is not None else copy.deepcopy(dict(data))
    fields = [f for f in field_dicts(out) if not f.get("retired")]
    gone = {str(f.get("key")) for f in field_dicts(out)} - {str(f.get("key")) for f in fields}
    for f in fields:
        if isinstance(f.get("choices"), list):
            f["choices"] = [c for c in f["choices"] if not (isinstance(c, Mapping) and c.get("active") is False)]
    out["fields"] = fields
    for name in ("list_columns", "summary"):
        if isinstance(out.get(name), list):
            out[name] = [k for k in out[name] if k not in gone]
            if not out[name]:
                out.pop(name)
    for name in ("title_field", "date_field"):
        if out.get(name) in gone:
            out.pop(name)
    out["slug"] = slug
    out["title"] = dict(title)
    return out


def new_form_draft(engine: Engine, slug: str, title: Mapping[str, str] | str, *, actor: Actor,
                   from_template: str | None = None, copy_of: str | None = None,
                   source: Mapping[str, Any] | None = None) -> DraftInfo:
    """A new form, not yet published: from scratch, a built-in template, a copy of another form (its
    draft if it has one, else its published version), or an imported source (YAML / JSON / XLSForm)."""
    _require(actor)
    slug = (slug or "").strip()
    if not KEY_RE.match(slug):
        raise EngineError("designer.slug_invalid", slug=slug)
    title_l = dict(as_ltext(title))
    if not title_l.get("zh"):
        raise EngineError("designer.title_missing")
    if from_template:
        data = _fresh_copy(template_data(from_template), slug, title_l)
        origin: dict[str, Any] = {"template": from_template}
    elif copy_of:
        data = _fresh_copy(get_draft(engine, copy_of), slug, title_l)
        origin = {"copy_of": copy_of}
    elif source is not None:
        data = _fresh_copy(source, slug, title_l)
        origin = {"imported": True}
    else:
        data = {"slug": slug, "title": title_l, "fields": []}
        origin = {}
    data = plain(data)
    with session_scope(engine) as session:
        if session.exec(select(Form.id).where(Form.slug == slug)).first() is not None:
            raise EngineError("designer.slug_taken", slug=slug)
        form = Form(slug=slug, title=title_l, category=str(data.get("category") or "general"), current_version=0,
                    draft_spec=data, draft_updated_by=actor.username[:64], draft_updated_at=utcnow())
        session.add(form)
        session.flush()
        audit.record(session, actor, "create", "form_draft", slug, form_slug=slug,
                     detail={**origin, "fields": len(data.get("fields") or [])})
    return draft_info(engine, slug)


MAX_SPEC_BYTES = 2 * 1024 * 1024  # a YAML / JSON form definition (XLSForm workbooks: engine.xlsform.MAX_BYTES)


def import_source(data: bytes, filename: str, *, slug: str | None = None) -> tuple[dict[str, Any] | None,
                                                                                 list[Problem]]:
    """Read an uploaded form: YAML / JSON (kept as a draft even with spec problems, which the designer
    shows) or an XLSForm workbook (refused row by row: nothing is half-imported)."""
    suffix = Path(filename or "").suffix.lower()
    if suffix == ".xlsx":
        from engine.xlsform import import_xlsform

        spec, problems, _warnings = import_xlsform(data, slug=slug)
        if spec is None or problems:
            return None, problems
        return spec.to_dict(), []
    if suffix not in (".yaml", ".yml", ".json"):
        return None, [Problem("designer.upload_format", {"name": filename})]
    if len(data) > MAX_SPEC_BYTES:  # YAML is parsed in pure Python: a huge file would tie up the server
        return None, [Problem("designer.upload_too_large", {"name": filename, "size": f"{len(data) / 1048576:.1f}",
                                                            "max": MAX_SPEC_BYTES // 1048576})]
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None, [Problem("spec.file_unreadable", {"path": filename})]
    loaded, _lines, problems = load_source(text, "json" if suffix == ".json" else "yaml")
    if not isinstance(loaded, dict):
        return None, problems or [Problem("spec.not_mapping", {"got": type(loaded).__name__})]
    if slug:
        loaded["slug"] = slug
    spec, _found = check_spec(loaded)
    return (spec.to_dict() if spec is not None else loaded), []


# =====================================================================================================
# Checking and impact
# =====================================================================================================
def _known(engine: Engine, slug: str | None) -> tuple[set[str], set[str]]:
    lists = set(forms.choice_lists(engine))
    with session_scope(engine, write=False) as session:
        slugs = set(session.exec(select(Form.slug)).all())
    if slug:
        slugs.add(slug)
    return lists, slugs


def _current(engine: Engine, slug: str | None) -> FormSpec | None:
    if not slug:
        return None
    try:
        return forms.get_spec(engine, slug)
    except NotFound:
        return None


def check_draft(engine: Engine, draft: Mapping[str, Any]) -> list[Problem]:
    """Every problem of a draft: the spec check (with the known reference lists and forms) and, when
    it checks, the publishing refusals against the current version (coded ``version.*``)."""
    slug = draft.get("slug") if isinstance(draft.get("slug"), str) else None
    lists, known_forms = _known(engine, slug)
    spec, problems = check_spec(dict(draft), known_lists=lists, known_forms=known_forms)
    current = _current(engine, slug)
    if spec is None:
        # the refusals that matter most are said even while the draft has other problems
        return problems + _type_refusals(current, draft)
    plan = plan_publish(current, spec)
    seen = {(p.code, p.field, json.dumps(p.params, sort_keys=True, default=str)) for p in problems}
    for p in plan.problems:
        sig = (p.code, p.field, json.dumps(p.params, sort_keys=True, default=str))
        if sig not in seen:
            seen.add(sig)
            problems.append(p)
    return problems


def _type_refusals(current: FormSpec | None, draft: Mapping[str, Any]) -> list[Problem]:
    """version.type_changed for every published field whose draft type would misread stored answers."""
    from engine.versioning import compatible_type

    out: list[Problem] = []
    if current is None:
        return out
    for f in field_dicts(draft):
        old = current.field(str(f.get("key")))
        new_type = f.get("type")
        if old is None or new_type == old.type or new_type not in REGISTRY:
            continue
        max_length = f.get("max_length") if isinstance(f.get("max_length"), int) else None
        probe = FieldSpec(key=old.key, type=str(new_type), max_length=max_length)
        if not compatible_type(old, probe):
            out.append(Problem("version.type_changed", {"field": old.key, "old_type": old.type,
                                                        "new_type": new_type}, form=current.slug, field=old.key))
    return out


def group_problems(problems: Iterable[Problem], draft: Mapping[str, Any] | None = None) -> dict[str | None,
                                                                                               list[Problem]]:
    """Problems by field key (None: about the whole form). A field without a key is ``#<n>``."""
    out: dict[str | None, list[Problem]] = {}
    for p in problems:
        key = p.field
        if key is None and p.params.get("index") is not None and p.code.startswith("spec.field"):
            key = f"#{p.params['index']}"
        out.setdefault(key, []).append(p)
    return out


@dataclass
class SampleRow:
    key: str
    label: str
    text: str
    status: str  # "" | "retired" | "new"


@dataclass
class SampleRecord:
    id: int
    version: int
    rows: list[SampleRow]


@dataclass
class Impact:
    """What publishing a draft does: the plan's changes and refusals, the records of the form (they keep
    their own versions), and a few of them as they will look under the new version."""

    plan: PublishPlan | None
    changes: list[Change]
    problems: list[Problem]
    affected: int
    samples: list[SampleRecord] = field(default_factory=list)
    unchanged: bool = False

    @property
    def ok(self) -> bool:
        return self.plan is not None and not self.problems


def impact(engine: Engine, slug: str, draft: Mapping[str, Any], *, lang: str = "zh",
           samples: int = SAMPLE_RECORDS) -> Impact:
    """The impact of publishing `draft` as the next version of `slug` (nothing is written)."""
    data = dict(draft)
    data["slug"] = slug
    try:
        plan, count = forms.preview_publish(engine, data)
    except SpecError as exc:
        return Impact(None, [], list(exc.problems) + _type_refusals(_current(engine, slug), data), 0)
    current = _current(engine, slug)
    unchanged = current is not None and plan.spec.to_dict() == current.to_dict()
    out = Impact(plan, list(plan.changes), list(plan.problems), count, unchanged=unchanged)
    if count and samples:
        out.samples = _samples(engine, slug, plan.spec, lang, samples)
    return out


def _samples(engine: Engine, slug: str, spec: FormSpec, lang: str, limit: int) -> list[SampleRecord]:
    with session_scope(engine, write=False) as session:
        form_id = session.exec(select(Form.id).where(Form.slug == slug)).first()
        if form_id is None:
            return []
        rows = session.exec(
            select(Submission.id, Submission.form_version, Submission.data)
            .where(Submission.form_id == form_id, col(Submission.deleted_at).is_(None))
            .order_by(col(Submission.id).desc()).limit(limit)
        ).all()
    lists = forms.choice_lists(engine)
    out: list[SampleRecord] = []
    with display_lists(lists):
        for sub_id, version, data in rows:
            try:
                own = {f.key for f in forms.get_spec(engine, slug, int(version)).fields}
            except NotFound:
                own = set()
            data = dict(data or {})
            items: list[SampleRow] = []
            for f in spec.fields:
                if f.type in ("note", "counter"):
                    continue
                status = "retired" if f.retired else "" if f.key in own else "new"
                value = data.get(f.key)
                text = ""
                if not is_empty(value):
                    try:
                        text = REGISTRY[f.type].display(value, f, lang)
                    except Exception:
                        text = str(value)
                    if f.sensitive:
                        text = mask_value(f, text)
                if f.retired and not text:
                    continue  # a retired field this record never answered: not shown on it
                items.append(SampleRow(f.key, ltext(f.label, lang) or f.key, text, status))
            out.append(SampleRecord(int(sub_id), int(version), items))
    return out


def publish_draft(engine: Engine, slug: str, *, actor: Actor, note: str = "") -> FormVersion:
    """Publish the form's draft as its next version (engine.forms.publish: checked, planned, refused
    when unsafe, audited) and clear the draft. The entry page shows the new version at its next run."""
    _require(actor)
    info = draft_info(engine, slug)
    data = dict(info.draft)
    data["slug"] = slug
    fv = forms.publish(engine, data, actor=actor, note=note)
    with session_scope(engine) as session:
        form = _form_for_update(session, slug)
        if form.draft_spec is not None and _token(form).partition("|")[2] == info.token.partition("|")[2]:
            form.draft_spec = None
            session.add(form)
    return fv


# =====================================================================================================
# Workflow, sections and checklist items as grid rows
# =====================================================================================================
def _lt_cols(value: Any) -> tuple[str, str]:
    lt = as_ltext(value)
    return lt.get("zh", ""), lt.get("en", "")


def _lt_from(row: Mapping[str, Any], old: Any, zh: str = "label_zh", en: str = "label_en") -> dict[str, str]:
    lt = dict(as_ltext(old))
    for lang, column in (("zh", zh), ("en", en)):
        text = _txt(row.get(column))
        if text:
            lt[lang] = text
        else:
            lt.pop(lang, None)
    return lt


def _listed(value: Any) -> list[str]:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.replace("；", ",").replace(";", ",").split(",") if v.strip()]
    try:
        return [str(plain(v)) for v in list(value) if _txt(v)]
    except TypeError:
        return []


def states_to_rows(workflow: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    rows = []
    for s in (workflow or {}).get("states") or []:
        s = _norm_item(s, "key")
        zh, en = _lt_cols(s.get("label"))
        rows.append({"key": str(s.get("key", "")), "label_zh": zh, "label_en": en,
                     "terminal": bool(s.get("terminal", False))})
    return rows


def transitions_to_rows(workflow: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    rows = []
    for tr in (workflow or {}).get("transitions") or []:
        if not isinstance(tr, Mapping):
            continue
        zh, en = _lt_cols(tr.get("label"))
        frm = tr.get("from")
        rows.append({
            "key": str(tr.get("key", "")), "label_zh": zh, "label_en": en,
            "from": [frm] if isinstance(frm, str) else list(frm or []), "to": str(tr.get("to") or ""),
            "roles": list(tr.get("roles") or ["admin", "manager"]), "due_days": tr.get("due_days"),
            "needs_reason": bool(tr.get("needs_reason", False)), "needs_field": str(tr.get("needs_field") or ""),
            "pause": bool(tr.get("pause", False)), "keep_due": bool(tr.get("keep_due", False)),
        })
    return rows


def rows_to_workflow(initial: str, states: Sequence[Mapping[str, Any]], transitions: Sequence[Mapping[str, Any]],
                     old: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A workflow dict from the two grids (settings not shown are kept by key)."""
    old = dict(old or {})
    old_states = {str(s.get("key")): s for s in (_norm_item(x, "key") for x in old.get("states") or [])
                  if isinstance(s, Mapping)}
    old_tr = {str(t.get("key")): t for t in old.get("transitions") or [] if isinstance(t, Mapping)}
    out_states = []
    for row in states:
        key = _txt(row.get("key"))
        if not key and not _txt(row.get("label_zh")):
            continue
        s = dict(old_states.get(key) or {})
        s["key"] = key
        _put(s, "label", _lt_from(row, s.get("label")))
        _put(s, "terminal", _flag(row.get("terminal")))
        out_states.append(s)
    out_tr = []
    for row in transitions:
        key = _txt(row.get("key"))
        if not key and not _txt(row.get("label_zh")):
            continue
        tr = dict(old_tr.get(key) or {})
        tr["key"] = key
        _put(tr, "label", _lt_from(row, tr.get("label")))
        tr["from"] = _listed(row.get("from"))
        tr["to"] = _txt(row.get("to"))
        roles = _listed(row.get("roles"))
        if roles == ["admin", "manager"]:
            tr.pop("roles", None)
        else:
            tr["roles"] = roles
        due = _num(row.get("due_days"))
        _put(tr, "due_days", int(due) if isinstance(due, float) and due.is_integer() else due)
        _put(tr, "needs_reason", _flag(row.get("needs_reason")))
        _put(tr, "needs_field", _txt(row.get("needs_field")) or None)
        _put(tr, "pause", _flag(row.get("pause")))
        _put(tr, "keep_due", _flag(row.get("keep_due")))
        out_tr.append(tr)
    out: dict[str, Any] = {"initial": initial or (out_states[0]["key"] if out_states else ""), "states": out_states}
    if out_tr:
        out["transitions"] = out_tr
    return out


def sections_to_rows(spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for s in spec.get("sections") or []:
        s = _norm_item(s, "key")
        zh, en = _lt_cols(s.get("title"))
        rows.append({"key": str(s.get("key", "")), "title_zh": zh, "title_en": en})
    return rows


def rows_to_sections(rows: Sequence[Mapping[str, Any]], old: Sequence[Any] | None) -> list[dict[str, Any]]:
    old_by = {str(s.get("key")): s for s in (_norm_item(x, "key") for x in old or []) if isinstance(s, Mapping)}
    out = []
    for row in rows:
        key = _txt(row.get("key"))
        if not key and not _txt(row.get("title_zh")):
            continue
        s = dict(old_by.get(key) or {})
        s["key"] = key
        s["title"] = as_ltext(s.get("title"))
        _put(s, "title", _lt_from(row, s.get("title"), "title_zh", "title_en"))
        out.append(s)
    return out


def items_to_rows(f: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for item in f.get("items") or []:
        item = _norm_item(item, "key")
        zh, en = _lt_cols(item.get("label"))
        rows.append({"key": str(item.get("key", "")), "label_zh": zh, "label_en": en,
                     "group": str(item.get("group") or "")})
    return rows


def rows_to_items(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        key = _txt(row.get("key"))
        if not key and not _txt(row.get("label_zh")):
            continue
        item: dict[str, Any] = {"key": key}
        _put(item, "label", _lt_from(row, {}))
        _put(item, "group", _txt(row.get("group")) or None)
        out.append(item)
    return out


def choices_to_rows(f: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for c in f.get("choices") or []:
        c = _norm_item(c, "value")
        zh, en = _lt_cols(c.get("label"))
        rows.append({"value": str(c.get("value", "")), "label_zh": zh, "label_en": en,
                     "active": bool(c.get("active", True))})
    return rows


def rows_to_choices(rows: Sequence[Mapping[str, Any]], published: Sequence[Any] = ()) -> list[dict[str, Any]]:
    """Options from the options grid. A published option whose row was deleted is kept inactive (stored
    answers still show); only options the draft added can really be deleted."""
    out = []
    seen = set()
    for row in rows:
        value = _txt(row.get("value")) or _txt(row.get("label_zh"))
        if not value:
            continue
        c: dict[str, Any] = {"value": value}
        _put(c, "label", _lt_from(row, {}))
        if not _flag(row.get("active", True)) and not _is_na(row.get("active")):
            c["active"] = False
        out.append(c)
        seen.add(value)
    for old in published or []:
        old = _norm_item(old, "value")
        if isinstance(old, Mapping) and old.get("value") not in seen:
            out.append({**old, "active": False})
    return out


# =====================================================================================================
# Reference lists: items from a spreadsheet column (the page saves them with engine.forms.save_choice_list)
# =====================================================================================================
@dataclass
class ListImport:
    items: list[dict[str, Any]]  # the whole list to save: existing items (in order) then new ones
    added: list[str]
    relabelled: list[str]
    skipped: int  # blank or repeated rows


def _ascii_value(label: str) -> str | None:
    text = re.sub(r"[^a-z0-9]+", "_", label.strip().lower()).strip("_")
    return text if text and text.isascii() and re.fullmatch(r"[a-z0-9_]+", text) and label.isascii() else None


def merge_list_items(name: str, existing: Sequence[Any], rows: Iterable[Mapping[str, str]]) -> ListImport:
    """Merge rows ``{label_zh, label_en?, value?}`` into a reference list. A row matching an existing
    value (or, without a value, an existing Chinese label) updates that item's labels; other rows are
    added at the end. Values come from the value column, else from English/ASCII labels, else as
    ``<list>_<n>``. Existing items are kept as they are (never removed or deactivated)."""
    items: list[dict[str, Any]] = []
    for it in existing:
        data = it if isinstance(it, Mapping) else {
            "value": it.value, "label": dict(it.label or {}), "active": it.active, "extra": getattr(it, "extra", None)}
        items.append({"value": str(data["value"]), "label": dict(as_ltext(data.get("label"))),
                      "active": bool(data.get("active", True)), "extra": data.get("extra")})
    by_value = {i["value"]: i for i in items}
    by_label = {i["label"].get("zh"): i for i in items if i["label"].get("zh")}
    used = set(by_value)
    counter = 1 + max((int(v.rsplit("_", 1)[1]) for v in used
                       if v.startswith(name + "_") and v.rsplit("_", 1)[1].isdigit()), default=0)
    added: list[str] = []
    relabelled: list[str] = []
    skipped = 0
    seen: set[str] = set()
    for row in rows:
        zh = str(row.get("label_zh") or "").strip()
        en = str(row.get("label_en") or "").strip()
        value = str(row.get("value") or "").strip()
        if not (zh or en or value):
            skipped += 1
            continue
        label = {k: v for k, v in (("zh", zh or en or value), ("en", en)) if v}
        item = by_value.get(value) if value else by_label.get(label["zh"])
        if item is not None:
            if item["value"] in seen:
                skipped += 1
                continue
            seen.add(item["value"])
            new_label = {**item["label"], **label}
            if new_label != item["label"]:
                item["label"] = new_label
                relabelled.append(item["value"])
            continue
        if not value:
            value = _ascii_value(en) or _ascii_value(zh) or ""
            if not value or value in used:
                while f"{name}_{counter:03d}" in used:
                    counter += 1
                value = f"{name}_{counter:03d}"
                counter += 1
        if value in used:
            skipped += 1
            continue
        used.add(value)
        seen.add(value)
        new = {"value": value, "label": label, "active": True, "extra": None}
        items.append(new)
        by_value[value] = new
        by_label.setdefault(label["zh"], new)
        added.append(value)
    return ListImport(items, added, relabelled, skipped)


def next_list_value(name: str, existing: Sequence[Any], label_zh: str = "", label_en: str = "") -> str:
    """A new value for one item added by hand (same rule as the import)."""
    values = {str(it["value"] if isinstance(it, Mapping) else it.value) for it in existing}
    candidate = _ascii_value(label_en) or _ascii_value(label_zh)
    if candidate and candidate not in values:
        return candidate
    n = 1 + max((int(v.rsplit("_", 1)[1]) for v in values
                 if v.startswith(name + "_") and v.rsplit("_", 1)[1].isdigit()), default=0)
    while f"{name}_{n:03d}" in values:
        n += 1
    return f"{name}_{n:03d}"
