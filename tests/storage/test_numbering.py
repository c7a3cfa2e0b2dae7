"""Application numbers on SQLite and PostgreSQL: pattern checks, gap-free and unique under 8 concurrent
creators, a rolled-back create consumes nothing, a deletion frees nothing, numbers restart per year."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select, update

from engine.db import session_scope
from engine.errors import EngineError, PermissionDenied, ValidationFailed
from engine.fields import LOCAL_TZ
from engine.forms import get_spec
from engine.numbering import (
    assign_number,
    check_pattern,
    number_hook,
    pattern_for,
    pattern_info,
    preview,
    render,
    set_pattern,
)
from models.tables import AuditEvent, Form, Sequence, Submission
from tests.storage.conftest import ADMIN, STAFF

JAN = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)


def _create(engine, slug: str = "intake", *, at: datetime = JAN, hold: float = 0.0, fail: bool = False) -> Submission:
    """Insert a record and number it in ONE transaction, as storage.create does once the hook is wired."""
    spec = get_spec(engine, slug)
    with session_scope(engine) as s:
        form = s.execute(select(Form).where(Form.slug == slug)).scalar_one()
        sub = Submission(form_id=form.id, form_version=form.current_version, data={"name": "测试"},
                         created_by="li", created_at=at, updated_at=at)
        number_hook(s, spec, sub)
        if hold:
            time.sleep(hold)  # keep the transaction (and its row lock) open: creators overlap
        s.add(sub)
        s.flush()
        if fail:
            raise RuntimeError("the create fails after numbering")
    return sub


def _numbers(engine) -> list[str]:
    with session_scope(engine, write=False) as s:
        return [n for n in s.execute(select(Submission.number).order_by(Submission.id)).scalars() if n]


@pytest.mark.parametrize(("pattern", "problem"), [
    ("", "empty"),
    ("第{seq}号{name}", "unknown placeholder {name}"),
    ("{seq!r}", "conversion"),
    ("{seq.real}", "unknown placeholder"),
    ("{seq[0]}", "unknown placeholder"),
    ("{year}年", "{seq} is missing"),
    ("{seq:{year}}", "nested field"),
    ("{seq:q}", "format spec"),
    ("第{seq", "braces"),
    ("很长的编号" * 8 + "{seq}", "longer than"),
])
def test_bad_patterns_are_refused_with_the_allowed_placeholders(pattern: str, problem: str) -> None:
    with pytest.raises(EngineError) as info:
        check_pattern(pattern)
    assert info.value.code == "numbering.bad_pattern"
    assert problem in info.value.message("en")
    assert "{year} {seq}" in info.value.message("zh")


def test_render_default_and_custom() -> None:
    assert render("霞援申字〔{year}〕第{seq:04d}号", 2026, 1) == "霞援申字〔2026〕第0001号"
    assert render("XS-{year}-{seq:05d}", 2027, 42) == "XS-2027-00042"
    assert render("{{{seq}}}", 2026, 7) == "{7}"
    assert preview("A{seq:03d}", 2026, 5) == "A005"


def test_eight_concurrent_creators_get_unique_gap_free_numbers(loaded) -> None:
    creators, each = 8, 5
    barrier = threading.Barrier(creators)
    errors: list[BaseException] = []

    def work() -> None:
        try:
            barrier.wait(timeout=30)
            for _ in range(each):
                _create(loaded, hold=0.005)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(creators)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    numbers = _numbers(loaded)
    assert len(numbers) == creators * each == len(set(numbers))
    assert sorted(numbers) == [f"霞援申字〔2026〕第{i:04d}号" for i in range(1, creators * each + 1)]
    with session_scope(loaded, write=False) as s:
        assert s.get(Sequence, ("intake", "2026")).last == creators * each


def test_a_rolled_back_create_consumes_no_number(loaded) -> None:
    first = _create(loaded)
    with pytest.raises(RuntimeError):
        _create(loaded, fail=True)
    second = _create(loaded)
    assert (first.number, second.number) == ("霞援申字〔2026〕第0001号", "霞援申字〔2026〕第0002号")
    assert _numbers(loaded) == [first.number, second.number]


def test_a_deleted_record_keeps_its_number_and_it_is_never_reused(loaded) -> None:
    a, b = _create(loaded), _create(loaded)
    with session_scope(loaded) as s:  # soft delete, as storage.soft_delete does
        s.execute(update(Submission).where(Submission.id == b.id).values(deleted_at=JAN, deleted_by="admin1"))
    c = _create(loaded)
    assert c.number == "霞援申字〔2026〕第0003号"
    with session_scope(loaded) as s:  # even a row removed for good leaves the counter where it was
        s.execute(Submission.__table__.delete().where(Submission.id == c.id))
    d = _create(loaded)
    assert d.number == "霞援申字〔2026〕第0004号"
    assert _numbers(loaded) == [a.number, b.number, d.number]


def test_numbers_restart_each_year_and_fill_the_application_no_field(loaded) -> None:
    a = _create(loaded)
    b = _create(loaded, at=datetime(2026, 12, 31, 17, 0, tzinfo=UTC))  # 2027-01-01 01:00 in China
    c = _create(loaded, at=datetime(2027, 3, 1, tzinfo=UTC))
    assert [a.number, b.number, c.number] == ["霞援申字〔2026〕第0001号", "霞援申字〔2027〕第0001号",
                                              "霞援申字〔2027〕第0002号"]
    assert a.data["application_no"] == a.number


def test_forms_without_a_pattern_get_no_number_until_the_admin_sets_one(loaded) -> None:
    assert pattern_for(loaded, "return_visit") is None
    assert _create(loaded, "return_visit").number is None
    with pytest.raises(PermissionDenied):
        set_pattern(loaded, "return_visit", "HF{seq:04d}", actor=STAFF)
    with pytest.raises(EngineError) as info:
        set_pattern(loaded, "return_visit", "霞援申字〔{year}〕第{seq:04d}号", actor=ADMIN)
    assert info.value.code == "numbering.pattern_taken"
    set_pattern(loaded, "return_visit", "HF{seq:04d}", actor=ADMIN)  # no {year}: one series for all years
    assert _create(loaded, "return_visit").number == "HF0001"
    assert _create(loaded, "return_visit", at=datetime(2030, 6, 1, tzinfo=UTC)).number == "HF0002"
    info_ = pattern_info(loaded, "return_visit")
    assert info_.configured and info_.last == {"all": 2}
    with session_scope(loaded, write=False) as s:
        events = s.execute(select(AuditEvent).where(AuditEvent.action == "setting_update")).scalars().all()
    assert [e.entity_id for e in events] == ["number_pattern:return_visit"]
    set_pattern(loaded, "intake", "霞援申字〔{year}〕{seq:05d}号", actor=ADMIN)
    assert _create(loaded).number == "霞援申字〔2026〕00001号"
    set_pattern(loaded, "intake", None, actor=ADMIN)  # back to the default; the 2026 series continues
    assert _create(loaded).number == "霞援申字〔2026〕第0002号"


def test_assign_number_in_the_callers_transaction(loaded) -> None:
    with session_scope(loaded) as s:
        assert assign_number(s, "intake", 2031, "X{year}-{seq}") == "X2031-1"
        assert assign_number(s, "intake", 2031, "X{year}-{seq}") == "X2031-2"
    with pytest.raises(RuntimeError), session_scope(loaded) as s:
        assign_number(s, "intake", 2031, "X{year}-{seq}")
        raise RuntimeError
    with session_scope(loaded) as s:
        assert assign_number(s, "intake", 2031, "X{year}-{seq}") == "X2031-3"


def _intake_values(name: str, seq: int) -> dict[str, Any]:
    from engine.idnumber import make_id

    return {"application_date": "2026-03-16", "intake_channel": "window", "name": name, "sex": "male",
            "id_doc_type": "resident_id", "id_number": make_id("440803", "19800101", seq * 2 + 1),
            "case_category": "civil", "legal_position": "plaintiff", "service_type": "litigation_agency",
            "case_cause": "labour_remuneration", "facts": "申请人被拖欠工资三个月，多次讨要未果。",
            "hardship_route": "exempt", "exemption_ground": "social_assistance"}


def test_through_storage_create(loaded) -> None:
    from engine.storage import create

    first = create(loaded, "intake", _intake_values("王一", 1), actor=STAFF)
    second = create(loaded, "intake", _intake_values("王二", 2), actor=STAFF)
    year = datetime.now(UTC).year if first.created_at is None else first.created_at.year
    assert first.number.endswith("第0001号") and second.number.endswith("第0002号")
    assert str(year) in first.number or str(year + 1) in first.number
    assert first.data.get("application_no") == first.number


def test_a_save_after_the_form_changed_elsewhere_follows_the_current_form_and_takes_no_extra_number(loaded) -> None:
    """A save guesses that the form is as this process last saw it (numbering, version, lists) and takes
    its number in the same statement that reads the form; a wrong guess is rolled back."""
    from engine.forms import publish
    from engine.storage import create

    first = create(loaded, "intake", _intake_values("王一", 1), actor=STAFF)  # this process now knows the form
    year = first.number[first.number.index("〔") + 1:first.number.index("〕")]
    set_pattern(loaded, "intake", "ZX{year}-{seq:03d}", actor=ADMIN)  # changed elsewhere: no save saw it
    # one counter per form and year, whatever the pattern: the guess's step was rolled back
    assert create(loaded, "intake", _intake_values("王二", 2), actor=STAFF).number == f"ZX{year}-002"
    set_pattern(loaded, "intake", None, actor=ADMIN)
    third = create(loaded, "intake", _intake_values("王三", 3), actor=STAFF)
    assert (first.number, third.number) == (f"霞援申字〔{year}〕第0001号", f"霞援申字〔{year}〕第0003号")

    spec = get_spec(loaded, "intake").model_dump(mode="json", exclude_none=True)
    spec["fields"].append({"key": "hotline", "type": "text", "required": True, "label": {"zh": "来电", "en": "Hotline"}})
    version = publish(loaded, spec, actor=ADMIN).version  # republished with a new required field
    with pytest.raises(ValidationFailed) as err:
        create(loaded, "intake", _intake_values("王四", 4), actor=STAFF)
    assert set(err.value.errors) == {"hotline"}
    fourth = create(loaded, "intake", {**_intake_values("王四", 4), "hotline": "12348"}, actor=STAFF)
    assert (fourth.number, fourth.form_version) == (f"霞援申字〔{year}〕第0004号", version)
    assert pattern_info(loaded, "intake").last[year] == 4


def test_data_entry_from_six_threads_while_the_pattern_changes_gets_gap_free_numbers(loaded) -> None:
    """storage.create from several threads at once; after each thread's first save an admin changes the
    numbering (so the next saves guess the old form and start again): every save lands, each save made
    after the change has the new pattern, and the numbers of the year run 1..n without a gap or a repeat."""
    from engine.storage import create

    writers, each = 6, 8
    barrier = threading.Barrier(writers + 1)
    changed = threading.Event()
    errors: list[BaseException] = []
    before: list[Submission] = []
    after: list[Submission] = []

    def work(w: int) -> None:
        try:
            barrier.wait(timeout=30)
            before.append(create(loaded, "intake", _intake_values(f"王{w}", 100 + w * each), actor=STAFF))
            assert changed.wait(timeout=60)
            for i in range(1, each):
                after.append(create(loaded, "intake", _intake_values(f"王{w}{i}", 100 + w * each + i), actor=STAFF))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    barrier.wait(timeout=30)
    deadline = time.monotonic() + 60
    while len(before) + len(errors) < writers and time.monotonic() < deadline:
        time.sleep(0.005)
    set_pattern(loaded, "intake", "ZX{year}-{seq:04d}", actor=ADMIN)
    changed.set()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert all(sub.number.startswith("霞援申字") for sub in before)
    assert all(sub.number.startswith("ZX") for sub in after)
    seqs = sorted([int(sub.number[-5:-1]) for sub in before] + [int(sub.number[-4:]) for sub in after])
    assert seqs == list(range(1, writers * each + 1))
    year = str(before[0].created_at.astimezone(LOCAL_TZ).year)
    assert pattern_info(loaded, "intake").last[year] == writers * each


def test_imported_records_are_numbered_in_order_per_year_and_a_refused_import_takes_none(loaded) -> None:
    from engine.storage import bulk_create

    first = _create(loaded)  # 2026 #1 by data entry
    rows = [{"name": "甲", "_created_at": "2026-03-01T09:00:00+08:00"},
            {"name": "乙", "_created_at": "2025-12-30T09:00:00+08:00"},
            {"name": "丙", "_created_at": "2026-03-02T09:00:00+08:00"}]
    assert bulk_create(loaded, "intake", rows, actor=ADMIN, validate=False) == 3
    with session_scope(loaded, write=False) as s:
        got = s.execute(select(Submission.number, Submission.data).where(Submission.id > first.id)
                        .order_by(Submission.id)).all()
    assert [n for n, _d in got] == ["霞援申字〔2026〕第0002号", "霞援申字〔2025〕第0001号", "霞援申字〔2026〕第0003号"]
    assert all(d["application_no"] == n for n, d in got)
    with pytest.raises(EngineError):  # the second row is refused: nothing is written, no number is used
        bulk_create(loaded, "intake", [{"name": "丁"}, {"name": "戊", "_bogus": 1}], actor=ADMIN, validate=False)
    assert _create(loaded).number == "霞援申字〔2026〕第0004号"
