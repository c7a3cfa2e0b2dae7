"""Outreach events on SQLite and PostgreSQL: campaign and event summaries from real records and taps,
today's events for the tally picker, quick sign-ups with the duplicate prompt, the sign-up export."""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import update

from engine import outreach, tally
from engine.access import Actor
from engine.db import session_scope
from engine.errors import NotFound, PermissionDenied, ValidationFailed
from engine.storage import bulk_create, create, soft_delete
from models.tables import AuditEvent, Submission

ADMIN = Actor("admin1", "admin")
MANAGER = Actor("boss", "manager")
OUTREACH = Actor("zhang", "outreach")
OUTREACH2 = Actor("li", "outreach")
VIEWER = Actor("viewer1", "viewer")

CAMPAIGN = "法援惠民生 扶贫奔小康"
YEAR = 2025
# The seed's campaign: 13 events, 2 for the elderly, 1 for migrant workers; 3200 brochures, 675 consultations.
TARGETS = ["general"] * 4 + ["elderly"] + ["general"] * 3 + ["migrant_workers"] + ["general"] * 2 + ["elderly", "general"]
BROCHURES = [250] * 12 + [200]
CONSULTATIONS = [52] * 12 + [51]


def _event(i: int, day: date, target: str = "general", campaign: str = CAMPAIGN, point: str | None = None) -> dict:
    row = {
        "title": f"法援惠民生 扶贫奔小康——走进{i}号村（第{i}期）",
        "campaign": campaign,
        "event_date": day.isoformat(),
        "place_type": "village",
        "target_group": target,
        "staff_present": "张宣传\n李律师",
    }
    if point:
        row["liaison_point"] = point
    return row


def _tap_amount(engine, event_id: int, counter: str, amount: int, device: str, actor: Actor = OUTREACH) -> None:
    """Tap `amount` in as a tablet would: big steps first, then +10 / +5 / +1 (each at most 1000)."""
    for step in (100, 10, 5, 1):
        while amount >= step:
            tally.tap(engine, event_id, counter, step, actor=actor, device=device)
            amount -= step


def _ids(engine, slug: str) -> list[int]:
    from sqlalchemy import select

    from engine.forms import form_ref

    fid = form_ref(engine, slug).id
    with session_scope(engine, write=False) as s:
        return list(s.execute(select(Submission.id).where(Submission.form_id == fid).order_by(Submission.id))
                    .scalars().all())


@pytest.fixture
def campaign_db(loaded):
    """The seed's campaign year: 13 events with their tallies (a slip undone on two of them), plus
    noise that must not count: an event of the year before, one of another campaign and a
    deleted event, each with taps of their own."""
    engine = loaded
    days = [date(YEAR, 3, 5) + timedelta(days=20 * i) for i in range(13)]
    points = ["lp01", "lp02", "lp01", None, "lp03", "lp01", "lp02", None, "lp04", "lp01", "lp05", "lp02", "lp01"]
    rows = [_event(i + 1, d, t, point=p) for i, (d, t, p) in enumerate(zip(days, TARGETS, points, strict=True))]
    rows.append(_event(99, date(YEAR - 1, 12, 30), "elderly"))  # before the period
    rows.append(_event(98, date(YEAR, 6, 1), "elderly", campaign="宪法宣传周"))  # another campaign
    rows.append(_event(97, date(YEAR, 6, 2), "elderly"))  # deleted below
    assert bulk_create(engine, "outreach_event", rows, actor=ADMIN) == 16
    ids = _ids(engine, "outreach_event")
    events, noise = ids[:13], ids[13:]
    for i, event_id in enumerate(events):
        _tap_amount(engine, event_id, "brochures", BROCHURES[i], device=f"tab-{i % 3}")
        _tap_amount(engine, event_id, "consultations", CONSULTATIONS[i], device=f"tab-{(i + 1) % 3}",
                    actor=OUTREACH2)
        tally.tap(engine, event_id, "onsite_applications", 1, actor=OUTREACH, device="tab-0")
        if i in (3, 7):  # a slip, tapped and undone: nets to zero
            tally.tap(engine, event_id, "brochures", 10, actor=OUTREACH, device="tab-9")
            tally.undo_last(engine, event_id, "brochures", actor=OUTREACH, device="tab-9")
    for event_id in noise:
        tally.tap(engine, event_id, "brochures", 500, actor=OUTREACH, device="tab-0")
        tally.tap(engine, event_id, "consultations", 40, actor=OUTREACH, device="tab-0")
    soft_delete(engine, noise[2], actor=ADMIN)
    return engine, events, noise


def test_campaign_summary_matches_the_seed_figures(campaign_db):
    engine, events, _noise = campaign_db
    s = outreach.campaign_summary(engine, date(YEAR, 1, 1), date(YEAR, 12, 31), CAMPAIGN)
    assert s.events == 13
    assert s.by_target_group == {"general": 10, "elderly": 2, "migrant_workers": 1}
    assert s.brochures == 3200
    assert s.consultations == 675
    assert s.onsite_applications == 13
    assert s.by_liaison_point == {"lp01": 5, "lp02": 3, "": 2, "lp03": 1, "lp04": 1, "lp05": 1}
    assert s.headline("zh") == "13 场活动，其中老年人专场 2 场、农民工专场 1 场"
    assert s.headline("en") == "13 events, of which 2 Elderly, 1 Migrant workers"
    assert s.point_label("lp01") == "法律服务联络点01" and s.point_label("") == "（未填）"


def test_campaign_summary_period_and_campaign_filters(campaign_db):
    engine, _events, _noise = campaign_db
    every = outreach.campaign_summary(engine, None, None)  # all live events of every campaign
    assert every.events == 15 and every.by_target_group["elderly"] == 4
    assert every.brochures == 3200 + 2 * 500 and every.consultations == 675 + 2 * 40
    year = outreach.campaign_summary(engine, date(YEAR, 1, 1), date(YEAR, 12, 31))  # both campaigns
    assert year.events == 14 and year.brochures == 3700
    first = outreach.campaign_summary(engine, date(YEAR, 3, 5), date(YEAR, 3, 25), CAMPAIGN)  # bounds inclusive
    assert first.events == 2 and first.brochures == 500 and first.consultations == 104
    none = outreach.campaign_summary(engine, date(YEAR + 1, 1, 1), date(YEAR + 1, 12, 31))
    assert none.events == 0 and none.totals == {} and none.headline("zh") == "0 场活动"
    assert set(outreach.campaigns(engine)) == {CAMPAIGN, "宪法宣传周"}


def _signups(engine, event_id: int) -> None:
    people = [
        ("王大爷", "13800138001", "elderly", "support", True),
        ("陈阿婆", "13800138002", "elderly", "inheritance", False),
        ("刘师傅", "13800138003", "migrant_worker", "labour", True),
        ("黄女士", "13800138004", "women", "marriage_family", False),
        ("赵先生", None, "general", "labour", False),
        ("孙某", "13800138006", "elderly", None, False),
    ]
    for name, phone, group, topic, referred in people:
        values = {"name": name, "group": group, "referred_to_application": referred, "village_community": "lp01"}
        if phone:
            values["phone"] = phone
        if topic:
            values["topic"] = topic
        outreach.quick_signup(engine, event_id, values, actor=OUTREACH)


def test_event_summary_totals_signups_staff_and_timeline(campaign_db):
    engine, events, _noise = campaign_db
    event_id = events[3]
    _signups(engine, event_id)
    outreach.quick_signup(engine, events[4], {"name": "别的活动"}, actor=OUTREACH)  # another event: not counted
    s = outreach.event_summary(engine, event_id)
    assert s.title.startswith("法援惠民生") and s.event_date == date(YEAR, 3, 5) + timedelta(days=60)
    assert s.totals == {"brochures": 250, "consultations": 52, "onsite_applications": 1}
    assert [k for k, _label in s.counters] == ["brochures", "consultations", "onsite_applications", "people_reached"]
    assert s.total("people_reached") == 0 and s.counter_label("brochures") == "发放宣传资料（份）"
    assert s.signups == 6 and s.referred == 2
    assert s.by_group == {"elderly": 3, "general": 1, "migrant_worker": 1, "women": 1}
    assert s.by_topic == {"labour": 2, "": 1, "inheritance": 1, "marriage_family": 1, "support": 1}
    assert s.group_labels["migrant_worker"]["zh"] == "农民工"
    assert s.staff_listed == ["张宣传", "李律师"]
    staff = {r.username: r for r in s.staff}
    # zhang: 2x100 + 5x10 brochures, 1 application, the slip (+10; its undo is not a tap); 6 sign-ups
    assert (staff["zhang"].taps, staff["zhang"].signups, staff["zhang"].devices) == (9, 6, 2)
    assert (staff["li"].taps, staff["li"].signups) == (7, 0)  # 5x10 + 2x1 consultations
    assert sum(h.taps for h in s.hours) == 17 and sum(h.delta for h in s.hours) == 303
    assert all(h.hour.tzinfo is not None for h in s.hours)
    assert len(s.timeline) == 17 and s.timeline[0].delta == -10  # newest first: the undo
    assert s.first_tap is not None and s.last_tap is not None and s.first_tap <= s.last_tap
    assert outreach.signups_by(engine, event_id, "village_community") == {"lp01": 6}


def test_event_summary_refuses_missing_deleted_and_other_records(campaign_db):
    engine, _events, noise = campaign_db
    with pytest.raises(NotFound):
        outreach.event_summary(engine, noise[2])  # deleted
    with pytest.raises(NotFound):
        outreach.event_summary(engine, 987_654)
    signup = create(engine, "event_signup", {"name": "某人"}, actor=OUTREACH, parent_id=noise[0])
    with pytest.raises(NotFound) as err:
        outreach.event_summary(engine, signup.id)
    assert err.value.code == "outreach.not_event"


def test_todays_events_today_first_then_upcoming_then_recent(loaded):
    engine = loaded
    today = date(2026, 5, 20)
    plan = [("旧活动", -30), ("今天下午", 0), ("下周", 7), ("昨天", -1), ("明天", 1), ("今天上午", 0)]
    bulk_create(engine, "outreach_event", [_event(i, today + timedelta(days=d)) | {"title": t}
                                           for i, (t, d) in enumerate(plan)], actor=ADMIN)
    rows = outreach.todays_events(engine, today, OUTREACH)
    assert [r.title for r in rows] == ["今天下午", "今天上午", "明天", "下周", "昨天", "旧活动"]
    assert [r.is_today for r in rows] == [True, True, False, False, False, False]
    assert [r.title for r in outreach.todays_events(engine, today, OUTREACH, limit=3)] == ["今天下午", "今天上午", "明天"]
    with pytest.raises(PermissionDenied):
        outreach.todays_events(engine, today, Actor("x", "nobody"))


def test_quick_signup_asks_before_saving_the_same_person_twice_within_a_minute(campaign_db):
    engine, events, _noise = campaign_db
    event_id = events[0]
    person = {"name": "王大爷", "phone": "138 0013 8001", "group": "elderly", "topic": "support"}
    first = outreach.quick_signup(engine, event_id, person, actor=OUTREACH)
    assert first.parent_id == event_id and first.data["phone"] == "13800138001"
    with pytest.raises(outreach.DuplicateSignup) as err:  # same name and phone (typed differently)
        outreach.quick_signup(engine, event_id, {**person, "phone": "13800138001"}, actor=OUTREACH2)
    assert err.value.code == "signup.duplicate" and err.value.existing_id == first.id
    assert "王大爷" in err.value.message("zh") and "138****8001" in err.value.message("zh")
    assert "13800138001" not in err.value.message("en") and "ago" in err.value.message("en")
    assert outreach.event_summary(engine, event_id).signups == 1  # nothing saved
    again = outreach.quick_signup(engine, event_id, person, actor=OUTREACH2, confirm_duplicate=True)
    other_phone = outreach.quick_signup(engine, event_id, {**person, "phone": "13800138009"}, actor=OUTREACH)
    other_event = outreach.quick_signup(engine, events[1], person, actor=OUTREACH)
    other_name = outreach.quick_signup(engine, event_id, {**person, "name": "王大妈"}, actor=OUTREACH)
    assert len({again.id, other_phone.id, other_event.id, other_name.id}) == 4
    assert outreach.event_summary(engine, event_id).signups == 4
    # no phone: the same name without a phone is the same person
    outreach.quick_signup(engine, event_id, {"name": "赵先生"}, actor=OUTREACH)
    with pytest.raises(outreach.DuplicateSignup):
        outreach.quick_signup(engine, event_id, {"name": "赵先生"}, actor=OUTREACH)
    outreach.quick_signup(engine, event_id, {"name": "赵先生", "phone": "13800138010"}, actor=OUTREACH)


def test_quick_signup_does_not_ask_after_a_minute(campaign_db):
    engine, events, _noise = campaign_db
    event_id = events[0]
    person = {"name": "陈阿婆", "phone": "13800138002"}
    first = outreach.quick_signup(engine, event_id, person, actor=OUTREACH)
    with session_scope(engine) as s:
        s.execute(update(Submission).where(Submission.id == first.id)
                  .values(created_at=datetime.now(UTC) - timedelta(seconds=61)))
    assert outreach.quick_signup(engine, event_id, person, actor=OUTREACH).id != first.id


def test_quick_signup_validates_and_checks_the_event(campaign_db):
    engine, events, noise = campaign_db
    with pytest.raises(ValidationFailed) as err:
        outreach.quick_signup(engine, events[0], {"name": "", "phone": "12345"}, actor=OUTREACH)
    assert set(err.value.errors) == {"name", "phone"}
    with pytest.raises(NotFound):
        outreach.quick_signup(engine, noise[2], {"name": "某人"}, actor=OUTREACH)  # deleted event
    with pytest.raises(PermissionDenied):
        outreach.quick_signup(engine, events[0], {"name": "某人"}, actor=VIEWER)


def test_signups_csv_masks_phones_unless_revealed_and_is_audited(campaign_db):
    engine, events, _noise = campaign_db
    _signups(engine, events[2])
    data = outreach.signups_csv(engine, events[2], actor=MANAGER)
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows[0][:3] == ["记录ID", "姓名", "联系电话"] and len(rows) == 7
    assert rows[1][1:3] == ["王大爷", "138****8001"] and "老年人" in rows[1]
    assert "法律服务联络点01" in rows[1]
    revealed = outreach.signups_csv(engine, events[2], actor=MANAGER, reveal=True).decode("utf-8-sig")
    assert "13800138001" in revealed
    with pytest.raises(PermissionDenied):
        outreach.signups_csv(engine, events[2], actor=OUTREACH)  # the outreach role has no export
    with pytest.raises(PermissionDenied):
        outreach.signups_csv(engine, events[2], actor=Actor("s", "staff"), reveal=True)
    with session_scope(engine, write=False) as s:
        from sqlalchemy import select

        audits = s.execute(select(AuditEvent).where(AuditEvent.action == "export")).scalars().all()
    assert [a.detail["revealed"] for a in audits] == [False, True]
    assert all(a.detail["parent_id"] == events[2] and a.detail["count"] == 6 for a in audits)


def test_tap_stored_tells_which_taps_counted(campaign_db):
    engine, events, _noise = campaign_db
    tally.tap(engine, events[0], "brochures", 1, actor=OUTREACH, device="t", tap_id="known-tap")
    assert outreach.tap_stored(engine, ["known-tap", "lost-tap"]) == {"known-tap"}
    assert outreach.tap_stored(engine, []) == set()


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="pdftotext (poppler-utils) is not installed")
def test_event_pdf_is_one_page_of_chinese(campaign_db):
    from engine.pdf import font_status

    if font_status()[0] is None:
        pytest.skip("no CJK font installed")
    engine, events, _noise = campaign_db
    _signups(engine, events[3])
    pdf = outreach.event_pdf(engine, events[3])
    assert pdf.startswith(b"%PDF")
    from pypdf import PdfReader

    assert len(PdfReader(io.BytesIO(pdf)).pages) == 1
    text = subprocess.run(["pdftotext", "-layout", "-", "-"], input=pdf, capture_output=True, check=True).stdout
    text = text.decode("utf-8")
    for expected in ("宣传活动小结", "发放宣传资料（份）", "250", "现场登记 6 人", "老年人", "劳动争议", "张宣传"):
        assert expected in text, expected
    assert "13800138001" not in text and "138****" not in text  # no personal data
