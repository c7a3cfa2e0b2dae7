"""Backfill (engine.backfill) on SQLite and PostgreSQL: an explicit bulk action that fills a new field
on records chosen by a filter — only where empty, revision bumped, audited per record and per batch,
refused for a value the field type rejects, nothing implicit."""

from __future__ import annotations

import io

import pytest

from engine.backfill import backfill, run_backfill
from engine.db import session_scope
from engine.errors import ConflictError, EngineError, PermissionDenied, ValidationFailed
from engine.exporters import export_records
from engine.forms import get_spec, publish
from engine.queries import ListQuery
from engine.storage import create, get_record, transition, update
from models.tables import Submission
from tests.storage.conftest import ADMIN, CASE_SPEC, MANAGER, STAFF, audit_rows, case_spec

OUTCOME = {"key": "outcome", "type": "select", "label": {"zh": "调解结果", "en": "Outcome"},
           "choices": [{"value": "none", "label": {"zh": "未调解", "en": "Not mediated"}},
                       {"value": "settled", "label": {"zh": "调解成功", "en": "Settled"}}]}
SCORE = {"key": "score", "type": "integer", "label": {"zh": "评分", "en": "Score"}, "min": 0, "max": 10}


@pytest.fixture
def with_records(cases):
    engine = cases
    ids = {
        "civil1": create(engine, "case", {"name": "甲", "kind": "civil"}, actor=STAFF).id,
        "civil2": create(engine, "case", {"name": "乙", "kind": "civil"}, actor=STAFF).id,
        "crim": create(engine, "case", {"name": "丙", "kind": "criminal"}, actor=STAFF).id,
    }
    publish(engine, case_spec(fields=CASE_SPEC["fields"] + [OUTCOME, SCORE]), actor=ADMIN)
    return engine, ids


def test_nothing_is_backfilled_implicitly_by_publishing(with_records):
    engine, ids = with_records
    for sub_id in ids.values():
        rec = get_record(engine, sub_id, actor=ADMIN)
        assert "outcome" not in rec.data and rec.submission.revision == 1


def test_backfill_fills_only_the_filtered_empty_records_and_bumps_revisions(with_records):
    engine, ids = with_records
    already = create(engine, "case", {"name": "丁", "kind": "civil", "outcome": "settled"}, actor=STAFF).id
    q = ListQuery(filters={"kind": "civil"})
    assert backfill(engine, "case", "outcome", "none", filters=q, actor=ADMIN, dry_run=True) == 2
    assert "outcome" not in get_record(engine, ids["civil1"], actor=ADMIN).data  # a dry run writes nothing
    assert audit_rows(engine, "backfill") == []

    assert backfill(engine, "case", "outcome", "none", filters=q, actor=ADMIN) == 2
    for key in ("civil1", "civil2"):
        rec = get_record(engine, ids[key], actor=ADMIN)
        assert rec.data["outcome"] == "none" and rec.submission.revision == 2
        assert rec.submission.updated_by == "admin1"
        assert rec.version == 1  # the record keeps its own form version
    crim = get_record(engine, ids["crim"], actor=ADMIN)
    assert "outcome" not in crim.data and crim.submission.revision == 1  # outside the filter
    kept = get_record(engine, already, actor=ADMIN)
    assert kept.data["outcome"] == "settled" and kept.submission.revision == 1  # never overwritten

    # running it again finds nothing left to fill
    assert backfill(engine, "case", "outcome", "none", filters=q, actor=ADMIN) == 0


def test_backfill_is_audited_per_record_and_per_batch(with_records):
    engine, ids = with_records
    result = run_backfill(engine, "case", "score", "7", filters=ListQuery(filters={"kind": "civil"}), actor=ADMIN)
    assert sorted(result.ids) == sorted([ids["civil1"], ids["civil2"]])
    events = audit_rows(engine, "backfill")
    per_record = [e for e in events if e.entity == "submission"]
    batch = [e for e in events if e.entity == "form"]
    assert sorted(int(e.entity_id) for e in per_record) == sorted(result.ids)
    assert all(e.detail["batch"] == result.batch and e.detail["changes"] == {"score": [None, 7]} for e in per_record)
    assert len(batch) == 1 and batch[0].detail["count"] == 2 and batch[0].detail["value"] == 7
    assert batch[0].detail["filters"]["filters"] == {"kind": "civil"}
    # the record's own history shows who set the value
    history = get_record(engine, ids["civil1"], actor=ADMIN).history
    assert history[0].action == "backfill" and history[0].username == "admin1"


@pytest.mark.parametrize(("field", "value", "code"), [
    ("outcome", "maybe", "field.choice"),
    ("score", "eleven", "field.number"),
    ("score", "7.5", "field.integer"),
    ("score", 11, "field.max"),
])
def test_a_value_invalid_for_the_type_is_refused_and_nothing_changes(with_records, field, value, code):
    engine, ids = with_records
    with pytest.raises(EngineError) as err:
        backfill(engine, "case", field, value, actor=ADMIN)
    assert err.value.code == "backfill.invalid_value"
    assert [p.code for p in err.value.problems] == [code]
    assert err.value.problems[0].message("zh") in err.value.message("zh")
    assert all(field not in get_record(engine, i, actor=ADMIN).data for i in ids.values())
    assert audit_rows(engine, "backfill") == []


def test_refusals_for_fields_and_roles(with_records):
    engine, _ids = with_records
    with pytest.raises(EngineError) as err:
        backfill(engine, "case", "no_such_field", "x", actor=ADMIN)
    assert err.value.code == "backfill.bad_field"
    with pytest.raises(EngineError) as err:
        backfill(engine, "case", "id_no", "X1", actor=ADMIN)  # unique: one value cannot go everywhere
    assert err.value.code == "backfill.unique"
    with pytest.raises(EngineError) as err:
        backfill(engine, "case", "outcome", "", actor=ADMIN)
    assert err.value.code == "backfill.empty_value"
    for who in (STAFF, MANAGER):
        with pytest.raises(PermissionDenied):
            backfill(engine, "case", "outcome", "none", actor=who)


def test_backfill_respects_state_and_date_filters(with_records):
    engine, ids = with_records
    transition(engine, ids["crim"], "review", actor=ADMIN)
    assert backfill(engine, "case", "outcome", "none", filters=ListQuery(state="reviewing"), actor=ADMIN) == 1
    assert get_record(engine, ids["crim"], actor=ADMIN).data["outcome"] == "none"
    assert "outcome" not in get_record(engine, ids["civil1"], actor=ADMIN).data


def test_an_editor_with_an_older_revision_gets_a_conflict_not_a_silent_overwrite(with_records):
    engine, ids = with_records
    rec = get_record(engine, ids["civil1"], actor=STAFF)
    backfill(engine, "case", "outcome", "none", actor=ADMIN)
    with pytest.raises(ConflictError):
        update(engine, ids["civil1"], {"name": "甲改"}, actor=STAFF, revision=rec.submission.revision)


def test_backfilled_values_are_exported_and_kept_on_edit(with_records):
    engine, ids = with_records
    backfill(engine, "case", "outcome", "settled", filters=ListQuery(filters={"kind": "civil"}), actor=ADMIN)
    out = io.BytesIO()
    export_records(engine, "case", out, "csv", actor=ADMIN, headers="key")
    text = out.getvalue().decode("utf-8-sig")
    header = text.splitlines()[0].split(",")
    col = header.index("outcome")
    values = sorted(line.split(",")[col] for line in text.splitlines()[1:])
    assert values == ["", "settled", "settled"]
    rec = get_record(engine, ids["civil1"], actor=STAFF)
    update(engine, ids["civil1"], {"name": "甲改", "kind": "civil"}, actor=STAFF, revision=rec.submission.revision)
    assert get_record(engine, ids["civil1"], actor=ADMIN).data["outcome"] == "settled"
    assert get_spec(engine, "case").field("outcome") is not None


# --- editing an older-version record that holds backfilled later fields ----------------------------------
CONTACT = {"key": "contact", "type": "phone", "label": {"zh": "联系人电话", "en": "Contact phone"}, "sensitive": True}
VISIT = {"key": "visit_note", "type": "text", "label": {"zh": "回访记录", "en": "Follow-up note"},
         "show_if": {"field": "followed_up", "op": "equals", "value": True}}


def _edit(engine, sub_id, changes, actor=STAFF, drop=()):
    """Save the record as the record page does: every shown value, with `changes` typed over them."""
    rec = get_record(engine, sub_id, actor=actor)
    raw = {k: v for k, v in rec.data.items() if rec.edit_spec.field(k) is not None and k not in drop}
    return update(engine, sub_id, {**raw, **changes}, actor=actor, revision=rec.submission.revision)


def test_an_edit_of_a_backfilled_later_field_is_saved_validated_and_audited(with_records):
    engine, ids = with_records
    backfill(engine, "case", "outcome", "none", filters=ListQuery(filters={"kind": "civil"}), actor=ADMIN)
    before = get_record(engine, ids["civil1"], actor=STAFF)
    assert before.version == 1 and before.edit_spec.field("outcome") is not None

    fresh = _edit(engine, ids["civil1"], {"outcome": "settled"})
    after = get_record(engine, ids["civil1"], actor=ADMIN)
    assert after.data == {**before.data, "outcome": "settled"}  # only that answer changed
    assert after.version == 1 and fresh.revision == before.submission.revision + 1
    [event] = audit_rows(engine, "update", ids["civil1"])
    assert event.username == STAFF.username and event.detail["changes"] == {"outcome": ["none", "settled"]}
    # another record of the same batch is untouched
    assert get_record(engine, ids["civil2"], actor=ADMIN).data["outcome"] == "none"


@pytest.mark.parametrize(("field", "value", "code"), [
    ("outcome", "maybe", "field.choice"),
    ("score", "eleven", "field.number"),
    ("score", 11, "field.max"),
])
def test_an_invalid_value_for_a_backfilled_later_field_is_refused_and_nothing_changes(with_records, field, value,
                                                                                      code):
    engine, ids = with_records
    backfill(engine, "case", "outcome", "none", actor=ADMIN)
    backfill(engine, "case", "score", 5, actor=ADMIN)
    before = get_record(engine, ids["civil1"], actor=STAFF)
    with pytest.raises(ValidationFailed) as err:
        _edit(engine, ids["civil1"], {"name": "甲改", field: value})
    assert list(err.value.errors) == [field]
    problem = err.value.errors[field]
    assert problem.code == code and problem.field == field
    after = get_record(engine, ids["civil1"], actor=ADMIN)
    assert after.data == before.data and after.submission.revision == before.submission.revision
    assert audit_rows(engine, "update") == []


def test_editing_another_field_keeps_the_backfilled_value_and_unknown_keys(with_records):
    engine, ids = with_records
    publish(engine, case_spec(fields=[f for f in CASE_SPEC["fields"] if f["key"] != "old_note"] + [OUTCOME, SCORE]),
            actor=ADMIN)  # v3 retires old_note
    backfill(engine, "case", "outcome", "settled", actor=ADMIN)
    with session_scope(engine) as s:  # a key no version knows, and a retired field's answer
        sub = s.get(Submission, ids["civil1"])
        sub.data = {**sub.data, "old_note": "旧的", "legacy_key": "x"}
    _edit(engine, ids["civil1"], {"name": "甲改"})  # the page sends the shown backfilled value unchanged
    data = get_record(engine, ids["civil1"], actor=ADMIN).data
    assert data == {"name": "甲改", "kind": "civil", "outcome": "settled", "old_note": "旧的", "legacy_key": "x"}
    [event] = audit_rows(engine, "update", ids["civil1"])
    assert event.detail["changes"] == {"name": ["甲", "甲改"]}
    # a caller that does not send the later field at all keeps it too
    _edit(engine, ids["civil1"], {"kind": "labour"}, drop={"outcome"})
    data = get_record(engine, ids["civil1"], actor=ADMIN).data
    assert data["outcome"] == "settled" and data["kind"] == "labour" and data["old_note"] == "旧的"


def test_a_backfilled_later_field_follows_its_own_rules_when_cleared(with_records):
    engine, ids = with_records
    backfill(engine, "case", "outcome", "none", actor=ADMIN)
    backfill(engine, "case", "score", 5, actor=ADMIN)
    _edit(engine, ids["civil1"], {"score": None})  # optional: clearing it removes the answer
    rec = get_record(engine, ids["civil1"], actor=ADMIN)
    assert "score" not in rec.data and rec.data["outcome"] == "none"
    assert rec.edit_spec.field("score") is None  # no value any more: no longer shown
    required = {**OUTCOME, "required": True}
    publish(engine, case_spec(fields=CASE_SPEC["fields"] + [required, SCORE]), actor=ADMIN)
    with pytest.raises(ValidationFailed) as err:
        _edit(engine, ids["civil1"], {"outcome": None})
    assert err.value.errors["outcome"].code == "field.required"
    assert get_record(engine, ids["civil1"], actor=ADMIN).data["outcome"] == "none"


def test_a_sensitive_backfilled_later_field_is_masked_in_the_audit_diff(with_records):
    engine, ids = with_records
    publish(engine, case_spec(fields=CASE_SPEC["fields"] + [OUTCOME, SCORE, CONTACT]), actor=ADMIN)
    backfill(engine, "case", "contact", "13802715634", filters=ListQuery(filters={"kind": "civil"}), actor=ADMIN)
    _edit(engine, ids["civil1"], {"contact": "13900001111"})
    assert get_record(engine, ids["civil1"], actor=ADMIN).data["contact"] == "13900001111"
    [event] = audit_rows(engine, "update", ids["civil1"])
    old, new = event.detail["changes"]["contact"]
    assert "13802715634" not in str(event.detail) and "13900001111" not in str(event.detail)
    assert [old, new] == ["138****5634", "139****1111"]


def test_a_hidden_backfilled_later_field_is_kept_but_one_hidden_by_the_edit_is_dropped(with_records):
    engine, ids = with_records
    followed = {"key": "followed_up", "type": "boolean", "label": {"zh": "已回访", "en": "Followed up"}}
    publish(engine, case_spec(fields=CASE_SPEC["fields"] + [followed, VISIT]), actor=ADMIN)
    # the note was backfilled, its controlling field was not: the form never shows the note
    backfill(engine, "case", "visit_note", "电话回访", actor=ADMIN)
    _edit(engine, ids["civil1"], {"name": "甲改"})
    assert get_record(engine, ids["civil1"], actor=ADMIN).data["visit_note"] == "电话回访"
    # both backfilled: shown and editable; answering "no" hides the note, which is then dropped (as for any field)
    backfill(engine, "case", "followed_up", True, actor=ADMIN)
    _edit(engine, ids["civil2"], {"visit_note": "上门回访"})
    assert get_record(engine, ids["civil2"], actor=ADMIN).data["visit_note"] == "上门回访"
    _edit(engine, ids["civil2"], {"followed_up": False})
    data = get_record(engine, ids["civil2"], actor=ADMIN).data
    assert data["followed_up"] is False and "visit_note" not in data


def test_a_workflow_step_with_values_keeps_the_backfilled_later_fields(with_records):
    engine, ids = with_records
    backfill(engine, "case", "outcome", "settled", actor=ADMIN)
    transition(engine, ids["civil1"], "review", actor=ADMIN)
    transition(engine, ids["civil1"], "grant", actor=ADMIN)
    transition(engine, ids["civil1"], "assign", actor=ADMIN, values={"lawyer": "张律师"})
    data = get_record(engine, ids["civil1"], actor=ADMIN).data
    assert data["lawyer"] == "张律师" and data["outcome"] == "settled"
