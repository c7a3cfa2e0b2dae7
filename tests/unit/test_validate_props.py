"""Properties of every storing field type (hypothesis).

For valid clean values v: coerce(v) == v; coerce(parse_cell(export(v))) == v; display(v) never raises.
For any junk input: coerce / parse_cell raise nothing but FieldProblem.
"""

from __future__ import annotations

import contextlib
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.fields import REGISTRY, FieldProblem
from engine.idnumber import make_id, parse_id
from engine.phone import check_phone
from engine.validate import ValidationContext, validate
from models.spec import Choice, FieldSpec, FormSpec

TODAY = date(2026, 3, 15)
CHOICES = [
    Choice(value="civil", label={"zh": "民事", "en": "Civil"}),
    Choice(value="criminal", label={"zh": "刑事", "en": "Criminal"}),
    Choice(value="admin", label={"zh": "行政", "en": "Administrative"}),
    Choice(value="labour", label={"zh": "劳动争议", "en": "Labour dispute"}),
]
LIST = [Choice(value=f"lp{i:02d}", label={"zh": f"联络点{i}"}) for i in range(1, 8)]
CTX = ValidationContext(today=TODAY, choice_lists={"liaison_points": LIST})
ITEMS = [{"key": k} for k in ("no_gifts", "no_fees", "no_delay", "recusal")]

FIELDS: dict[str, FieldSpec] = {
    "text": FieldSpec(key="f", type="text"),
    "textarea": FieldSpec(key="f", type="textarea"),
    "integer": FieldSpec(key="f", type="integer"),
    "decimal": FieldSpec(key="f", type="decimal"),
    "money": FieldSpec(key="f", type="money"),
    "date": FieldSpec(key="f", type="date"),
    "datetime": FieldSpec(key="f", type="datetime"),
    "time": FieldSpec(key="f", type="time"),
    "select": FieldSpec(key="f", type="select", choices=CHOICES),
    "multiselect": FieldSpec(key="f", type="multiselect", choices=CHOICES),
    "boolean": FieldSpec(key="f", type="boolean"),
    "checklist": FieldSpec(key="f", type="checklist", items=ITEMS),
    "rating": FieldSpec(key="f", type="rating"),
    "phone": FieldSpec(key="f", type="phone"),
    "email": FieldSpec(key="f", type="email"),
    "id_number": FieldSpec(key="f", type="id_number"),
    "reference": FieldSpec(key="f", type="reference", reference_form="intake"),
    "user": FieldSpec(key="f", type="user"),
}
REFERENCE_LIST = FieldSpec(key="f", type="reference", choice_list="liaison_points")


# Text a person can type: no surrogates, no control characters but tab and newline (others are refused).
_TEXT_CHARS = st.characters(exclude_categories=("Cs", "Cc"), include_characters="\t\n")


def _decimal_text(unscaled: int, places: int) -> str:
    number = Decimal(unscaled).scaleb(-places)
    return format(abs(number) if number == 0 else number, "f")


def _text(max_size: int = 300) -> st.SearchStrategy[str]:
    return st.text(_TEXT_CHARS, max_size=max_size).map(str.strip).filter(bool)


def _textarea() -> st.SearchStrategy[str]:
    return st.text(_TEXT_CHARS, max_size=300).map(lambda t: t.replace("\r\n", "\n").replace("\r", "\n").strip()).filter(bool)


def _note() -> st.SearchStrategy[str]:
    return st.one_of(st.just(""), _text(60))


_checklist = st.dictionaries(
    st.sampled_from([i["key"] for i in ITEMS]),
    st.fixed_dictionaries({"answer": st.sampled_from(["yes", "no", "na"]), "note": _note()}),
    min_size=1,
).map(lambda d: {i["key"]: d[i["key"]] for i in ITEMS if i["key"] in d})

_mobile = st.from_regex(r"\A1[3-9][0-9]{9}\Z")
_landline = st.one_of(
    st.from_regex(r"\A(010|02[0-9])-[0-9]{7,8}\Z"),
    st.from_regex(r"\A0[3-9][0-9]{2}-[0-9]{7,8}\Z"),
    st.from_regex(r"\A0[3-9][0-9]{2}-[0-9]{7,8}-[0-9]{1,6}\Z"),
)
_resident = st.builds(
    make_id,
    st.sampled_from(["440803", "440802", "440104", "110101", "310115", "510107", "820000"]),
    st.dates(min_value=date(1900, 1, 1), max_value=TODAY),
    st.integers(0, 999),
)
_legacy = st.builds(
    lambda region, birth, seq: f"{region}{birth:%y%m%d}{seq:03d}",
    st.sampled_from(["440803", "440104"]),
    st.dates(min_value=date(1900, 1, 1), max_value=date(1999, 12, 31)),
    st.integers(0, 999),
)
_email = st.from_regex(
    r"\A[A-Za-z0-9_+-]{1,20}(\.[A-Za-z0-9_+-]{1,10}){0,2}@([a-z0-9]{1,10}\.){1,3}[a-z]{2,6}\Z"
)
_username = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_.@-张王李芳伟", min_size=1, max_size=64)

CLEAN: dict[str, st.SearchStrategy[Any]] = {
    "text": _text(),
    "textarea": _textarea(),
    "integer": st.integers(-(10**15) + 1, 10**15 - 1),
    "decimal": st.builds(_decimal_text, st.integers(-(10**15) + 1, 10**15 - 1), st.integers(0, 10)),
    "money": st.builds(_decimal_text, st.integers(-(10**17) + 1, 10**17 - 1), st.just(2)),
    "date": st.dates().map(date.isoformat),
    "datetime": st.datetimes().map(lambda d: d.replace(microsecond=0).isoformat(timespec="seconds")),
    "time": st.times().map(lambda t: t.strftime("%H:%M")),
    "select": st.sampled_from([c.value for c in CHOICES]),
    "multiselect": st.sets(st.sampled_from([c.value for c in CHOICES]), min_size=1).map(
        lambda s: [c.value for c in CHOICES if c.value in s]
    ),
    "boolean": st.booleans(),
    "checklist": _checklist,
    "rating": st.integers(1, 5),
    "phone": st.one_of(_mobile, _landline).filter(lambda p: check_phone(p) == p),
    "email": _email,
    "id_number": st.one_of(_resident, _legacy),
    "reference": st.integers(1, 10**15 - 1),
    "user": _username,
}
PROPS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_every_storing_type_has_a_strategy() -> None:
    assert set(CLEAN) == {name for name, t in REGISTRY.items() if t.stores_value}


@pytest.mark.parametrize("type_name", sorted(CLEAN))
def test_coerce_is_idempotent_on_clean_values(type_name: str) -> None:
    field, ftype = FIELDS[type_name], REGISTRY[type_name]

    @PROPS
    @given(CLEAN[type_name])
    def check(value: Any) -> None:
        assert ftype.coerce(value, field, CTX) == value

    check()


@pytest.mark.parametrize("type_name", sorted(CLEAN))
def test_export_then_import_gives_the_value_back(type_name: str) -> None:
    field, ftype = FIELDS[type_name], REGISTRY[type_name]

    @PROPS
    @given(CLEAN[type_name])
    def check(value: Any) -> None:
        cell = ftype.export(value, field)
        assert isinstance(cell, str)
        assert ftype.coerce(ftype.parse_cell(cell, field, CTX), field, CTX) == value

    check()


@pytest.mark.parametrize("type_name", sorted(CLEAN))
def test_display_never_raises(type_name: str) -> None:
    field, ftype = FIELDS[type_name], REGISTRY[type_name]

    @PROPS
    @given(CLEAN[type_name], st.sampled_from(["zh", "en"]))
    def check(value: Any, lang: str) -> None:
        text = ftype.display(value, field, lang)
        assert isinstance(text, str) and text

    check()


@PROPS
@given(st.sampled_from([c.value for c in LIST]))
def test_reference_to_a_list_item_round_trips(value: str) -> None:
    ftype = REGISTRY["reference"]
    assert ftype.coerce(value, REFERENCE_LIST, CTX) == value
    assert ftype.coerce(ftype.parse_cell(ftype.export(value, REFERENCE_LIST), REFERENCE_LIST, CTX),
                        REFERENCE_LIST, CTX) == value


_JUNK_VALUES = st.one_of(
    st.text(max_size=200),
    st.from_regex(r"\A[0-9 ,.\-+eE:/年月日xX;=()]{0,40}\Z"),
    st.integers(),
    st.floats(),
    st.decimals(),
    st.booleans(),
    st.none(),
    st.dates(),
    st.datetimes(),
    st.lists(st.text(max_size=10), max_size=4),
    st.dictionaries(st.text(max_size=10), st.one_of(st.text(max_size=10), st.none(), st.integers()), max_size=3),
)


@pytest.mark.parametrize("type_name", sorted(REGISTRY))
def test_junk_raises_nothing_but_field_problem(type_name: str) -> None:
    ftype = REGISTRY[type_name]
    field = FIELDS.get(type_name) or FieldSpec(key="f", type=type_name)

    @PROPS
    @given(_JUNK_VALUES, st.text(max_size=200))
    def check(raw: Any, cell: str) -> None:
        for attempt in (lambda: ftype.coerce(raw, field, CTX),
                        lambda: ftype.coerce(ftype.parse_cell(cell, field, CTX), field, CTX)):
            with contextlib.suppress(FieldProblem):
                attempt()

    check()


@PROPS
@given(st.dictionaries(st.sampled_from(sorted(FIELDS)), _JUNK_VALUES, max_size=8))
def test_validate_never_raises_on_junk_records(raw: dict[str, Any]) -> None:
    spec = FormSpec(slug="all_types", fields=[f.model_copy(update={"key": k}) for k, f in FIELDS.items()])
    clean, errors = validate(spec, raw, CTX)
    assert not set(clean) & set(errors)
    assert set(clean) | set(errors) <= set(raw)
    # what validate keeps is clean: validating it again changes nothing
    assert validate(spec, clean, CTX) == (clean, {})


@PROPS
@given(st.dates(min_value=date(1900, 1, 1), max_value=TODAY), st.integers(0, 999))
def test_made_ids_parse_back(birth: date, seq: int) -> None:
    info = parse_id(make_id("440803", birth, seq), TODAY)
    assert info.birth_date == birth
    assert info.sex == ("male" if seq % 2 else "female")
    assert 0 <= info.age <= TODAY.year - 1900


@PROPS
@given(_resident, st.integers(0, 16), st.integers(1, 9))
def test_any_single_digit_typo_is_caught(number: str, position: int, shift: int) -> None:
    digit = (int(number[position]) + shift) % 10
    typo = number[:position] + str(digit) + number[position + 1:]
    with pytest.raises(FieldProblem) as caught:
        parse_id(typo, TODAY)
    assert caught.value.code == "id.checksum"


def test_datetime_strategy_examples_are_naive_local_times() -> None:
    assert REGISTRY["datetime"].coerce(datetime(2026, 3, 15, 9, 5), FIELDS["datetime"], CTX) == "2026-03-15T09:05:00"
