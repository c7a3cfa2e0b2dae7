"""The built-in legal-aid pack through storage: every valid sample record stores (with its parent and
referenced case), lists and searches; the intake workflow runs end to end with its time limits."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml
from sqlalchemy import update as sql_update

from engine import workflow
from engine.db import session_scope
from engine.errors import ValidationFailed
from engine.forms import get_spec, list_forms, save_choice_list
from engine.queries import ListQuery, list_records
from engine.storage import create, get_record, transition
from models.tables import Submission
from tests.storage.conftest import ADMIN, MANAGER, STAFF

SAMPLES = yaml.safe_load((Path(__file__).resolve().parents[2] / "tests/fixtures/sample_records.yaml")
                         .read_text(encoding="utf-8"))


def _valid(slug: str) -> list[dict]:
    return [dict(r["data"]) for r in SAMPLES["records"].get(slug, {}).get("valid", [])]


@pytest.fixture
def pack(loaded):
    for name, items in SAMPLES.get("extra_choices", {}).items():
        save_choice_list(loaded, name, name, items, actor=ADMIN)
    return loaded


def test_every_valid_sample_record_stores(pack):
    intake = create(pack, "intake", _valid("intake")[0], actor=STAFF)
    parents: dict[str, int] = {}
    stored = 0
    for info in sorted(list_forms(pack), key=lambda f: f.parent is not None):
        spec = get_spec(pack, info.slug)
        refs = [f.key for f in spec.fields if f.reference_form == "intake"]
        for raw in _valid(info.slug):
            raw.update({k: intake.id for k in refs if k in raw})
            sub = create(pack, info.slug, raw, actor=ADMIN, parent_id=parents.get(spec.parent or ""))
            parents.setdefault(info.slug, sub.id)
            stored += 1
            assert get_record(pack, sub.id, actor=ADMIN).data == sub.data
    assert stored == sum(len(_valid(f.slug)) for f in list_forms(pack))
    counts = {f.slug: f.count for f in list_forms(pack)}
    assert counts["intake"] == len(_valid("intake")) + 1
    name = _valid("intake")[0]["name"]
    assert list_records(pack, "intake", ListQuery(search=name), actor=STAFF).total == 2
    # sensitive ID numbers are masked in the audit log
    rec = get_record(pack, intake.id, actor=MANAGER)
    assert _valid("intake")[0]["id_number"] not in str(rec.history[0].detail)


def test_intake_workflow_end_to_end(pack):
    sub = create(pack, "intake", _valid("intake")[0], actor=STAFF)
    assert sub.state == "applied"
    spec = get_spec(pack, "intake")
    sub = transition(pack, sub.id, "accept", actor=STAFF)
    assert sub.due_at == sub.state_since + timedelta(days=7)
    limit = sub.due_at
    sub = transition(pack, sub.id, "review", actor=STAFF)
    assert sub.due_at == limit  # the decision limit runs from acceptance
    sub = transition(pack, sub.id, "request_materials", actor=STAFF)
    assert sub.paused_at is not None and not workflow.is_overdue(sub, limit + timedelta(days=60))
    sub = transition(pack, sub.id, "materials_received", actor=STAFF)
    assert sub.paused_at is None and sub.due_at >= limit
    sub = transition(pack, sub.id, "grant", actor=MANAGER)
    assert sub.due_at == sub.state_since + timedelta(days=3)
    if not sub.data.get("lawyer"):
        with pytest.raises(ValidationFailed):
            transition(pack, sub.id, "assign", actor=MANAGER)
    sub = transition(pack, sub.id, "assign", actor=MANAGER, values={"lawyer": "lw001"})
    assert sub.data["lawyer"] == "lw001"
    for key in ("handle", "close", "archive"):
        sub = transition(pack, sub.id, key, actor=MANAGER)
    assert sub.state == "archived" and sub.due_at is None
    assert workflow.available(spec, sub, ADMIN) == []
    history = [e.detail.get("to") for e in get_record(pack, sub.id, actor=STAFF).history if e.action == "transition"]
    assert history[::-1] == ["accepted", "reviewing", "waiting_materials", "reviewing", "granted", "assigned",
                             "handling", "closed", "archived"]


def test_intake_review_keeps_the_decision_limit_set_on_acceptance(loaded):
    """Art. 43: decide within 7 days of acceptance. Starting the review (3 days later here) keeps that limit;
    waiting for materials moves it by the time waited."""
    sub = create(loaded, "intake", _valid("intake")[0], actor=STAFF)
    sub = transition(loaded, sub.id, "accept", actor=STAFF)
    accepted_at = sub.state_since - timedelta(days=3)  # as if accepted 3 days ago
    with session_scope(loaded) as s:
        s.execute(sql_update(Submission).where(Submission.id == sub.id)
                  .values(state_since=accepted_at, due_at=accepted_at + timedelta(days=7)))
    sub = transition(loaded, sub.id, "review", actor=STAFF)
    assert sub.state == "reviewing" and sub.state_since > accepted_at + timedelta(days=3)
    assert sub.due_at == accepted_at + timedelta(days=7)  # not 7 days from the start of the review
    event = [e for e in get_record(loaded, sub.id, actor=STAFF).history if e.action == "transition"][0]
    assert event.detail["transition"] == "review"
    assert datetime.fromisoformat(event.detail["due_at"]) == accepted_at + timedelta(days=7)

    sub = transition(loaded, sub.id, "request_materials", actor=STAFF)
    assert sub.paused_at is not None and sub.due_at == accepted_at + timedelta(days=7)
    paused_at = sub.paused_at - timedelta(days=2)  # as if the materials were requested 2 days ago
    with session_scope(loaded) as s:
        s.execute(sql_update(Submission).where(Submission.id == sub.id).values(paused_at=paused_at))
    sub = transition(loaded, sub.id, "materials_received", actor=STAFF)
    waited = sub.state_since - paused_at
    assert sub.paused_at is None and waited >= timedelta(days=2)
    assert sub.due_at == accepted_at + timedelta(days=7) + waited
