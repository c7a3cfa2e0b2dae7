"""Record validation: required, visibility (show_if chains), whole-record ID checks, derived facts."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, time
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import engine.fields as fields_module
from engine.conditions import evaluate
from engine.errors import Problem, ValidationFailed
from engine.fields import REGISTRY, FieldProblem, is_empty
from engine.idnumber import DOC_TYPES, RESIDENT_ID, check_document, check_sex, make_id
from engine.validate import ValidationContext, derive, validate, visible_fields
from models.spec import Choice, Condition, FieldSpec, FormSpec

TODAY = date(2026, 3, 15)
LISTS = {
    "liaison_points": [
        Choice(value="lp01", label={"zh": "东新社区", "en": "Dongxin"}),
        Choice(value="lp02", label={"zh": "海滨村", "en": "Haibin"}, active=False),
    ]
}
CTX = ValidationContext(today=TODAY, choice_lists=LISTS)

SPEC = FormSpec.model_validate(
    {
        "slug": "intake",
        "title": {"zh": "法律援助申请登记", "en": "Legal aid application"},
        "fields": [
            {"key": "intro", "type": "note", "label": "请如实填写"},
            {"key": "name", "type": "text", "label": {"zh": "姓名", "en": "Name"}, "required": True},
            {"key": "sex", "type": "select", "choices": [{"value": "male", "label": "男"},
                                                          {"value": "female", "label": "女"}]},
            {"key": "doc_type", "type": "select", "choices": [
                {"value": "resident_id", "label": "居民身份证"}, {"value": "passport", "label": "护照"},
                {"value": "hk_macau_permit", "label": "港澳通行证"}, {"value": "military", "label": "军官证"},
                {"value": "other", "label": "其他"}]},
            {"key": "id_no", "type": "id_number", "required": True, "sensitive": True,
             "sex_field": "sex", "doc_type_field": "doc_type"},
            {"key": "phone", "type": "phone", "sensitive": True},
            {"key": "liaison_point", "type": "select", "choice_list": "liaison_points"},
            {"key": "income", "type": "money", "min": 0},
            {"key": "has_agent", "type": "boolean", "default": False},
            {"key": "agent_name", "type": "text", "required": True,
             "show_if": {"field": "has_agent", "op": "equals", "value": True}},
            {"key": "agent_kind", "type": "select", "required": True,
             "choices": [{"value": "statutory"}, {"value": "entrusted"}],
             "show_if": {"field": "agent_name", "op": "not_empty"}},
            {"key": "agent_id", "type": "id_number", "required": True,
             "show_if": {"field": "agent_kind", "op": "equals", "value": "entrusted"}},
            {"key": "brochures", "type": "counter"},
            {"key": "old_remark", "type": "text", "retired": True},
        ],
    }
)
APPLICANT = make_id("440803", date(1990, 1, 1), 123)  # male
AGENT = make_id("440803", date(1980, 6, 1), 246)  # female


def good(**changes: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {"name": " 张三 ", "sex": "male", "id_no": APPLICANT.lower(), "phone": "138 1234 5678",
                           "liaison_point": "lp01", "income": "1,850.5", "has_agent": False}
    raw.update(changes)
    return raw


def test_a_good_record_is_cleaned() -> None:
    clean, errors = validate(SPEC, good(), CTX)
    assert errors == {}
    assert clean == {"name": "张三", "sex": "male", "id_no": APPLICANT, "phone": "13812345678",
                     "liaison_point": "lp01", "income": "1850.50", "has_agent": False}


def test_display_only_retired_and_unknown_keys_are_dropped() -> None:
    clean, errors = validate(SPEC, good(intro="x", brochures=5, old_remark="old", hacker="1; DROP TABLE"), CTX)
    assert errors == {}
    assert not {"intro", "brochures", "old_remark", "hacker"} & set(clean)


def test_required_fields() -> None:
    clean, errors = validate(SPEC, good(name="  ", id_no=None), CTX)
    assert {k: p.code for k, p in errors.items()} == {"name": "field.required", "id_no": "field.required"}
    problem = errors["name"]
    assert problem.form == "intake" and problem.field == "name"
    assert problem.message("zh") == "此项必填"
    assert problem.message("en") == "This field is required"
    assert "name" not in clean and "id_no" not in clean


def test_defaults_are_not_applied_by_validate() -> None:
    raw = good()
    del raw["has_agent"]
    clean, errors = validate(SPEC, raw, CTX)
    assert errors == {} and "has_agent" not in clean


def test_every_error_message_is_non_empty_and_differs_by_language() -> None:
    raw = good(name="", id_no="123", phone="12345", income="-1", liaison_point="nowhere", sex="other")
    _, errors = validate(SPEC, raw, CTX)
    assert set(errors) == {"name", "id_no", "phone", "income", "liaison_point", "sex"}
    for problem in errors.values():
        zh, en = problem.message("zh"), problem.message("en")
        assert zh and en and zh != en
        assert "{" not in zh and "{" not in en  # every placeholder was filled
    failed = ValidationFailed("intake", errors)
    assert failed.params["count"] == 6
    assert "id_no" in failed.describe("en")


# --- visibility ----------------------------------------------------------------------------------
def test_hidden_fields_are_neither_validated_nor_saved() -> None:
    # has_agent is false: the required agent fields are hidden; stale values typed earlier are dropped
    raw = good(agent_name="李四", agent_kind="entrusted", agent_id="not an id")
    clean, errors = validate(SPEC, raw, CTX)
    assert errors == {}
    assert not {"agent_name", "agent_kind", "agent_id"} & set(clean)


def test_show_if_chain_when_the_first_condition_holds() -> None:
    clean, errors = validate(SPEC, good(has_agent=True), CTX)
    assert {k: p.code for k, p in errors.items()} == {"agent_name": "field.required"}
    clean, errors = validate(SPEC, good(has_agent="是", agent_name="李四"), CTX)
    assert {k: p.code for k, p in errors.items()} == {"agent_kind": "field.required"}
    clean, errors = validate(SPEC, good(has_agent=True, agent_name="李四", agent_kind="statutory"), CTX)
    assert errors == {} and clean["agent_kind"] == "statutory" and "agent_id" not in clean
    clean, errors = validate(SPEC, good(has_agent=True, agent_name="李四", agent_kind="entrusted",
                                        agent_id=AGENT), CTX)
    assert errors == {} and clean["agent_id"] == AGENT


def test_a_field_controlled_by_a_hidden_field_is_hidden() -> None:
    values = good(has_agent=False, agent_name="李四", agent_kind="entrusted")
    keys = [f.key for f in visible_fields(SPEC, values)]
    assert "agent_name" not in keys and "agent_kind" not in keys and "agent_id" not in keys
    values["has_agent"] = True
    keys = [f.key for f in visible_fields(SPEC, values)]
    assert keys[keys.index("agent_name"):] == ["agent_name", "agent_kind", "agent_id", "brochures"]
    assert "old_remark" not in keys  # retired: never shown for entry
    assert keys[0] == "intro"  # spec order, display-only fields included


def test_show_if_cycle_does_not_loop() -> None:
    spec = FormSpec.model_validate({"slug": "loop", "fields": [
        {"key": "a", "type": "text", "show_if": {"field": "b", "op": "not_empty"}},
        {"key": "b", "type": "text", "show_if": {"field": "a", "op": "not_empty"}},
        {"key": "c", "type": "text"},
    ]})
    assert [f.key for f in visible_fields(spec, {"a": "x", "b": "y"})] == ["c"]


def test_condition_with_an_alternative_visible_controller() -> None:
    spec = FormSpec.model_validate({"slug": "alt", "fields": [
        {"key": "kind", "type": "select", "choices": [{"value": "a"}, {"value": "b"}]},
        {"key": "detail", "type": "text", "show_if": {"field": "kind", "op": "equals", "value": "a"}},
        {"key": "extra", "type": "text", "show_if": {"any": [
            {"field": "detail", "op": "equals", "value": "more"}, {"field": "kind", "op": "equals", "value": "b"}]}},
    ]})
    assert [f.key for f in visible_fields(spec, {"kind": "b", "detail": "more"})] == ["kind", "extra"]
    assert [f.key for f in visible_fields(spec, {"kind": "a", "detail": "more"})] == ["kind", "detail", "extra"]
    # a stale value of the hidden `detail` does not make `extra` visible
    assert [f.key for f in visible_fields(spec, {"kind": None, "detail": "more"})] == ["kind"]


# --- choices -------------------------------------------------------------------------------------
def test_inactive_choice_refused_for_new_values_but_kept_on_edit() -> None:
    _, errors = validate(SPEC, good(liaison_point="lp02"), CTX)
    assert errors["liaison_point"].code == "field.choice_inactive"
    assert "海滨村" in errors["liaison_point"].message("zh")
    edit = ValidationContext(today=TODAY, choice_lists=LISTS, allow_inactive={"lp02"})
    clean, errors = validate(SPEC, good(liaison_point="lp02"), edit)
    assert errors == {} and clean["liaison_point"] == "lp02"


# --- ID numbers: document type and sex -----------------------------------------------------------
def test_sex_mismatch_is_an_error_on_the_id_field() -> None:
    _, errors = validate(SPEC, good(sex="female"), CTX)
    assert {k: p.code for k, p in errors.items()} == {"id_no": "id.sex_mismatch"}
    assert "男" in errors["id_no"].message("zh")


def test_no_sex_given_no_sex_check() -> None:
    clean, errors = validate(SPEC, good(sex=None), CTX)
    assert errors == {} and clean["id_no"] == APPLICANT


def test_a_wrong_sex_value_is_reported_on_the_sex_field_only() -> None:
    _, errors = validate(SPEC, good(sex="x"), CTX)
    assert {k: p.code for k, p in errors.items()} == {"sex": "field.choice"}


@pytest.mark.parametrize(
    ("doc_type", "number", "stored", "code"),
    [
        (None, APPLICANT, APPLICANT, None),
        ("resident_id", APPLICANT[:-1] + ("1" if APPLICANT[-1] == "0" else "0"), None, "id.checksum"),
        ("resident_id", make_id("440803", "19900230", 123), None, "id.birth_date"),
        ("resident_id", make_id("440803", "20300101", 123), None, "id.future"),
        ("resident_id", "440803900101124", "440803900101124", None),  # legacy, female
        ("passport", "e1234 5678", "E12345678", None),
        ("passport", "E12", None, "id.passport"),
        ("other", "ab", None, "id.other"),
        ("hk_macau_permit", "H12345678", "H12345678", None),
        ("hk_macau_permit", "12345678", None, "id.hk_macau_permit"),
        ("military", "军字第00123号", "军字第00123号", None),  # not a known type: checked as "other"
    ],
)
def test_document_types(doc_type: str | None, number: str, stored: str | None, code: str | None) -> None:
    clean, errors = validate(SPEC, good(doc_type=doc_type, id_no=number, sex="female"), CTX)
    if code is None:
        # only a resident ID is checked against the sex field
        expected = {"id_no": "id.sex_mismatch"} if number == APPLICANT else {}
        assert {k: p.code for k, p in errors.items()} == expected
        if not expected:
            assert clean["id_no"] == stored
    else:
        assert errors["id_no"].code == code
        assert "id_no" not in clean


def test_id_number_without_doc_type_field_is_checked_at_once() -> None:
    spec = FormSpec.model_validate({"slug": "s", "fields": [{"key": "id", "type": "id_number"}]})
    _, errors = validate(spec, {"id": make_id("440803", "19900230", 1)}, CTX)
    assert errors["id"].code == "id.birth_date"
    assert "1990-02-30" in errors["id"].message("zh")


# --- derive --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("birth", "age", "groups"),
    [
        (date(1966, 3, 15), 60, ["elderly"]),
        (date(1966, 3, 16), 59, []),
        (date(2008, 3, 15), 18, []),
        (date(2008, 3, 16), 17, ["minor"]),
        (date(1940, 1, 1), 86, ["elderly"]),
    ],
)
def test_derive_age_groups(birth: date, age: int, groups: list[str]) -> None:
    number = make_id("440803", birth, 124)
    facts = derive(SPEC, {"id_no": number}, today=TODAY)
    assert facts == {"id_no": {"birth_date": birth.isoformat(), "sex": "female", "age": age, "groups": groups}}


def test_derive_skips_other_documents_and_bad_values() -> None:
    assert derive(SPEC, {"id_no": "E12345678", "doc_type": "passport"}, today=TODAY) == {}
    assert derive(SPEC, {"id_no": "junk"}, today=TODAY) == {}
    assert derive(SPEC, {}, today=TODAY) == {}


def test_derive_legacy_and_several_id_fields() -> None:
    facts = derive(SPEC, {"id_no": "440803580720123", "agent_id": AGENT}, today=TODAY)
    assert facts["id_no"]["birth_date"] == "1958-07-20" and facts["id_no"]["groups"] == ["elderly"]
    assert facts["agent_id"]["sex"] == "female" and facts["agent_id"]["age"] == 45


# --- the compiled path against a plain reference -------------------------------------------------
# The reference is the straightforward algorithm: per record, visibility from the spec's fields with the
# values of hidden controllers removed, `evaluate` on the show_if, the registry's coerce per field, and
# the ID rule checking the number and (separately) its sex.
class _RefVisibility:
    def __init__(self, spec: FormSpec, values: Mapping[str, Any]) -> None:
        self.values = values
        self.active = {f.key: f for f in spec.active_fields}
        self.known = {f.key for f in spec.fields}
        self.state: dict[str, bool] = {}
        self.busy: set[str] = set()

    def visible(self, key: str) -> bool:
        if key not in self.active:
            return False
        if key in self.state:
            return self.state[key]
        if key in self.busy:
            return False
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


def _ref_visible(spec: FormSpec, values: Mapping[str, Any]) -> list[FieldSpec]:
    vis = _RefVisibility(spec, values or {})
    return [f for f in spec.active_fields if vis.visible(f.key)]


def _ref_id_rule(field: FieldSpec, clean: dict[str, Any], errors: dict[str, Problem], ctx: ValidationContext) -> Any:
    if field.doc_type_field and field.doc_type_field in errors:
        return clean[field.key]
    chosen = clean.get(field.doc_type_field) if field.doc_type_field else None
    doc = RESIDENT_ID if is_empty(chosen) else (str(chosen) if str(chosen) in DOC_TYPES else "other")
    number = check_document(clean[field.key], doc, ctx.today)
    if doc == RESIDENT_ID and field.sex_field and field.sex_field not in errors:
        check_sex(number, clean.get(field.sex_field), ctx.today)
    return number


def _ref_validate(spec: FormSpec, raw: Mapping[str, Any], ctx: ValidationContext) -> tuple[dict, dict]:
    clean: dict[str, Any] = {}
    errors: dict[str, Problem] = {}
    for field in _ref_visible(spec, raw):
        ftype = REGISTRY.get(field.type)
        if ftype is None:
            errors[field.key] = Problem("field.unknown_type", {"type": field.type}, form=spec.slug, field=field.key)
            continue
        if not ftype.stores_value:
            continue
        try:
            value = ftype.coerce(raw.get(field.key), field, ctx)
        except FieldProblem as problem:
            errors[field.key] = Problem(problem.code, dict(problem.params), form=spec.slug, field=field.key)
            continue
        if value is None and field.required:
            errors[field.key] = Problem("field.required", {}, form=spec.slug, field=field.key)
        elif value is not None:
            clean[field.key] = value
    for field in spec.active_fields:
        if field.type == "id_number" and field.key in clean:
            try:
                clean[field.key] = _ref_id_rule(field, clean, errors, ctx)
            except FieldProblem as problem:
                errors[field.key] = Problem(problem.code, dict(problem.params), form=spec.slug, field=field.key)
                del clean[field.key]
    return clean, errors


_KEYS = ["k0", "k1", "k2", "k3", "k4"]
_OPTIONS = [Choice(value="a", label={"zh": "甲", "en": "A"}), Choice(value="B", label={"zh": "乙"}),
            Choice(value="c", label={"zh": "丙"}, active=False), Choice(value="a", label={"zh": "重复"}),
            Choice(value="d", label={"zh": "b", "en": "A"})]
_ID = make_id("440803", date(1990, 1, 1), 123)  # male
_SAMPLES = [None, "", " ", "a", " A ", "b", "c", "甲", "x", "1", "4", " 4.0 ", "-2", "1,234.5", True, False, 0, 1, 4,
            2.5, "是", "否", "2026-03-15", "2026-02-30", "2026/3/5", "male", "female", "passport", "resident_id",
            _ID, _ID.lower(), "E1234567", ["a", "B"], ["x"], [], {"q1": "yes"}, {"q1": {"answer": "no", "note": "n"}},
            date(2026, 3, 15)]
_TYPES = ["text", "select", "multiselect", "boolean", "integer", "money", "date", "checklist", "id_number", "reference",
          "note", "counter", "bogus"]
_VALUE = st.sampled_from(_SAMPLES)
_LEAF = st.builds(Condition, field=st.sampled_from([*_KEYS, "zz"]),
                  op=st.sampled_from(["equals", "not_equals", "in", "not_in", "empty", "not_empty", "gt", None]),
                  value=st.one_of(_VALUE, st.lists(_VALUE, max_size=2)))
_SHOW_IF = st.one_of(
    st.none(), st.none(), _LEAF,
    st.builds(Condition, any=st.lists(_LEAF, min_size=1, max_size=2)),
    _LEAF.map(lambda c: Condition.model_validate({"not": {"all": [c, {"field": "k1", "op": "not_empty"}]}})),
)


@st.composite
def _fields(draw: st.DrawFn) -> dict[str, Any]:
    ftype = draw(st.sampled_from(_TYPES))
    field: dict[str, Any] = {"key": draw(st.sampled_from(_KEYS)), "type": ftype, "required": draw(st.booleans()),
                             "retired": draw(st.sampled_from([False, False, False, True])),
                             "show_if": draw(_SHOW_IF)}
    if ftype in ("select", "multiselect"):
        field["choices"] = _OPTIONS
    if ftype == "reference":
        field["choice_list"] = draw(st.sampled_from(["places", "missing"]))
    if ftype == "checklist":
        field["items"] = [{"key": "q1"}, {"key": "q2"}]
    if ftype == "id_number":
        field["sex_field"] = draw(st.sampled_from([None, *_KEYS]))
        field["doc_type_field"] = draw(st.sampled_from([None, *_KEYS]))
    return field


_RECORDS = st.lists(st.dictionaries(st.sampled_from([*_KEYS, "zz"]), _VALUE, max_size=6), min_size=1, max_size=4)


def _problems(errors: Mapping[str, Problem]) -> dict[str, tuple]:
    return {k: (p.code, p.params, p.form, p.field, p.row, p.sheet) for k, p in errors.items()}


def _typed(clean: Mapping[str, Any]) -> dict[str, tuple]:
    return {k: (type(v), repr(v)) for k, v in clean.items()}


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fields=st.lists(_fields(), min_size=1, max_size=7), records=_RECORDS, allow=st.sampled_from([set(), {"c"}]))
def test_validate_equals_the_reference(fields: list[dict[str, Any]], records: list[dict[str, Any]],
                                       allow: set[str]) -> None:
    spec = FormSpec.model_validate({"slug": "prop", "fields": fields})
    places = [Choice(value=f"p{i}", label={"zh": f"点{i}"}, active=i != 2) for i in range(5)]
    ctx = ValidationContext(today=TODAY, choice_lists={"places": places}, allow_inactive=allow)
    for raw in records + records:  # twice: the second time from the remembered plan, visibility and options
        clean, errors = validate(spec, raw, ctx)
        ref_clean, ref_errors = _ref_validate(spec, raw, ctx)
        assert _typed(clean) == _typed(ref_clean)
        assert _problems(errors) == _problems(ref_errors)
        assert [id(f) for f in visible_fields(spec, raw)] == [id(f) for f in _ref_visible(spec, raw)]


def test_show_if_inputs_that_compare_equal_but_read_differently_are_not_confused() -> None:
    spec = FormSpec.model_validate({"slug": "eq", "fields": [
        {"key": "flag", "type": "text"},
        {"key": "more", "type": "text", "show_if": {"field": "flag", "op": "equals", "value": "true"}},
    ]})
    for flag, shown in [(True, True), (1, False), (True, True), (1.0, False), ("true", True), (1, False)]:
        assert [f.key for f in visible_fields(spec, {"flag": flag})] == ["flag", "more"][: 1 + shown], flag


def test_a_spec_with_another_field_list_gets_a_new_plan() -> None:
    spec = FormSpec.model_validate({"slug": "p", "fields": [{"key": "a", "type": "text", "required": True}]})
    assert validate(spec, {}, CTX)[1]["a"].code == "field.required"
    other = spec.model_copy(update={"fields": [FieldSpec(key="a", type="text")]})
    assert validate(other, {}, CTX) == ({}, {})
    assert validate(spec, {}, CTX)[1]["a"].code == "field.required"


# --- the fields' fast paths against their general forms -----------------------------------------
def _ref_is_empty(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, Mapping):
        return all(_ref_is_empty(v) for v in value.values())
    if isinstance(value, list | tuple | set | frozenset):
        return all(_ref_is_empty(v) for v in value)
    return False


_NESTED = st.recursive(
    st.sampled_from([None, "", " ", "x", 0, False, True, 0.0, Decimal("0"), date(2026, 1, 1), time(0, 0)]),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=2), inner, max_size=2),
                            st.lists(inner, max_size=2).map(tuple)),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None)
@given(value=_NESTED)
def test_is_empty_fast_paths(value: Any) -> None:
    assert is_empty(value) is _ref_is_empty(value)


def _ref_find_choice(raw: Any, choices: list[Choice]) -> Choice | None:
    text = str(raw).strip()
    folded = text.casefold()
    return (next((c for c in choices if c.value == text), None)
            or next((c for c in choices if c.value.casefold() == folded), None)
            or next((c for c in choices if any(v.strip().casefold() == folded for v in c.label.values())), None))


@pytest.mark.parametrize("raw", ["a", "A", " b ", "甲", "乙 ", "重复", "丙", "c", "C", "zz", "", 1, 2.5])
def test_choice_lookup_by_index_equals_the_scan(raw: Any) -> None:
    choices = [*_OPTIONS, Choice(value="b", label={"zh": "a"}), Choice(value="Zz", label={"en": " 甲 "})]
    for _ in range(3):  # the first look-up scans, later ones use the index
        assert fields_module._find_choice(raw, choices) is _ref_find_choice(raw, choices)


@pytest.mark.parametrize("text", ["2026-03-15", "2026-02-29", "2024-02-29", "0000-01-01", "2026-13-01", "2026-00-10",
                                  "9999-12-31", "2026-03-1x"])
def test_iso_dates_read_as_the_general_reader_does(text: str) -> None:
    field = FieldSpec(key="d", type="date")
    try:
        expected: Any = fields_module._parse_datetime_text(text, "field.date").date().isoformat()
    except FieldProblem as problem:
        expected = problem.code
    try:
        got: Any = REGISTRY["date"].coerce(text, field, CTX)
    except FieldProblem as problem:
        got = problem.code
    assert got == expected


@pytest.mark.parametrize("text", ["4199.48", "-0", "-0.50", "0012", "1.", "1,234.50", "¥12", " 7 ", "1e3", "12元"])
def test_plain_number_text_reads_as_before(text: str) -> None:
    number = fields_module.to_decimal(text)
    general = fields_module._NUMBER_TEXT.fullmatch(
        fields_module._GROUPING.sub("", fields_module._CURRENCY.sub("", fields_module._nfkc(text)).strip()))
    assert general is not None and number.as_tuple() == Decimal(general.group()).as_tuple()


@pytest.mark.parametrize("word", [*fields_module._ANSWER_WORDS, "YES", " yes", "Ｙｅｓ", "maybe"])
def test_checklist_answer_words(word: str) -> None:
    def general(raw: Any) -> str | None:
        return fields_module._ANSWER_WORDS.get(fields_module._nfkc(str(raw)).lower())

    try:
        got: Any = fields_module._answer(word, "q")
    except FieldProblem as problem:
        got = problem.code
    assert got == (general(word) or "field.checklist_answer")


# --- per-field specialised coerces (FieldType.specialise) against the type's general coerce ------------
_SPECIAL_FIELDS = st.one_of(
    st.builds(lambda t, lo, hi, pat: FieldSpec(key="t", type=t, min_length=lo, max_length=hi, pattern=pat),
              st.sampled_from(["text", "textarea"]), st.sampled_from([None, 0, 2]), st.sampled_from([None, 3, 8]),
              st.sampled_from([None, r"[a-z]+", r"\d{2,4}", r"(", "甲.*"])),
    st.builds(lambda choices: FieldSpec(key="s", type="select", choices=choices), st.lists(st.builds(
        lambda v, active: Choice(value=v, label={"zh": v.strip() or "空"}, active=active),
        st.sampled_from(["a", "A", " b", "b", "甲", "x y", "c "]), st.booleans()), max_size=5)),
    st.just(FieldSpec(key="s", type="select", choices=_OPTIONS, choice_list="places")),
    st.just(FieldSpec(key="b", type="boolean")),
    st.just(FieldSpec(key="d", type="date")),
    st.builds(lambda required: FieldSpec(key="c", type="checklist", required=required,
                                         items=[{"key": "q1"}, {"key": "q2"}]), st.booleans()),
    st.builds(lambda lo, hi: FieldSpec(key="i", type="integer", min=lo, max=hi),
              st.sampled_from([None, 0, 1, 1.5, -3]), st.sampled_from([None, 30, 2.5, 10**16])),
    st.builds(lambda lo, hi: FieldSpec(key="m", type="money", min=lo, max=hi),
              st.sampled_from([None, 0, 0.0, -1, 0.01, 100]), st.sampled_from([None, None, 1000])),
    st.builds(lambda pat: FieldSpec(key="p", type="phone", pattern=pat), st.sampled_from([None, "", r"13\d+", r"0.*"])),
    st.builds(lambda doc: FieldSpec(key="n", type="id_number", doc_type_field=doc), st.sampled_from([None, "doc"])),
    st.builds(lambda choices, lo, hi: FieldSpec(key="ms", type="multiselect", choices=choices, min=lo, max=hi),
              st.lists(st.builds(lambda v, active: Choice(value=v, label={"zh": v.strip() or "空"}, active=active),
                                 st.sampled_from(["a", "A", " b", "b", "甲", "x y", "c "]), st.booleans()), max_size=5),
              st.sampled_from([None, 1, 2]), st.sampled_from([None, 1, 2])),
    st.just(FieldSpec(key="ms", type="multiselect", choices=_OPTIONS, choice_list="places")),
)
_ANSWER = st.one_of(st.sampled_from(["yes", "no", "na", "是", "YES", " yes", "", "maybe"]), st.none(), st.booleans(),
                    st.lists(st.just("yes"), max_size=1))
_NOTE = st.one_of(st.sampled_from(["", " 说明 ", "a\x00b", "x\ry"]), st.none(), st.integers(0, 9), st.just("长" * 100_001))
_ENTRY = st.one_of(st.fixed_dictionaries({"answer": _ANSWER, "note": _NOTE}), st.fixed_dictionaries({"answer": _ANSWER}),
                   _ANSWER, st.fixed_dictionaries({"answer": _ANSWER, "note": _NOTE, "x": st.just(1)}))
_CHECKLIST = st.dictionaries(st.sampled_from(["q1", "q2", "q3", 1]), _ENTRY, max_size=3)
_SPECIAL_RAW = st.one_of(
    st.sampled_from(["a", "A", " b", "b", "甲", "甲乙", "x y", "c ", "c", "", " ", "12", "123456789", "ab\r\ncd",
                     "a\x00", "yes", "true", "否", True, False, 0, 1, 2.5, None, [], ["a"], {"a": 1}]),
    st.text(max_size=10),
    st.sampled_from(["2026-03-15", "2026-02-30", "2026-3-15", "2026-03-15 ", "2026-03-15T00:00", "２０２６-03-15"]),
    _CHECKLIST,
    st.sampled_from([3, -3, 31, 10**15 - 1, 10**15, -(10**15), 2**70, 1.0, 2.5, "3", "2751.78", "0.00", "00.10",
                     "0.10", "1.5", "1.234", "-0.00", "99999999999999.99", "100000000000000.00", "1e3", "１２.00",
                     "12.00 ", "13812345678", "1381234567", "138123456789", "+8613812345678", "138 1234 5678",
                     "23812345678", "１3812345678", "0759-1234567", "440804199712230157", "44080419971223015x",
                     "440804199712230158", "A1234567", "ab", "a" * 41, "a" * 40, "Ｈ1234", "x\t1", "ß" * 3]),
    st.lists(st.sampled_from(["a", "A", " b", "b", "甲", "x y", "c ", "c", "", "z", 1]), max_size=4),
)


def _outcome(coerce: Any, raw: Any, field: FieldSpec, ctx: ValidationContext | None = CTX) -> Any:
    try:
        value = coerce(raw, field, ctx)
    except FieldProblem as problem:
        return ("problem", problem.code, problem.params)
    return ("value", type(value), repr(value))


@st.composite
def _field_and_raw(draw: st.DrawFn) -> tuple[FieldSpec, Any]:
    """A field, and a value: any, or one of its choices with or without spaces around."""
    field = draw(_SPECIAL_FIELDS)
    values = [c.value for c in field.choices or []]
    if values and draw(st.booleans()):
        pad = draw(st.sampled_from(["", " ", "  ", "\t"]))
        value = draw(st.sampled_from(values))
        return field, draw(st.sampled_from([pad + value, value + pad, value.upper()]))
    return field, draw(_SPECIAL_RAW)


_SPECIAL_EXAMPLES: list[FieldSpec] = [
    *(FieldSpec(key="i", type="integer", min=lo, max=hi) for lo in (None, 0, 1, 1.5, -3) for hi in (None, 30, 2.5)),
    *(FieldSpec(key="m", type="money", min=lo, max=hi) for lo in (None, 0, -1, 0.01, 100) for hi in (None, 1000)),
    *(FieldSpec(key="p", type="phone", pattern=pat) for pat in (None, "", r"13\d+", r"0.*")),
    *(FieldSpec(key="n", type="id_number", doc_type_field=doc) for doc in (None, "doc")),
    *(FieldSpec(key="ms", type="multiselect", min=lo, max=hi, choices=[
        Choice(value=v, label={"zh": v}, active=active) for v, active in
        (("a", True), ("b", True), ("c", False), ("b", False), ("d ", True), ("A", True))])
      for lo in (None, 1, 2) for hi in (None, 1, 2)),
    FieldSpec(key="ms", type="multiselect", choices=_OPTIONS, choice_list="places"),
    FieldSpec(key="d", type="date"),
    *(FieldSpec(key="l", type=kind, choice_list=name, choices=inline) for kind in ("select", "reference")
      for name in ("liaison_points", "places") for inline in (None, _OPTIONS)),
    FieldSpec(key="r", type="reference", reference_form="intake"),
]
# contexts a listed choice is checked in, one after another (its remembered list must follow them)
_LISTED_CONTEXTS = [
    CTX,
    ValidationContext(today=TODAY, choice_lists={"liaison_points": [
        Choice(value="lp02", label={"zh": "海滨村"}), Choice(value="lp01", label={"zh": "东新"}, active=False),
        Choice(value=" lp03", label={"zh": "新村"}), Choice(value="lp02", label={"zh": "重复"}, active=False)]}),
    ValidationContext(today=TODAY, choice_lists={"liaison_points": tuple(LISTS["liaison_points"])}),
    ValidationContext(today=TODAY, choice_lists={"liaison_points": None}),
    ValidationContext(today=TODAY, choice_lists={"places": _OPTIONS}),
    ValidationContext(today=TODAY, choice_lists={}),
    ValidationContext(today=TODAY, choice_lists=LISTS, allow_inactive={"lp02"}),
    None,
]
_SPECIAL_VALUES: list[Any] = [
    None, "", " ", True, False, 0, 3, -3, 31, 10**15 - 1, 10**15, -(10**15), 2**70, 1.0, 2.5, "3", "2751.78", "0.00",
    "00.10", "0.10", "1.5", "1.234", "-0.00", "-1.00", "99999999999999.99", "100000000000000.00", "1e3", "１２.00",
    "12.00 ", " 12.00", "0.001", "13812345678", "1381234567", "138123456789", "+8613812345678", "138 1234 5678",
    "23812345678", "１3812345678", "0759-1234567", "440804199712230157", "44080419971223015x", "440804199712230158",
    "A1234567", "ab", "a" * 41, "a" * 40, "Ｈ1234", "x\t1", "a\x00b", "ß" * 3, "2026-03-15", "2026-02-30",
    "2026-03-15 ", "2026-3-15", "２０２６-03-15", ["a"], ["b", "a"], ["a", "b", "A"], ["a", "a"], ["c"], ["d "],
    ["d"], [" a"], ["a", ""], ["a", 1], [], ("a",), "a;b", ["z"], {"a": 1}, "lp01", "lp02", "lp03", " lp03", "LP01",
    "东新社区", "a", "c", "#12", 12, 0, -1, "B", "d", "A",
]


@pytest.mark.parametrize("field", _SPECIAL_EXAMPLES, ids=lambda f: f"{f.type}-{f.min}-{f.max}-{f.pattern}")
def test_each_specialised_coerce_answers_every_listed_value_as_the_general_one(field: FieldSpec) -> None:
    ftype = REGISTRY[field.type]
    assert ftype.specialise is not None
    special = ftype.specialise(field, ftype.coerce)
    for ctx in _LISTED_CONTEXTS * 2:
        for raw in _SPECIAL_VALUES * 2:  # twice: an answer it remembers is the same
            assert _outcome(special, raw, field, ctx) == _outcome(ftype.coerce, raw, field, ctx), (raw, ctx)


@settings(max_examples=800, deadline=None)
@given(case=_field_and_raw())
def test_a_specialised_coerce_answers_as_the_general_one(case: tuple[FieldSpec, Any]) -> None:
    field, raw = case
    ftype = REGISTRY[field.type]
    assert ftype.specialise is not None
    special = ftype.specialise(field, ftype.coerce)
    expected = _outcome(ftype.coerce, raw, field)
    assert _outcome(special, raw, field) == expected
    assert _outcome(special, raw, field) == expected  # again: an answer it remembers is the same
