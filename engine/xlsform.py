"""Spreadsheet forms (XLSForm): the format KoboToolbox and ODK users write in Excel.

`import_xlsform(data)` reads a workbook (sheets ``survey``, ``choices``, optional ``settings``) into a
`FormSpec`; anything it cannot carry is refused with one coded `Problem` per spreadsheet row, all
collected at once, and then no spec is returned. `export_xlsform(spec)` writes any of our specs as an
XLSForm that Kobo can read and that imports back to the same spec.

What Kobo has no column for travels in ``lac_*`` columns and a ``lac_settings`` sheet (Kobo ignores
both): ``lac_type`` names our richer field type (id_number, phone, money, checklist, ...); JSON
columns (``lac_show_if``, ``lac_default``, ``lac_rules``) carry values the Kobo columns cannot say
exactly. They are used only while they still agree with the Kobo column next to them, so editing
``relevant`` in Excel after an export wins over the stale JSON (with a warning).

Expressions (``relevant``, ``constraint``) are read by a small tokenizer and recursive-descent parser;
nothing is ever evaluated.

Mapping (XLSForm -> FormSpec; export writes the left column back)::

    text / text + appearance multiline      text / textarea
    integer, decimal, date, time            integer, decimal, date, time
    datetime | dateTime                     datetime
    select_one L / select_multiple L        select / multiselect with choices from list L
    select_one_from_file L.csv              select (multiselect) with choice_list L (a reference list)
    note / acknowledge                      note / boolean (relevant ``${ack} = 'OK'`` -> True)
    any base type + lac_type T              type T (id_number, phone, email, money, rating, counter,
                                            user, reference, checklist: items from the list + lac_group)
    begin group / end group                 a section (nested groups merge into the outer one; a group's
                                            relevant is added to each of its fields' show_if)
    label, label::<lang>                    label {zh, en}    (hint -> help, constraint_message ->
                                                              pattern_message)
    required yes/true/1/是                  required
    relevant                                show_if (= != > < >= <=, selected(), and, or, not(), ())
    constraint                              min / max / min_length / max_length / pattern
                                            (. op number, string-length(.) op number, regex(., 'p'))
    default                                 default (typed by the field type)
    settings form_id / form_title           slug (slugified) / title
    lac_sensitive, lac_unique, lac_retired, lac_section, lac_steps, lac_reference_form,
    lac_sex_field, lac_doc_type_field, lac_choice_list, lac_show_if, lac_rules, lac_default,
    lac_extra (JSON); choices lac_active, lac_group; sheet lac_settings (key, JSON value):
    description, category, access, workflow, parent, list_columns, summary, date_field, title_field,
    title (when more than form_title), section_order.
    metadata (start, end, today, deviceid, username, audit, ...)   skipped, with a warning
"""

from __future__ import annotations

import io
import json
import math
import re
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from engine.errors import Problem
from engine.fields import REGISTRY
from engine.messages import register, render
from models.spec import Condition, FieldSpec, FormSpec, ltext

__all__ = [
    "MAX_BYTES",
    "MAX_CHOICE_ROWS",
    "MAX_SURVEY_ROWS",
    "export_xlsform",
    "import_xlsform",
    "parse_relevant",
    "render_relevant",
    "xlsform_to_dict",
]

MAX_BYTES = 10 * 1024 * 1024
MAX_UNZIPPED = 200 * 1024 * 1024  # a 10 MB zip may not inflate into gigabytes of XML
MAX_SURVEY_ROWS = 5_000
MAX_CHOICE_ROWS = 20_000
MAX_SETTINGS_ROWS = 200

register(
    {
        "xlsform.unreadable": {
            "zh": "无法读取该文件：它不是有效的 Excel 工作簿（.xlsx）。{detail}",
            "en": "Cannot read the file: it is not a valid Excel workbook (.xlsx). {detail}",
        },
        "xlsform.too_large": {
            "zh": "文件过大（{size_mb} MB）：XLSForm 表单文件不能超过 {limit_mb} MB。",
            "en": "The file is too large ({size_mb} MB): an XLSForm may be at most {limit_mb} MB.",
        },
        "xlsform.too_many_rows": {
            "zh": "这个工作表超过 {limit} 行，无法导入；请拆分表单或删除多余的行。",
            "en": "This sheet has more than {limit} rows and cannot be imported; split the form or remove "
            "unused rows.",
        },
        "xlsform.no_survey": {
            "zh": "工作簿中没有 survey 工作表（XLSForm 的题目表）。",
            "en": "The workbook has no 'survey' sheet (the XLSForm question sheet).",
        },
        "xlsform.missing_column": {
            "zh": "缺少必需的列「{column}」。",
            "en": "The required column '{column}' is missing.",
        },
        "xlsform.no_slug": {
            "zh": "无法确定表单标识：请在 settings 工作表中填写 form_id，或在导入时指定表单标识。",
            "en": "Cannot tell the form's identifier: fill in form_id on the settings sheet, or give one "
            "when importing.",
        },
        "xlsform.repeat": {
            "zh": "不支持重复组（{type}）：本系统每条记录每个字段只有一个答案；请改用子表单。",
            "en": "Repeat groups ({type}) are not supported: each record holds one answer per field; "
            "use a child form instead.",
        },
        "xlsform.unsupported_type": {
            "zh": "题型「{type}」无法导入：{reason_zh}",
            "en": "Question type '{type}' cannot be imported: {reason_en}",
        },
        "xlsform.unknown_type": {
            "zh": "无法识别的题型「{type}」{hint_zh}。",
            "en": "Unknown question type '{type}'{hint_en}.",
        },
        "xlsform.missing_name": {
            "zh": "该行缺少 name（字段标识）。",
            "en": "The row has no name (field identifier).",
        },
        "xlsform.duplicate_name": {
            "zh": "名称「{name}」重复，第 {first_row} 行已使用。",
            "en": "The name '{name}' is used twice; row {first_row} already uses it.",
        },
        "xlsform.missing_list": {
            "zh": "选项列表「{list}」在 choices 工作表中不存在。",
            "en": "The choice list '{list}' does not exist on the choices sheet.",
        },
        "xlsform.unsupported_column": {
            "zh": "列「{column}」有内容（{value}），但无法导入：本系统不支持该功能。",
            "en": "Column '{column}' is filled in ({value}) but cannot be imported: the feature is not "
            "supported.",
        },
        "xlsform.bad_required": {
            "zh": "required 的值「{value}」无法识别：只能填 yes / no（是 / 否），不支持按条件必填。",
            "en": "The required value '{value}' is not understood: use yes / no; conditional "
            "required is not supported.",
        },
        "xlsform.bad_expression": {
            "zh": "列「{column}」中的表达式无法导入：{expr}。{supported_zh}",
            "en": "The expression in column '{column}' cannot be imported: {expr}. {supported_en}",
        },
        "xlsform.unsupported_function": {
            "zh": "列「{column}」使用了不支持的函数 {function}()。",
            "en": "Column '{column}' uses the unsupported function {function}().",
        },
        "xlsform.unknown_reference": {
            "zh": "列「{column}」引用了不存在的题目 ${{{ref}}}。",
            "en": "Column '{column}' refers to ${{{ref}}}, which is not a question of this form.",
        },
        "xlsform.group_unbalanced": {
            "zh": "这一行的 {type} 没有对应的开始行（begin group）。",
            "en": "This {type} has no matching begin row.",
        },
        "xlsform.group_unclosed": {
            "zh": "分组「{name}」没有结束行（end group）。",
            "en": "Group '{name}' is never closed (end group is missing).",
        },
        "xlsform.choice_missing_name": {
            "zh": "列表「{list}」中的这个选项缺少 name（选项值）。",
            "en": "This choice of list '{list}' has no name (choice value).",
        },
        "xlsform.duplicate_choice": {
            "zh": "列表「{list}」中的选项值「{value}」重复，第 {first_row} 行已使用。",
            "en": "Choice value '{value}' appears twice in list '{list}'; row {first_row} already uses it.",
        },
        "xlsform.bad_value": {
            "zh": "列「{column}」的值「{value}」无效。",
            "en": "The value '{value}' in column '{column}' is not valid.",
        },
        "xlsform.bad_default": {
            "zh": "默认值「{value}」不符合字段类型 {type}。",
            "en": "The default '{value}' does not fit the field type {type}.",
        },
        # warnings -----------------------------------------------------------------------------
        "xlsform.warn.metadata_skipped": {
            "zh": "已跳过元数据题型 {type}（第 {rows} 行）：KoboToolbox 自动记录这些信息，本系统不为其建字段。",
            "en": "Skipped metadata question type {type} (row {rows}): KoboToolbox records it by itself; "
            "no field is made for it.",
        },
        "xlsform.warn.nested_group": {
            "zh": "第 {row} 行的嵌套分组「{name}」已并入外层分组「{outer}」。",
            "en": "The nested group '{name}' (row {row}) was merged into its outer group '{outer}'.",
        },
        "xlsform.warn.column_ignored": {
            "zh": "工作表「{sheet}」的列「{column}」未导入（第 {rows} 行）。",
            "en": "Column '{column}' of sheet '{sheet}' was not imported (rows {rows}).",
        },
        "xlsform.warn.language_ignored": {
            "zh": "工作表「{sheet}」的列「{column}」既不是中文也不是英文，已忽略。",
            "en": "Column '{column}' of sheet '{sheet}' is neither Chinese nor English and was ignored.",
        },
        "xlsform.warn.strict_bound": {
            "zh": "第 {row} 行的约束「{expr}」按包含边界值处理（{bound}）。",
            "en": "The constraint '{expr}' on row {row} was taken as including its bound ({bound}).",
        },
        "xlsform.warn.external_list": {
            "zh": "第 {row} 行的选项来自外部文件，已改用名为「{list}」的参考列表；请确认系统中有这个列表。",
            "en": "Row {row} takes its choices from an external file; the reference list '{list}' is used "
            "instead — make sure it exists.",
        },
        "xlsform.warn.stale_lac": {
            "zh": "第 {row} 行的 {column} 在导出后被修改过，已按 {column} 导入（忽略 {lac}）。",
            "en": "On row {row}, {column} was changed after export; it was imported from {column} "
            "({lac} ignored).",
        },
        "xlsform.warn.renamed": {
            "zh": "第 {row} 行的 name「{name}」已改为「{key}」（字段标识只能用小写字母、数字和下划线，以字母开头）。",
            "en": "The name '{name}' on row {row} became '{key}' (field keys use lowercase letters, digits and "
            "underscores, starting with a letter).",
        },
        "xlsform.warn.message_dropped": {
            "zh": "第 {row} 行的 constraint_message 未导入：{type} 类型的字段使用系统自带的范围提示。",
            "en": "The constraint_message on row {row} was not imported: {type} fields use the built-in range "
            "message.",
        },
        "xlsform.warn.default_title": {
            "zh": "settings 工作表没有 form_title，表单标题暂用「{title}」。",
            "en": "The settings sheet has no form_title; the form is titled '{title}' for now.",
        },
    }
)


# =============================================================================================
# Small helpers
# =============================================================================================


def _text(value: Any) -> str:
    """One cell as text: numbers without a spurious '.0', dates as ISO, strings stripped."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return str(int(value))
        return repr(value)
    if isinstance(value, datetime):
        if value.time() == time(0, 0):
            return value.date().isoformat()
        return value.isoformat(timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, time):
        return value.strftime("%H:%M")
    return str(value).strip()


_HEADER_ALIASES = {
    "list name": "list_name",
    "jr:constraintmsg": "constraint_message",
    "jr:requiredmsg": "required_message",
    "constraint message": "constraint_message",
    "required message": "required_message",
    "choice filter": "choice_filter",
    "repeat count": "repeat_count",
    "read only": "read_only",
    "$autoname": "$autoname",
}


def _norm_header(value: Any) -> str:
    """Case- and space-insensitive header: ``' Label :: English (en) '`` -> ``label::english (en)``."""
    text = re.sub(r"\s+", " ", _text(value)).lower()
    text = re.sub(r"\s*::\s*", "::", text)
    base, sep, tag = text.partition("::")
    base = _HEADER_ALIASES.get(base, base)
    return base + sep + tag


_ZH_WORDS = ("中文", "汉语", "漢語", "简体", "繁體", "繁体", "普通话")
_EN_WORDS = ("英文", "英语", "英語")


def _lang_of(tag: str) -> str | None:
    """Map a language tag (``Chinese (zh)``, ``zh``, ``中文``, ``English (en)``, ``en-US``) to zh/en.

    Matching is by whole word / code, so 'French (fr)' is not mistaken for English.
    """
    t = tag.strip().lower()
    code = re.search(r"\(([^)]*)\)", t)
    if code:
        c = code.group(1).strip()
        if re.match(r"^(zh|cmn|zho|chi)\b", c):
            return "zh"
        if re.match(r"^(en|eng)\b", c):
            return "en"
    words = set(re.split(r"[^a-z0-9]+", t))
    if any(w in t for w in _ZH_WORDS) or words & {"zh", "chinese", "cmn", "zho", "chi", "mandarin"}:
        return "zh"
    if any(w in t for w in _EN_WORDS) or words & {"en", "english", "eng"}:
        return "en"
    return None


_TRUE = {"yes", "true", "1", "是", "y", "true()", "对", "需要", "必填"}
_FALSE = {"no", "false", "0", "否", "n", "false()", "", "不", "不需要"}


def _yes_no(value: Any) -> bool | None:
    """True / False for a yes-no cell, None when the cell says something else."""
    if isinstance(value, bool):
        return value
    text = _text(value).lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    return None


def slugify(text: str) -> str:
    """form_id -> slug: lowercased, non [a-z0-9_] replaced by _, ``f_`` before a leading digit."""
    slug = re.sub(r"[^a-z0-9_]", "_", text.strip().lower())
    if slug[:1].isdigit():
        slug = "f_" + slug
    return slug


def _key_of(name: str) -> str:
    """A Kobo name -> our field key: lowercased, other characters -> _, ``f_`` before a non-letter."""
    key = re.sub(r"[^a-z0-9_]", "_", name.strip().lower())
    if key and not key[0].isalpha():
        key = "f_" + key
    return key


def _num_text(value: float | int) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value) if isinstance(value, float) else str(value)


def _rows_text(rows: list[int]) -> str:
    return ", ".join(str(r) for r in rows)


_SUPPORTED = {
    "relevant": ("可用的写法：${题目} 与一个值比较（= != > < >= <=，文字加引号）、selected(${题目}, '值')、"
                 "and、or、not(…) 和括号。",
                 "Supported: ${question} compared with a value (= != > < >= <=, text in quotes), "
                 "selected(${question}, 'value'), and, or, not(…) and parentheses."),
    "constraint": ("可用的写法：. 与数字比较（>= <= > < =）、string-length(.) 与数字比较、regex(., '规则')，"
                   "用 and 连接。",
                   "Supported: . compared with a number (>= <= > < =), string-length(.) compared with a number, "
                   "regex(., 'pattern'), joined with and."),
}


class _RowError(Exception):
    """Refuse the current row: one coded problem."""

    def __init__(self, code: str, **params: Any) -> None:
        super().__init__(code)
        self.code = code
        self.params = params


def _expr_problem(err: _ExprError, column: str, expr: str) -> _RowError:
    params: dict[str, Any] = {"column": column, "expr": expr, **err.params}
    if err.code == "xlsform.bad_expression":
        params["supported_zh"], params["supported_en"] = _SUPPORTED[column]
    return _RowError(err.code, **params)


# =============================================================================================
# Expressions: tokenizer + recursive-descent parsers for `relevant` and `constraint`
# =============================================================================================

_TOKEN_RE = re.compile(
    r"""\s*(?:
      (?P<ref>\$\{\s*(?P<refname>[^}]*?)\s*\})
    | (?P<str>'[^']*'|"[^"]*")
    | (?P<num>-?\d+(?:\.\d+)?(?![\w.])|-?\.\d+)
    | (?P<op>!=|>=|<=|=|>|<)
    | (?P<lp>\()
    | (?P<rp>\))
    | (?P<comma>,)
    | (?P<dot>\.)
    | (?P<name>[A-Za-z_][A-Za-z0-9_\-]*(?::[A-Za-z_][A-Za-z0-9_\-]*)?)
    )""",
    re.VERBOSE,
)


@dataclass
class _Tok:
    kind: str
    value: Any
    text: str


class _ExprError(ValueError):
    def __init__(self, code: str, **params: Any) -> None:
        super().__init__(code)
        self.code = code
        self.params = params


def _tokenize(expr: str) -> list[_Tok]:
    toks: list[_Tok] = []
    pos = 0
    expr = expr.rstrip()
    while pos < len(expr):
        m = _TOKEN_RE.match(expr, pos)
        if not m or m.end() == pos:
            raise _ExprError("xlsform.bad_expression")
        pos = m.end()
        kind = m.lastgroup if m.lastgroup != "refname" else "ref"
        if m.group("ref") is not None:
            toks.append(_Tok("ref", m.group("refname"), m.group("ref")))
        elif kind == "str":
            toks.append(_Tok("str", m.group("str")[1:-1], m.group("str")))
        elif kind == "num":
            raw = m.group("num")
            toks.append(_Tok("num", float(raw) if "." in raw else int(raw), raw))
        elif kind == "name":
            toks.append(_Tok("name", m.group("name").lower(), m.group("name")))
        else:
            assert kind is not None
            toks.append(_Tok(kind, m.group(kind), m.group(kind)))
    return toks


class _Parser:
    def __init__(self, expr: str) -> None:
        self.toks = _tokenize(expr)
        self.i = 0

    def peek(self, offset: int = 0) -> _Tok | None:
        j = self.i + offset
        return self.toks[j] if j < len(self.toks) else None

    def take(self, kind: str | None = None, value: Any = None) -> _Tok:
        tok = self.peek()
        if tok is None or (kind and tok.kind != kind) or (value is not None and tok.value != value):
            raise _ExprError("xlsform.bad_expression")
        self.i += 1
        return tok

    def at(self, kind: str, value: Any = None) -> bool:
        tok = self.peek()
        return tok is not None and tok.kind == kind and (value is None or tok.value == value)

    def done(self) -> None:
        if self.peek() is not None:
            raise _ExprError("xlsform.bad_expression")

    def function_call(self) -> None:
        """A name followed by '(' that this parser does not know: refuse it by name."""
        tok = self.peek()
        assert tok is not None
        raise _ExprError("xlsform.unsupported_function", function=tok.text)


_FLIP = {"=": "=", "!=": "!=", ">": "<", "<": ">", ">=": "<=", "<=": ">="}
_CMP_OPS = {"=": "equals", "!=": "not_equals", ">": "gt", "<": "lt", ">=": "gte", "<=": "lte"}
_OPS_CMP = {v: k for k, v in _CMP_OPS.items()}


class _RelevantParser(_Parser):
    """relevant := or ; or := and ('or' and)* ; and := unary ('and' unary)* ;
    unary := 'not' '(' or ')' | '(' or ')' | 'selected' '(' ref ',' literal ')' | operand cmp operand
    """

    def parse(self) -> dict[str, Any]:
        node = self.or_()
        self.done()
        return node

    def or_(self) -> dict[str, Any]:
        parts = [self.and_()]
        while self.at("name", "or"):
            self.take()
            parts.append(self.and_())
        return parts[0] if len(parts) == 1 else {"any": parts}

    def and_(self) -> dict[str, Any]:
        parts = [self.unary()]
        while self.at("name", "and"):
            self.take()
            parts.append(self.unary())
        return parts[0] if len(parts) == 1 else {"all": parts}

    def unary(self) -> dict[str, Any]:
        if self.at("lp"):
            self.take()
            node = self.or_()
            self.take("rp")
            return node
        tok = self.peek()
        nxt = self.peek(1)
        if tok is not None and tok.kind == "name" and nxt is not None and nxt.kind == "lp":
            if tok.value == "not":
                self.take()
                self.take("lp")
                node = self.or_()
                self.take("rp")
                return {"not": node}
            if tok.value == "selected":
                self.take()
                self.take("lp")
                ref = self.take("ref").value
                self.take("comma")
                lit = self.take()
                if lit.kind not in ("str", "num"):
                    raise _ExprError("xlsform.bad_expression")
                self.take("rp")
                return {"field": ref, "op": "contains", "value": lit.value if lit.kind == "str" else lit.text}
        return self.comparison()

    def operand(self) -> tuple[str, Any]:
        tok = self.peek()
        if tok is None:
            raise _ExprError("xlsform.bad_expression")
        if tok.kind == "ref":
            self.take()
            return "ref", tok.value
        if tok.kind in ("str", "num"):
            self.take()
            return "lit", tok.value
        if tok.kind == "name" and self.at_call():
            if tok.value in ("true", "false"):
                self.take()
                self.take("lp")
                self.take("rp")
                return "lit", tok.value == "true"
            self.function_call()
        raise _ExprError("xlsform.bad_expression")

    def at_call(self) -> bool:
        nxt = self.peek(1)
        return nxt is not None and nxt.kind == "lp"

    def comparison(self) -> dict[str, Any]:
        left_kind, left = self.operand()
        op = self.take("op").value
        right_kind, right = self.operand()
        if left_kind == "lit" and right_kind == "ref":
            left_kind, left, right_kind, right = right_kind, right, left_kind, left
            op = _FLIP[op]
        if left_kind != "ref" or right_kind != "lit":
            raise _ExprError("xlsform.bad_expression")
        if right == "" and op in ("=", "!="):
            return {"field": left, "op": "empty" if op == "=" else "not_empty"}
        return {"field": left, "op": _CMP_OPS[op], "value": right}


def parse_relevant(expr: str) -> dict[str, Any]:
    """An XLSForm ``relevant`` expression -> a show_if condition dict (raises _ExprError)."""
    return _RelevantParser(expr).parse()


@dataclass
class _Bound:
    op: str
    value: float | int


class _ConstraintParser(_Parser):
    """constraint := term ('and' term)* ; term := '(' constraint ')' | '.' cmp NUMBER | NUMBER cmp '.'
    | 'string-length' '(' '.' ')' cmp NUMBER | 'regex' '(' '.' ',' STRING ')'"""

    def parse(self) -> list[tuple[str, Any]]:
        terms = self.and_()
        self.done()
        return terms

    def and_(self) -> list[tuple[str, Any]]:
        terms = self.term()
        while self.at("name", "and"):
            self.take()
            terms += self.term()
        if self.at("name", "or"):
            raise _ExprError("xlsform.bad_expression")
        return terms

    def term(self) -> list[tuple[str, Any]]:
        if self.at("lp"):
            self.take()
            terms = self.and_()
            self.take("rp")
            return terms
        tok = self.peek()
        if tok is not None and tok.kind == "name" and self.peek(1) is not None and self.peek(1).kind == "lp":
            if tok.value == "regex":
                self.take()
                self.take("lp")
                self.take("dot")
                self.take("comma")
                pattern = self.take("str").value
                self.take("rp")
                return [("pattern", pattern)]
            if tok.value == "string-length":
                self.take()
                self.take("lp")
                self.take("dot")
                self.take("rp")
                op = self.take("op").value
                return [("length", _Bound(op, self.number()))]
            self.function_call()
        if self.at("dot"):
            self.take()
            op = self.take("op").value
            return [("value", _Bound(op, self.number()))]
        if self.at("num"):
            num = self.take().value
            op = _FLIP[self.take("op").value]
            self.take("dot")
            return [("value", _Bound(op, num))]
        raise _ExprError("xlsform.bad_expression")

    def number(self) -> float | int:
        tok = self.peek()
        if tok is not None and tok.kind == "name" and self.peek(1) is not None and self.peek(1).kind == "lp":
            self.function_call()
        return self.take("num").value


_INT_TYPES = {"integer", "counter", "rating"}


def _parse_constraint(expr: str, ftype: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """constraint -> ({min, max, min_length, max_length, pattern}, strict-bound notes)."""
    rules: dict[str, Any] = {}
    notes: list[dict[str, Any]] = []
    for kind, term in _ConstraintParser(expr).parse():
        if kind == "pattern":
            if "pattern" in rules:
                raise _ExprError("xlsform.bad_expression")
            rules["pattern"] = term
            continue
        lo, hi = ("min", "max") if kind == "value" else ("min_length", "max_length")
        integral = kind == "length" or ftype in _INT_TYPES
        value = term.value
        if term.op == "!=":
            raise _ExprError("xlsform.bad_expression")
        if kind == "length" and not isinstance(value, int):
            raise _ExprError("xlsform.bad_expression")
        targets = [lo, hi] if term.op == "=" else [lo] if term.op in (">", ">=") else [hi]
        if term.op in (">", "<"):
            if integral and isinstance(value, int):
                value = value + 1 if term.op == ">" else value - 1
            else:
                notes.append({"bound": f"{'≥' if term.op == '>' else '≤'} {_num_text(value)}"})
        for t in targets:
            old = rules.get(t)
            if old is None:
                rules[t] = value
            else:
                rules[t] = max(old, value) if t in ("min", "min_length") else min(old, value)
    return rules, notes


def _quote(text: str) -> str | None:
    if "'" not in text:
        return f"'{text}'"
    if '"' not in text:
        return f'"{text}"'
    return None


def _render_literal(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true()" if value else "false()"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else None
    if isinstance(value, str):
        return _quote(value)
    return None


def _render_leaf(cond: dict[str, Any]) -> str | None:
    ref = "${" + str(cond.get("field")) + "}"
    op = cond.get("op")
    value = cond.get("value")
    if op == "empty":
        return f"{ref} = ''"
    if op == "not_empty":
        return f"{ref} != ''"
    if op == "contains":
        lit = _render_literal(value)
        return None if lit is None else f"selected({ref}, {lit})"
    if op in ("in", "not_in"):
        values = value if isinstance(value, list) else [value]
        lits = [_render_literal(v) for v in values]
        if not lits or any(lit is None for lit in lits):
            return None
        body = " or ".join(f"{ref} = {lit}" for lit in lits)
        return f"not({body})" if op == "not_in" else (f"({body})" if len(lits) > 1 else body)
    if op in _OPS_CMP:
        lit = _render_literal(value)
        return None if lit is None else f"{ref} {_OPS_CMP[op]} {lit}"
    return None


def render_relevant(cond: dict[str, Any] | None) -> str | None:
    """A show_if condition dict -> XLSForm ``relevant`` text (None when it has no XPath form)."""
    if not cond:
        return None
    if cond.get("all") is not None or cond.get("any") is not None:
        parts = cond.get("all") if cond.get("all") is not None else cond.get("any")
        joiner = " and " if cond.get("all") is not None else " or "
        rendered = []
        for part in parts or []:
            text = render_relevant(part)
            if text is None:
                return None
            compound = part.get("all") is not None or part.get("any") is not None
            rendered.append(f"({text})" if compound else text)
        return joiner.join(rendered) if rendered else None
    if cond.get("not") is not None:
        inner = render_relevant(cond["not"])
        return None if inner is None else f"not({inner})"
    return _render_leaf(cond)


def _render_constraint(rules: dict[str, Any]) -> str | None:
    terms = []
    if rules.get("min") is not None:
        terms.append(f". >= {_num_text(rules['min'])}")
    if rules.get("max") is not None:
        terms.append(f". <= {_num_text(rules['max'])}")
    if rules.get("min_length") is not None:
        terms.append(f"string-length(.) >= {_num_text(rules['min_length'])}")
    if rules.get("max_length") is not None:
        terms.append(f"string-length(.) <= {_num_text(rules['max_length'])}")
    if rules.get("pattern") is not None:
        quoted = _quote(str(rules["pattern"]))
        if quoted is not None:
            terms.append(f"regex(., {quoted})")
    return " and ".join(terms) or None


def _walk_leaves(cond: dict[str, Any]):
    for key in ("all", "any"):
        for part in cond.get(key) or []:
            yield from _walk_leaves(part)
    if cond.get("not") is not None:
        yield from _walk_leaves(cond["not"])
    if cond.get("field") is not None:
        yield cond


def _cond_norm(cond: Any) -> Any:
    """A condition as the canonical dict the spec stores (for equality checks)."""
    if cond is None:
        return None
    try:
        return Condition.model_validate(cond).model_dump(mode="json", by_alias=True, exclude_defaults=True)
    except Exception:  # anything unparsable compares unequal
        return {"invalid": repr(cond)}


# =============================================================================================
# Reading the workbook
# =============================================================================================


@dataclass
class _Sheet:
    title: str
    columns: list[str]  # normalised headers in column order
    rows: list[tuple[int, dict[str, Any]]]  # (1-based sheet row, {header: raw value})

    def has(self, column: str) -> bool:
        return column in self.columns


@dataclass
class _Out:
    """What the import collects: problems (one per sheet row), warnings, field rows."""

    lang: str = "zh"
    problems: list[Problem] = field(default_factory=list)
    warnings: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    bad_rows: set[tuple[str, int]] = field(default_factory=set)
    field_rows: dict[str, int] = field(default_factory=dict)
    ignored: dict[tuple[str, str], list[int]] = field(default_factory=dict)
    settings_at: tuple[str, int] | None = None  # (sheet, row) of the settings values
    lac_at: dict[str, tuple[str, int]] = field(default_factory=dict)  # lac_settings key -> (sheet, row)
    survey_title: str = "survey"

    def problem(self, code: str, *, sheet: str | None = None, row: int | None = None,
                field_key: str | None = None, **params: Any) -> None:
        if sheet is not None and row is not None:
            if (sheet, row) in self.bad_rows:
                return
            self.bad_rows.add((sheet, row))
        self.problems.append(Problem(code, params, field=field_key, row=row, sheet=sheet))

    def warn(self, code: str, **params: Any) -> None:
        self.warnings.append((code, params))

    def ignore(self, sheet: str, column: str, row: int) -> None:
        self.ignored.setdefault((sheet, column), []).append(row)


def _load(data: bytes | Path | str, out: _Out) -> tuple[dict[str, _Sheet] | None, str | None]:
    """Open the workbook safely and read its sheets (keyed by lower-cased, stripped name)."""
    stem = None
    if isinstance(data, (str, Path)):
        path = Path(data)
        stem = path.stem
        try:
            size = path.stat().st_size
        except OSError as exc:
            out.problem("xlsform.unreadable", detail=str(exc))
            return None, stem
        if size > MAX_BYTES:
            out.problem("xlsform.too_large", size_mb=round(size / 1048576, 1), limit_mb=MAX_BYTES // 1048576)
            return None, stem
        raw = path.read_bytes()
    else:
        raw = bytes(data)
    if len(raw) > MAX_BYTES:
        out.problem("xlsform.too_large", size_mb=round(len(raw) / 1048576, 1), limit_mb=MAX_BYTES // 1048576)
        return None, stem
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as zf:
            inflated = sum(info.file_size for info in zf.infolist())
    except (zipfile.BadZipFile, ValueError) as exc:
        detail = "（.xls 请另存为 .xlsx）" if out.lang == "zh" else "(save .xls files as .xlsx)"
        out.problem("xlsform.unreadable", detail=detail if raw[:4] == b"\xd0\xcf\x11\xe0" else str(exc))
        return None, stem
    if inflated > MAX_UNZIPPED:
        out.problem("xlsform.too_large", size_mb=round(inflated / 1048576, 1), limit_mb=MAX_BYTES // 1048576)
        return None, stem

    from openpyxl import load_workbook

    try:
        wb = load_workbook(io.BytesIO(raw), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for broken files
        out.problem("xlsform.unreadable", detail=str(exc))
        return None, stem
    try:
        sheets: dict[str, _Sheet] = {}
        limits = {"survey": MAX_SURVEY_ROWS, "choices": MAX_CHOICE_ROWS}
        for name in wb.sheetnames:
            key = name.strip().lower()
            if key in sheets or key not in ("survey", "choices", "settings", "lac_settings"):
                continue
            sheet = _read_sheet(wb[name], limits.get(key, MAX_SETTINGS_ROWS), out)
            if sheet is None:
                return None, stem
            sheets[key] = sheet
        return sheets, stem
    finally:
        wb.close()


def _read_sheet(ws: Any, limit: int, out: _Out) -> _Sheet | None:
    if hasattr(ws, "reset_dimensions"):
        ws.reset_dimensions()  # trust the cells, not a possibly wrong <dimension> tag
    rows_iter = ws.iter_rows(values_only=True)
    header = next(rows_iter, None) or ()
    columns = [_norm_header(h) for h in header]
    while columns and not columns[-1]:
        columns.pop()
    rows: list[tuple[int, dict[str, Any]]] = []
    for number, values in enumerate(rows_iter, start=2):
        if number > limit * 10 + 1:  # an absurd number of (even blank) rows
            out.problem("xlsform.too_many_rows", sheet=ws.title, limit=limit)
            return None
        cells: dict[str, Any] = {}
        for column, value in zip(columns, values, strict=False):
            if not column or column in cells or value is None:
                continue
            if isinstance(value, str) and not value.strip():
                continue
            cells[column] = value
        if cells:
            if len(rows) >= limit:
                out.problem("xlsform.too_many_rows", sheet=ws.title, limit=limit)
                return None
            rows.append((number, cells))
    return _Sheet(ws.title, columns, rows)


# =============================================================================================
# Import: workbook -> spec dict
# =============================================================================================

_METADATA = {
    "start", "end", "today", "deviceid", "subscriberid", "simserial", "phonenumber", "username",
    "email", "audit", "start-geopoint", "background-audio", "uri:email", "uri:username",
    "uri:deviceid", "uri:phonenumber", "uri:subscriberid", "uri:simserial",
}  # fmt: skip
_UNSUPPORTED = {
    "geopoint", "geotrace", "geoshape", "image", "audio", "video", "file", "barcode", "calculate",
    "range", "rank", "hidden", "xml-external", "csv-external", "background-geopoint", "osm",
    "trigger", "photo", "gps", "location", "signature",
}  # fmt: skip
_REASONS: dict[str, tuple[str, str]] = {
    "geo": ("本系统不记录地理位置。", "locations are not recorded here."),
    "media": ("本系统不保存照片、录音、视频或文件。", "photos, recordings, videos and files are not stored here."),
    "barcode": ("本系统没有扫码字段；可改为文字题（text）手工录入。",
                "there is no barcode field; use a text question typed by hand."),
    "calculate": ("不支持计算字段；请删除这一行，或改为一个普通字段。",
                  "calculated fields are not supported; delete the row or make it an ordinary question."),
    "range": ("请改为整数题（integer），并把范围写成约束，例如 . >= 1 and . <= 5。",
              "use an integer question with a constraint such as . >= 1 and . <= 5."),
    "rank": ("不支持排序题；可改为多选题（select_multiple）。", "ranking is not supported; use select_multiple."),
    "or_other": ("不支持“其他（请注明）”；请在选项中加一个 other，再加一道 relevant 为 "
                 "selected(${题目}, 'other') 的文字题。",
                 "'or_other' is not supported; add an 'other' choice and a text question with relevant "
                 "selected(${question}, 'other')."),
    "other": ("本系统没有对应的字段类型。", "there is no matching field type."),
}
_REASON_OF = {
    "geopoint": "geo", "geotrace": "geo", "geoshape": "geo", "background-geopoint": "geo", "gps": "geo",
    "location": "geo", "osm": "geo", "image": "media", "audio": "media", "video": "media", "file": "media",
    "photo": "media", "signature": "media", "barcode": "barcode", "calculate": "calculate",
    "hidden": "calculate", "range": "range", "rank": "rank",
}  # fmt: skip


def _unsupported(type_text: str, reason: str) -> _RowError:
    zh, en = _REASONS[reason]
    return _RowError("xlsform.unsupported_type", type=type_text, reason_zh=zh, reason_en=en)


def _unknown(type_text: str) -> _RowError:
    import difflib

    known = [*_SIMPLE, "select_one", "select_multiple", "begin group", "end group", *_METADATA]
    head = type_text.split(" ")[0].lower()
    if head.startswith("select_") and " " not in type_text.strip():
        hint_zh = f"（缺少选项列表的名称，例如 {head} yes_no）"
        hint_en = f" (the choice list name is missing, e.g. {head} yes_no)"
        return _RowError("xlsform.unknown_type", type=type_text, hint_zh=hint_zh, hint_en=hint_en)
    close = difflib.get_close_matches(head, known, n=1, cutoff=0.6)
    hint_zh = f"（是不是想写「{close[0]}」？）" if close else ""
    hint_en = f" (did you mean '{close[0]}'?)" if close else ""
    return _RowError("xlsform.unknown_type", type=type_text, hint_zh=hint_zh, hint_en=hint_en)


_SIMPLE = {
    "text": "text", "string": "text", "integer": "integer", "int": "integer", "decimal": "decimal",
    "date": "date", "datetime": "datetime", "time": "time", "note": "note", "acknowledge": "boolean",
}  # fmt: skip
_REFUSE_IF_USED = {"choice_filter", "calculation", "repeat_count", "trigger", "image", "audio", "video",
                   "big-image", "media"}
_WARN_IF_USED = {"read_only", "required_message", "guidance_hint", "parameters", "appearance", "bind",
                 "body", "instance"}
_LANG_COLUMNS = {"label", "hint", "constraint_message"}
_FIELD_ATTRS = set(FieldSpec.model_fields)


@dataclass
class _Type:
    kind: str  # field / meta / begin_group / end_group / begin_repeat / end_repeat
    ours: str | None = None
    list_name: str | None = None
    from_file: bool = False
    xls: str = ""


def _parse_type(raw: str) -> _Type:
    text = re.sub(r"\s+", " ", raw.strip())
    words = text.split(" ")
    head = words[0].lower()
    if head in ("begin", "end") and len(words) == 2 and words[1].lower() in ("group", "repeat"):
        head = f"{head}_{words[1].lower()}"
        words = [head]
    if head == "select" and len(words) >= 2 and words[1].lower() in ("one", "multiple"):
        head = f"select_{words[1].lower()}"
        words = [head, *words[2:]]
    if head in ("begin_group", "end_group", "begin_repeat", "end_repeat"):
        if len(words) != 1:
            raise _unknown(raw)
        return _Type(head, xls=head)
    if head in ("select_one", "select_multiple"):
        if len(words) == 3 and words[2].lower() == "or_other":
            raise _unsupported(text, "or_other")
        if len(words) != 2:
            raise _unknown(text)
        return _Type("field", "select" if head == "select_one" else "multiselect", words[1], xls=head)
    if head in ("select_one_from_file", "select_multiple_from_file"):
        if len(words) != 2:
            raise _unknown(text)
        list_name = re.sub(r"\.(csv|xml|geojson)$", "", words[1], flags=re.IGNORECASE)
        ours = "select" if head == "select_one_from_file" else "multiselect"
        return _Type("field", ours, list_name, from_file=True, xls=head)
    if len(words) != 1:
        raise _unknown(text)
    if head in _METADATA:
        return _Type("meta", xls=head)
    if head in _UNSUPPORTED:
        raise _unsupported(text, _REASON_OF.get(head, "other"))
    if head in _SIMPLE:
        return _Type("field", _SIMPLE[head], xls=head)
    raise _unknown(text)


class _AnyList(dict):
    """Stands in for an unreadable choices sheet: every list 'exists' (and is empty)."""

    def __contains__(self, key: object) -> bool:
        return True

    def __missing__(self, key: str) -> list[Any]:
        return []


@dataclass
class _Choice:
    row: int
    value: str
    label: dict[str, str]
    active: bool
    group: str | None


class _Importer:
    def __init__(self, sheets: dict[str, _Sheet], out: _Out, slug: str | None, stem: str | None) -> None:
        self.sheets = sheets
        self.out = out
        self.slug_arg = slug
        self.slug: str | None = None
        self.stem = stem
        self.default_lang = "zh"
        self.lists: dict[str, list[_Choice]] = {}
        self.fields: list[dict[str, Any]] = []
        self.sections: list[dict[str, Any]] = []
        self.names: dict[str, int] = {}  # field name -> row
        self.group_names: dict[str, int] = {}
        self.ack_fields: set[str] = set()
        self.cond_checks: list[tuple[int, str, dict[str, Any], str | None]] = []

    # ---- column helpers --------------------------------------------------------------------
    def lang_columns(self, sheet: _Sheet) -> dict[str, dict[str, str]]:
        """base -> {header: lang} for label / hint / constraint_message (+ ::language) columns."""
        found: dict[str, dict[str, str]] = {}
        for column in sheet.columns:
            base, sep, tag = column.partition("::")
            if base not in _LANG_COLUMNS:
                continue
            lang = _lang_of(tag) if sep else self.default_lang
            if lang is None:
                self.out.warn("xlsform.warn.language_ignored", sheet=sheet.title, column=column)
                continue
            found.setdefault(base, {})[column] = lang
        return found

    @staticmethod
    def ltext(cells: dict[str, Any], columns: dict[str, str] | None) -> dict[str, str]:
        """Language-specific columns win over the plain column for the same language."""
        result: dict[str, str] = {}
        for column, lang in sorted((columns or {}).items(), key=lambda kv: "::" not in kv[0]):
            text = _text(cells.get(column))
            if text and lang not in result:
                result[lang] = text
        return result

    def check_columns(self, sheet: _Sheet, number: int, cells: dict[str, Any]) -> None:
        for column, value in cells.items():
            base = column.partition("::")[0]
            if base in _REFUSE_IF_USED:
                raise _RowError("xlsform.unsupported_column", column=column, value=_text(value)[:60])

    def note_ignored(self, sheet: _Sheet, number: int, cells: dict[str, Any], skip: set[str]) -> None:
        for column in cells:
            base = column.partition("::")[0]
            if base in _WARN_IF_USED and column not in skip:
                self.out.ignore(sheet.title, column, number)

    # ---- settings --------------------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        sheet = self.sheets.get("settings")
        if sheet is None or not sheet.rows:
            return {}
        number, cells = sheet.rows[0]
        self.out.settings_at = (sheet.title, number)
        values = {col: _text(v) for col, v in cells.items()}
        lang = values.get("default_language")
        if lang:
            self.default_lang = _lang_of(lang) or "zh"
        return values

    # ---- choices ---------------------------------------------------------------------------
    def choices(self) -> None:
        sheet = self.sheets.get("choices")
        if sheet is None:
            return
        name_col = "name" if sheet.has("name") else "value" if sheet.has("value") else "name"
        missing = [c for c in ("list_name", name_col) if not sheet.has(c)]
        if missing and sheet.rows:
            self.out.problem("xlsform.missing_column", sheet=sheet.title, row=1, column=", ".join(missing))
            self.lists = _AnyList()  # do not also call every select's list missing
            return
        langs = self.lang_columns(sheet)
        first: dict[tuple[str, str], int] = {}
        for number, cells in sheet.rows:
            list_name = _text(cells.get("list_name"))
            if not list_name:
                continue  # a comment row or a stray cell: nothing to import
            try:
                self.check_columns(sheet, number, cells)
                value = _text(cells.get(name_col))
                if not value:
                    raise _RowError("xlsform.choice_missing_name", list=list_name)
                seen = first.get((list_name, value))
                if seen is not None:
                    raise _RowError("xlsform.duplicate_choice", list=list_name, value=value,
                                    first_row=seen)
                first[(list_name, value)] = number
                active = True
                if "lac_active" in cells:
                    flag = _yes_no(cells["lac_active"])
                    if flag is None:
                        raise _RowError("xlsform.bad_value", column="lac_active",
                                        value=_text(cells["lac_active"]))
                    active = flag
                group = _text(cells.get("lac_group")) or None
                label = self.ltext(cells, langs.get("label"))
                self.lists.setdefault(list_name, []).append(_Choice(number, value, label, active, group))
            except _RowError as err:
                self.out.problem(err.code, sheet=sheet.title, row=number, **err.params)
                self.lists.setdefault(list_name, [])

    # ---- survey ----------------------------------------------------------------------------
    def survey(self) -> None:
        sheet = self.sheets["survey"]
        self.out.survey_title = sheet.title
        name_col = "$autoname" if sheet.has("$autoname") and not sheet.has("name") else "name"
        missing = [c for c in ("type", name_col) if not sheet.has(c)]
        if missing:
            self.out.problem("xlsform.missing_column", sheet=sheet.title, row=1, column=", ".join(missing))
            return
        langs = self.lang_columns(sheet)
        stack: list[dict[str, Any]] = []
        meta_rows: dict[str, list[int]] = {}
        for number, cells in sheet.rows:
            type_text = _text(cells.get("type"))
            if not type_text:
                continue
            name = _text(cells.get(name_col))
            kind = None
            try:
                kind = _parse_type(type_text)
                if kind.kind == "meta":
                    meta_rows.setdefault(kind.xls, []).append(number)
                    continue
                if kind.kind == "begin_repeat":
                    stack.append({"kind": "repeat", "name": name, "row": number})
                    raise _RowError("xlsform.repeat", type=type_text)
                if kind.kind in ("end_group", "end_repeat"):
                    want = "group" if kind.kind == "end_group" else "repeat"
                    if not stack or stack[-1]["kind"] != want:
                        raise _RowError("xlsform.group_unbalanced", type=type_text)
                    stack.pop()
                    continue
                self.check_columns(sheet, number, cells)
                if kind.kind == "begin_group":
                    stack.append(self.group(sheet, number, cells, name, stack, langs))
                    continue
                self.field(sheet, number, cells, name, kind, stack, langs)
            except _RowError as err:
                # keep going as if the row were fine, so that one fault is reported once
                if name and (kind is None or kind.kind == "field"):
                    self.names.setdefault(_key_of(name), number)  # references to it are not "unknown"
                if kind is not None and kind.kind == "begin_group" and not any(e["row"] == number for e in stack):
                    outer = next((e["section"] for e in stack if e["kind"] == "group"), None)
                    stack.append({"kind": "group", "name": name, "row": number, "section": outer, "cond": None})
                self.out.problem(err.code, sheet=sheet.title, row=number, field_key=name or None, **err.params)
        for entry in stack:
            code = "xlsform.group_unclosed"
            self.out.problem(code, sheet=sheet.title, row=entry["row"], name=entry["name"])
        for xls_type, rows in meta_rows.items():
            self.out.warn("xlsform.warn.metadata_skipped", type=xls_type, rows=_rows_text(rows))
        self.check_references(sheet)

    def relevant(self, cells: dict[str, Any], number: int, key: str | None) -> dict[str, Any] | None:
        text = _text(cells.get("relevant"))
        cond = None
        if text:
            try:
                cond = parse_relevant(text)
            except _ExprError as err:
                raise _expr_problem(err, "relevant", text) from None
            self.cond_checks.append((number, "relevant", cond, key))
        if "lac_show_if" in cells:
            lac = self.lac_json(cells, "lac_show_if")
            if isinstance(lac, dict) and (render_relevant(lac) or "") == text:
                return lac
            self.out.warn("xlsform.warn.stale_lac", row=number, column="relevant", lac="lac_show_if")
        return cond

    def group(self, sheet: _Sheet, number: int, cells: dict[str, Any], name: str,
              stack: list[dict[str, Any]], langs: dict[str, dict[str, str]]) -> dict[str, Any]:
        if not name:
            raise _RowError("xlsform.missing_name")
        if name in self.group_names:
            raise _RowError("xlsform.duplicate_name", name=name, first_row=self.group_names[name])
        self.group_names[name] = number
        self.note_ignored(sheet, number, cells, set())
        cond = self.relevant(cells, number, None)
        outer = next((e for e in stack if e["kind"] == "group"), None)
        if outer is None:
            section: dict[str, Any] = {"key": name}
            title = self.ltext(cells, langs.get("label"))
            help_ = self.ltext(cells, langs.get("hint"))
            if title:
                section["title"] = title
            if help_:
                section["help"] = help_
            self.sections.append(section)
            key = name
        else:
            key = outer["section"]
            self.out.warn("xlsform.warn.nested_group", row=number, name=name, outer=key)
        return {"kind": "group", "name": name, "row": number, "section": key, "cond": cond}

    def lac_json(self, cells: dict[str, Any], column: str) -> Any:
        text = _text(cells.get(column))
        try:
            return json.loads(text)
        except ValueError:
            raise _RowError("xlsform.bad_value", column=column, value=text[:60]) from None

    def lac_flag(self, cells: dict[str, Any], column: str) -> bool:
        flag = _yes_no(cells.get(column))
        if flag is None:
            raise _RowError("xlsform.bad_value", column=column, value=_text(cells.get(column)))
        return flag

    def field(self, sheet: _Sheet, number: int, cells: dict[str, Any], name: str, kind: _Type,
              stack: list[dict[str, Any]], langs: dict[str, dict[str, str]]) -> None:
        if not name:
            raise _RowError("xlsform.missing_name")
        key = _key_of(name)
        if key in self.names:
            raise _RowError("xlsform.duplicate_name", name=name, first_row=self.names[key])
        self.names[key] = number
        self.out.field_rows[key] = number
        if key != name:
            self.out.warn("xlsform.warn.renamed", row=number, name=name, key=key)
        name = key
        ours = kind.ours or "text"
        lac_type = _text(cells.get("lac_type")).lower()
        appearance = _text(cells.get("appearance")).lower()
        skip: set[str] = set()
        if lac_type:
            ours = lac_type
        elif ours == "text" and "multiline" in appearance.split():
            ours = "textarea"
            skip.add("appearance")
        if kind.xls == "acknowledge" and not lac_type:
            self.ack_fields.add(name)
        self.note_ignored(sheet, number, cells, skip)
        fd: dict[str, Any] = {"key": name, "type": ours}
        for attr, base in (("label", "label"), ("help", "hint"), ("pattern_message", "constraint_message")):
            text = self.ltext(cells, langs.get(base))
            if text:
                fd[attr] = text
        # choices -------------------------------------------------------------------------
        if kind.list_name is not None:
            if kind.from_file:
                fd["choice_list"] = kind.list_name
                if not lac_type:
                    self.out.warn("xlsform.warn.external_list", row=number, list=kind.list_name)
            elif kind.list_name not in self.lists:
                raise _RowError("xlsform.missing_list", list=kind.list_name)
            elif ours == "checklist":
                fd["items"] = [
                    {"key": c.value, "label": c.label, **({"group": c.group} if c.group else {})}
                    for c in self.lists[kind.list_name]
                ]
            else:
                fd["choices"] = [
                    {"value": c.value, "label": c.label, **({} if c.active else {"active": False})}
                    for c in self.lists[kind.list_name]
                ]
        if _text(cells.get("lac_choice_list")):
            fd["choice_list"] = _text(cells["lac_choice_list"])
        # required, relevant, constraint, default -------------------------------------------
        if "required" in cells:
            flag = _yes_no(cells["required"])
            if flag is None:
                raise _RowError("xlsform.bad_required", value=_text(cells["required"]))
            if flag:
                fd["required"] = True
        own = self.relevant(cells, number, name)
        conds = [e["cond"] for e in stack if e["kind"] == "group" and e.get("cond")]
        conds = [*conds, own] if own else conds
        if conds:
            fd["show_if"] = conds[0] if len(conds) == 1 else {"all": conds}
        fd.update(self.rules(cells, number, ours))
        allowed = REGISTRY[ours].allowed_attrs if ours in REGISTRY else None
        if "pattern_message" in fd and "pattern" not in fd and allowed is not None \
                and "pattern_message" not in allowed:
            del fd["pattern_message"]  # a range message: our number types say it themselves
            self.out.warn("xlsform.warn.message_dropped", row=number, type=ours)
        default = self.default(cells, number, ours)
        if default is not None:
            fd["default"] = default
        # our own columns ------------------------------------------------------------------
        section = _text(cells.get("lac_section")) or next(
            (e["section"] for e in stack if e["kind"] == "group"), None
        )
        if section:
            fd["section"] = section
        for attr in ("sensitive", "unique", "retired"):
            if f"lac_{attr}" in cells and self.lac_flag(cells, f"lac_{attr}"):
                fd[attr] = True
        for attr in ("reference_form", "sex_field", "doc_type_field"):
            if _text(cells.get(f"lac_{attr}")):
                fd[attr] = _text(cells[f"lac_{attr}"])
        if "lac_steps" in cells:
            steps = _text(cells["lac_steps"])
            parts = [p for p in re.split(r"[\s,，]+", steps) if p]
            if not parts or not all(re.fullmatch(r"-?\d+", p) for p in parts):
                raise _RowError("xlsform.bad_value", column="lac_steps", value=steps)
            fd["steps"] = [int(p) for p in parts]
        if "lac_extra" in cells:
            extra = self.lac_json(cells, "lac_extra")
            if not isinstance(extra, dict) or not set(extra) <= _FIELD_ATTRS:
                raise _RowError("xlsform.bad_value", column="lac_extra",
                                value=_text(cells["lac_extra"])[:60])
            fd.update(extra)
        self.fields.append(fd)

    def rules(self, cells: dict[str, Any], number: int, ours: str) -> dict[str, Any]:
        text = _text(cells.get("constraint"))
        rules: dict[str, Any] = {}
        if text:
            try:
                rules, notes = _parse_constraint(text, ours)
            except _ExprError as err:
                raise _expr_problem(err, "constraint", text) from None
            if notes:
                bounds = ", ".join(note["bound"] for note in notes)
                self.out.warn("xlsform.warn.strict_bound", row=number, expr=text, bound=bounds)
        if "lac_rules" in cells:
            lac = self.lac_json(cells, "lac_rules")
            if isinstance(lac, dict) and (_render_constraint(lac) or "") == text:
                return lac
            self.out.warn("xlsform.warn.stale_lac", row=number, column="constraint", lac="lac_rules")
        return rules

    def default(self, cells: dict[str, Any], number: int, ours: str) -> Any:
        text = _text(cells.get("default"))
        value = _convert_default(text, ours) if text else None
        if text and value is None:
            raise _RowError("xlsform.bad_default", value=text, type=ours)
        if "lac_default" in cells:
            lac = self.lac_json(cells, "lac_default")
            if _render_default(lac) == text:
                return lac
            self.out.warn("xlsform.warn.stale_lac", row=number, column="default", lac="lac_default")
        return value

    def check_references(self, sheet: _Sheet) -> None:
        for number, column, cond, _key in self.cond_checks:
            for leaf in _walk_leaves(cond):
                ref = leaf["field"] = _key_of(leaf["field"])
                if ref not in self.names:
                    self.out.problem("xlsform.unknown_reference", sheet=sheet.title, row=number,
                                     column=column, ref=ref)
                    break
                if ref in self.ack_fields and isinstance(leaf.get("value"), str) and \
                        leaf["value"].upper() == "OK" and leaf.get("op") in ("equals", "not_equals"):
                    leaf["value"] = True  # Kobo's acknowledge answers 'OK'; ours is a boolean

    # ---- the whole form --------------------------------------------------------------------
    def run(self) -> dict[str, Any] | None:
        if "survey" not in self.sheets:
            self.out.problem("xlsform.no_survey")
            return None
        settings = self.settings()
        self.choices()
        self.survey()
        data: dict[str, Any] = {}
        slug = self.slug_arg or settings.get("form_id") or self.stem
        if slug:
            data["slug"] = self.slug = slugify(slug)
        else:
            self.out.problem("xlsform.no_slug")
        title = settings.get("form_title")
        if title:
            data["title"] = {self.default_lang: title}
        data["sections"] = self.sections
        data["fields"] = self.fields
        self.lac_settings(data, title or "")
        if data.get("title") and "zh" not in data["title"]:
            data["title"] = {"zh": ltext(data["title"]), **data["title"]}  # a zh title is required
        if not data.get("title") and (self.stem or data.get("slug")):
            fallback = self.stem or data["slug"]
            data["title"] = {"zh": fallback}
            self.out.warn("xlsform.warn.default_title", title=fallback)
        if not data["sections"]:
            del data["sections"]
        if self.out.problems:
            return None
        return data

    def lac_settings(self, data: dict[str, Any], form_title: str) -> None:
        sheet = self.sheets.get("lac_settings")
        if sheet is None:
            return
        allowed = {info.alias or name for name, info in FormSpec.model_fields.items()}
        allowed -= {"slug", "fields", "sections"}
        for number, cells in sheet.rows:
            key = _text(cells.get("key"))
            if not key:
                continue
            self.out.lac_at[key] = (sheet.title, number)
            try:
                if key not in allowed and key != "section_order":
                    raise _RowError("xlsform.bad_value", column="key", value=key)
                value = self.lac_json(cells, "value")
            except _RowError as err:
                self.out.problem(err.code, sheet=sheet.title, row=number, **err.params)
                continue
            if key == "title":
                if isinstance(value, dict) and ltext(value, "zh") == form_title:
                    data["title"] = value
                else:
                    self.out.warn("xlsform.warn.stale_lac", row=number, column="form_title", lac="lac_settings")
            elif key == "section_order":
                keys = [s["key"] for s in data["sections"]]
                if isinstance(value, list) and sorted(map(str, value)) == sorted(keys):
                    by_key = {s["key"]: s for s in data["sections"]}
                    data["sections"] = [by_key[k] for k in value]
                else:
                    self.out.warn("xlsform.warn.stale_lac", row=number, column="begin group",
                                  lac="lac_settings")
            else:
                data[key] = value


def _convert_default(text: str, ours: str) -> Any:
    """Default cell text -> the stored kind for the field type (None when it does not fit)."""
    if ours in _INT_TYPES:
        return int(text) if re.fullmatch(r"-?\d+", text) else None
    if ours == "boolean":
        if text.upper() == "OK":
            return True
        return _yes_no(text) if text else None
    if ours in ("multiselect",):
        return text.split()
    return text


def _render_default(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list) and all(isinstance(v, str) and v and not re.search(r"\s", v) for v in value):
        return " ".join(value)
    if isinstance(value, (int, float, str)):
        return _text(value)
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _finish_warnings(out: _Out) -> list[str]:
    for (sheet, column), rows in out.ignored.items():
        out.warn("xlsform.warn.column_ignored", sheet=sheet, column=column, rows=_rows_text(rows))
    return [render(code, out.lang, **params) for code, params in out.warnings]


def _convert(data: bytes | Path | str, slug: str | None, lang: str) -> tuple[dict[str, Any] | None, _Out]:
    out = _Out(lang=lang)
    sheets, stem = _load(data, out)
    if sheets is None:
        return None, out
    importer = _Importer(sheets, out, slug, stem)
    spec = importer.run()
    for problem in out.problems:
        problem.form = problem.form or importer.slug
    return spec, out


def xlsform_to_dict(
    data: bytes | Path | str, *, slug: str | None = None, lang: str = "zh"
) -> tuple[dict[str, Any] | None, list[Problem], list[str]]:
    """Workbook -> the plain spec dict (not yet checked), problems, warnings (in ``lang``)."""
    spec, out = _convert(data, slug, lang)
    return spec, out.problems, _finish_warnings(out)


def import_xlsform(
    data: bytes | Path | str, *, slug: str | None = None, lang: str = "zh"
) -> tuple[FormSpec | None, list[Problem], list[str]]:
    """Read an XLSForm into a checked FormSpec: ``(spec, problems, warnings)``.

    The spec is returned only when there are no problems; problems name the sheet and the 1-based
    spreadsheet row. The slug comes from ``slug`` if given, else settings/form_id, else the file name.
    """
    from engine.spec import check_spec  # lazy: engine.spec may read XLSX through this module

    data_dict, out = _convert(data, slug, lang)
    warnings = _finish_warnings(out)
    if data_dict is None:
        return None, out.problems, warnings
    spec, problems = check_spec(data_dict)
    if problems or spec is None:
        for problem in problems:
            problem.form = problem.form or data_dict.get("slug")
            if problem.sheet is None:
                where = _where(problem, out)
                if where is not None:
                    problem.sheet, problem.row = where
        return None, list(problems), warnings
    return spec, [], warnings


_SPEC_CODE_PLACE = {
    "spec.slug_missing": "settings", "spec.slug_invalid": "settings", "spec.title_missing": "settings",
    "spec.list_column_unknown": "list_columns", "spec.summary_unknown": "summary",
    "spec.date_field_unknown": "date_field", "spec.title_field_unknown": "title_field",
    "spec.parent_unknown": "parent", "spec.access_role_unknown": "access",
    "spec.workflow_initial_unknown": "workflow", "spec.transition_state_unknown": "workflow",
    "spec.state_duplicate": "workflow", "spec.transition_duplicate": "workflow",
    "spec.transition_role_unknown": "workflow", "spec.due_days_negative": "workflow",
    "spec.needs_field_unknown": "workflow", "spec.keep_due_with_due_days": "workflow",
    "spec.pause_with_due_days": "workflow",
}  # fmt: skip


def _where(problem: Problem, out: _Out) -> tuple[str, int] | None:
    """The sheet and row a check_spec problem comes from: the field's survey row, else the settings row
    or lac_settings row that holds the setting."""
    if problem.field in out.field_rows:
        return out.survey_title, out.field_rows[problem.field]
    place = _SPEC_CODE_PLACE.get(problem.code)
    if place == "settings":
        return out.settings_at
    if place is not None:
        return out.lac_at.get(place)
    return None


# =============================================================================================
# Export: spec -> workbook
# =============================================================================================

ZH_COL = "Chinese (zh)"
EN_COL = "English (en)"
_EXPORT_BASE = {
    "text": "text", "textarea": "text", "integer": "integer", "decimal": "decimal", "money": "decimal",
    "date": "date", "datetime": "datetime", "time": "time", "boolean": "acknowledge", "note": "note",
    "rating": "integer", "counter": "integer", "phone": "text", "email": "text", "id_number": "text",
    "reference": "text", "user": "text", "select": "select_one", "multiselect": "select_multiple",
    "checklist": "select_multiple",
}  # fmt: skip
_MULTIPLE = {"multiselect", "checklist"}
_HANDLED_ATTRS = {
    "key", "type", "label", "help", "section", "required", "default", "choices", "choice_list", "items",
    "min", "max", "min_length", "max_length", "pattern", "pattern_message", "show_if", "sensitive",
    "unique", "reference_form", "sex_field", "doc_type_field", "steps", "retired",
}  # fmt: skip
_SURVEY_COLUMNS = [
    "type", "name", f"label::{ZH_COL}", f"label::{EN_COL}", f"hint::{ZH_COL}", f"hint::{EN_COL}",
    "required", "relevant", "constraint", f"constraint_message::{ZH_COL}", f"constraint_message::{EN_COL}",
    "default", "appearance", "lac_type", "lac_section", "lac_choice_list", "lac_sensitive", "lac_unique",
    "lac_retired", "lac_reference_form", "lac_sex_field", "lac_doc_type_field", "lac_steps", "lac_show_if",
    "lac_rules", "lac_default", "lac_extra",
]  # fmt: skip
_ALWAYS = {"type", "name", f"label::{ZH_COL}", f"label::{EN_COL}"}


def _lt_cells(prefix: str, value: dict[str, str] | None) -> dict[str, str]:
    value = value or {}
    cells = {}
    if value.get("zh"):
        cells[f"{prefix}::{ZH_COL}"] = value["zh"]
    if value.get("en"):
        cells[f"{prefix}::{EN_COL}"] = value["en"]
    return cells


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _field_row(f: dict[str, Any], ack_fields: set[str]) -> dict[str, str]:
    """One field (canonical dict) -> survey cells."""
    ftype = f["type"]
    row: dict[str, str] = {"name": f["key"]}
    if f.get("choices") is not None and ftype != "checklist":
        base = ("select_multiple " if ftype in _MULTIPLE else "select_one ") + f["key"]
        natural = "multiselect" if ftype in _MULTIPLE else "select"
    elif f.get("items") is not None:
        base, natural = f"select_multiple {f['key']}", "multiselect"
    elif f.get("choice_list"):
        multiple = ftype in _MULTIPLE
        base = f"select_{'multiple' if multiple else 'one'}_from_file {f['choice_list']}.csv"
        natural = "multiselect" if multiple else "select"
    else:
        base = _EXPORT_BASE.get(ftype, "text")
        natural = _SIMPLE.get(base, "text")
    row["type"] = base
    if ftype == "textarea" and natural == "text":
        row["appearance"] = "multiline"
    elif ftype != natural or base.startswith("select_one_from") or base.startswith("select_multiple_from"):
        row["lac_type"] = ftype  # (on a from_file select it also says: the reference list is ours)
    if f.get("choice_list") and (f.get("choices") is not None or f.get("items") is not None):
        row["lac_choice_list"] = f["choice_list"]
    row.update(_lt_cells("label", f.get("label")))
    row.update(_lt_cells("hint", f.get("help")))
    row.update(_lt_cells("constraint_message", f.get("pattern_message")))
    if f.get("required"):
        row["required"] = "yes"
    # show_if: relevant, with the exact JSON beside it whenever the XPath would not read back the same
    cond = f.get("show_if")
    if cond:
        text = render_relevant(cond)
        if text:
            row["relevant"] = text
        try:
            back = parse_relevant(text) if text else None
            if back is not None:
                for leaf in _walk_leaves(back):
                    if leaf["field"] in ack_fields and leaf.get("value") == "OK":
                        leaf["value"] = True
        except _ExprError:
            back = None
        if _cond_norm(back) != _cond_norm(cond):
            row["lac_show_if"] = _json(cond)
    # min / max / lengths / pattern: constraint, with lac_rules when it cannot say it exactly
    rules = {k: f[k] for k in ("min", "max", "min_length", "max_length", "pattern") if f.get(k) is not None}
    if rules:
        text = _render_constraint(rules)
        if text:
            row["constraint"] = text
        try:
            back_rules = _parse_constraint(text, ftype)[0] if text else {}
        except _ExprError:
            back_rules = {}
        if back_rules != rules:
            row["lac_rules"] = _json(rules)
    if f.get("default") is not None:
        text = _render_default(f["default"])
        row["default"] = text
        if _convert_default(text, ftype) != f["default"]:
            row["lac_default"] = _json(f["default"])
    for attr in ("sensitive", "unique", "retired"):
        if f.get(attr):
            row[f"lac_{attr}"] = "yes"
    for attr in ("reference_form", "sex_field", "doc_type_field"):
        if f.get(attr):
            row[f"lac_{attr}"] = f[attr]
    if f.get("steps") is not None:
        row["lac_steps"] = " ".join(str(s) for s in f["steps"])
    extra = {k: v for k, v in f.items() if k not in _HANDLED_ATTRS}
    if extra:
        row["lac_extra"] = _json(extra)
    return row


def _write_sheet(wb: Any, title: str, columns: list[str], rows: list[dict[str, str]]) -> None:
    from openpyxl.styles import Font

    ws = wb.create_sheet(title)
    ws.append(columns)
    for cell in ws[1]:
        cell.font = Font(bold=True)
    for number, row in enumerate(rows, start=2):
        for col, column in enumerate(columns, start=1):
            value = row.get(column)
            if value in (None, ""):
                continue
            cell = ws.cell(row=number, column=col, value=value)
            if isinstance(value, str) and value.startswith("="):
                cell.data_type = "s"  # a label starting with '=' is text, not a formula
    ws.freeze_panes = "A2"
    for col, column in enumerate(columns, start=1):
        width = max([len(column), *(len(str(r.get(column, ""))) for r in rows[:200])]) + 2
        ws.column_dimensions[ws.cell(row=1, column=col).column_letter].width = min(width, 60)


def export_xlsform(spec: FormSpec) -> bytes:
    """Write a spec as an XLSForm workbook (survey, choices, settings, and lac_settings when needed)."""
    from openpyxl import Workbook

    data = spec.to_dict()
    fields: list[dict[str, Any]] = data.get("fields", [])
    sections: list[dict[str, Any]] = data.get("sections", [])
    ack_fields = {f["key"] for f in fields if f["type"] == "boolean"}
    survey: list[dict[str, str]] = []
    choices: list[dict[str, str]] = []
    emitted: list[str] = []
    open_group: str | None = None
    by_key = {s["key"]: s for s in sections}

    def begin(key: str) -> None:
        section = by_key.get(key, {"key": key})
        survey.append({"type": "begin group", "name": key, **_lt_cells("label", section.get("title")),
                       **_lt_cells("hint", section.get("help"))})
        emitted.append(key)

    for f in fields:
        section = f.get("section")
        row = _field_row(f, ack_fields)
        if section != open_group:
            if open_group is not None:
                survey.append({"type": "end group"})
                open_group = None
            if section is not None and section not in emitted:
                begin(section)
                open_group = section
        if section is not None and section != open_group:
            row["lac_section"] = section  # the section's group was already written further up
        survey.append(row)
        for c in f.get("choices") or []:
            choices.append({"list_name": f["key"], "name": c["value"], **_lt_cells("label", c.get("label")),
                            **({"lac_active": "no"} if c.get("active") is False else {})})
        if f.get("choices") is None:
            for item in f.get("items") or []:
                choices.append({"list_name": f["key"], "name": item["key"],
                                **_lt_cells("label", item.get("label")),
                                **({"lac_group": item["group"]} if item.get("group") else {})})
    if open_group is not None:
        survey.append({"type": "end group"})
    for s in sections:
        if s["key"] not in emitted:
            begin(s["key"])
            survey.append({"type": "end group"})

    title = data.get("title", {})
    form_title = ltext(title, "zh")
    settings = {"form_id": spec.slug, "form_title": form_title, "default_language": ZH_COL}
    lac: list[dict[str, str]] = []
    if title and title != {"zh": form_title}:
        lac.append({"key": "title", "value": _json(title)})
    if [s["key"] for s in sections] != emitted:
        lac.append({"key": "section_order", "value": _json([s["key"] for s in sections])})
    for key, value in data.items():
        if key not in ("slug", "title", "fields", "sections"):
            lac.append({"key": key, "value": _json(value)})

    wb = Workbook()
    wb.remove(wb.active)
    used = {c for r in survey for c in r}
    _write_sheet(wb, "survey", [c for c in _SURVEY_COLUMNS if c in used or c in _ALWAYS], survey)
    choice_cols = ["list_name", "name", f"label::{ZH_COL}", f"label::{EN_COL}"]
    choice_cols += [c for c in ("lac_active", "lac_group") if any(c in r for r in choices)]
    _write_sheet(wb, "choices", choice_cols, choices)
    _write_sheet(wb, "settings", list(settings), [settings])
    if lac:
        _write_sheet(wb, "lac_settings", ["key", "value"], lac)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
