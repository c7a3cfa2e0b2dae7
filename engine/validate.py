"""Record validation: raw values (widgets, CSV rows) -> clean stored values + per-field problems.

- Only *visible* active fields count: a field whose `show_if` is false is neither validated nor saved.
  A condition looks only at fields the user can see: the values of hidden fields are ignored, and a
  field all of whose controlling fields are hidden is hidden too (so chains collapse together).
- Retired fields, display-only types (note, counter) and unknown keys are dropped.
- Defaults are not applied here (the UI pre-fills them).
- Checks that need the whole record (an ID number's document type and its sex) run after each field's
  own coerce, from `RECORD_RULES`, keyed by field type.
- What only depends on the spec (active fields, their types, compiled show_if conditions in dependency
  order) is worked out once per spec object (`_plan`); specs are shared and never changed once parsed.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from dataclasses import field as dc_field
from datetime import date
from typing import Any

from engine.conditions import Test, compile_condition
from engine.errors import Problem
from engine.fields import REGISTRY, Coerce, FieldProblem, is_empty
from engine.idnumber import DOC_TYPES, RESIDENT_ID, IdInfo, check_document, check_sex, parse_id, sex_of
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
# The per-spec plan: what `validate` needs from a spec, worked out once per spec object
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Rule:
    """The show_if of one active key, compiled.

    controllers: the referenced keys that are fields of the form (in `referenced_fields()` order);
    deps: those that have a show_if themselves; hidden: those never shown (retired)."""

    key: str
    controllers: tuple[str, ...]
    deps: tuple[str, ...]
    hidden: frozenset[str]
    test: Test


class _Plan:
    """Derived from one spec (specs are immutable once parsed; a changed field list is noticed)."""

    __slots__ = ("field_list", "fields", "registry_sizes", "active", "rules", "order", "inputs", "memo", "checks",
                 "by_key", "always", "ruled")

    # checks: (field, key, has a show_if, the type's coerce or None for an unknown type) per active field
    # that stores a value (display-only types are skipped)

    def __init__(self, spec: FormSpec) -> None:
        self.field_list = spec.fields
        self.fields = tuple(spec.fields)
        self.registry_sizes = _registry_sizes()
        self.active = tuple(spec.active_fields)
        known = {f.key for f in spec.fields}
        by_key = {f.key: f for f in self.active}  # the last field of a key decides (as a dict would)
        self.rules: dict[str, _Rule | None] = {key: _rule(f, known, by_key) for key, f in by_key.items()}
        self.order = _dependency_order(self.rules)  # None: a show_if cycle
        self.inputs = _inputs(by_key.values())  # every key a show_if reads
        self.memo: dict[tuple[Any, ...], dict[str, bool]] = {}  # values of `inputs` -> visibility
        self.checks = tuple(_check(f, self.rules[f.key] is not None) for f in self.active if _stores(f))
        keys = [check[1] for check in self.checks]
        # the checks by key, with their places, when each key has one (else `checks` is run in full)
        self.by_key = {k: (i, c) for i, (k, c) in enumerate(zip(keys, self.checks, strict=True))} \
            if len(set(keys)) == len(keys) else None
        # checks that report a missing value: required fields, and fields of an unknown type
        self.always = tuple((i, c) for i, c in enumerate(self.checks) if c[0].required or c[3] is None)
        self.ruled = tuple(f for f in self.active if f.type in RECORD_RULES)

    def fits(self, spec: FormSpec) -> bool:
        same = spec.fields is self.field_list and tuple(spec.fields) == self.fields
        return same and _registry_sizes() == self.registry_sizes


def _stores(field: FieldSpec) -> bool:
    ftype = REGISTRY.get(field.type)
    return ftype is None or ftype.stores_value  # an unknown type is reported


def _check(field: FieldSpec, conditional: bool) -> tuple[FieldSpec, str, bool, Coerce | None]:
    ftype = REGISTRY.get(field.type)
    if ftype is None:
        return field, field.key, conditional, None
    coerce = ftype.specialise(field, ftype.coerce) if ftype.specialise else ftype.coerce
    return field, field.key, conditional, coerce


def _registry_sizes() -> tuple[int, int]:
    """Field types or record rules registered after a plan was made make it stale."""
    return len(REGISTRY), len(RECORD_RULES)


def _rule(field: FieldSpec, known: set[str], active: Mapping[str, FieldSpec]) -> _Rule | None:
    if field.show_if is None:
        return None
    controllers = tuple(k for k in field.show_if.referenced_fields() if k in known)
    return _Rule(
        key=field.key,
        controllers=controllers,
        deps=tuple(k for k in controllers if k in active and active[k].show_if is not None),
        hidden=frozenset(k for k in controllers if k not in active),
        test=compile_condition(field.show_if),
    )


def _inputs(fields: Iterable[FieldSpec]) -> tuple[str, ...]:
    keys: set[str] = set()
    for field in fields:
        if field.show_if is not None:
            keys |= field.show_if.referenced_fields()
    return tuple(sorted(keys))


def _dependency_order(rules: Mapping[str, _Rule | None]) -> tuple[_Rule, ...] | None:
    """The conditional keys' rules, each after the rules of its controllers; None when there is a cycle."""
    order: list[_Rule] = []
    done: set[str] = set()
    for key in rules:
        if not _visit(key, rules, order, done, set()):
            return None
    return tuple(order)


def _visit(key: str, rules: Mapping[str, _Rule | None], order: list[_Rule], done: set[str], path: set[str]) -> bool:
    rule = rules[key]
    if rule is None or key in done:
        return True
    if key in path:
        return False
    path.add(key)
    if not all(_visit(dep, rules, order, done, path) for dep in rule.deps):
        return False
    path.discard(key)
    done.add(key)
    order.append(rule)
    return True


_MEMO_TYPES = frozenset({str, bool, type(None)})  # values that compare equal only when they act the same
_MEMO_SIZE = 4096  # remembered input combinations per plan
_PLANS: dict[int, tuple[weakref.ref[FormSpec], _Plan]] = {}  # id(spec) -> (the spec, weakly; its plan)


def _forget(key: int, ref: weakref.ref[FormSpec]) -> None:
    entry = _PLANS.get(key)
    if entry is not None and entry[0] is ref:
        _PLANS.pop(key, None)


def _plan(spec: FormSpec) -> _Plan:
    key = id(spec)
    entry = _PLANS.get(key)
    if entry is not None and entry[0]() is spec and entry[1].fits(spec):
        return entry[1]
    plan = _Plan(spec)
    _PLANS[key] = (weakref.ref(spec, lambda ref: _forget(key, ref)), plan)
    return plan


# --------------------------------------------------------------------------------------------------
# Visibility
# --------------------------------------------------------------------------------------------------
def _decide(rule: _Rule, values: Mapping[str, Any], state: Mapping[str, bool]) -> bool:
    """One show_if, its conditional controllers already decided in `state`; hidden controllers read as missing."""
    get = values.get
    if not rule.controllers:
        return rule.test(get)
    hidden = rule.hidden
    if rule.deps:
        off = [k for k in rule.deps if not state[k]]
        if off:
            hidden = hidden.union(off)
    if len(hidden) == len(rule.controllers):
        return False  # every controlling field is hidden
    if not hidden:
        return rule.test(get)
    return rule.test(lambda k: None if k in hidden else get(k))


class _Visibility:
    """Visibility decided on demand, in the caller's order (only for specs with a show_if cycle)."""

    __slots__ = ("rules", "values", "state", "busy")

    def __init__(self, plan: _Plan, values: Mapping[str, Any]) -> None:
        self.rules = plan.rules
        self.values = values
        self.state: dict[str, bool] = {}
        self.busy: set[str] = set()

    def visible(self, key: str) -> bool:
        if key not in self.rules:
            return False  # retired (or unknown): never shown for entry
        rule = self.rules[key]
        if rule is None:
            return True
        if key in self.state:
            return self.state[key]
        if key in self.busy:
            return False  # a show_if cycle: the spec checker reports it; hide rather than loop
        self.busy.add(key)
        result = self._decide(rule)
        self.busy.discard(key)
        self.state[key] = result
        return result

    def _decide(self, rule: _Rule) -> bool:
        shown = {k: self.visible(k) for k in rule.controllers}
        return _decide(rule, self.values, shown)


def _shown(plan: _Plan, values: Mapping[str, Any]) -> dict[str, bool]:
    """{key: visible} for every key with a show_if (keys without one are always visible). Read-only:
    records whose show_if inputs are plain text / yes-no / missing share one answer per combination."""
    if plan.order is None:  # a cycle: decide in spec order, as the answer then depends on the order
        vis = _Visibility(plan, values)
        for field in plan.active:
            vis.visible(field.key)
        return vis.state
    inputs = tuple(map(values.get, plan.inputs))
    memo = plan.memo if set(map(type, inputs)) <= _MEMO_TYPES else None
    if memo is not None and inputs in memo:
        return memo[inputs]
    state: dict[str, bool] = {}
    for rule in plan.order:
        state[rule.key] = _decide(rule, values, state)
    if memo is not None and len(memo) < _MEMO_SIZE:
        memo[inputs] = state
    return state


def visible_fields(spec: FormSpec, values: Mapping[str, Any]) -> list[FieldSpec]:
    """Active fields whose show_if holds (given the raw values), in spec order."""
    plan = _plan(spec)
    state = _shown(plan, values or {})
    return [field for field in plan.active if plan.rules[field.key] is None or state[field.key]]


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
    if doc != RESIDENT_ID:
        return check_document(clean[field.key], doc, ctx.today)
    info = parse_id(clean[field.key], ctx.today)  # check_document of a resident ID, keeping the facts
    if field.sex_field and field.sex_field not in errors:
        _check_sex(info, clean.get(field.sex_field), ctx.today)
    return info.number


def _check_sex(info: IdInfo, sex_value: Any, today: date | None) -> None:
    """`check_sex(info.number, sex_value, today)` without reading the number again when the sexes agree."""
    sex = sex_of(sex_value)
    if sex is not None and sex != info.sex:
        check_sex(info.number, sex_value, today)  # raises id.sex_mismatch


RECORD_RULES: dict[str, RecordRule] = {"id_number": _id_rule}


def _problem(spec: FormSpec, key: str, code: str, params: dict[str, Any] | None = None) -> Problem:
    return Problem(code, dict(params or {}), form=spec.slug, field=key)


def _apply_record_rules(
    spec: FormSpec, plan: _Plan, clean: dict[str, Any], errors: dict[str, Problem], ctx: ValidationContext
) -> None:
    for field in plan.ruled:
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
def _to_check(plan: _Plan, raw: Mapping[str, Any]) -> Iterable[tuple[FieldSpec, str, bool, Coerce | None]]:
    """The checks that can find something, in spec order: the given keys', the required fields' and
    those of unknown types (any other field not given is left out of the record either way). A record
    fills a few dozen of a form's fields, so this skips most of them."""
    by_key = plan.by_key
    if by_key is None or len(raw) * 2 > len(plan.checks):
        return plan.checks
    picked = [by_key[k] for k in raw if k in by_key]
    picked += [entry for entry in plan.always if entry[1][1] not in raw]
    picked.sort(key=_place)
    return [check for _i, check in picked]


def _place(entry: tuple[int, Any]) -> int:
    return entry[0]


def _check_fields(
    spec: FormSpec, plan: _Plan, raw: Mapping[str, Any], ctx: ValidationContext
) -> tuple[dict[str, Any], dict[str, Problem]]:
    """Each visible storing field's own coerce and required check, in spec order."""
    state = _shown(plan, raw)
    clean: dict[str, Any] = {}
    errors: dict[str, Problem] = {}
    get = raw.get
    for field, key, conditional, coerce in _to_check(plan, raw):
        if conditional and not state[key]:
            continue
        if coerce is None:
            errors[key] = _problem(spec, key, "field.unknown_type", {"type": field.type})
            continue
        given = get(key)
        if given is None:  # what every type's coerce makes of it (empty -> None), without the call
            if field.required:
                errors[key] = _problem(spec, key, "field.required")
            continue
        try:
            value = coerce(given, field, ctx)
        except FieldProblem as problem:
            errors[key] = _problem(spec, key, problem.code, problem.params)
            continue
        if value is not None:
            clean[key] = value
        elif field.required:
            errors[key] = _problem(spec, key, "field.required")
    return clean, errors


def validate(
    spec: FormSpec, raw: Mapping[str, Any], ctx: ValidationContext | None = None
) -> tuple[dict[str, Any], dict[str, Problem]]:
    """(clean values of the visible storing fields, {field_key: Problem}) for one record."""
    ctx = ctx or ValidationContext()
    plan = _plan(spec)
    clean, errors = _check_fields(spec, plan, raw or {}, ctx)
    _apply_record_rules(spec, plan, clean, errors, ctx)
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
