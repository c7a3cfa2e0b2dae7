"""Record validation: raw values (widgets, CSV rows) -> clean stored values + per-field problems.

- Only *visible* active fields count: a field whose `show_if` is false is neither validated nor saved.
  A condition looks only at fields the user can see: the values of hidden fields are ignored, and a
  field all of whose controlling fields are hidden is hidden too (so chains collapse together).
- Retired fields, display-only types (note, counter) and unknown keys are dropped.
- Defaults are not applied here (the UI pre-fills them).
- Checks that need the whole record (an ID number's document type and its sex) run after each field's
  own coerce, from `RECORD_RULES`, keyed by field type.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from dataclasses import field as dc_field
from datetime import date
from typing import Any

from engine.conditions import evaluate
from engine.errors import Problem
from engine.fields import REGISTRY, FieldProblem, is_empty
from engine.idnumber import DOC_TYPES, RESIDENT_ID, check_document, check_sex, parse_id
from engine.messages import register
from models.spec import Choice, FieldSpec, FormSpec

ELDERLY_AGE = 60
ADULT_AGE = 18

register(
    {
        "field.required": {"zh": "此项必填", "en": "This field is required"},
        "field.unknown_type": {
            "zh": "字段类型「{type}」无法识别，请联系管理员",
            "en": "The field type '{type}' is unknown; please tell the administrator",
        },
    }
)


@dataclass
class ValidationContext:
    lang: str = "zh"
    today: date | None = None
    choice_lists: Mapping[str, list[Choice]] = dc_field(default_factory=dict)  # inactive items included
    allow_inactive: set[str] = dc_field(default_factory=set)  # values already stored on the record (edit)


# --------------------------------------------------------------------------------------------------
# Visibility
# --------------------------------------------------------------------------------------------------
class _Visibility:
    def __init__(self, spec: FormSpec, values: Mapping[str, Any]) -> None:
        self.values = values
        self.active = {f.key: f for f in spec.active_fields}
        self.known = {f.key for f in spec.fields}
        self.state: dict[str, bool] = {}
        self.busy: set[str] = set()

    def visible(self, key: str) -> bool:
        if key not in self.active:
            return False  # retired (or unknown): never shown for entry
        if key in self.state:
            return self.state[key]
        if key in self.busy:
            return False  # a show_if cycle: the spec checker reports it; hide rather than loop
        self.busy.add(key)
        result = self._decide(self.active[key])
        self.busy.discard(key)
        self.state[key] = result
        return result

    def _decide(self, field: FieldSpec) -> bool:
        if field.show_if is None:
            return True
        controllers = {k: self.visible(k) for k in field.show_if.referenced_fields() if k in self.known}
        if controllers and not any(controllers.values()):
            return False
        seen = {k: v for k, v in self.values.items() if controllers.get(k, True)}
        return evaluate(field.show_if, seen)


def visible_fields(spec: FormSpec, values: Mapping[str, Any]) -> list[FieldSpec]:
    """Active fields whose show_if holds (given the raw values), in spec order."""
    vis = _Visibility(spec, values or {})
    return [f for f in spec.active_fields if vis.visible(f.key)]


# --------------------------------------------------------------------------------------------------
# Whole-record rules per field type
# --------------------------------------------------------------------------------------------------
RecordRule = Callable[[FieldSpec, dict[str, Any], dict[str, Problem], ValidationContext], Any]


def _doc_type(field: FieldSpec, values: Mapping[str, Any]) -> str:
    """The document type chosen for an id_number field (resident ID when none; unknown ones: other)."""
    chosen = values.get(field.doc_type_field) if field.doc_type_field else None
    if is_empty(chosen):
        return RESIDENT_ID
    return str(chosen) if str(chosen) in DOC_TYPES else "other"


def _id_rule(field: FieldSpec, clean: dict[str, Any], errors: dict[str, Problem], ctx: ValidationContext) -> Any:
    if field.doc_type_field and field.doc_type_field in errors:
        return clean[field.key]  # the document type itself is wrong: that error is the one to fix first
    doc = _doc_type(field, clean)
    number = check_document(clean[field.key], doc, ctx.today)
    if doc == RESIDENT_ID and field.sex_field and field.sex_field not in errors:
        check_sex(number, clean.get(field.sex_field), ctx.today)
    return number


RECORD_RULES: dict[str, RecordRule] = {"id_number": _id_rule}


def _problem(spec: FormSpec, key: str, code: str, params: dict[str, Any] | None = None) -> Problem:
    return Problem(code, dict(params or {}), form=spec.slug, field=key)


def _apply_record_rules(
    spec: FormSpec, clean: dict[str, Any], errors: dict[str, Problem], ctx: ValidationContext
) -> None:
    for field in spec.active_fields:
        rule = RECORD_RULES.get(field.type)
        if rule is None or field.key not in clean:
            continue
        try:
            clean[field.key] = rule(field, clean, errors, ctx)
        except FieldProblem as problem:
            errors[field.key] = _problem(spec, field.key, problem.code, problem.params)
            del clean[field.key]


# --------------------------------------------------------------------------------------------------
# validate
# --------------------------------------------------------------------------------------------------
def _check_field(
    spec: FormSpec, field: FieldSpec, raw: Mapping[str, Any], ctx: ValidationContext
) -> tuple[Any, Problem | None]:
    ftype = REGISTRY.get(field.type)
    if ftype is None:
        return None, _problem(spec, field.key, "field.unknown_type", {"type": field.type})
    if not ftype.stores_value:
        return None, None
    try:
        value = ftype.coerce(raw.get(field.key), field, ctx)
    except FieldProblem as problem:
        return None, _problem(spec, field.key, problem.code, problem.params)
    if value is None and field.required:
        return None, _problem(spec, field.key, "field.required")
    return value, None


def validate(
    spec: FormSpec, raw: Mapping[str, Any], ctx: ValidationContext | None = None
) -> tuple[dict[str, Any], dict[str, Problem]]:
    """(clean values of the visible storing fields, {field_key: Problem}) for one record."""
    ctx = ctx or ValidationContext()
    raw = raw or {}
    clean: dict[str, Any] = {}
    errors: dict[str, Problem] = {}
    for field in visible_fields(spec, raw):
        value, problem = _check_field(spec, field, raw, ctx)
        if problem is not None:
            errors[field.key] = problem
        elif value is not None:
            clean[field.key] = value
    _apply_record_rules(spec, clean, errors, ctx)
    return clean, errors


# --------------------------------------------------------------------------------------------------
# derive: facts read from values (birth date, sex, age and age groups from resident ID numbers)
# --------------------------------------------------------------------------------------------------
def age_groups(age: int) -> list[str]:
    if age >= ELDERLY_AGE:
        return ["elderly"]
    if age < ADULT_AGE:
        return ["minor"]
    return []


def _derive_id(field: FieldSpec, values: Mapping[str, Any], today: date | None) -> dict[str, Any] | None:
    value = values.get(field.key)
    if is_empty(value) or not isinstance(value, str) or _doc_type(field, values) != RESIDENT_ID:
        return None
    try:
        info = parse_id(value, today)
    except FieldProblem:
        return None
    return {
        "birth_date": info.birth_date.isoformat(),
        "sex": info.sex,
        "age": info.age,
        "groups": age_groups(info.age),
    }


DERIVERS: dict[str, Callable[[FieldSpec, Mapping[str, Any], date | None], dict[str, Any] | None]] = {
    "id_number": _derive_id,
}


def derive(spec: FormSpec, clean: Mapping[str, Any], today: date | None = None) -> dict[str, dict]:
    """{field_key: facts} for each field whose type derives facts (id_number: birth_date, sex, age, groups)."""
    out: dict[str, dict] = {}
    for field in spec.fields:
        deriver = DERIVERS.get(field.type)
        facts = deriver(field, clean or {}, today) if deriver else None
        if facts:
            out[field.key] = facts
    return out
