"""The field-type registry: one entry per field type (DESIGN §5, ARCHITECTURE "engine.fields").

Each `FieldType` says how a raw value (from a Streamlit widget or a CSV/XLSX cell) becomes the clean
stored value (`coerce`, raising `FieldProblem`), how a clean value is shown (`display`), written to one
export cell (`export`) and read back from one (`parse_cell`, the exact inverse of `export`), and how it
is masked. Stored value conventions (ARCHITECTURE "Conventions"):

    text, textarea, phone, email, id_number, user, select  -> str
    integer, rating -> int;  decimal, money -> exact decimal str ("1234.50");  boolean -> bool
    date -> "YYYY-MM-DD";  datetime -> "YYYY-MM-DDTHH:MM:SS" (local time);  time -> "HH:MM"
    multiselect -> list[str] in the spec's choice order
    checklist -> {item_key: {"answer": "yes"|"no"|"na", "note": str}}
    reference -> int record id > 0, or a choice value (str) when the field has a choice_list
    note, counter -> nothing stored
"""

from __future__ import annotations

import contextlib
import contextvars
import re
import unicodedata
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from engine.messages import register
from models.spec import Choice, FieldSpec, FormSpec, LText, ltext

if TYPE_CHECKING:
    from engine.validate import ValidationContext

MAX_TEXT = 100_000  # hard cap on any text, with or without max_length
MAX_NUMBER = Decimal(10) ** 15  # numbers must stay below this (exact in JSON, SQL and JavaScript)
MAX_PLACES = 10  # decimal places kept by the decimal type
LOCAL_TZ = timezone(timedelta(hours=8))  # aware datetimes are stored as China Standard Time


class FieldProblem(Exception):
    """One coded problem with one value; `validate` turns it into an `engine.errors.Problem`."""

    def __init__(self, code: str, **params: Any) -> None:
        self.code = code
        self.params = params
        super().__init__(f"{code} {params}" if params else code)


register(
    {
        "field.invalid": {"zh": "填写的内容无法识别", "en": "This value cannot be understood"},
        "field.text": {"zh": "这里应填写文字", "en": "Please enter text here"},
        "field.control_char": {
            "zh": "内容含有不可见的控制字符，请删除后重新填写",
            "en": "The text contains invisible control characters; please remove them",
        },
        "field.too_long": {
            "zh": "内容太长（最多 {max} 个字）",
            "en": "Too long (at most {max} characters)",
        },
        "field.min_length": {"zh": "至少需要 {min} 个字", "en": "Enter at least {min} characters"},
        "field.max_length": {"zh": "最多只能填 {max} 个字", "en": "Enter at most {max} characters"},
        "field.pattern": {"zh": "格式不符合要求", "en": "The format is not right"},
        "field.pattern_custom": {"zh": "{zh}", "en": "{en}"},
        "field.number": {"zh": "请填写数字", "en": "Please enter a number"},
        "field.integer": {"zh": "请填写整数", "en": "Please enter a whole number"},
        "field.number_too_large": {"zh": "数字太大", "en": "The number is too large"},
        "field.decimal_places": {
            "zh": "最多保留 {places} 位小数",
            "en": "Use at most {places} decimal places",
        },
        "field.min": {"zh": "不能小于 {min}", "en": "Must be at least {min}"},
        "field.max": {"zh": "不能大于 {max}", "en": "Must be at most {max}"},
        "field.rating": {
            "zh": "请选择 {min} 到 {max} 之间的分数",
            "en": "Choose a score from {min} to {max}",
        },
        "field.date": {
            "zh": "日期格式不正确，请按 2026-03-15 的格式填写",
            "en": "Not a valid date; use the form 2026-03-15",
        },
        "field.datetime": {
            "zh": "日期时间格式不正确，请按 2026-03-15 14:30 的格式填写",
            "en": "Not a valid date and time; use the form 2026-03-15 14:30",
        },
        "field.time": {
            "zh": "时间格式不正确，请按 14:30 的格式填写",
            "en": "Not a valid time; use the form 14:30",
        },
        "field.choice": {
            "zh": "「{value}」不是可选的选项",
            "en": "'{value}' is not one of the options",
        },
        "field.choice_inactive": {
            "zh": "选项「{label}」已停用，请选择其他选项",
            "en": "The option '{label}' is no longer in use; please choose another",
        },
        "field.list_unavailable": {
            "zh": "选项列表「{list}」没有找到，请联系管理员",
            "en": "The option list '{list}' was not found; please tell the administrator",
        },
        "field.min_choices": {"zh": "请至少选择 {min} 项", "en": "Choose at least {min} options"},
        "field.max_choices": {"zh": "最多只能选择 {max} 项", "en": "Choose at most {max} options"},
        "field.boolean": {"zh": "请填写“是”或“否”", "en": "Please answer yes or no"},
        "field.checklist": {"zh": "核对清单的内容无法识别", "en": "The checklist answers cannot be understood"},
        "field.checklist_item": {
            "zh": "核对清单中没有「{item}」这一项",
            "en": "The checklist has no item '{item}'",
        },
        "field.checklist_answer": {
            "zh": "核对项「{item}」的回答应为“是”“否”或“不适用”",
            "en": "Checklist item '{item}' must be answered yes, no or n/a",
        },
        "field.checklist_incomplete": {
            "zh": "还有 {missing} 项没有回答",
            "en": "{missing} item(s) are not answered yet",
        },
        "field.email": {
            "zh": "电子邮箱格式不正确（如 name@example.com）",
            "en": "Not an email address (like name@example.com)",
        },
        "field.reference": {
            "zh": "请选择一条有效的记录",
            "en": "Please pick a valid record",
        },
        "field.user": {
            "zh": "请选择一位工作人员（用户名不能含空格，最多 64 个字）",
            "en": "Please pick a staff member (a user name has no spaces, at most 64 characters)",
        },
    }
)


# --------------------------------------------------------------------------------------------------
# The registry entry
# --------------------------------------------------------------------------------------------------
Coerce = Callable[[Any, FieldSpec, "ValidationContext | None"], Any]
Display = Callable[[Any, FieldSpec, str], str]
Export = Callable[[Any, FieldSpec], str]
ParseCell = Callable[[str, FieldSpec, "ValidationContext | None"], Any]


@dataclass(frozen=True)
class FieldType:
    name: str  # "text", "id_number", ...
    label: LText  # shown in the designer's type picker
    stores_value: bool  # False for note, counter
    value_kind: str  # "text" | "number" | "bool" | "list" | "object": SQL sort/aggregate kind
    coerce: Coerce  # raw -> clean; raises FieldProblem; empty raw -> None
    display: Display  # clean -> text for screens (lang)
    export: Export  # clean -> one CSV/XLSX cell
    parse_cell: ParseCell  # cell text -> raw (import); coerce(parse_cell(export(v))) == v
    mask: Callable[[str], str] | None  # for sensitive display
    allowed_attrs: frozenset[str]  # FieldSpec attrs meaningful for the type
    # specialise(field, coerce): a coerce made for one field (validation plans use it): the usual
    # value checked inline, anything else handed to `coerce`, so the result is always the same
    specialise: Callable[[FieldSpec, Coerce], Coerce] | None = None


# --------------------------------------------------------------------------------------------------
# Small shared helpers
# --------------------------------------------------------------------------------------------------
_SCALARS = frozenset({bool, int, float, Decimal, date, datetime, time})  # exact types: never empty


def is_empty(value: Any) -> bool:
    """None, blank text, and lists / dicts whose every member is empty. False and 0 are values."""
    if value is None:
        return True
    kind = type(value)
    if kind is str:
        return not value.strip()
    if kind in _SCALARS:
        return False
    if kind is dict or kind is list:
        return all(is_empty(v) for v in (value.values() if kind is dict else value))
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, Mapping):
        return all(is_empty(v) for v in value.values())
    if isinstance(value, list | tuple | set | frozenset):
        return all(is_empty(v) for v in value)
    return False


def _nfkc(text: str) -> str:
    return unicodedata.normalize("NFKC", text).strip()


def _fmt_number(value: float | int | Decimal | None) -> str:
    if value is None:
        return ""
    d = Decimal(str(value))
    return format(d.to_integral_value() if d == d.to_integral_value() else d.normalize(), "f")


def _lists(ctx: ValidationContext | None) -> Mapping[str, list[Choice]]:
    return getattr(ctx, "choice_lists", None) or {}


def _allowed_inactive(ctx: ValidationContext | None) -> set[str]:
    return getattr(ctx, "allow_inactive", None) or set()


def _today(ctx: ValidationContext | None) -> date | None:
    return getattr(ctx, "today", None)


_TRUE_WORDS = frozenset({"是", "yes", "y", "true", "t", "1", "√", "✓", "on", "对", "有"})
_FALSE_WORDS = frozenset({"否", "no", "n", "false", "f", "0", "×", "✗", "off", "错", "无"})


def as_bool(value: Any) -> bool | None:
    """True / False from a bool, 0/1, or a word (是/否, yes/no, true/false, 1/0, ...); None if not one."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float | Decimal):
        return {0: False, 1: True}.get(value)
    if isinstance(value, str):
        word = _nfkc(value).lower()
        return True if word in _TRUE_WORDS else False if word in _FALSE_WORDS else None
    return None


# --------------------------------------------------------------------------------------------------
# Text
# --------------------------------------------------------------------------------------------------
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _as_text(raw: Any) -> str:
    if isinstance(raw, str):
        if _CONTROL.search(raw):  # NUL and other control characters: PostgreSQL refuses NUL in JSON
            raise FieldProblem("field.control_char")
        return raw
    if isinstance(raw, int | float | Decimal) and not isinstance(raw, bool):
        return str(raw)
    raise FieldProblem("field.text")


def _check_length(text: str, field: FieldSpec) -> None:
    if field.min_length is not None and len(text) < field.min_length:
        raise FieldProblem("field.min_length", min=field.min_length)
    if field.max_length is not None and len(text) > field.max_length:
        raise FieldProblem("field.max_length", max=field.max_length)


def _check_pattern(text: str, field: FieldSpec) -> None:
    if not field.pattern:
        return
    try:
        ok = re.fullmatch(field.pattern, text) is not None
    except re.error:  # a broken pattern is the spec checker's business; do not block data entry
        return
    if ok:
        return
    if field.pattern_message:
        message = field.pattern_message
        raise FieldProblem("field.pattern_custom", zh=ltext(message, "zh"), en=ltext(message, "en"))
    raise FieldProblem("field.pattern")


def _coerce_text(raw: Any, field: FieldSpec, ctx: ValidationContext | None) -> str | None:
    text = _as_text(raw).strip()
    if not text:
        return None
    _check_length(text, field)
    _check_pattern(text, field)
    return text


def _coerce_textarea(raw: Any, field: FieldSpec, ctx: ValidationContext | None) -> str | None:
    text = _as_text(raw).replace("\r\n", "\n").replace("\r", "\n")
    return _coerce_text(text, field, ctx)


# --------------------------------------------------------------------------------------------------
# Numbers
# --------------------------------------------------------------------------------------------------
_NUMBER_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]{1,4})?")
_CURRENCY = re.compile(r"^(?:¥|RMB|CNY)|元$", re.IGNORECASE)


_PLAIN_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")  # ASCII digits only: nothing to normalise or strip
_GROUPING = re.compile(r"[,\s_]")


def _text_to_decimal(raw: str) -> Decimal:
    if _PLAIN_NUMBER.fullmatch(raw):
        return Decimal(raw)
    text = _CURRENCY.sub("", _nfkc(raw)).strip()
    text = _GROUPING.sub("", text)
    if not _NUMBER_TEXT.fullmatch(text):
        raise FieldProblem("field.number")
    return Decimal(text)


def to_decimal(raw: Any) -> Decimal:
    """A finite Decimal below MAX_NUMBER from int / float / Decimal / number text (``"1,234.50"``)."""
    if isinstance(raw, bool):
        raise FieldProblem("field.number")
    if isinstance(raw, Decimal):
        number = raw
    elif isinstance(raw, int):
        number = Decimal(raw)
    elif isinstance(raw, float):
        number = Decimal(repr(raw))
    elif isinstance(raw, str):
        number = _text_to_decimal(raw)
    else:
        raise FieldProblem("field.number")
    if not number.is_finite():
        raise FieldProblem("field.number")
    if abs(number) >= MAX_NUMBER:
        raise FieldProblem("field.number_too_large")
    return number


def _places(number: Decimal) -> int:
    exponent = number.as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def _check_range(number: Decimal, field: FieldSpec) -> None:
    if field.min is not None and number < Decimal(str(field.min)):
        raise FieldProblem("field.min", min=_fmt_number(field.min))
    if field.max is not None and number > Decimal(str(field.max)):
        raise FieldProblem("field.max", max=_fmt_number(field.max))


def _to_int(raw: Any) -> int:
    number = to_decimal(raw)
    if number != number.to_integral_value():
        raise FieldProblem("field.integer")
    return int(number)


def _coerce_integer(raw: Any, field: FieldSpec, ctx: ValidationContext | None) -> int:
    value = _to_int(raw)
    _check_range(Decimal(value), field)
    return value


def _decimal_text(number: Decimal) -> str:
    return format(abs(number) if number == 0 else number, "f")


def _coerce_decimal(raw: Any, field: FieldSpec, ctx: ValidationContext | None) -> str:
    number = to_decimal(raw)
    if _places(number) > MAX_PLACES:
        number = number.normalize()
        if _places(number) > MAX_PLACES:
            raise FieldProblem("field.decimal_places", places=MAX_PLACES)
    _check_range(number, field)
    return _decimal_text(number)


_CENT = Decimal("0.01")


def _coerce_money(raw: Any, field: FieldSpec, ctx: ValidationContext | None) -> str:
    number = to_decimal(raw)
    rounded = number.quantize(_CENT)
    if rounded != number:
        raise FieldProblem("field.decimal_places", places=2)
    _check_range(rounded, field)
    return _decimal_text(rounded)


def _rating_bounds(field: FieldSpec) -> tuple[int, int]:
    low = int(field.min) if field.min is not None else 1
    high = int(field.max) if field.max is not None else 5
    return low, high


def _coerce_rating(raw: Any, field: FieldSpec, ctx: ValidationContext | None) -> int:
    low, high = _rating_bounds(field)
    if isinstance(raw, str) and raw.strip() and set(raw.strip()) <= {"★", "☆"}:
        raw = raw.count("★")
    try:
        value = _to_int(raw)
    except FieldProblem:
        raise FieldProblem("field.rating", min=low, max=high) from None
    if not low <= value <= high:
        raise FieldProblem("field.rating", min=low, max=high)
    return value


def _display_number(value: Any, field: FieldSpec, lang: str) -> str:
    return str(value)


def _display_decimal(value: Any, field: FieldSpec, lang: str) -> str:
    return format(Decimal(str(value)), ",f")


def _display_rating(value: Any, field: FieldSpec, lang: str) -> str:
    return f"{value}/{_rating_bounds(field)[1]}"


# --------------------------------------------------------------------------------------------------
# Dates and times
# --------------------------------------------------------------------------------------------------
_DATE_PART = r"(?P<y>[0-9]{4})\s*[-/.年]\s*(?P<m>[0-9]{1,2})\s*[-/.月]\s*(?P<d>[0-9]{1,2})\s*日?"
_COMPACT_DATE = r"(?P<y>[0-9]{4})(?P<m>[0-9]{2})(?P<d>[0-9]{2})"
_TIME_PART = r"(?P<H>[0-9]{1,2}):(?P<M>[0-9]{2})(?::(?P<S>[0-9]{2})(?:\.[0-9]+)?)?"
_TZ_PART = r"\s*(?P<tz>Z|[+-][0-9]{2}:?[0-9]{2})?"
_DATETIME_RE = [
    re.compile(f"{date_re}(?:(?:T|\\s+){_TIME_PART}{_TZ_PART})?", re.IGNORECASE)
    for date_re in (_DATE_PART, _COMPACT_DATE)
]
_TIME_RE = re.compile(_TIME_PART)


def _parse_datetime_text(raw: str, code: str) -> datetime:
    text = _nfkc(raw)
    match = next((m for regex in _DATETIME_RE if (m := regex.fullmatch(text))), None)
    if not match:
        raise FieldProblem(code)
    parts = match.groupdict()
    try:
        value = datetime(
            int(parts["y"]), int(parts["m"]), int(parts["d"]),
            int(parts["H"] or 0), int(parts["M"] or 0), int(parts["S"] or 0),
        )
    except ValueError:
        raise FieldProblem(code) from None
    if parts.get("tz"):
        tz = parts["tz"].upper().replace(":", "")
        offset = timedelta(0) if tz == "Z" else (1 if tz[0] == "+" else -1) * timedelta(
            hours=int(tz[1:3]), minutes=int(tz[3:5])
        )
        value = value.replace(tzinfo=timezone(offset))
    return value


def _local(value: datetime) -> datetime:
    if value.tzinfo is not None:
        value = value.astimezone(LOCAL_TZ).replace(tzinfo=None)
    return value.replace(microsecond=0)


_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # ASCII digits only


def _iso_date(text: str) -> str:
    """A "YYYY-MM-DD" text read as `_parse_datetime_text` reads it (same result, same problem)."""
    try:
        return date(int(text[:4]), int(text[5:7]), int(text[8:])).isoformat()
    except ValueError:
        raise FieldProblem("field.date") from None


def _coerce_date(raw: Any, field: FieldSpec, ctx: ValidationContext | None) -> str:
    if isinstance(raw, datetime):
        return _local(raw).date().isoformat()
    if isinstance(raw, date):
        return raw.isoformat()
    if not isinstance(raw, str):
        raise FieldProblem("field.date")
    if _ISO_DATE.fullmatch(raw):
        return _iso_date(raw)
    value = _parse_datetime_text(raw, "field.date")
    if value.time() != time(0, 0):
        raise FieldProblem("field.date")
    return value.date().isoformat()


def _coerce_datetime(raw: Any, field: FieldSpec, ctx: ValidationContext | None) -> str:
    if isinstance(raw, datetime):
        value = raw
    elif isinstance(raw, date):
        value = datetime(raw.year, raw.month, raw.day)
    elif isinstance(raw, str):
        value = _parse_datetime_text(raw, "field.datetime")
    else:
        raise FieldProblem("field.datetime")
    return _local(value).isoformat(timespec="seconds")


def _coerce_time(raw: Any, field: FieldSpec, ctx: ValidationContext | None) -> str:
    if isinstance(raw, datetime):
        raw = _local(raw).time()
    if isinstance(raw, time):
        return raw.strftime("%H:%M")
    if not isinstance(raw, str):
        raise FieldProblem("field.time")
    match = _TIME_RE.fullmatch(_nfkc(raw))
    if not match or int(match["H"]) > 23 or int(match["M"]) > 59 or int(match["S"] or 0) > 59:
        raise FieldProblem("field.time")
    return f"{int(match['H']):02d}:{match['M']}"


def _display_datetime(value: Any, field: FieldSpec, lang: str) -> str:
    return str(value).replace("T", " ")[:16]


def _export_datetime(value: Any, field: FieldSpec) -> str:
    return str(value).replace("T", " ")


# --------------------------------------------------------------------------------------------------
# Choices (select, multiselect, reference to a choice list)
# --------------------------------------------------------------------------------------------------
_DISPLAY_LISTS: contextvars.ContextVar[Mapping[str, list[Choice]] | None] = contextvars.ContextVar(
    "display_choice_lists", default=None
)


@contextlib.contextmanager
def display_lists(lists: Mapping[str, list[Choice]]) -> Iterator[None]:
    """Within this block, `display` shows labels of choice_list fields from `lists` (else the values)."""
    token = _DISPLAY_LISTS.set(lists)
    try:
        yield
    finally:
        _DISPLAY_LISTS.reset(token)


def field_choices(field: FieldSpec, ctx: ValidationContext | None) -> list[Choice]:
    """The field's options: its choice_list from ctx (inactive ones included), else its inline choices."""
    lists = _lists(ctx)
    if field.choice_list and field.choice_list in lists:
        return list(lists[field.choice_list])
    if field.choice_list and not field.choices:
        raise FieldProblem("field.list_unavailable", list=field.choice_list)
    return list(field.choices or [])


def _display_choices(field: FieldSpec) -> list[Choice]:
    if field.choices:
        return list(field.choices)
    lists = _DISPLAY_LISTS.get() or {}
    return list(lists.get(field.choice_list or "", []))


def _find_choice(raw: Any, choices: list[Choice]) -> Choice | None:
    text = str(raw).strip()
    index = _choice_index(choices)
    if index is not None:
        found = index.exact.get(text)
        if found is not None:
            return found
        folded = text.casefold()
        return index.folded.get(folded) or index.labels.get(folded)
    folded = text.casefold()
    exact = next((c for c in choices if c.value == text), None)
    return (
        exact
        or next((c for c in choices if c.value.casefold() == folded), None)
        or next((c for c in choices if any(v.strip().casefold() == folded for v in c.label.values())), None)
    )


@dataclass(frozen=True, slots=True)
class _ChoiceIndex:
    """The first choice per value, per case-folded value and per case-folded label (`_find_choice` order)."""

    exact: dict[str, Choice]
    folded: dict[str, Choice]
    labels: dict[str, Choice]


def _build_index(choices: list[Choice]) -> _ChoiceIndex:
    index = _ChoiceIndex({}, {}, {})
    for c in choices:
        index.exact.setdefault(c.value, c)
        index.folded.setdefault(c.value.casefold(), c)
        for label in c.label.values():
            index.labels.setdefault(label.strip().casefold(), c)
    return index


# id(list) -> (the list, its length, its index or None after one look-up). Option lists are shared, never
# changed (spec choices and the cached reference lists); a list is indexed when it is read a second time.
_INDEXES: dict[int, tuple[list[Choice], int, _ChoiceIndex | None]] = {}
_INDEXES_SIZE = 512


def _choice_index(choices: list[Choice]) -> _ChoiceIndex | None:
    entry = _INDEXES.get(id(choices))
    if entry is not None and entry[0] is choices and entry[1] == len(choices):
        if entry[2] is not None:
            return entry[2]
        index: _ChoiceIndex | None = _build_index(choices)
    else:
        index = None
    if len(_INDEXES) >= _INDEXES_SIZE:
        _INDEXES.clear()
    _INDEXES[id(choices)] = (choices, len(choices), index)
    return index


def _options(field: FieldSpec, ctx: ValidationContext | None) -> list[Choice]:
    """`field_choices` without the copy (read only): the same list object for every record."""
    lists = getattr(ctx, "choice_lists", None) or {}  # _lists(ctx), inline
    if field.choice_list and field.choice_list in lists:
        found = lists[field.choice_list]
        return found if type(found) is list else list(found)
    if field.choice_list and not field.choices:
        raise FieldProblem("field.list_unavailable", list=field.choice_list)
    return field.choices if field.choices is not None else []


def _pick_choice(raw: Any, choices: list[Choice], ctx: ValidationContext | None) -> Choice:
    if type(raw) is not str and (isinstance(raw, bool) or not isinstance(raw, str | int | float | Decimal)):
        raise FieldProblem("field.choice", value=str(raw)[:50])
    choice = _find_choice(raw, choices)
    if choice is None:
        raise FieldProblem("field.choice", value=str(raw).strip()[:50])
    if not choice.active and choice.value not in _allowed_inactive(ctx):
        raise FieldProblem("field.choice_inactive", value=choice.value, label=ltext(choice.label) or choice.value)
    return choice


def _coerce_select(raw: Any, field: FieldSpec, ctx: ValidationContext | None) -> str:
    return _pick_choice(raw, _options(field, ctx), ctx).value


def _split_multi(raw: Any) -> list[Any]:
    if isinstance(raw, str):
        return re.split(r"[;；]", raw)
    if isinstance(raw, list | tuple | set | frozenset):
        return list(raw)
    return [raw]


def _coerce_multiselect(raw: Any, field: FieldSpec, ctx: ValidationContext | None) -> list[str] | None:
    choices = _options(field, ctx)
    picked = {_pick_choice(item, choices, ctx).value for item in _split_multi(raw) if not is_empty(item)}
    ordered = [c.value for c in choices if c.value in picked]
    if ordered and field.min is not None and len(ordered) < field.min:
        raise FieldProblem("field.min_choices", min=_fmt_number(field.min))
    if field.max is not None and len(ordered) > field.max:
        raise FieldProblem("field.max_choices", max=_fmt_number(field.max))
    return ordered or None


def choice_label(value: Any, field: FieldSpec, lang: str = "zh") -> str:
    """The label of one stored choice value in `lang` (the value itself when it is not a known choice)."""
    choice = next((c for c in _display_choices(field) if c.value == str(value)), None)
    return (ltext(choice.label, lang) or choice.value) if choice else str(value)


def _display_select(value: Any, field: FieldSpec, lang: str) -> str:
    return choice_label(value, field, lang)


def _display_multiselect(value: Any, field: FieldSpec, lang: str) -> str:
    items = value if isinstance(value, list) else [value]
    return ("、" if lang == "zh" else ", ").join(choice_label(v, field, lang) for v in items)


def _export_multiselect(value: Any, field: FieldSpec) -> str:
    return ";".join(str(v) for v in (value if isinstance(value, list) else [value]))


def _parse_multiselect(cell: str, field: FieldSpec, ctx: ValidationContext | None) -> list[str] | None:
    parts = [p.strip() for p in _split_multi(cell) if p.strip()]
    return parts or None


# --------------------------------------------------------------------------------------------------
# Boolean
# --------------------------------------------------------------------------------------------------
def _coerce_boolean(raw: Any, field: FieldSpec, ctx: ValidationContext | None) -> bool:
    value = as_bool(raw)
    if value is None:
        raise FieldProblem("field.boolean")
    return value


_YES_NO = {"zh": ("是", "否"), "en": ("Yes", "No")}


def _display_boolean(value: Any, field: FieldSpec, lang: str) -> str:
    yes, no = _YES_NO.get(lang, _YES_NO["zh"])
    return yes if value else no


def _export_boolean(value: Any, field: FieldSpec) -> str:
    return "yes" if value else "no"


# --------------------------------------------------------------------------------------------------
# Checklist: {item_key: {"answer": "yes" | "no" | "na", "note": str}}
# --------------------------------------------------------------------------------------------------
ANSWERS: tuple[str, ...] = ("yes", "no", "na")
_ANSWER_WORDS = {
    **{w: "yes" for w in ("yes", "y", "是", "有", "√", "✓", "true", "1", "present", "齐全")},
    **{w: "no" for w in ("no", "n", "否", "无", "×", "✗", "false", "0", "missing", "缺")},
    **{w: "na" for w in ("na", "n/a", "n.a.", "不适用", "无需", "-", "/")},
}
_ANSWER_EXACT = {w: a for w, a in _ANSWER_WORDS.items() if w.strip() and _nfkc(w).lower() == w}  # as written
_ANSWER_TEXT = {
    "zh": {"yes": "是", "no": "否", "na": "不适用", "open": "未答"},
    "en": {"yes": "yes", "no": "no", "na": "n/a", "open": "unanswered"},
}


def _answer(raw: Any, item: str) -> str | None:
    if type(raw) is str and raw in _ANSWER_EXACT:
        return _ANSWER_EXACT[raw]
    if is_empty(raw):
        return None
    if isinstance(raw, bool):
        return "yes" if raw else "no"
    answer = _ANSWER_WORDS.get(_nfkc(str(raw)).lower())
    if answer is None:
        raise FieldProblem("field.checklist_answer", item=item)
    return answer


def _entry(raw: Any, item: str) -> tuple[str | None, str]:
    if type(raw) is dict or isinstance(raw, Mapping):
        note = raw.get("note")
        note_text = "" if note is None else _as_text(note).strip()
        if len(note_text) > MAX_TEXT:
            raise FieldProblem("field.too_long", max=MAX_TEXT)
        return _answer(raw.get("answer"), item), note_text
    return _answer(raw, item), ""


def _coerce_checklist(raw: Any, field: FieldSpec, ctx: ValidationContext | None) -> dict | None:
    if isinstance(raw, str):
        raw = parse_checklist_text(raw)
    if type(raw) is not dict and not isinstance(raw, Mapping):
        raise FieldProblem("field.checklist")
    keys = [item.key for item in field.items or []]
    unknown = next((str(k) for k in raw if k not in keys), None)
    if unknown is not None:
        raise FieldProblem("field.checklist_item", item=unknown[:50])
    out: dict[str, dict[str, str]] = {}
    for key in keys:
        answer, note = _entry(raw.get(key), key)
        if answer is None and note:
            raise FieldProblem("field.checklist_answer", item=key)
        if answer is not None:
            out[key] = {"answer": answer, "note": note}
    if out and field.required and len(out) < len(keys):
        raise FieldProblem("field.checklist_incomplete", missing=len(keys) - len(out))
    return out or None


def _escape_note(note: str) -> str:
    return note.replace("\\", "\\\\").replace(")", "\\)").replace("）", "\\）")


def _export_checklist(value: Any, field: FieldSpec) -> str:
    # In the spec's item order, not the stored order: PostgreSQL (JSONB) does not keep key order.
    order = {item.key: i for i, item in enumerate(field.items or [])}
    parts = []
    for key, entry in sorted(value.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])):
        note = entry.get("note") or ""
        parts.append(f"{key}={entry.get('answer')}" + (f"({_escape_note(note)})" if note else ""))
    return "; ".join(parts)


def _read_note(text: str, i: int) -> tuple[str, int]:
    buf: list[str] = []
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            buf.append(text[i + 1])
            i += 2
        elif ch in ")）":
            return "".join(buf), i + 1
        else:
            buf.append(ch)
            i += 1
    raise FieldProblem("field.checklist")


def _read_until(text: str, i: int, stops: str) -> int:
    while i < len(text) and text[i] not in stops:
        i += 1
    return i


_SEPARATORS = " \t\r\n;；"


def parse_checklist_text(text: str) -> dict[str, dict[str, str]]:
    """Read ``item=yes(note); item2=no`` (the export format) into {item: {answer, note}} (raw answers)."""
    out: dict[str, dict[str, str]] = {}
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in _SEPARATORS:
            i += 1
        if i >= n:
            return out
        j = _read_until(text, i, "=＝")
        if j >= n:
            raise FieldProblem("field.checklist")
        key = text[i:j].strip()
        i = _read_until(text, j + 1, "(（;；")
        answer, note = text[j + 1:i].strip(), ""
        if i < n and text[i] in "(（":
            note, i = _read_note(text, i + 1)
            while i < n and text[i] in " \t":
                i += 1
            if i < n and text[i] not in ";；":
                raise FieldProblem("field.checklist")
        out[key] = {"answer": answer, "note": note}


def _parse_checklist(cell: str, field: FieldSpec, ctx: ValidationContext | None) -> dict | None:
    return parse_checklist_text(cell) if cell.strip() else None


def _display_checklist(value: Any, field: FieldSpec, lang: str) -> str:
    words = _ANSWER_TEXT.get(lang, _ANSWER_TEXT["zh"])
    answers = [entry.get("answer") for entry in value.values()]
    parts = [f"{words[a]} {answers.count(a)}" for a in ANSWERS if answers.count(a)]
    unanswered = max(len(field.items or []) - len(answers), 0)
    if unanswered:
        parts.append(f"{words['open']} {unanswered}")
    return ("，" if lang == "zh" else ", ").join(parts)


# --------------------------------------------------------------------------------------------------
# Phone, email, ID number, reference, user
# --------------------------------------------------------------------------------------------------
def _coerce_phone(raw: Any, field: FieldSpec, ctx: ValidationContext | None) -> str:
    from engine.phone import check_phone

    number = check_phone(_as_text(raw))
    _check_pattern(number, field)
    return number


def _mask_phone(text: str) -> str:
    from engine.phone import mask_phone

    return mask_phone(text)


_EMAIL = re.compile(
    r"(?P<local>[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*)"
    r"@(?P<domain>(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63})"
)


def _coerce_email(raw: Any, field: FieldSpec, ctx: ValidationContext | None) -> str:
    text = _nfkc(_as_text(raw))
    match = _EMAIL.fullmatch(text)
    if not match or len(match["local"]) > 64 or len(text) > 254:
        raise FieldProblem("field.email")
    value = f"{match['local']}@{match['domain'].lower()}"
    _check_pattern(value, field)
    return value


def _coerce_id_number(raw: Any, field: FieldSpec, ctx: ValidationContext | None) -> str:
    from engine.idnumber import check_document, loose_document

    text = _as_text(raw)
    # With a document-type field the type is only known from the whole record: validate checks it.
    return loose_document(text) if field.doc_type_field else check_document(text, None, _today(ctx))


def _mask_id(text: str) -> str:
    from engine.idnumber import mask_id

    return mask_id(text)


def _coerce_reference(raw: Any, field: FieldSpec, ctx: ValidationContext | None) -> int | str:
    if field.choice_list:
        return _pick_choice(raw, _options(field, ctx), ctx).value
    if isinstance(raw, str):
        raw = raw.strip().lstrip("#")
    try:
        value = _to_int(raw)
    except FieldProblem:
        raise FieldProblem("field.reference") from None
    if value <= 0:
        raise FieldProblem("field.reference")
    return value


def _display_reference(value: Any, field: FieldSpec, lang: str) -> str:
    return choice_label(value, field, lang) if field.choice_list else f"#{value}"


_USERNAME = re.compile(r"[^\s\x00-\x1f]{1,64}")


def _coerce_user(raw: Any, field: FieldSpec, ctx: ValidationContext | None) -> str:
    name = _as_text(raw).strip()
    if not _USERNAME.fullmatch(name):
        raise FieldProblem("field.user")
    return name.lower()


# --------------------------------------------------------------------------------------------------
# Generic pieces and registry assembly
# --------------------------------------------------------------------------------------------------
def _nothing(*_: Any) -> None:
    return None


def _blank(*_: Any) -> str:
    return ""


def _guard_coerce(inner: Coerce) -> Coerce:
    """Empty -> None; the 100,000-character cap; any stray parsing error becomes field.invalid."""

    def coerce(raw: Any, field: FieldSpec, ctx: ValidationContext | None = None) -> Any:
        if type(raw) is str:  # the usual case: is_empty of a str, inline
            if not raw.strip():
                return None
        elif is_empty(raw):
            return None
        if isinstance(raw, str) and len(raw) > MAX_TEXT:
            raise FieldProblem("field.too_long", max=MAX_TEXT)
        try:
            return inner(raw, field, ctx)
        except FieldProblem:
            raise
        except (TypeError, ValueError, ArithmeticError, RecursionError):
            raise FieldProblem("field.invalid") from None

    return coerce


def _guard_display(inner: Display) -> Display:
    def display(value: Any, field: FieldSpec, lang: str = "zh") -> str:
        if is_empty(value):
            return ""
        try:
            return inner(value, field, lang)
        except Exception:  # an old or odd stored value must still show
            return str(value)

    return display


def _guard_export(inner: Export) -> Export:
    def export(value: Any, field: FieldSpec) -> str:
        if is_empty(value):
            return ""
        try:
            return inner(value, field)
        except Exception:  # an old or odd stored value must still export
            return str(value)

    return export


def _guard_parse(inner: ParseCell) -> ParseCell:
    def parse_cell(cell: str, field: FieldSpec, ctx: ValidationContext | None = None) -> Any:
        if cell is None:
            return None
        text = cell if isinstance(cell, str) else str(cell)
        if len(text) > MAX_TEXT:
            raise FieldProblem("field.too_long", max=MAX_TEXT)
        return None if not text.strip() else inner(text, field, ctx)

    return parse_cell


def _str(value: Any, *_: Any) -> str:
    return str(value)


def _cell_text(cell: str, field: FieldSpec, ctx: ValidationContext | None) -> str:
    return cell


# --------------------------------------------------------------------------------------------------
# Per-field fast paths (FieldType.specialise): the same answer as the general coerce, for the usual
# value in a fraction of the calls; a value they are not sure of goes to the general coerce.
# --------------------------------------------------------------------------------------------------
def _specialise_text(field: FieldSpec, general: Coerce) -> Coerce:
    low, high = field.min_length or 0, field.max_length if field.max_length is not None else MAX_TEXT
    try:
        pattern = re.compile(field.pattern) if field.pattern else None
    except re.error:
        return general  # a broken pattern: the general coerce knows to let it pass
    control = _CONTROL.search

    def coerce(raw: Any, field: FieldSpec, ctx: ValidationContext | None = None) -> Any:
        if type(raw) is str and len(raw) <= MAX_TEXT and "\r" not in raw:
            text = raw.strip()
            if text and low <= len(text) <= high and control(raw) is None and (
                    pattern is None or pattern.fullmatch(text) is not None):
                return text
        return general(raw, field, ctx)

    return coerce


def _plain_values(choices: Iterable[Choice]) -> frozenset[str]:
    """The values that pick themselves as written: the first choice of each value, when it is active and
    the value has no spaces around it (what `_pick_choice` finds for such a value is that choice)."""
    first: dict[str, Choice] = {}
    for c in choices:
        first.setdefault(c.value, c)
    return frozenset(v for v, c in first.items() if c.active and v and v == v.strip())


def _specialise_listed(field: FieldSpec, general: Coerce) -> Coerce:
    """A choice of a reference list, which comes with each record's context: its plain values are
    worked out again whenever the context holds another list (lists are shared and never changed)."""
    name = field.choice_list
    known: list[tuple[list[Choice], int, frozenset[str]] | None] = [None]  # (the list, its length, plain values)

    def coerce(raw: Any, field: FieldSpec, ctx: ValidationContext | None = None) -> Any:
        if type(raw) is str:
            lists = getattr(ctx, "choice_lists", None)
            found = lists.get(name) if lists else None
            if type(found) is list:
                entry = known[0]
                if entry is None or entry[0] is not found or entry[1] != len(found):
                    entry = known[0] = (found, len(found), _plain_values(found))
                if raw in entry[2]:
                    return raw
        return general(raw, field, ctx)

    return coerce


def _specialise_select(field: FieldSpec, general: Coerce) -> Coerce:
    if field.choice_list:
        return _specialise_listed(field, general)
    if not field.choices:
        return general
    plain = _plain_values(field.choices)

    def coerce(raw: Any, field: FieldSpec, ctx: ValidationContext | None = None) -> Any:
        if type(raw) is str and raw in plain:
            return raw
        return general(raw, field, ctx)

    return coerce


def _specialise_checklist(field: FieldSpec, general: Coerce) -> Coerce:
    keys = tuple(item.key for item in field.items or [])
    known = frozenset(keys)
    words = _ANSWER_EXACT

    def coerce(raw: Any, field: FieldSpec, ctx: ValidationContext | None = None) -> Any:
        # the usual entry: {item: {"answer": <an answer word>, "note": <str>}} for known items only
        if type(raw) is not dict or not raw or not known.issuperset(raw):
            return general(raw, field, ctx)
        out: dict[str, dict[str, str]] = {}
        for key in keys:
            entry = raw.get(key)
            if entry is None:
                continue
            if type(entry) is not dict or len(entry) != 2:
                return general(raw, field, ctx)
            word, note = entry.get("answer"), entry.get("note")
            answer = words.get(word) if type(word) is str else None
            if answer is None or type(note) is not str or len(note) > MAX_TEXT or _CONTROL.search(note):
                return general(raw, field, ctx)
            out[key] = {"answer": answer, "note": note.strip()}
        if not out or (field.required and len(out) < len(keys)):
            return general(raw, field, ctx)
        return out

    return coerce


_DATES_SEEN = 4096  # valid date texts a date field remembers (records repeat the same few hundred days)


def _specialise_date(field: FieldSpec, general: Coerce) -> Coerce:
    iso = _ISO_DATE.fullmatch
    seen: dict[str, str] = {}  # "YYYY-MM-DD" texts already read, all valid (a bad one is not kept)

    def coerce(raw: Any, field: FieldSpec, ctx: ValidationContext | None = None) -> Any:
        if type(raw) is str:
            found = seen.get(raw)
            if found is not None:
                return found
            if iso(raw) is not None:
                found = _iso_date(raw)  # what the general coerce does with it
                if len(seen) >= _DATES_SEEN:
                    seen.clear()
                seen[raw] = found
                return found
        return general(raw, field, ctx)

    return coerce


def _bounds(field: FieldSpec) -> tuple[Decimal | None, Decimal | None]:
    """The field's min and max as `_check_range` compares them."""
    return (None if field.min is None else Decimal(str(field.min)),
            None if field.max is None else Decimal(str(field.max)))


_MAX_INT = int(MAX_NUMBER)


def _specialise_integer(field: FieldSpec, general: Coerce) -> Coerce:
    low, high = _bounds(field)

    def coerce(raw: Any, field: FieldSpec, ctx: ValidationContext | None = None) -> Any:
        # an int (not a bool) inside the limits is itself
        if type(raw) is int and -_MAX_INT < raw < _MAX_INT and (low is None or raw >= low) and (
                high is None or raw <= high):
            return raw
        return general(raw, field, ctx)

    return coerce


_PLAIN_AMOUNT = re.compile(r"(?:0|[1-9][0-9]{0,13})\.[0-9]{2}")  # below 10**14, cents given, no sign


def _specialise_money(field: FieldSpec, general: Coerce) -> Coerce:
    low, high = _bounds(field)
    if high is not None or (low is not None and low > 0):
        return general  # a plain amount is >= 0: it is only sure to pass when nothing else limits it
    plain = _PLAIN_AMOUNT.fullmatch

    def coerce(raw: Any, field: FieldSpec, ctx: ValidationContext | None = None) -> Any:
        if type(raw) is str and plain(raw) is not None:
            return raw  # Decimal(raw) has two places already and prints as written
        return general(raw, field, ctx)

    return coerce


_PLAIN_MOBILE = re.compile(r"1[3-9][0-9]{9}")


def _specialise_phone(field: FieldSpec, general: Coerce) -> Coerce:
    if field.pattern:
        return general
    plain = _PLAIN_MOBILE.fullmatch

    def coerce(raw: Any, field: FieldSpec, ctx: ValidationContext | None = None) -> Any:
        if type(raw) is str and plain(raw) is not None:
            return raw  # 11 ASCII digits of a mobile: nothing to remove or normalise
        return general(raw, field, ctx)

    return coerce


def _specialise_id_number(field: FieldSpec, general: Coerce) -> Coerce:
    if not field.doc_type_field:
        return general  # checked as a resident ID right away

    def coerce(raw: Any, field: FieldSpec, ctx: ValidationContext | None = None) -> Any:
        # ASCII letters and digits only: normalising only upper-cases them (validate checks the type)
        if type(raw) is str and len(raw) <= 40 and raw.isascii() and raw.isalnum():
            return raw.upper()
        return general(raw, field, ctx)

    return coerce


def _specialise_multiselect(field: FieldSpec, general: Coerce) -> Coerce:
    if field.choice_list or not field.choices:
        return general  # a reference list comes with each record's context
    order = [c.value for c in field.choices]
    plain = _plain_values(field.choices)
    low = field.min
    high = field.max

    def coerce(raw: Any, field: FieldSpec, ctx: ValidationContext | None = None) -> Any:
        # a list of the form's own active values, as written: the values in the form's order
        if type(raw) is list and raw and all(type(item) is str and item in plain for item in raw):
            picked = set(raw)
            ordered = [v for v in order if v in picked]
            if (low is None or len(ordered) >= low) and (high is None or len(ordered) <= high):
                return ordered
        return general(raw, field, ctx)

    return coerce


def _specialise_reference(field: FieldSpec, general: Coerce) -> Coerce:
    if field.choice_list:
        return _specialise_listed(field, general)

    def coerce(raw: Any, field: FieldSpec, ctx: ValidationContext | None = None) -> Any:
        if type(raw) is int and 0 < raw < _MAX_INT:
            return raw  # a record id as a whole number
        return general(raw, field, ctx)

    return coerce


def _specialise_boolean(field: FieldSpec, general: Coerce) -> Coerce:
    def coerce(raw: Any, field: FieldSpec, ctx: ValidationContext | None = None) -> Any:
        if type(raw) is bool:
            return raw
        return general(raw, field, ctx)

    return coerce


_BASE = frozenset({"key", "type", "label", "help", "section", "show_if", "retired"})
_STORING = _BASE | {"required", "default", "sensitive", "unique"}
_TEXTUAL = _STORING | {"min_length", "max_length", "pattern", "pattern_message"}
_NUMERIC = _STORING | {"min", "max"}
_CHOICE = _STORING | {"choices", "choice_list"}


def _type(
    name: str,
    zh: str,
    en: str,
    kind: str,
    coerce: Coerce,
    attrs: frozenset[str] | set[str],
    *,
    display: Display = _str,
    export: Export = _str,
    parse: ParseCell = _cell_text,
    mask: Callable[[str], str] | None = None,
    stores: bool = True,
    specialise: Callable[[FieldSpec, Coerce], Coerce] | None = None,
) -> FieldType:
    return FieldType(
        name=name,
        label={"zh": zh, "en": en},
        stores_value=stores,
        value_kind=kind,
        coerce=_guard_coerce(coerce),
        display=_guard_display(display),
        export=_guard_export(export),
        parse_cell=_guard_parse(parse),
        mask=mask,
        allowed_attrs=frozenset(attrs),
        specialise=specialise,
    )


_TYPES: list[FieldType] = [
    _type("text", "单行文字", "Text", "text", _coerce_text, _TEXTUAL, specialise=_specialise_text),
    _type("textarea", "多行文字", "Long text", "text", _coerce_textarea, _TEXTUAL, specialise=_specialise_text),
    _type("integer", "整数", "Whole number", "number", _coerce_integer, _NUMERIC, display=_display_number,
          specialise=_specialise_integer),
    _type("decimal", "小数", "Decimal number", "number", _coerce_decimal, _NUMERIC, display=_display_decimal),
    _type("money", "金额（元）", "Amount (CNY)", "number", _coerce_money, _NUMERIC, display=_display_decimal,
          specialise=_specialise_money),
    _type("date", "日期", "Date", "text", _coerce_date, _STORING, specialise=_specialise_date),
    _type("datetime", "日期和时间", "Date and time", "text", _coerce_datetime, _STORING,
          display=_display_datetime, export=_export_datetime),
    _type("time", "时间", "Time", "text", _coerce_time, _STORING),
    _type("select", "单选", "Single choice", "text", _coerce_select, _CHOICE, display=_display_select,
          specialise=_specialise_select),
    _type("multiselect", "多选", "Multiple choice", "list", _coerce_multiselect, (_CHOICE - {"unique"}) | {"min", "max"},
          display=_display_multiselect, export=_export_multiselect, parse=_parse_multiselect,
          specialise=_specialise_multiselect),
    _type("boolean", "是/否", "Yes / no", "bool", _coerce_boolean, _STORING - {"unique"},
          display=_display_boolean, export=_export_boolean, specialise=_specialise_boolean),
    _type("checklist", "核对清单", "Checklist", "object", _coerce_checklist, (_STORING - {"unique"}) | {"items"},
          display=_display_checklist, export=_export_checklist, parse=_parse_checklist,
          specialise=_specialise_checklist),
    _type("rating", "评分", "Rating", "number", _coerce_rating, _NUMERIC - {"unique"}, display=_display_rating),
    _type("phone", "电话号码", "Phone number", "text", _coerce_phone, _STORING | {"pattern", "pattern_message"},
          mask=_mask_phone, specialise=_specialise_phone),
    _type("email", "电子邮箱", "Email", "text", _coerce_email, _STORING | {"pattern", "pattern_message"}),
    _type("id_number", "身份证件号码", "ID document number", "text", _coerce_id_number,
          _STORING | {"sex_field", "doc_type_field"}, mask=_mask_id, specialise=_specialise_id_number),
    _type("reference", "关联记录", "Linked record", "text", _coerce_reference,
          _STORING | {"reference_form", "choice_list"}, display=_display_reference, specialise=_specialise_reference),
    _type("user", "工作人员", "Staff member", "text", _coerce_user, _STORING),
    _type("note", "说明文字", "Note (display only)", "text", _nothing, _BASE,
          display=_blank, export=_blank, parse=_nothing, stores=False),
    _type("counter", "计数器", "Tally counter", "number", _nothing, _BASE | {"steps"},
          display=_blank, export=_blank, parse=_nothing, stores=False),
]
REGISTRY: dict[str, FieldType] = {t.name: t for t in _TYPES}


def field_type(name: str) -> FieldType:
    """The registry entry for a type name; KeyError naming the known types when there is none."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown field type {name!r}; known: {', '.join(REGISTRY)}") from None


def generic_mask(text: str) -> str:
    """Keep the first character only: ``张**``."""
    return text[:1] + "*" * min(max(len(text) - 1, 1), 6) if text else ""


def mask_value(field: FieldSpec, text: str) -> str:
    """Mask displayed text of a field (the type's own mask, else first character + stars)."""
    if not text:
        return ""
    return masker(field)(text)


def masker(field: FieldSpec) -> Callable[[str], str]:
    """The mask of a field's type, else first character + stars."""
    ftype = REGISTRY.get(field.type)
    return ftype.mask if ftype and ftype.mask else generic_mask


_MASKERS: dict[int, tuple[weakref.ref, list, int, tuple[tuple[str, Callable[[str], str]], ...]]] = {}


def maskers(spec: FormSpec) -> tuple[tuple[str, Callable[[str], str]], ...]:
    """(key, mask) of the spec's sensitive fields, made once per spec (specs are not changed in place)."""
    entry = _MASKERS.get(id(spec))
    if entry is None or entry[0]() is not spec or entry[1] is not spec.fields or entry[2] != len(spec.fields):
        key = id(spec)
        made = tuple((f.key, masker(f)) for f in spec.sensitive_fields())
        entry = (weakref.ref(spec, lambda _ref, k=key: _MASKERS.pop(k, None)), spec.fields, len(spec.fields), made)
        _MASKERS[key] = entry
    return entry[3]
