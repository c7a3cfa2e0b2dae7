"""The live tally page (pages/tally.py) in AppTest over a real SQLite file: picking today's event in
one tap, taps and undo update the totals, a failed write is shown as not counted and its retry
re-sends the same tap id (counted once), the quick sign-up saves and clears, the duplicate prompt."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from streamlit.testing.v1 import AppTest

from engine import outreach, tally
from engine.access import Actor
from engine.db import dispose_engine, get_engine, session_scope
from engine.storage import create, restore, soft_delete
from models.tables import AuditEvent, Submission, TallyEvent
from ui.records_view import LOCAL_TZ

OUTREACH = Actor("o1", "outreach")
ADMIN = Actor("admin1", "admin")
TIMEOUT = 60


def _script() -> None:
    from pages.tally import render_tally

    render_tally()


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from engine.forms import init_database

    path = tmp_path_factory.mktemp("tally_tpl") / "console.db"
    url = f"sqlite:///{path}"
    init_database(get_engine(url))
    dispose_engine(url)
    return path


@dataclass
class Env:
    engine: Engine
    event_id: int
    other_id: int

    def app(self, actor: Actor = OUTREACH, event: int | None = None) -> AppTest:
        at = AppTest.from_function(_script, default_timeout=TIMEOUT)
        at.session_state["actor"] = actor
        if event is not None:
            at.query_params["event"] = str(event)
        return at.run()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, template: Path) -> Iterator[Env]:
    path = tmp_path / "console.db"
    shutil.copyfile(template, path)
    url = f"sqlite:///{path}"
    monkeypatch.setenv("DATABASE_URL", url)
    engine = get_engine(url)
    today = datetime.now(LOCAL_TZ).date()
    base = {"campaign": "法援惠民生 扶贫奔小康", "place_type": "village", "target_group": "elderly"}
    event = create(engine, "outreach_event", {**base, "title": "新建村普法", "event_date": today.isoformat(),
                                              "place_name": "新建村委会"}, actor=OUTREACH)
    other = create(engine, "outreach_event", {**base, "title": "北月村普法",
                                              "event_date": (today - timedelta(days=3)).isoformat()}, actor=OUTREACH)
    yield Env(engine, int(event.id), int(other.id))
    dispose_engine(url)


# --- helpers -------------------------------------------------------------------------------------
def texts(at: AppTest) -> str:
    parts = []
    for kind in ("title", "subheader", "markdown", "caption", "error", "warning", "info", "success"):
        parts += [str(e.value) for e in getattr(at, kind)]
    return "\n".join(parts).replace("\\", "")


def toasts(at: AppTest) -> list[str]:
    return [str(e.value).replace("\\", "") for e in at.toast]


def button(at: AppTest, label: str):
    found = [b for b in at.button if b.label == label]
    assert len(found) == 1, [b.label for b in at.button]
    return found[0]


def numbers(at: AppTest, counter: str = "brochures") -> tuple[int, int]:
    """(total of all tablets, this tablet's count) shown for a counter (cards in spec order)."""
    order = ["brochures", "consultations", "onsite_applications", "people_reached"]
    i = order.index(counter)
    total, mine = at.metric[2 * i], at.metric[2 * i + 1]
    assert total.label == "合计（所有平板）" and mine.label == "本机计数"
    return int(total.value), int(mine.value)


def tap(at: AppTest, counter: str, step: int) -> AppTest:
    return at.button(key=f"tally_tap_{counter}_{step}").click().run()


def db_total(env: Env, counter: str = "brochures") -> int:
    return tally.totals(env.engine, env.event_id).get(counter, 0)


def signups(env: Env) -> int:
    with session_scope(env.engine, write=False) as s:
        return int(s.execute(select(func.count()).select_from(Submission)
                             .where(Submission.parent_id == env.event_id)).scalar_one())


# --- picking and counting ------------------------------------------------------------------------
def test_todays_event_is_one_tap_and_stays_chosen_in_the_url(env):
    at = env.app()
    assert not at.exception
    assert "今天的活动" in texts(at)
    pick = at.button(key=f"tally_pick_{env.event_id}")
    assert "新建村普法" in pick.label
    three_days_ago = (datetime.now(LOCAL_TZ).date() - timedelta(days=3)).isoformat()
    assert at.selectbox(key="tally_pick_other").options == [f"{three_days_ago} · 北月村普法"]
    at = pick.click().run()
    assert at.query_params["event"] in (str(env.event_id), [str(env.event_id)])
    assert "新建村普法" in texts(at) and numbers(at) == (0, 0)
    labels = [b.label for b in at.button if b.key and b.key.startswith("tally_tap_")]
    assert labels == ["+1", "+5", "+10", "+1", "+1", "+1", "+5", "+10"]  # the spec's steps per counter
    # a reload (a new session with the same URL) goes straight to the event
    again = env.app(event=env.event_id)
    assert numbers(again) == (0, 0) and "新建村普法" in texts(again)


def test_taps_and_undo_update_the_totals(env):
    at = env.app(event=env.event_id)
    at = tap(at, "brochures", 1)
    assert numbers(at) == (1, 1)
    assert "已计入：发放宣传资料（份） +1，合计 1" in toasts(at)
    at = tap(at, "brochures", 5)
    assert numbers(at) == (6, 6) and db_total(env) == 6
    assert "已计入：发放宣传资料（份） +5，合计 6" in texts(at)  # the confirmation stays beside the counter
    at = tap(at, "consultations", 1)
    assert numbers(at, "consultations") == (1, 1)
    # another tablet counts too: its taps are in the total, not in this tablet's count
    tally.tap(env.engine, env.event_id, "brochures", 10, actor=OUTREACH, device="other-tablet")
    at = at.run()
    assert numbers(at) == (16, 6)
    at = at.button(key="tally_undo_brochures").click().run()  # undoes this tablet's +5, not the +10
    assert numbers(at) == (11, 1) and db_total(env) == 11
    assert "已撤销：发放宣传资料（份），合计 11" in toasts(at)
    at = at.button(key="tally_undo_brochures").click().run()
    assert numbers(at) == (10, 0)
    assert at.button(key="tally_undo_brochures").disabled  # nothing of this tablet's left to undo
    rows = tally.timeline(env.engine, env.event_id)
    assert [r.delta for r in rows] == [-1, -5, 10, 1, 5, 1]  # append-only: undo is its own row
    assert len({r.device for r in rows if r.device != "other-tablet"}) == 1


def test_a_failed_write_is_shown_not_counted_and_the_retry_counts_once(env):
    at = env.app(event=env.event_id)
    at = tap(at, "brochures", 1)
    assert numbers(at) == (1, 1)
    soft_delete(env.engine, env.event_id, actor=ADMIN)  # deleted between the render and the tap
    at = tap(at, "brochures", 5)
    assert db_total(env) == 1
    shown = texts(at)
    assert "有 1 次点按未计入" in shown and "发放宣传资料（份） +5" in shown and "未计入 — 重试" in shown
    assert "未计入：发放宣传资料（份）。请点“重试”。" in toasts(at)
    retry = [b for b in at.button if b.key and b.key.startswith("tally_retry_")]
    assert len(retry) == 1
    tap_id = retry[0].key.removeprefix("tally_retry_")
    at = retry[0].click().run()  # still failing: still pending, still not counted
    assert "有 1 次点按未计入" in texts(at) and db_total(env) == 1
    restore(env.engine, env.event_id, actor=ADMIN)
    at = at.button(key=f"tally_retry_{tap_id}").click().run()
    assert "未计入" not in texts(at) and numbers(at) == (6, 6)
    with session_scope(env.engine, write=False) as s:
        stored = s.execute(select(TallyEvent.delta).where(TallyEvent.tap_id == tap_id)).scalars().all()
    assert stored == [5]  # the retry sent the tap id made before the first attempt


def test_a_retry_of_a_tap_that_did_count_is_not_counted_again(env):
    at = env.app(event=env.event_id)
    soft_delete(env.engine, env.event_id, actor=ADMIN)
    at = tap(at, "consultations", 1)
    tap_id = next(b.key for b in at.button if b.key and b.key.startswith("tally_retry_")).removeprefix("tally_retry_")
    restore(env.engine, env.event_id, actor=ADMIN)
    # the same tap reached the database after all (e.g. the answer was lost on the way back)
    tally.tap(env.engine, env.event_id, "consultations", 1, actor=OUTREACH, device="tab-x", tap_id=tap_id)
    at = at.button(key=f"tally_retry_{tap_id}").click().run()
    assert "未计入" not in texts(at)
    assert db_total(env, "consultations") == 1 and numbers(at, "consultations")[0] == 1


def test_a_discarded_tap_is_said_to_be_not_counted(env):
    at = env.app(event=env.event_id)
    soft_delete(env.engine, env.event_id, actor=ADMIN)
    at = tap(at, "brochures", 10)
    tap_id = next(b.key for b in at.button if b.key and b.key.startswith("tally_retry_")).removeprefix("tally_retry_")
    at = at.button(key=f"tally_drop_{tap_id}").click().run()
    assert "已放弃：发放宣传资料（份）（未计入）" in toasts(at)
    assert not [b for b in at.button if b.key and b.key.startswith("tally_retry_")]
    assert db_total(env) == 0


def test_roles_without_tally_are_refused(env):
    at = env.app(actor=Actor("v1", "viewer"), event=env.event_id)
    assert "您的角色无权使用此页面。" in texts(at)
    assert not [b for b in at.button if b.key and b.key.startswith("tally_tap_")]


def test_an_unknown_event_shows_the_picker(env):
    at = env.app(event=999_999)
    assert "所选活动不存在、已删除或您无权查看。" in texts(at)
    assert at.button(key=f"tally_pick_{env.event_id}")


# --- quick sign-up -------------------------------------------------------------------------------
def fill(at: AppTest, gen: int, name: str, phone: str = "", group: str | None = None, topic: str | None = None,
         village: str | None = None, referred: bool = False) -> AppTest:
    at.text_input(key=f"tally_su_{gen}_name").input(name)
    if phone:
        at.text_input(key=f"tally_su_{gen}_phone").input(phone)
    if group:
        at.selectbox(key=f"tally_su_{gen}_group").select(group)
    if topic:
        at.selectbox(key=f"tally_su_{gen}_topic").select(topic)
    if village:
        at.selectbox(key=f"tally_su_{gen}_village_community").select(village)
    if referred:
        at.checkbox(key=f"tally_su_{gen}_referred_to_application").check()
    return button(at, "保存登记").click().run()


def test_quick_signup_saves_in_one_tap_and_clears_for_the_next_person(env):
    at = env.app(event=env.event_id)
    assert "本场已登记 0 人" in texts(at)
    assert at.selectbox(key="tally_su_0_group").value == "general"
    at = fill(at, 0, "王大爷", "13800138001", group="elderly", topic="support", village="lp07")
    assert "已登记：王大爷" in texts(at) and "本场已登记 1 人" in texts(at)
    # the form is empty again, ready for the next person
    assert at.text_input(key="tally_su_1_name").value == ""
    assert at.text_input(key="tally_su_1_phone").value == ""
    assert at.selectbox(key="tally_su_1_topic").value is None
    assert at.selectbox(key="tally_su_1_village_community").value is None
    with session_scope(env.engine, write=False) as s:
        sub = s.execute(select(Submission).where(Submission.parent_id == env.event_id)).scalar_one()
    assert sub.data == {"name": "王大爷", "phone": "13800138001", "group": "elderly", "topic": "support",
                        "village_community": "lp07", "referred_to_application": False}
    assert sub.created_by == "o1"
    at = fill(at, 1, "陈阿婆")
    assert signups(env) == 2 and at.text_input(key="tally_su_2_name").value == ""


def test_invalid_values_are_explained_and_kept(env):
    at = env.app(event=env.event_id)
    at = fill(at, 0, "刘师傅", "12345")
    assert signups(env) == 0
    assert "联系电话：" in texts(at)
    assert at.text_input(key="tally_su_0_name").value == "刘师傅"  # what was typed is kept
    at.text_input(key="tally_su_0_phone").input("13800138003")
    at = button(at, "保存登记").click().run()
    assert signups(env) == 1 and "已登记：刘师傅" in texts(at)


def test_the_same_person_within_a_minute_asks_before_saving_again(env):
    at = env.app(event=env.event_id)
    at = fill(at, 0, "王大爷", "13800138001")
    at = fill(at, 1, "王大爷", "13800138001")
    assert signups(env) == 1
    shown = texts(at)
    assert "「王大爷」（电话 138****8001）" in shown and "是否仍要再登记一次" in shown
    assert at.text_input(key="tally_su_1_name").value == "王大爷"  # kept while asking
    at = at.button(key="tally_dup_yes").click().run()  # 仍然保存
    assert signups(env) == 2 and "已登记：王大爷" in texts(at)
    assert at.text_input(key="tally_su_2_name").value == "" and "是否仍要再登记一次" not in texts(at)
    # "do not save" drops it and clears the form
    at = fill(at, 2, "王大爷", "13800138001")
    assert "是否仍要再登记一次" in texts(at)
    at = at.button(key="tally_dup_no").click().run()
    assert signups(env) == 2 and at.text_input(key="tally_su_3_name").value == ""
    # a different phone is another person: no question
    at = fill(at, 3, "王大爷", "13800138009")
    assert signups(env) == 3 and "是否仍要再登记一次" not in texts(at)


def test_a_referred_signup_points_to_the_intake(env):
    at = env.app(event=env.event_id)
    at = fill(at, 0, "黄女士", "13800138004", referred=True)
    assert "请由窗口工作人员在「法律援助申请登记」中受理" in texts(at)  # outreach may not open an intake
    staff = env.app(actor=Actor("s1", "staff"), event=env.event_id)
    staff = fill(staff, 0, "赵先生", "13800138005", referred=True)
    with session_scope(env.engine, write=False) as s:
        sid = s.execute(select(Submission.id).where(Submission.parent_id == env.event_id)
                        .order_by(Submission.id.desc())).scalars().first()
    links = {e.proto.page: e.proto for e in staff.get("page_link")}
    assert links["intake"].label == "登记法律援助申请"
    assert links["intake"].query_string == f"from_signup={sid}"  # no name or phone in the URL
    assert links["outreach-event"].query_string == f"id={env.event_id}"
    assert outreach.event_summary(env.engine, env.event_id).referred == 2


# --- the event page (pages/event.py) --------------------------------------------------------------
def _event_script() -> None:
    from pages.event import render_event

    render_event()


def event_app(env: Env, actor: Actor, event: int | None = None) -> AppTest:
    at = AppTest.from_function(_event_script, default_timeout=TIMEOUT)
    at.session_state["actor"] = actor
    if event is not None:
        at.query_params["id"] = str(event)
    return at.run()


def test_event_page_shows_totals_summary_masked_signups_and_actions(env):
    tally.tap(env.engine, env.event_id, "brochures", 10, actor=OUTREACH, device="tab-a")
    tally.tap(env.engine, env.event_id, "consultations", 1, actor=OUTREACH, device="tab-b")
    outreach.quick_signup(env.engine, env.event_id, {"name": "王大爷", "phone": "13800138001", "group": "elderly",
                                                     "topic": "support", "referred_to_application": True},
                          actor=OUTREACH)
    at = event_app(env, OUTREACH, env.event_id)
    assert not at.exception
    shown = texts(at)
    assert "新建村普法" in shown and "现场登记 1 人，其中引导申请法律援助 1 人。" in shown
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["发放宣传资料（份）"] == "10" and metrics["解答咨询（人次）"] == "1"
    frames = [f.value for f in at.dataframe]
    listing = next(f for f in frames if "联系电话" in f.columns)
    assert list(listing["姓名"]) == ["王大爷"] and list(listing["联系电话"]) == ["138****8001"]
    links = {e.proto.page: e.proto for e in at.get("page_link")}
    assert links["live-tally"].query_string == f"event={env.event_id}"
    downloads = [b.proto.label for b in at.get("download_button")]
    assert downloads == ["下载活动小结（PDF）"]  # the outreach role has no export
    # campaign section: this year's events (both test events fall in it unless today is 1-3 January)
    assert "场活动" in shown and "老年人专场" in shown
    manager = event_app(env, Actor("m1", "manager"), env.event_id)
    assert [b.proto.label for b in manager.get("download_button")] == ["下载活动小结（PDF）", "导出现场登记（CSV）"]
    assert "138****8001" in str([f.value for f in manager.dataframe])  # masked until an audited reveal
    manager.text_input(key=f"event_reveal_reason_{env.event_id}").input("回访核实")
    manager = manager.button(key=f"event_reveal_btn_{env.event_id}").click().run()
    assert "13800138001" in str([f.value for f in manager.dataframe])
    with session_scope(env.engine, write=False) as s:
        logged = s.execute(select(AuditEvent).where(AuditEvent.action == "reveal")).scalars().all()
    assert [(a.username, a.detail["reason"], a.detail["fields"]) for a in logged] == [("m1", "回访核实", ["phone"])]


def test_event_page_refuses_unknown_events_and_roles(env):
    at = event_app(env, OUTREACH, 999_999)
    assert "此活动不存在、已删除或您无权查看。" in texts(at)
    viewer = event_app(env, Actor("v1", "viewer"), env.event_id)
    assert "新建村普法" in texts(viewer)  # the viewer may see events and their figures ...
    assert not [f for f in viewer.dataframe if "联系电话" in f.value.columns]  # ... but no sign-up list
    nobody = event_app(env, Actor("x", "nobody"), env.event_id)
    assert "您的角色无权使用此页面。" in texts(nobody) and "新建村普法" not in texts(nobody)


def _double_delivery_script() -> None:
    """One press of "+1" on brochures delivered twice with the tap id bound to the drawn button (what
    Streamlit can do when a run is interrupted by the next message), before the page is drawn, as
    callbacks are; then the page."""
    import streamlit as st

    from pages.tally import _tap, button_tap_id, render_tally

    if st.session_state.get("deliver_twice"):
        st.session_state["deliver_twice"] = False
        key = "tally_tap_brochures_1"
        tap_id = button_tap_id(key)  # the id the drawn button carries
        event_id = int(st.query_params["event"])
        _tap(event_id, "brochures", 1, "发放宣传资料（份）", key, tap_id)
        _tap(event_id, "brochures", 1, "发放宣传资料（份）", key, tap_id)
    render_tally()


def test_one_press_delivered_twice_counts_once(env):
    at = AppTest.from_function(_double_delivery_script, default_timeout=TIMEOUT)
    at.session_state["actor"] = OUTREACH
    at.query_params["event"] = str(env.event_id)
    at.run()
    at.session_state["deliver_twice"] = True
    at.run()
    assert db_total(env) == 1
    at = tap(at, "brochures", 1)  # the next real press has a new id: it counts
    assert db_total(env) == 2 and numbers(at) == (2, 2)
