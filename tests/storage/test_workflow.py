"""Workflow steps on a small inline workflow: every transition, the refusals, time limits and pauses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from engine import workflow
from engine.access import Actor
from engine.errors import ConflictError, EngineError, NotFound, PermissionDenied, ValidationFailed
from engine.forms import get_spec
from engine.storage import create, get_record, transition, update
from models.tables import Submission
from tests.storage.conftest import ADMIN, MANAGER, STAFF, VIEWER, audit_rows

CASE = {"name": "张三", "kind": "civil", "applied_on": "2026-03-02"}


def keys(ts) -> list[str]:
    return [t.key for t in ts]


def test_every_transition_with_audit_and_time_limits(cases):
    spec = get_spec(cases, "case")
    sub = create(cases, "case", CASE, actor=STAFF)
    assert keys(workflow.available(spec, sub, STAFF)) == ["review"]
    assert keys(workflow.available(spec, sub, VIEWER)) == []

    sub = transition(cases, sub.id, "review", actor=STAFF, revision=1)
    assert sub.state == "reviewing" and sub.revision == 2
    assert sub.due_at == sub.state_since + timedelta(days=7) and sub.paused_at is None
    assert keys(workflow.available(spec, sub, STAFF)) == ["request"]
    assert keys(workflow.available(spec, sub, MANAGER)) == ["request", "grant", "refuse"]

    limit = sub.due_at
    sub = transition(cases, sub.id, "request", actor=STAFF)
    assert sub.state == "waiting" and sub.paused_at == sub.state_since and sub.due_at == limit
    far = limit + timedelta(days=30)
    assert not workflow.is_overdue(sub, far) and not workflow.due_soon(sub, limit)  # the clock is stopped

    sub = transition(cases, sub.id, "resume", actor=STAFF)
    paused_for = sub.state_since - get_record(cases, sub.id, actor=STAFF).history[1].at
    assert sub.state == "reviewing" and sub.paused_at is None
    assert sub.due_at > limit and abs((sub.due_at - limit) - paused_for) < timedelta(seconds=1)

    sub = transition(cases, sub.id, "grant", actor=MANAGER)
    assert sub.state == "granted" and sub.due_at == sub.state_since + timedelta(days=3)

    with pytest.raises(ValidationFailed) as err:
        transition(cases, sub.id, "assign", actor=MANAGER)
    assert err.value.errors["lawyer"].code == "workflow.field_required"
    assert "承办律师" in err.value.errors["lawyer"].message("zh")
    sub = transition(cases, sub.id, "assign", actor=MANAGER, values={"lawyer": "陈律师"})
    assert sub.state == "assigned" and sub.data["lawyer"] == "陈律师" and sub.data["name"] == "张三"
    assert sub.due_at is None  # the step into "assigned" has no limit

    events = audit_rows(cases, "transition", sub.id)
    assert [(e.detail["from"], e.detail["to"]) for e in events] == [
        ("applied", "reviewing"), ("reviewing", "waiting"), ("waiting", "reviewing"), ("reviewing", "granted"),
        ("granted", "assigned"),
    ]
    assert events[-1].detail["changes"] == {"lawyer": [None, "陈律师"]} and events[-1].username == "boss"


def test_refusals_name_the_state_and_roles(cases):
    sub = create(cases, "case", CASE, actor=STAFF)
    with pytest.raises(PermissionDenied) as err:
        transition(cases, sub.id, "grant", actor=MANAGER)
    assert err.value.code == "workflow.not_allowed_from" and "申请" in err.value.message("zh")
    with pytest.raises(PermissionDenied) as err:  # labels follow the user's language
        transition(cases, sub.id, "grant", actor=Actor("boss", "manager", language="en"))
    assert "'Applied'" in err.value.message("en") and "'Grant'" in err.value.message("en")
    sub = transition(cases, sub.id, "review", actor=STAFF)
    with pytest.raises(PermissionDenied) as err:
        transition(cases, sub.id, "grant", actor=STAFF)
    assert err.value.code == "workflow.forbidden" and "manager" in err.value.message("en")
    with pytest.raises(NotFound) as err:
        transition(cases, sub.id, "teleport", actor=ADMIN)
    assert err.value.code == "workflow.unknown_transition"
    with pytest.raises(EngineError) as err:
        transition(cases, sub.id, "refuse", actor=MANAGER, reason="   ")
    assert err.value.code == "workflow.reason_required"
    with pytest.raises(ConflictError):
        transition(cases, sub.id, "refuse", actor=MANAGER, reason="收入超标", revision=1)
    assert get_record(cases, sub.id, actor=STAFF).submission.state == "reviewing"

    sub = transition(cases, sub.id, "refuse", actor=MANAGER, reason="收入超标")
    assert sub.state == "refused" and sub.due_at is None and sub.paused_at is None
    assert audit_rows(cases, "transition", sub.id)[-1].detail["reason"] == "收入超标"
    assert workflow.available(get_spec(cases, "case"), sub, ADMIN) == []  # terminal
    with pytest.raises(PermissionDenied):
        transition(cases, sub.id, "review", actor=ADMIN)
    assert len(audit_rows(cases, "transition", sub.id)) == 2


def test_transition_and_edit_share_the_revision(cases):
    sub = create(cases, "case", CASE, actor=STAFF)
    transition(cases, sub.id, "review", actor=STAFF)
    with pytest.raises(ConflictError):
        update(cases, sub.id, {**CASE, "name": "x"}, actor=STAFF, revision=1)


def test_invalid_values_in_a_transition_write_nothing(cases):
    sub = create(cases, "case", CASE, actor=STAFF)
    for key in ("review", "grant"):
        sub = transition(cases, sub.id, key, actor=ADMIN)
    with pytest.raises(ValidationFailed):
        transition(cases, sub.id, "assign", actor=ADMIN, values={"lawyer": "陈律师", "kind": "bogus"})
    rec = get_record(cases, sub.id, actor=ADMIN)
    assert rec.submission.state == "granted" and "lawyer" not in rec.data


def _sub(**kw) -> Submission:
    base = {"form_id": 1, "form_version": 1, "data": {}}
    return Submission(**{**base, **kw})


def test_pause_and_resume_arithmetic():
    spec = get_spec_inline()
    t0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    sub = _sub(state="applied")
    step = workflow.apply(spec, sub, spec.workflow.transitions[0], t0)  # review: 7 days
    assert step.due_at == datetime(2026, 3, 8, 9, 0, tzinfo=UTC)
    sub = _sub(**step.as_values())
    paused = workflow.apply(spec, sub, spec.workflow.transitions[1], t0 + timedelta(days=2))  # request: pause
    assert paused.paused_at == t0 + timedelta(days=2) and paused.due_at == step.due_at
    sub = _sub(**paused.as_values())
    assert workflow.remaining(sub, t0 + timedelta(days=40)) == timedelta(days=5)
    resumed = workflow.apply(spec, sub, spec.workflow.transitions[2], t0 + timedelta(days=5))  # 3 days paused
    assert resumed.paused_at is None and resumed.due_at == datetime(2026, 3, 11, 9, 0, tzinfo=UTC)
    sub = _sub(**resumed.as_values())
    assert not workflow.is_overdue(sub, datetime(2026, 3, 11, 9, 0, tzinfo=UTC))
    assert workflow.is_overdue(sub, datetime(2026, 3, 11, 9, 1, tzinfo=UTC))
    assert workflow.due_soon(sub, datetime(2026, 3, 9, 10, 0, tzinfo=UTC))
    assert not workflow.due_soon(sub, datetime(2026, 3, 8, 10, 0, tzinfo=UTC))
    assert not workflow.due_soon(sub, datetime(2026, 3, 12, 10, 0, tzinfo=UTC))  # overdue, not "soon"


def get_spec_inline():
    from models.spec import FormSpec
    from tests.storage.conftest import CASE_SPEC

    return FormSpec.model_validate(CASE_SPEC)


KEEP_SPEC = {
    "slug": "keep", "title": "期限保留", "fields": [{"key": "name", "type": "text"}],
    "workflow": {
        "initial": "applied",
        "states": ["applied", "accepted", "reviewing", "waiting", "granted", {"key": "refused", "terminal": True}],
        "transitions": [
            {"key": "accept", "from": ["applied"], "to": "accepted", "due_days": 7},
            {"key": "review", "from": ["accepted"], "to": "reviewing", "keep_due": True},
            {"key": "request", "from": ["reviewing"], "to": "waiting", "pause": True, "keep_due": True},
            {"key": "resume", "from": ["waiting"], "to": "reviewing"},
            {"key": "resume_keep", "from": ["waiting"], "to": "reviewing", "keep_due": True},
            {"key": "grant", "from": ["reviewing"], "to": "granted", "due_days": 3},
            {"key": "refuse", "from": ["reviewing"], "to": "refused", "keep_due": True},
            {"key": "skip", "from": ["applied"], "to": "reviewing", "keep_due": True},
        ],
    },
}


def _keep_spec():
    from engine.spec import parse_spec

    return parse_spec(KEEP_SPEC)


def _step(spec, sub: Submission, key: str, at: datetime) -> Submission:
    t = workflow.find_transition(spec, key)
    assert t is not None
    return _sub(**workflow.apply(spec, sub, t, at).as_values())


@pytest.mark.parametrize("resume", ["resume", "resume_keep"])
def test_keep_due_keeps_the_acceptance_limit_and_pauses_still_extend_it(resume):
    spec = _keep_spec()
    t0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    sub = _step(spec, _sub(state="applied"), "accept", t0)
    accepted_limit = sub.due_at
    assert accepted_limit == datetime(2026, 3, 9, 9, 0, tzinfo=UTC)
    sub = _step(spec, sub, "review", t0 + timedelta(days=3))  # the review starts 3 days later ...
    assert sub.state == "reviewing" and sub.state_since == t0 + timedelta(days=3)
    assert sub.due_at == accepted_limit and sub.paused_at is None  # ... and does not restart the 7 days
    sub = _step(spec, sub, "request", t0 + timedelta(days=4))  # pause (keep_due changes nothing here)
    assert sub.paused_at == t0 + timedelta(days=4) and sub.due_at == accepted_limit
    sub = _step(spec, sub, resume, t0 + timedelta(days=6, hours=12))  # 2.5 days waiting: the limit moves
    assert sub.paused_at is None and sub.due_at == accepted_limit + timedelta(days=2, hours=12)
    assert not workflow.is_overdue(sub, datetime(2026, 3, 11, 20, 59, tzinfo=UTC))
    assert workflow.is_overdue(sub, datetime(2026, 3, 11, 21, 1, tzinfo=UTC))
    granted = _step(spec, sub, "grant", t0 + timedelta(days=8))
    assert granted.due_at == t0 + timedelta(days=11)  # a due_days step starts its own limit
    refused = _step(spec, sub, "refuse", t0 + timedelta(days=8))
    assert refused.due_at is None and refused.paused_at is None  # a terminal state clears even with keep_due


def test_keep_due_without_a_running_limit_keeps_none():
    spec = _keep_spec()
    sub = _step(spec, _sub(state="applied"), "skip", datetime(2026, 3, 2, 9, 0, tzinfo=UTC))
    assert sub.state == "reviewing" and sub.due_at is None and sub.paused_at is None
