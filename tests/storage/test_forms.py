"""Forms and reference lists: publishing, versions seen across processes, the first-start load."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from engine import audit, stamps
from engine.db import get_engine, make_engine, session_scope
from engine.errors import NotFound, PermissionDenied, SpecError
from engine.forms import (
    choice_lists,
    get_choice_list,
    get_spec,
    list_forms,
    list_versions,
    load_builtins,
    preview_publish,
    publish,
    rename_choice,
    save_choice_list,
    set_choice_active,
)
from engine.storage import create, get_record, update
from models.tables import AuditEvent, ChoiceItem, ChoiceList, Form, FormVersion, Submission
from tests.conftest import PG_URL, drop_pg_database, make_pg_database
from tests.storage.conftest import ADMIN, CASE_SPEC, MANAGER, STAFF, audit_rows, case_spec, count_rows

ROOT = Path(__file__).resolve().parents[2]
TABLES = (Form, FormVersion, ChoiceList, ChoiceItem, AuditEvent, Submission)


def table_counts(engine: Engine) -> dict[str, int]:
    return {t.__tablename__: count_rows(engine, t) for t in TABLES}


def run_python(code: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)


def test_publish_versions_and_identical_noop(engine):
    fv = publish(engine, CASE_SPEC, actor=ADMIN, note="first")
    assert fv.version == 1 and fv.published_by == "admin1" and fv.note == "first"
    stamp = stamps.current(engine, "forms")
    again = publish(engine, CASE_SPEC, actor=ADMIN)
    assert again.version == 1 and again.id == fv.id
    assert stamps.current(engine, "forms") == stamp
    assert len(audit_rows(engine, "publish")) == 1
    v2 = case_spec(title={"zh": "援助案件（新）", "en": "Aid case"},
                   fields=[*CASE_SPEC["fields"], {"key": "court", "type": "text", "label": {"zh": "法院"}}])
    assert publish(engine, v2, actor=ADMIN, note="add court").version == 2
    assert [v.version for v in list_versions(engine, "case")] == [2, 1]
    event = audit_rows(engine, "publish")[-1]
    assert event.detail["version"] == 2 and event.form_slug == "case"
    assert any(c.get("field") == "court" for c in event.detail["changes"])
    assert stamps.current(engine, "forms") == stamp + 1
    assert get_spec(engine, "case").title["zh"] == "援助案件（新）"
    assert get_spec(engine, "case", 1).field("court") is None
    (info,) = [f for f in list_forms(engine) if f.slug == "case"]
    assert (info.version, info.title["zh"], info.category, info.count) == (2, "援助案件（新）", "cases", 0)


def test_publish_refusals(engine):
    with pytest.raises(PermissionDenied):
        publish(engine, CASE_SPEC, actor=STAFF)
    bad = case_spec(fields=[*CASE_SPEC["fields"], {"key": "court", "type": "select", "choice_list": "nowhere"}])
    with pytest.raises(SpecError) as err:
        publish(engine, bad, actor=ADMIN)
    assert err.value.problems and any(p.field == "court" for p in err.value.problems)
    assert count_rows(engine, Form) == 0 and audit_rows(engine, "publish") == []
    with pytest.raises(NotFound):
        get_spec(engine, "case")


def test_preview_counts_records_and_writes_nothing(cases):
    for i in range(3):
        create(cases, "case", {"name": f"人{i}"}, actor=STAFF)
    v2 = case_spec(fields=[f for f in CASE_SPEC["fields"] if f["key"] != "old_note"])
    plan, affected = preview_publish(cases, v2)
    assert affected == 3 and not plan.problems
    assert plan.spec.field("old_note").retired
    assert get_spec(cases, "case").field("old_note").retired is False
    assert len(list_versions(cases, "case")) == 1


def test_publish_by_another_engine_is_seen_at_once(db_url):
    first = get_engine(db_url)
    publish(first, CASE_SPEC, actor=ADMIN)
    assert get_spec(first, "case").field("court") is None
    other = make_engine(db_url)  # a second engine object: another process's view of the database
    try:
        v2 = case_spec(fields=[*CASE_SPEC["fields"], {"key": "court", "type": "text", "label": {"zh": "法院"}}])
        publish(other, v2, actor=ADMIN)
    finally:
        other.dispose()
    assert get_spec(first, "case").field("court") is not None
    assert get_spec(first, "case", 1).field("court") is None
    sub = create(first, "case", {"name": "新版", "court": "霞山法院"}, actor=STAFF)
    assert sub.form_version == 2 and sub.data["court"] == "霞山法院"


def test_publish_in_another_process_is_seen(db_url):
    engine = get_engine(db_url)
    publish(engine, CASE_SPEC, actor=ADMIN)
    assert get_spec(engine, "case").field("court") is None
    code = (
        "import sys, copy\n"
        "from engine.db import get_engine\nfrom engine.forms import publish\nfrom engine.access import SYSTEM\n"
        "from tests.storage.conftest import CASE_SPEC\n"
        "spec = copy.deepcopy(CASE_SPEC)\n"
        "spec['fields'].append({'key': 'court', 'type': 'text', 'label': {'zh': '法院'}})\n"
        "print(publish(get_engine(sys.argv[1]), spec, actor=SYSTEM).version)\n"
    )
    out = run_python(code, db_url)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "2"
    assert get_spec(engine, "case").field("court") is not None


def test_choice_list_edits_are_audited_and_seen(engine):
    stamp = stamps.current(engine, "choice_lists")
    save_choice_list(engine, "courts", {"zh": "法院", "en": "Courts"}, [
        {"value": "xs", "label": {"zh": "霞山法院"}}, {"value": "ck", "label": "赤坎法院", "extra": {"level": "basic"}},
    ], actor=ADMIN)
    assert [c.value for c in choice_lists(engine)["courts"]] == ["xs", "ck"]
    assert get_choice_list(engine, "courts").items[1].extra == {"level": "basic"}
    assert stamps.current(engine, "choice_lists") == stamp + 1
    # a value left out is kept inactive (records still use it), never deleted
    save_choice_list(engine, "courts", "法院", [{"value": "ck", "label": "赤坎法院"}], actor=ADMIN)
    items = choice_lists(engine)["courts"]
    assert [(c.value, c.active) for c in items] == [("ck", True), ("xs", False)]
    assert [c.value for c in choice_lists(engine, include_inactive=False)["courts"]] == ["ck"]
    set_choice_active(engine, "courts", "xs", True, actor=ADMIN)
    rename_choice(engine, "courts", "xs", {"zh": "霞山区人民法院", "en": "Xiashan Court"}, actor=ADMIN)
    items = {c.value: c for c in choice_lists(engine)["courts"]}
    assert items["xs"].active and items["xs"].label["en"] == "Xiashan Court"
    assert [e.action for e in audit_rows(engine, "choice_list_update")] == ["choice_list_update"] * 4
    # a second engine (another process) sees the change through the stamp, not a process-local copy
    other = make_engine(engine.url.render_as_string(hide_password=False))
    try:
        set_choice_active(other, "courts", "ck", False, actor=ADMIN)
    finally:
        other.dispose()
    assert {c.value: c.active for c in choice_lists(engine)["courts"]}["ck"] is False
    for bad in (lambda: save_choice_list(engine, "courts", "x", [], actor=MANAGER),
                lambda: set_choice_active(engine, "courts", "xs", False, actor=STAFF),
                lambda: rename_choice(engine, "courts", "xs", "x", actor=STAFF)):
        with pytest.raises(PermissionDenied):
            bad()
    with pytest.raises(NotFound):
        set_choice_active(engine, "courts", "nope", False, actor=ADMIN)


def test_inactive_choice_stays_valid_on_the_record_that_has_it(engine):
    save_choice_list(engine, "courts", "法院", [{"value": "xs", "label": "霞山"}, {"value": "ck", "label": "赤坎"}],
                     actor=ADMIN)
    spec = case_spec(fields=[*CASE_SPEC["fields"],
                             {"key": "court", "type": "select", "label": {"zh": "法院"}, "choice_list": "courts"}])
    publish(engine, spec, actor=ADMIN)
    sub = create(engine, "case", {"name": "甲", "court": "xs"}, actor=STAFF)
    set_choice_active(engine, "courts", "xs", False, actor=ADMIN)
    assert update(engine, sub.id, {"name": "甲改", "court": "xs"}, actor=STAFF, revision=1).revision == 2
    from engine.errors import ValidationFailed

    with pytest.raises(ValidationFailed):
        create(engine, "case", {"name": "乙", "court": "xs"}, actor=STAFF)
    assert get_record(engine, sub.id, actor=STAFF).data["court"] == "xs"


def test_load_builtins_is_idempotent(loaded):
    counts = table_counts(loaded)
    slugs = {f.slug for f in list_forms(loaded)}
    assert {"intake", "outreach_event", "event_signup", "hearing_observation"} <= slugs
    assert counts["forms"] == counts["form_versions"] == len(list(Path(ROOT, "data/forms").glob("*.yaml")))
    assert counts["choice_lists"] == len(list(Path(ROOT, "data/reference").glob("*.yaml")))
    assert all(f.builtin and f.version == 1 for f in list_forms(loaded))
    signup = next(f for f in list_forms(loaded) if f.slug == "event_signup")
    assert signup.parent == "outreach_event"
    again = load_builtins(loaded)
    assert again["forms_published"] == [] and again["lists_created"] == [] and again["problems"] == {}
    assert table_counts(loaded) == counts


def test_load_builtins_leaves_office_edits_alone(loaded):
    items = get_choice_list(loaded, "liaison_points").items
    rename_choice(loaded, "liaison_points", items[0].value, "霞山街道新村联络点", actor=ADMIN)
    load_builtins(loaded)
    assert get_choice_list(loaded, "liaison_points").items[0].label == {"zh": "霞山街道新村联络点"}


def test_load_builtins_orders_parents_and_reports_bad_files(engine, tmp_path):
    forms, refs = tmp_path / "forms", tmp_path / "refs"
    forms.mkdir()
    refs.mkdir()
    (refs / "groups.yaml").write_text(
        "name: groups\ntitle: {zh: 人群}\nitems:\n  - {value: a, label: {zh: 甲}}\n", encoding="utf-8")
    (refs / "broken.yaml").write_text("name: [unclosed\n", encoding="utf-8")
    # "a_child" sorts first but needs its parent "z_parent" published before it
    (forms / "a_child.yaml").write_text(
        "slug: a_child\ntitle: {zh: 子}\nparent: z_parent\nfields:\n"
        "  - {key: who, type: select, label: {zh: 人}, choice_list: groups}\n", encoding="utf-8")
    (forms / "z_parent.yaml").write_text("slug: z_parent\ntitle: {zh: 父}\nfields:\n"
                                         "  - {key: title, type: text, label: {zh: 名}}\n", encoding="utf-8")
    (forms / "bad.yaml").write_text("slug: bad\nfields:\n  - {key: x, type: no_such_type}\n", encoding="utf-8")
    (forms / "zz_copy.yaml").write_text((forms / "z_parent.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    result = load_builtins(engine, forms_dir=forms, reference_dir=refs)
    assert result["forms_published"] == ["z_parent", "a_child"] and result["lists_created"] == ["groups"]
    assert set(result["problems"]) == {"broken.yaml", "bad.yaml", "zz_copy.yaml"}
    assert "z_parent.yaml" in result["problems"]["zz_copy.yaml"]
    assert {f.slug for f in list_forms(engine)} == {"a_child", "z_parent"}


def test_init_database_from_four_processes_at_once(tmp_path):
    """Four processes start on an empty database together: one schema, one set of built-ins."""
    urls = [f"sqlite:///{tmp_path / 'fresh.db'}"] + ([make_pg_database()] if PG_URL else [])
    code = "import sys\nfrom engine.db import get_engine\nfrom engine.forms import init_database\n" \
           "r = init_database(get_engine(sys.argv[1]))\nprint(len(r['forms_published']), len(r['problems']))\n"
    try:
        for url in urls:
            env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
            procs = [subprocess.Popen([sys.executable, "-c", code, url], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True) for _ in range(4)]
            outs = [p.communicate(timeout=180) for p in procs]
            assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
            published = sorted(int(o[0].split()[0]) for o in outs)
            n_forms = len(list(Path(ROOT, "data/forms").glob("*.yaml")))
            assert published == [0, 0, 0, n_forms], outs
            assert all(o[0].split()[1] == "0" for o in outs)
            engine = get_engine(url)
            assert count_rows(engine, Form) == count_rows(engine, FormVersion) == n_forms
    finally:
        for url in urls[1:]:
            drop_pg_database(url)


def test_audit_record_and_diff(engine):
    with session_scope(engine) as s:
        audit.record(s, ADMIN, "login", "user", "admin1")
        audit.record(s, "someone", "backup", "system", None, detail={"file": "x.db"})
    events = audit_rows(engine)
    assert [(e.username, e.action, e.entity_id) for e in events] == [("admin1", "login", "admin1"),
                                                                    ("someone", "backup", "")]
    with pytest.raises(ValueError), session_scope(engine) as s:
        audit.record(s, ADMIN, "teleport", "user", 1)
    assert audit.diff({"a": 1, "b": [1], "c": None}, {"a": 1, "b": [2], "d": "x"}) == {"b": [[1], [2]],
                                                                                      "d": [None, "x"]}


def test_stamps_bump_concurrently(engine):
    def bump_many() -> None:
        for _ in range(10):
            with session_scope(engine) as s:
                stamps.bump(s, "data:x")

    threads = [threading.Thread(target=bump_many) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert stamps.current(engine, "data:x") == 40 and stamps.current(engine, "data") == 40
    assert stamps.current_many(engine, ["data:x", "users"]) == {"data:x": 40, "users": 0}
