"""Records: create / update / delete / restore, each with its audit event in the same transaction;
optimistic locking; old versions; role refusals; parents, references and unique values."""

from __future__ import annotations

import threading

import pytest

from engine import stamps
from engine.access import Actor
from engine.errors import ConflictError, EngineError, NotFound, PermissionDenied, ValidationFailed
from engine.forms import get_spec, publish
from engine.hotpath import RawTx
from engine.storage import create, get_record, restore, soft_delete, transition, update
from models.tables import AuditEvent
from tests.storage.conftest import (
    ADMIN,
    CASE_SPEC,
    MANAGER,
    OUTREACH,
    STAFF,
    STAFF2,
    VIEWER,
    audit_rows,
    case_spec,
    count_rows,
    submissions,
)

CASE = {"name": "张三", "id_no": "440803199001011234", "kind": "civil", "tags": ["elderly"], "amount": "1200.5",
        "applied_on": "2026-03-02", "old_note": "首次来访"}


def test_create_stores_clean_values_state_and_audit(cases):
    before = stamps.current(cases, "data:case"), stamps.current(cases, "data")
    sub = create(cases, "case", CASE, actor=STAFF)
    assert sub.id and sub.revision == 1 and sub.form_version == 1
    assert sub.data["amount"] == "1200.50" and sub.data["tags"] == ["elderly"]
    assert sub.state == "applied" and sub.state_since is not None and sub.due_at is None
    assert sub.created_by == STAFF.username == sub.updated_by
    (event,) = audit_rows(cases, "create", sub.id)
    assert event.username == "li" and event.form_slug == "case" and event.entity == "submission"
    # the sensitive ID number is not copied into the audit log in clear
    assert event.detail["data"]["id_no"] != CASE["id_no"] and CASE["id_no"] not in str(event.detail)
    assert event.detail["data"]["name"] == "张三"
    assert stamps.current(cases, "data:case") == before[0] + 1
    assert stamps.current(cases, "data") == before[1] + 1


def test_invalid_create_writes_nothing(cases):
    with pytest.raises(ValidationFailed) as err:
        create(cases, "case", {"kind": "nope"}, actor=STAFF)
    assert set(err.value.errors) == {"name", "kind"}
    assert err.value.code == "record.invalid"
    assert submissions(cases) == 0 and audit_rows(cases, "create") == []


@pytest.mark.parametrize("action", ["create", "update", "delete", "restore", "transition"])
def test_failing_write_leaves_neither_record_change_nor_audit_row(cases, monkeypatch, action):
    sub = create(cases, "case", CASE, actor=STAFF)
    if action == "restore":
        soft_delete(cases, sub.id, actor=ADMIN)
    events_before = count_rows(cases, AuditEvent)
    rows_before = submissions(cases)
    record_before = get_record(cases, sub.id, actor=ADMIN).submission

    def boom(session, scope):  # the last step of every write: fail after the change and the audit row
        session.flush()
        raise RuntimeError("disk full")

    def boom_raw(tx, scope, also):  # the same last step on the raw hot path of `create`
        raise RuntimeError("disk full")

    monkeypatch.setattr(stamps, "bump", boom)
    monkeypatch.setattr(RawTx, "bump_two", boom_raw)
    with pytest.raises(RuntimeError):
        if action == "create":
            create(cases, "case", {**CASE, "id_no": "X2"}, actor=STAFF)
        elif action == "update":
            update(cases, sub.id, {**CASE, "name": "李四"}, actor=STAFF, revision=1)
        elif action == "delete":
            soft_delete(cases, sub.id, actor=ADMIN)
        elif action == "restore":
            restore(cases, sub.id, actor=ADMIN)
        else:
            transition(cases, sub.id, "review", actor=STAFF)
    monkeypatch.undo()
    after = get_record(cases, sub.id, actor=ADMIN).submission
    assert count_rows(cases, AuditEvent) == events_before
    assert submissions(cases) == rows_before
    assert (after.data, after.revision, after.state, after.deleted_at) == (
        record_before.data, record_before.revision, record_before.state, record_before.deleted_at)


def test_update_audits_a_masked_diff_and_bumps_revision(cases):
    sub = create(cases, "case", CASE, actor=STAFF)
    new = update(cases, sub.id, {**CASE, "name": "张三丰", "id_no": "440803199001019999", "old_note": ""},
                 actor=STAFF, revision=1)
    assert new.revision == 2 and new.data["name"] == "张三丰" and "old_note" not in new.data
    (event,) = audit_rows(cases, "update", sub.id)
    changes = event.detail["changes"]
    assert changes["name"] == ["张三", "张三丰"]
    assert changes["old_note"] == ["首次来访", None]
    assert "440803199001019999" not in str(event.detail) and CASE["id_no"] not in str(event.detail)
    # saving the same values again is not a change
    same = update(cases, sub.id, {**CASE, "name": "张三丰", "id_no": "440803199001019999", "old_note": None},
                  actor=STAFF, revision=2)
    assert same.revision == 2 and len(audit_rows(cases, "update", sub.id)) == 1


def test_stale_update_is_refused_naming_who_changed_it(cases):
    sub = create(cases, "case", CASE, actor=STAFF)
    update(cases, sub.id, {**CASE, "name": "经理改的"}, actor=MANAGER, revision=1)
    with pytest.raises(ConflictError) as err:
        update(cases, sub.id, {**CASE, "name": "我改的"}, actor=STAFF, revision=1)
    assert err.value.code == "record.conflict" and err.value.params["by"] == "boss"
    zh, en = err.value.message("zh"), err.value.message("en")
    assert "boss" in zh and "重新加载" in zh
    assert "boss" in en and "reload" in en and err.value.params["at"] in en
    rec = get_record(cases, sub.id, actor=STAFF)
    assert rec.data["name"] == "经理改的" and rec.submission.revision == 2  # never overwritten silently


def test_simultaneous_saves_of_one_revision_exactly_one_wins(cases):
    sub = create(cases, "case", CASE, actor=STAFF)
    barrier = threading.Barrier(6)
    results: list[str] = []
    lock = threading.Lock()

    def save(i: int) -> None:
        barrier.wait()
        try:
            update(cases, sub.id, {**CASE, "name": f"版本{i}"}, actor=MANAGER, revision=1)
            outcome = "ok"
        except ConflictError:
            outcome = "conflict"
        with lock:
            results.append(outcome)

    threads = [threading.Thread(target=save, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["conflict"] * 5 + ["ok"]
    assert get_record(cases, sub.id, actor=ADMIN).submission.revision == 2
    assert len(audit_rows(cases, "update", sub.id)) == 1


def test_old_version_record_keeps_its_version_and_retired_value(cases):
    old = create(cases, "case", CASE, actor=STAFF)
    v2 = case_spec(fields=[f for f in CASE_SPEC["fields"] if f["key"] != "old_note"]
                   + [{"key": "hotline", "type": "text", "label": {"zh": "来电", "en": "Hotline"}}])
    assert publish(cases, v2, actor=ADMIN).version == 2
    current = get_spec(cases, "case")
    assert current.field("old_note").retired and current.field("hotline") is not None

    rec = get_record(cases, old.id, actor=STAFF)
    assert rec.version == 1 and rec.outdated and rec.spec.field("hotline") is None
    assert rec.spec.field("old_note") is not None and rec.edit_spec.field("old_note").retired
    assert rec.data["old_note"] == "首次来访"

    edited = update(cases, old.id, {**CASE, "name": "改名", "old_note": "想改掉"}, actor=STAFF, revision=1)
    assert edited.form_version == 1 and edited.data["name"] == "改名"
    assert edited.data["old_note"] == "首次来访"  # retired value kept untouched
    edited = update(cases, old.id, {"name": "再改", "id_no": CASE["id_no"]}, actor=STAFF, revision=2)
    assert edited.data["old_note"] == "首次来访" and "kind" not in edited.data

    new = create(cases, "case", {**CASE, "id_no": "N1", "hotline": "12348"}, actor=STAFF)
    assert new.form_version == 2 and new.data["hotline"] == "12348" and "old_note" not in new.data


def test_a_save_is_checked_against_the_version_current_when_it_is_stored(cases):
    # the process has read version 1 (a save primes what it knows of the form)
    create(cases, "case", CASE, actor=STAFF)
    required = case_spec(fields=[*CASE_SPEC["fields"], {"key": "hotline", "type": "text", "required": True,
                                                        "label": {"zh": "来电", "en": "Hotline"}}])
    assert publish(cases, required, actor=ADMIN).version == 2
    with pytest.raises(ValidationFailed) as err:  # valid under version 1, not under version 2
        create(cases, "case", {**CASE, "id_no": "V2"}, actor=STAFF)
    assert set(err.value.errors) == {"hotline"}
    assert publish(cases, CASE_SPEC, actor=ADMIN).version == 3  # the requirement is gone again
    ok = create(cases, "case", {**CASE, "id_no": "V3"}, actor=STAFF)  # refused under 2, fine under 3
    assert ok.form_version == 3 and submissions(cases) == 2


def test_role_refusals(cases):
    with pytest.raises(PermissionDenied) as err:
        create(cases, "case", CASE, actor=VIEWER)
    assert err.value.code == "record.forbidden_submit"
    with pytest.raises(PermissionDenied):
        create(cases, "case", CASE, actor=OUTREACH)
    sub = create(cases, "case", CASE, actor=STAFF)
    with pytest.raises(PermissionDenied) as err:
        update(cases, sub.id, {**CASE, "name": "x"}, actor=STAFF2, revision=1)
    assert err.value.code == "record.forbidden_edit_own" and "li" in err.value.message("en")
    with pytest.raises(PermissionDenied):
        update(cases, sub.id, {**CASE, "name": "x"}, actor=VIEWER, revision=1)
    assert update(cases, sub.id, {**CASE, "name": "经理"}, actor=MANAGER, revision=1).revision == 2
    for who in (STAFF, MANAGER, VIEWER):
        with pytest.raises(PermissionDenied):
            soft_delete(cases, sub.id, actor=who)
    with pytest.raises(PermissionDenied):
        get_record(cases, sub.id, actor=OUTREACH)
    assert get_record(cases, sub.id, actor=VIEWER).id == sub.id
    assert submissions(cases) == 1 and audit_rows(cases, "delete") == []


def test_soft_delete_and_restore(cases):
    sub = create(cases, "case", CASE, actor=STAFF)
    gone = soft_delete(cases, sub.id, actor=ADMIN)
    assert gone.deleted_at is not None and gone.deleted_by == "admin1" and gone.revision == 2
    with pytest.raises(NotFound):
        get_record(cases, sub.id, actor=STAFF)
    with pytest.raises(NotFound):
        update(cases, sub.id, CASE, actor=ADMIN, revision=2)
    rec = get_record(cases, sub.id, actor=ADMIN)
    assert rec.deleted and [e.action for e in rec.history] == ["delete", "create"]
    with pytest.raises(PermissionDenied):
        restore(cases, sub.id, actor=MANAGER)
    back = restore(cases, sub.id, actor=ADMIN)
    assert back.deleted_at is None and back.revision == 3
    assert [e.action for e in get_record(cases, sub.id, actor=STAFF).history] == ["restore", "delete", "create"]
    with pytest.raises(EngineError) as err:
        restore(cases, sub.id, actor=ADMIN)
    assert err.value.code == "record.not_deleted"
    assert submissions(cases) == 1


def test_unique_values_checked_in_sql(cases):
    first = create(cases, "case", CASE, actor=STAFF)
    with pytest.raises(ValidationFailed) as err:
        create(cases, "case", {**CASE, "name": "另一人"}, actor=STAFF)
    assert err.value.errors["id_no"].code == "record.duplicate"
    assert err.value.errors["id_no"].params["other"] == first.id
    # a record may keep its own value; a deleted record frees it, and cannot come back over a new owner
    assert update(cases, first.id, {**CASE, "name": "改"}, actor=STAFF, revision=1).revision == 2
    soft_delete(cases, first.id, actor=ADMIN)
    second = create(cases, "case", CASE, actor=STAFF)
    with pytest.raises(ConflictError) as err:
        restore(cases, first.id, actor=ADMIN)
    assert err.value.code == "record.restore_duplicate" and err.value.params["other"] == second.id


def test_parent_and_reference_checks(cases):
    case = create(cases, "case", CASE, actor=STAFF)
    event = create(cases, "evt", {"title": "进村普法"}, actor=OUTREACH)
    with pytest.raises(EngineError) as err:
        create(cases, "signup", {"name": "王五"}, actor=OUTREACH)
    assert err.value.code == "record.parent_required"
    with pytest.raises(NotFound):
        create(cases, "signup", {"name": "王五"}, actor=OUTREACH, parent_id=case.id)  # not an event
    with pytest.raises(EngineError) as err:
        create(cases, "evt", {"title": "x"}, actor=OUTREACH, parent_id=event.id)
    assert err.value.code == "record.parent_unexpected"
    with pytest.raises(ValidationFailed) as err:
        create(cases, "signup", {"name": "王五", "case_ref": event.id}, actor=OUTREACH, parent_id=event.id)
    assert err.value.errors["case_ref"].code == "record.reference_missing"
    child = create(cases, "signup", {"name": "王五", "case_ref": case.id}, actor=OUTREACH, parent_id=event.id)
    assert child.parent_id == event.id and child.data["case_ref"] == case.id
    soft_delete(cases, event.id, actor=ADMIN)
    with pytest.raises(NotFound):
        create(cases, "signup", {"name": "赵六"}, actor=OUTREACH, parent_id=event.id)
    assert submissions(cases) == 3


def test_unknown_form_and_record(cases):
    with pytest.raises(NotFound) as err:
        create(cases, "nope", {}, actor=ADMIN)
    assert err.value.code == "form.not_found"
    with pytest.raises(NotFound) as err:
        get_record(cases, 987654, actor=ADMIN)
    assert err.value.code == "record.not_found"


# --- SQLite: the writer connections of the save path (engine.db._Writers) ---------------------------
def _writers(engine):
    from engine.db import _writers as writers_of

    return writers_of(engine)


def _stored(engine) -> dict[int, str]:
    """{record id: its id_no} of every case record."""
    from sqlalchemy import select

    from engine.db import session_scope
    from models.tables import Submission

    with session_scope(engine, write=False) as s:
        return {i: d.get("id_no") for i, d in s.execute(select(Submission.id, Submission.data))}


def _closed(connection) -> bool:
    if hasattr(connection, "broken"):  # psycopg
        return bool(connection.closed)
    import sqlite3

    try:
        connection.execute("SELECT 1")
    except sqlite3.ProgrammingError:
        return True
    return False


def test_saves_reuse_a_kept_writer_and_dispose_closes_it(cases):
    from engine.db import _idle

    first = create(cases, "case", {**CASE, "id_no": "W1"}, actor=STAFF)
    writers = _writers(cases)
    assert len(writers.idle) == 1
    kept = writers.idle[0]
    second = create(cases, "case", {**CASE, "id_no": "W2"}, actor=STAFF)
    assert writers.idle == [kept], "the second save used the same connection again"
    assert _idle(kept.dbapi_connection)
    assert {first.id: "W1", second.id: "W2"}.items() <= _stored(cases).items()

    connection = kept.dbapi_connection
    cases.dispose()  # e.g. a restore: no connection may outlive it
    assert writers.idle == [] and _closed(connection)
    third = create(cases, "case", {**CASE, "id_no": "W3"}, actor=STAFF)
    assert get_record(cases, third.id, actor=ADMIN).submission.data["id_no"] == "W3"


def test_a_kept_postgres_writer_found_dead_after_a_pause_is_replaced(cases, monkeypatch):
    if cases.dialect.name != "postgresql":
        pytest.skip("SQLite connections do not die")
    from engine.db import _Writers

    create(cases, "case", {**CASE, "id_no": "D1"}, actor=STAFF)
    writers = _writers(cases)
    dead = writers.idle[0]
    dead.dbapi_connection.close()  # as a server restart leaves it
    monkeypatch.setattr(_Writers, "PING_AFTER", 0.0)
    after = create(cases, "case", {**CASE, "id_no": "D2"}, actor=STAFF)
    assert _stored(cases)[after.id] == "D2" and dead not in writers.idle


def test_a_refused_save_hands_back_a_clean_writer(cases):
    create(cases, "case", {**CASE, "id_no": "U1"}, actor=STAFF)
    rows, events = submissions(cases), count_rows(cases, AuditEvent)
    with pytest.raises(ValidationFailed):  # refused inside the write transaction (unique value)
        create(cases, "case", {**CASE, "id_no": "U1"}, actor=STAFF)
    assert submissions(cases) == rows and count_rows(cases, AuditEvent) == events
    from engine.db import _idle

    writers = _writers(cases)
    assert writers.idle and all(_idle(w.dbapi_connection) for w in writers.idle)
    after = create(cases, "case", {**CASE, "id_no": "U2"}, actor=STAFF)
    assert _stored(cases)[after.id] == "U2"


def test_saves_from_several_threads_at_once_all_land(cases):
    from concurrent.futures import ThreadPoolExecutor

    def save(n: int) -> int:
        return create(cases, "case", {**CASE, "id_no": f"T{n}"}, actor=STAFF).id

    with ThreadPoolExecutor(max_workers=6) as pool:
        ids = list(pool.map(save, range(60)))
    stored = _stored(cases)
    assert len(set(ids)) == 60 and {stored[i] for i in ids} == {f"T{n}" for n in range(60)}
    assert len(_writers(cases).idle) <= _writers(cases).KEEP


def test_a_remembered_save_gate_still_follows_role_archive_and_language(cases):
    from sqlalchemy import text

    from engine.db import session_scope

    create(cases, "case", {**CASE, "id_no": "G1"}, actor=STAFF)  # the staff gate is now remembered
    with pytest.raises(PermissionDenied) as err:
        create(cases, "case", {**CASE, "id_no": "G2"}, actor=VIEWER)
    assert err.value.code == "record.forbidden_submit"
    with session_scope(cases) as s:  # the form is archived (by another process, say)
        s.execute(text("UPDATE forms SET archived = :yes WHERE slug = 'case'"), {"yes": True})
    with pytest.raises(PermissionDenied) as err:
        create(cases, "case", {**CASE, "id_no": "G3"}, actor=STAFF)
    assert err.value.code == "form.archived"
    with session_scope(cases) as s:
        s.execute(text("UPDATE forms SET archived = :no WHERE slug = 'case'"), {"no": False})
    english = Actor(STAFF.username, STAFF.role, language="en")
    with pytest.raises(ValidationFailed) as bad:
        create(cases, "case", {**CASE, "id_no": "G4", "kind": "nonsense"}, actor=english)
    assert bad.value.params["form"] == "Aid case" and bad.value.errors["kind"].code == "field.choice"
    assert create(cases, "case", {**CASE, "id_no": "G5"}, actor=STAFF).data["id_no"] == "G5"


def test_a_forked_process_does_not_use_its_parents_writers(cases):
    create(cases, "case", {**CASE, "id_no": "F1"}, actor=STAFF)
    writers = _writers(cases)
    parents = list(writers.idle)
    writers.pid = -1  # what a forked child sees: the list was made by another process
    child = create(cases, "case", {**CASE, "id_no": "F2"}, actor=STAFF)
    assert _stored(cases)[child.id] == "F2"
    assert writers.idle and not set(map(id, writers.idle)) & set(map(id, parents))


def test_json_values_keep_chinese_readable_and_keys_and_big_numbers_survive(cases):
    """The JSON columns' serializer: Chinese stored as written, non-text keys as text, integers beyond
    64 bits exactly (the standard library writes those)."""
    from sqlalchemy import text

    from engine.db import session_scope

    details = [{"名": "张三", "n": [1, 2.5, None, True]}, {1: "一", "k": {2: "二"}}, {"big": 2**70, "名": "李四"}]
    with session_scope(cases) as s:
        for i, detail in enumerate(details):
            s.add(AuditEvent(action="update", entity="system", entity_id=f"json-{i}", detail=detail))
    with session_scope(cases, write=False) as s:
        stored = dict(s.execute(text("SELECT entity_id, detail FROM audit_events WHERE entity_id LIKE 'json-%'")).all())
        loaded = {e.entity_id: e.detail for e in s.query(AuditEvent).filter(AuditEvent.entity_id.like("json-%"))}
    assert loaded == {"json-0": details[0], "json-1": {"1": "一", "k": {"2": "二"}}, "json-2": details[2]}
    if cases.dialect.name == "sqlite":
        assert "张三" in stored["json-0"] and "李四" in stored["json-2"]  # not \u escapes
