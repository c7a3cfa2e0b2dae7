"""Oversized and malformed input.

Oversized, each refused with a coded message in Chinese and English and nothing stored: a 1 MB text
field (field.too_long), a 100,000-row import (import.too_many_rows), a 10,000-choice field in a spec
(spec.too_many_choices: at most engine.spec.MAX_CHOICES per field; long lists belong in reference
lists), a 50 MB upload (Streamlit's server.maxUploadSize and the engine's own checks in the importers,
the XLSForm reader and the designer's YAML / JSON upload).

Malformed, fuzzed with hypothesis: random spec data to engine.spec.check_spec, random XLSForm
workbooks to engine.xlsform.import_xlsform, random CSV / XLSX bytes to the importers' dry run and
commit, random bytes (and damaged dumps) as a backup to engine.backup.restore. They return problems or
raise coded errors, never anything else, and the database is unchanged (row counts and SHA-256 of
every table before and after).
"""

from __future__ import annotations

import copy
import gzip
import io
import json
import time
import tomllib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import backup as backups
from engine.access import SYSTEM, Actor
from engine.designer import MAX_SPEC_BYTES, import_source
from engine.errors import EngineError, SpecError, ValidationFailed
from engine.fields import MAX_TEXT
from engine.forms import choice_lists, publish, save_choice_list
from engine.importers import MAX_BYTES, MAX_ROWS, commit, dry_run
from engine.spec import MAX_CHOICES, check_spec, parse_spec
from engine.storage import create
from engine.xlsform import import_xlsform
from tests.app.conftest import texts
from tests.security.conftest import ROOT, SAMPLES, diff, snapshot

ADMIN = Actor("admin", "admin", True)
MB = 1024 * 1024
FUZZ = settings(max_examples=50, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])
STATS: dict[str, int] = {}


def _count(name: str, n: int = 1) -> None:
    STATS[name] = STATS.get(name, 0) + n


def _bilingual(err: EngineError, *needles: str) -> None:
    zh, en = err.message("zh"), err.message("en")
    assert zh and en and zh != en and "{" not in zh + en, (zh, en)
    for needle in needles:
        assert needle in zh and needle in en, (needle, zh, en)


# --- oversized ----------------------------------------------------------------------------------------
def entry_page(slug: str) -> None:
    from pages.entry import render_entry

    render_entry(slug)


def test_a_1mb_text_field_is_refused_clearly_and_nothing_is_stored(sec_env):
    engine = sec_env.engine
    before = snapshot(engine)
    raw = dict(SAMPLES["records"]["consultation"]["valid"][0]["data"], summary="长" * (1024 * 1024))
    with pytest.raises(ValidationFailed) as err:
        create(engine, "consultation", raw, actor=ADMIN)
    problem = err.value.errors["summary"]
    assert problem.code == "field.too_long" and str(MAX_TEXT) in problem.message("zh")
    # on the entry page: the message beside the field, what was typed kept, nothing stored
    at = sec_env.page(entry_page, "staff", "consultation").run()
    area = next(a for a in at.text_area if a.key and a.key.endswith("__summary"))
    for key, value in SAMPLES["records"]["consultation"]["valid"][0]["data"].items():
        box = [t for t in at.text_input if t.key and t.key.endswith(f"__{key}")]
        if box and isinstance(value, str):
            box[0].input(value)
    area.input("长" * (1024 * 1024))
    next(b for b in at.button if b.key and b.key.endswith("__save")).click().run()
    assert not at.exception
    assert problem.message("zh") in texts(at) or any(problem.message("zh") in str(a.proto) for a in at.text_area)
    assert len(next(a for a in at.text_area if a.key and a.key.endswith("__summary")).value) == 1024 * 1024
    assert not diff(before, snapshot(engine))
    _count("oversized", 2)


def test_a_100k_row_import_is_refused_clearly_and_nothing_is_stored(sec_env):
    engine = sec_env.engine
    before = snapshot(engine)
    body = ("日期,学习内容,学习类别\n" + "2026-03-12,民法典学习,法律业务知识\n" * 100_000).encode("utf-8")
    assert len(body) < MAX_BYTES  # refused for its rows, not its size
    for call in (dry_run, commit):
        with pytest.raises(EngineError) as err:
            call(engine, "training_record", io.BytesIO(body), actor=ADMIN)
        assert err.value.code == "import.too_many_rows"
        _bilingual(err.value, str(MAX_ROWS))
        _count("oversized")
    assert MAX_ROWS < 100_000
    assert not diff(before, snapshot(engine))


def _big_spec(n: int) -> dict:
    return {"slug": "big_choice", "title": {"zh": "选项很多", "en": "Many options"}, "access": {
        "submit": ["admin"], "view": ["admin"], "edit": ["admin"], "reveal": ["admin"]},
        "fields": [{"key": "pick", "type": "select", "label": {"zh": "选择", "en": "Pick"},
                    "choices": [{"value": f"v{i}", "label": {"zh": f"选项{i}", "en": f"Option {i}"}} for i in range(n)]}]}


def test_a_10k_choice_field_is_refused_clearly_but_a_reference_list_that_long_is_handled(sec_env):
    engine = sec_env.engine
    before = snapshot(engine)
    spec, problems = check_spec(_big_spec(10_000))
    assert spec is None and [p.code for p in problems] == ["spec.too_many_choices"]
    assert "10000" in problems[0].message("zh") and str(MAX_CHOICES) in problems[0].message("en")
    with pytest.raises(SpecError) as err:
        publish(engine, _big_spec(10_000), actor=SYSTEM)
    assert [p.code for p in err.value.problems] == ["spec.too_many_choices"]
    assert not diff(before, snapshot(engine))
    # the same from an XLSForm workbook (the designer's upload)
    from openpyxl import Workbook

    wb = Workbook()
    survey = wb.active
    survey.title = "survey"
    survey.append(["type", "name", "label::Chinese (zh)"])
    survey.append(["select_one many", "pick", "选择"])
    choices = wb.create_sheet("choices")
    choices.append(["list_name", "name", "label::Chinese (zh)"])
    for i in range(10_000):
        choices.append(["many", f"v{i}", f"选项{i}"])
    out = io.BytesIO()
    wb.save(out)
    spec, problems, _warnings = import_xlsform(out.getvalue(), slug="big_choice")
    assert spec is None and "spec.too_many_choices" in [p.code for p in problems]
    assert check_spec(_big_spec(MAX_CHOICES))[0] is not None  # at the limit: fine
    # a reference list of 10,000 items is what long lists are for: stored and offered, in one piece
    items = [{"value": f"p{i}", "label": {"zh": f"联络点{i}"}} for i in range(10_000)]
    save_choice_list(engine, "long_list", "很长的名单", items, actor=SYSTEM)
    assert len(choice_lists(engine)["long_list"]) == 10_000
    _count("oversized", 3)


def test_a_50mb_upload_is_refused_by_streamlit_and_by_the_engine(sec_env):
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
    assert config["server"]["maxUploadSize"] < 50, "Streamlit accepts a 50 MB upload"
    assert config["server"]["maxUploadSize"] * MB >= MAX_BYTES
    engine = sec_env.engine
    before = snapshot(engine)
    big = b"a,b\n" + b"x,y\n" * (50 * MB // 4)
    with pytest.raises(EngineError) as err:
        dry_run(engine, "training_record", big, actor=ADMIN)
    assert err.value.code == "import.too_large"
    _bilingual(err.value, str(MAX_BYTES // MB))
    spec, problems, _w = import_xlsform(b"PK" + b"\0" * (50 * MB))
    assert spec is None and [p.code for p in problems] == ["xlsform.too_large"]
    data, problems = import_source(b"slug: x\n" + b"#" * (50 * MB), "form.yaml")
    assert data is None and [p.code for p in problems] == ["designer.upload_too_large"]
    assert str(MAX_SPEC_BYTES // MB) in problems[0].message("zh")
    assert not diff(before, snapshot(engine))
    _count("oversized", 4)


def test_alias_bombs_in_a_yaml_spec_are_refused_quickly():
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    text = "\n".join(lines) + "\nslug: laughs\ntitle: {zh: x}\nfields:\n  - key: pick\n    type: select\n" \
        "    label: {zh: x}\n    choices: *a8\n"
    start = time.monotonic()
    with pytest.raises(SpecError):
        parse_spec(text)
    assert time.monotonic() - start < 5
    _count("oversized")


# --- fuzzing ----------------------------------------------------------------------------------------
SPEC_KEYS = ["slug", "title", "description", "category", "access", "sections", "fields", "workflow", "parent",
             "list_columns", "summary", "date_field", "title_field", "key", "type", "label", "help", "required",
             "choices", "choice_list", "items", "min", "max", "min_length", "max_length", "pattern", "show_if",
             "sensitive", "unique", "steps", "states", "transitions", "from", "to", "roles", "initial", "op",
             "field", "value", "and", "or", "zh", "en", "submit", "view", "edit", "reveal", "default", "retired"]
TYPES = ["text", "textarea", "integer", "decimal", "select", "multiselect", "checklist", "date", "id_number",
         "phone", "counter", "reference", "note", "boolean", "rating", "user", "nonsense"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(allow_nan=True),
                    st.text(max_size=30), st.sampled_from(TYPES + ["admin", "staff", "equals", "in", "^(a+)+$"]))
junk = st.recursive(scalars, lambda kids: st.one_of(
    st.lists(kids, max_size=5), st.dictionaries(st.one_of(st.sampled_from(SPEC_KEYS), st.text(max_size=10)),
                                                kids, max_size=6)), max_leaves=40)
field_like = st.dictionaries(st.sampled_from(SPEC_KEYS), junk, max_size=8).map(
    lambda d: {"key": "ab", "type": "text", "label": {"zh": "x"}, **d})
spec_like = st.fixed_dictionaries({"slug": st.one_of(st.just("fuzz_form"), scalars),
                                   "title": st.one_of(st.just({"zh": "模糊"}), junk),
                                   "fields": st.lists(field_like, max_size=4)},
                                  optional={k: junk for k in ("workflow", "access", "sections", "list_columns",
                                                              "summary", "parent", "title_field")})


@FUZZ
@given(data=st.one_of(junk, spec_like))
def test_fuzzed_specs_give_problems_never_exceptions(data):
    spec, problems = check_spec(copy.deepcopy(data))
    assert (spec is None) == bool(problems)
    for p in problems:
        assert p.message("zh") and p.message("en")
    _count("fuzz_specs")


XLS_TEXT = st.one_of(st.sampled_from(["type", "name", "label", "label::Chinese (zh)", "hint", "required",
                                      "relevant", "constraint", "choice_filter", "calculation", "appearance",
                                      "list_name", "form_id", "form_title", "select_one x", "select_multiple x",
                                      "text", "integer", "begin group", "end group", "begin repeat", "note",
                                      "${a} = 'x'", ". > 3 and . < 1", "yes", "x", "a", "calculate", "geopoint"]),
                     st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=20), st.integers(-5, 10**12),
                     st.floats(allow_nan=False, allow_infinity=False),
                     st.none())
sheet = st.lists(st.lists(XLS_TEXT, max_size=8), max_size=12)


@FUZZ
@given(survey=sheet, choices=sheet, setting=sheet, names=st.lists(st.sampled_from(
    ["survey", "choices", "settings", "other", "Survey"]), min_size=1, max_size=3, unique=True))
def test_fuzzed_xlsform_workbooks_give_problems_never_exceptions(survey, choices, setting, names):
    from openpyxl import Workbook

    wb = Workbook()
    wb.remove(wb.active)
    for name, rows in zip(names, (survey, choices, setting), strict=False):
        ws = wb.create_sheet(name)
        for row in rows:
            ws.append(row)
    out = io.BytesIO()
    wb.save(out)
    spec, problems, warnings = import_xlsform(out.getvalue(), slug="fuzz_form")
    assert (spec is None) == bool(problems)
    assert all(p.message("zh") and p.message("en") for p in problems)
    _count("fuzz_xlsforms")


@FUZZ
@given(data=st.one_of(st.binary(max_size=2000), st.text(max_size=500).map(lambda s: s.encode("utf-8")),
                      st.lists(st.lists(st.one_of(st.text(max_size=12), st.sampled_from(
                          ["日期", "学习内容", "学习类别", "2026-03-12", "法律业务知识", "'", '"', "=1+1", "\r"])),
                          max_size=5), max_size=6).map(
                          lambda rows: "\n".join(",".join(r) for r in rows).encode("utf-8"))),
       as_xlsx=st.booleans())
def test_fuzzed_csv_and_xlsx_imports_give_clear_errors_and_change_nothing(sec_env, data, as_xlsx):
    engine = sec_env.engine
    if as_xlsx:
        from openpyxl import Workbook
        from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

        wb = Workbook()
        for line in data.decode("utf-8", errors="replace").splitlines()[:20]:
            wb.active.append([ILLEGAL_CHARACTERS_RE.sub("", c[:50]) for c in line.split(",")])
        out = io.BytesIO()
        wb.save(out)
        data = out.getvalue() if data[:1] != b"\0" else data  # some raw bytes stay raw
    before = snapshot(engine)
    try:
        report = dry_run(engine, "training_record", io.BytesIO(data), actor=ADMIN)
    except EngineError as exc:
        assert exc.code.startswith("import.") and exc.message("zh") and exc.message("en"), exc.code
        report = None
    assert not diff(before, snapshot(engine)), "a dry run changed the database"
    if report is not None and report.rows_total:
        try:
            result = commit(engine, "training_record", io.BytesIO(data), actor=ADMIN)
        except EngineError as exc:
            assert exc.message("zh") and exc.message("en")
            assert not diff(before, snapshot(engine)), "a refused import changed the database"
        else:
            assert result.count == report.rows_ok == report.rows_total
            changed = diff(before, snapshot(engine))
            assert set(changed) <= {"submissions", "audit_events", "change_stamps"}, changed
    _count("fuzz_imports")


_HEADER = json.dumps({"format": "lacdump", "version": 1, "revision": None})


def _dump_bytes(kind: str, junk: bytes, revision: str | None) -> bytes:
    if kind == "raw":
        return junk
    if kind == "sqlite":
        return b"SQLite format 3\x00" + junk
    header = json.dumps({"format": "lacdump", "version": 1, "revision": revision})
    body = junk.decode("latin-1")
    if kind == "gzip-junk":
        return gzip.compress(junk)
    rows = [header, json.dumps({"table": "users", "columns": ["id", "username"]}), body,
            json.dumps([1, 2, 3]), json.dumps({"table": "nope", "columns": []})]
    return gzip.compress("\n".join(rows[: 2 + len(junk) % 4]).encode("utf-8"))


@FUZZ
@given(kind=st.sampled_from(["raw", "sqlite", "gzip-junk", "lacdump"]), junk=st.binary(max_size=600),
       suffix=st.sampled_from([".db", ".lacdump", ".bak", ""]), force=st.booleans())
def test_fuzzed_backups_are_refused_clearly_and_change_nothing(sec_env, kind, junk, suffix, force):
    from engine.backup import _known_revisions

    engine = sec_env.engine
    path = sec_env.tmp_path / f"fuzz{suffix}"
    path.write_bytes(_dump_bytes(kind, junk, _known_revisions()[-1]))
    before = snapshot(engine)
    with pytest.raises(backups.BackupError) as err:
        backups.restore(sec_env.url, path, force=force, actor=ADMIN)
    assert err.value.code.startswith("restore.") and err.value.message("zh") and err.value.message("en")
    assert not diff(before, snapshot(engine)), f"a refused restore changed the database ({err.value.code})"
    _count("fuzz_backups")
