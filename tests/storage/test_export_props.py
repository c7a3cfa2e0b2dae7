"""Store -> load -> export unchanged (hypothesis), on SQLite and PostgreSQL.

For random valid values of every storing field type: `storage.create` stores a record; the CSV
export (BOM, quoting, formula neutralisation and all) is parsed back with the csv module,
`unescape_cell` and the type's `parse_cell` + `coerce`, and must give exactly the stored value.
The XLSX export (numbers as number cells) must give it back too.
"""

from __future__ import annotations

import csv
import io
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook

from engine.access import SYSTEM
from engine.exporters import export_records, unescape_cell, xlsx_unescape
from engine.fields import REGISTRY
from engine.forms import choice_lists, get_spec, publish, save_choice_list
from engine.idnumber import make_id
from engine.phone import check_phone
from engine.storage import create
from engine.validate import ValidationContext

CHOICES = [
    {"value": v, "label": {"zh": z}} for v, z in (("civil", "民事"), ("criminal", "刑事"), ("labour", "劳动"))
]
ITEMS = [{"key": k} for k in ("no_gifts", "no_fees", "recusal")]
STREETS = [{"value": v, "label": {"zh": z}} for v, z in (("jiefang", "解放街道"), ("aiguo", "爱国街道"))]

FIELDS: list[dict[str, Any]] = [
    {"key": "text", "type": "text"},
    {"key": "textarea", "type": "textarea"},
    {"key": "integer", "type": "integer"},
    {"key": "decimal", "type": "decimal"},
    {"key": "money", "type": "money"},
    {"key": "date", "type": "date"},
    {"key": "datetime", "type": "datetime"},
    {"key": "time", "type": "time"},
    {"key": "select", "type": "select", "choices": CHOICES},
    {"key": "multiselect", "type": "multiselect", "choices": CHOICES},
    {"key": "boolean", "type": "boolean"},
    {"key": "checklist", "type": "checklist", "items": ITEMS},
    {"key": "rating", "type": "rating"},
    {"key": "phone", "type": "phone", "sensitive": True},
    {"key": "email", "type": "email"},
    {"key": "id_number", "type": "id_number", "sensitive": True},
    {"key": "record", "type": "reference", "reference_form": "props"},
    {"key": "street", "type": "reference", "choice_list": "streets"},
    {"key": "user", "type": "user"},
]
SPEC = {"slug": "props", "title": {"zh": "属性"}, "fields": FIELDS}

# PostgreSQL JSONB cannot hold U+0000; everything else is fair game.
_chars = st.characters(exclude_categories=("Cs", "Cc"), include_characters="\t\n")


def _text() -> st.SearchStrategy[str]:
    return st.text(_chars, max_size=60).map(str.strip).filter(bool)


def _decimal_text(unscaled: int, places: int) -> str:
    number = Decimal(unscaled).scaleb(-places)
    return format(abs(number) if number == 0 else number, "f")


VALUES: dict[str, st.SearchStrategy[Any]] = {
    "text": st.one_of(_text(), st.sampled_from(["=1+1", "+86", "-5", "@x", "'=q", 'a,b"c'])),
    "textarea": st.text(_chars, max_size=120)
    .map(lambda t: t.replace("\r\n", "\n").replace("\r", "\n").strip())
    .filter(bool),
    "integer": st.integers(-(10**15) + 1, 10**15 - 1),
    "decimal": st.builds(_decimal_text, st.integers(-(10**15) + 1, 10**15 - 1), st.integers(0, 10)),
    "money": st.builds(_decimal_text, st.integers(-(10**16) + 1, 10**16 - 1), st.just(2)),
    "date": st.dates(min_value=date(1900, 1, 1)).map(date.isoformat),
    "datetime": st.datetimes().map(lambda d: d.replace(microsecond=0).isoformat(timespec="seconds")),
    "time": st.times().map(lambda t: t.strftime("%H:%M")),
    "select": st.sampled_from([c["value"] for c in CHOICES]),
    "multiselect": st.sets(st.sampled_from([c["value"] for c in CHOICES]), min_size=1).map(
        lambda s: [c["value"] for c in CHOICES if c["value"] in s]
    ),
    "boolean": st.booleans(),
    "checklist": st.dictionaries(
        st.sampled_from([i["key"] for i in ITEMS]),
        st.fixed_dictionaries(
            {
                "answer": st.sampled_from(["yes", "no", "na"]),
                "note": st.one_of(st.just(""), _text(), st.just("括号）和(paren)\\")),
            }
        ),
        min_size=1,
    ).map(lambda d: {i["key"]: d[i["key"]] for i in ITEMS if i["key"] in d}),
    "rating": st.integers(1, 5),
    "phone": st.one_of(st.from_regex(r"\A1[3-9][0-9]{9}\Z"), st.from_regex(r"\A0759-[0-9]{7,8}\Z")).filter(
        lambda p: check_phone(p) == p
    ),
    "email": st.from_regex(
        r"\A[A-Za-z0-9_+-]{1,12}(\.[A-Za-z0-9_+-]{1,6}){0,2}@([a-z0-9]{1,8}\.){1,2}[a-z]{2,6}\Z"
    ),
    "id_number": st.builds(
        make_id,
        st.sampled_from(["440803", "440104", "110101"]),
        st.dates(min_value=date(1920, 1, 1), max_value=date(2020, 12, 31)),
        st.integers(0, 999),
    ),
    "street": st.sampled_from([s["value"] for s in STREETS]),
    "user": st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_.-张王李", min_size=1, max_size=30),
}
PROPS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def test_every_storing_type_is_covered() -> None:
    assert {f["type"] for f in FIELDS} == {name for name, t in REGISTRY.items() if t.stores_value}


@pytest.fixture
def props(engine):
    save_choice_list(engine, "streets", {"zh": "街道"}, STREETS, actor=SYSTEM)
    publish(engine, SPEC, actor=SYSTEM)
    first = create(engine, "props", {"text": "first"}, actor=SYSTEM)
    return engine, first.id


def _records(record_ids: list[int]) -> st.SearchStrategy[dict[str, Any]]:
    optional = {k: v for k, v in VALUES.items()}
    optional["record"] = st.sampled_from(record_ids)
    return st.fixed_dictionaries({}, optional=optional).filter(bool)


def _csv_row(engine, sub_id: int) -> dict[str, str]:
    buf = io.BytesIO()
    export_records(engine, "props", buf, "csv", actor=SYSTEM, headers="key", reveal=True)
    raw = buf.getvalue()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    return next(dict(zip(rows[0], r, strict=True)) for r in rows[1:] if r[0] == str(sub_id))


def _xlsx_row(engine, sub_id: int) -> dict[str, Any]:
    buf = io.BytesIO()
    export_records(engine, "props", buf, "xlsx", actor=SYSTEM, headers="key", reveal=True)
    rows = list(load_workbook(io.BytesIO(buf.getvalue()), read_only=True).active.iter_rows(values_only=True))
    row = next(dict(zip(rows[0], r, strict=True)) for r in rows[1:] if r[0] == sub_id)
    return {k: xlsx_unescape(v) if isinstance(v, str) else v for k, v in row.items()}


def _read_back(cell: Any, key: str, ctx: ValidationContext) -> Any:
    spec = get_spec_cached()
    field = spec.field(key)
    ftype = REGISTRY[field.type]
    if cell is None or cell == "":
        return None
    text = (
        unescape_cell(cell) if isinstance(cell, str) else repr(cell) if isinstance(cell, float) else str(cell)
    )
    value = ftype.coerce(ftype.parse_cell(text, field, ctx), field, ctx)
    if field.type == "decimal" and not isinstance(cell, str):
        return Decimal(value)  # a number cell: the value, shown with the stored places by its format
    return value


_SPEC_CACHE: dict[str, Any] = {}


def get_spec_cached() -> Any:
    return _SPEC_CACHE["spec"]


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_store_load_export_unchanged(props, fmt: str) -> None:
    engine, first_id = props
    _SPEC_CACHE["spec"] = get_spec(engine, "props")
    ctx = ValidationContext(choice_lists=choice_lists(engine))
    reader = _csv_row if fmt == "csv" else _xlsx_row

    @(PROPS if fmt == "csv" else settings(PROPS, max_examples=12))
    @given(_records([first_id]))
    def check(record: dict[str, Any]) -> None:
        sub = create(engine, "props", record, actor=SYSTEM)
        stored = sub.data
        assert set(stored) == set(record)  # every value was valid, none dropped
        row = reader(engine, sub.id)
        for key, value in stored.items():
            back = _read_back(row[key], key, ctx)
            assert back == (Decimal(value) if isinstance(back, Decimal) else value), (key, row[key])
        for field in FIELDS:
            if field["key"] not in stored:
                assert row[field["key"]] in ("", None)

    check()
