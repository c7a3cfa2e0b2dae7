"""AppTest of the intake tools (pages/intake_tools.py) over a real SQLite file: the record panel (number,
eligibility with reasons and the decision form, conflicts with confirm/clear, deadlines, notice downloads), the
deadlines page per role, the notice-template editor and the intake settings (admins only)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update

from engine.db import session_scope
from engine.eligibility import latest_decision, set_threshold
from engine.numbering import assign_number
from engine.storage import transition
from models.tables import AuditEvent, Setting, Submission
from tests.app.entry_helpers import PageEnv, button, make_intake, make_template, page_env, texts, unescape


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_template(tmp_path_factory.mktemp("intake_tools_tpl") / "console.db")


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, template: Path) -> Iterator[PageEnv]:
    yield from page_env(monkeypatch, tmp_path, template)


# --- page scripts (AppTest.from_function runs the function's source: imports live inside) ------------------
def panel_page(rid: int) -> None:
    from engine.storage import get_record
    from pages.intake_tools import render_intake_panel
    from ui.state import actor, db

    render_intake_panel(get_record(db(), rid, actor=actor()))


def deadlines_page() -> None:
    from pages.intake_tools import render_deadlines_page

    render_deadlines_page()


def templates_page() -> None:
    from pages.intake_tools import render_notice_templates

    render_notice_templates()


def settings_page() -> None:
    from pages.intake_tools import render_intake_settings

    render_intake_settings()


def _numbered(env: PageEnv, name: str, seq: int, **extra) -> int:
    rid = make_intake(env, name, seq, **extra)
    with session_scope(env.engine) as s:  # as storage.create does once the number hook is wired
        sub = s.get(Submission, rid)
        if sub.number is None:
            sub.number = assign_number(s, "intake", 2026, "霞援申字〔{year}〕第{seq:04d}号")
            s.add(sub)
    return rid


def _shown(at) -> str:
    """Every text shown, page-link labels included."""
    links = [str(getattr(el, "label", "") or getattr(el.proto, "label", "")) for el in at.get("page_link")]
    return unescape(texts(at) + "\n" + "\n".join(links))


def test_panel_shows_number_eligibility_deadlines_and_notices(env: PageEnv) -> None:
    rid = _numbered(env, "陈大文", 131)
    at = env.app(panel_page, "staff", rid).run()
    assert not at.exception
    shown = _shown(at)
    assert "申请编号：**霞援申字〔2026〕第0001号**" in shown
    assert "免予核查经济困难状况（第四十二条）" in shown and "符合" in shown and "不适用" in shown
    assert "社会救助对象" in shown  # the reason of the art. 42 criterion
    assert "系统建议" in shown and "给予" in shown
    assert "未发现可能的利益冲突或重复申请" in shown
    assert "尚无开始计算的法定期限" in shown
    labels = {unescape(b.label) for b in at.get("download_button")}
    assert labels == {"申请材料接收凭证", "补充材料通知书"}  # decisions appear once taken

    transition(env.engine, rid, "accept", actor=env.actor("staff"))
    at = env.app(panel_page, "staff", rid).run()
    assert "审查决定（受理后7日内）" in _shown(at) and "期限至" in _shown(at)


def test_a_decision_against_the_proposal_needs_a_reason(env: PageEnv) -> None:
    rid = _numbered(env, "陈大文", 131, hardship_route="certificate", household_size=2,
                    monthly_income_total="9000.00", exemption_ground=None)
    set_threshold(env.engine, "湛江市", 2026, "1200", actor=env.actor("admin"))
    at = env.app(panel_page, "staff", rid).run()
    assert "不低于标准 1,200.00 元" in _shown(at)
    radio = at.radio(key=f"intake__{rid}__elig__choice")
    assert radio.value == "refuse"
    radio.set_value("grant")
    button(at, "记录审查意见").click().run()
    assert "须写明理由" in _shown(at)
    assert latest_decision(env.engine, rid) is None
    at.radio(key=f"intake__{rid}__elig__choice").set_value("grant")
    at.text_area(key=f"intake__{rid}__elig__reason").input("申请人患重病，医疗支出大")
    button(at, "记录审查意见").click().run()
    assert not at.exception
    assert "审查意见已记录" in _shown(at)
    assert "审查意见：**给予**" in _shown(at) and "与系统建议不同" in _shown(at)
    d = latest_decision(env.engine, rid)
    assert d is not None and d.outcome == "grant" and d.username == "staff"
    assert "请重新审查" not in _shown(at)
    with session_scope(env.engine) as s:  # the income is corrected afterwards: the proposal changes
        sub = s.get(Submission, rid)
        sub.data = {**sub.data, "monthly_income_total": "1000.00"}
        s.add(sub)
    at = env.app(panel_page, "staff", rid).run()
    assert "记录已修改，系统建议已变化，请重新审查" in _shown(at)


def test_conflicts_are_listed_and_cleared_with_a_reason(env: PageEnv) -> None:
    first = _numbered(env, "陈大文", 131)
    rid = _numbered(env, "陈大文", 131)  # the same person again (same ID number)
    at = env.app(panel_page, "staff", rid).run()
    shown = _shown(at)
    assert "重复申请" in shown and "证件号码相同" in shown and "1 项待处理" in shown
    button(at, "排除").click().run()
    assert "请写明确认或排除的理由" in _shown(at)
    at.text_input(key=f"intake__{rid}__conf__0__reason").input("同一人补充申请，前案已撤回")
    button(at, "排除").click().run()
    assert not at.exception
    shown = _shown(at)
    assert "已排除" in shown and "同一人补充申请，前案已撤回" in shown and "0 项待处理" in shown
    with session_scope(env.engine, write=False) as s:
        event = s.execute(select(AuditEvent).where(AuditEvent.action == "conflict_decision")).scalar_one()
    assert event.detail["other_id"] == first and event.username == "staff"


def test_deadlines_page_per_user_and_for_managers(env: PageEnv) -> None:
    mine = _numbered(env, "陈大文", 131)
    theirs = _numbered(env, "林小红", 132, username="staff2")
    for rid in (mine, theirs):
        transition(env.engine, rid, "accept", actor=env.actor("staff"))
    old = datetime.now(UTC) - timedelta(days=20)
    with session_scope(env.engine) as s:
        s.execute(update(AuditEvent).where(AuditEvent.action == "transition").values(at=old))
        s.execute(update(Submission).values(state_since=old))
    at = env.app(deadlines_page, "staff").run()
    assert not at.exception
    shown = _shown(at)
    assert "我的案件" in shown and "已逾期（1）" in shown and "全部案件" not in shown
    assert "陈大文" in shown and "林小红" not in shown
    at = env.app(deadlines_page, "manager").run()
    shown = _shown(at)
    assert "全部案件" in shown and "已逾期（2）" in shown
    at = env.app(deadlines_page, "outreach").run()
    assert "您的角色不能使用此页面" in _shown(at)


def test_notice_templates_editor_checks_placeholders(env: PageEnv) -> None:
    at = env.app(templates_page, "staff").run()
    assert "您的角色不能使用此页面" in _shown(at)
    at = env.app(templates_page, "admin").run()
    assert not at.exception and "正在使用系统默认模板" in _shown(at)
    area = at.text_area(key="intake__templates__text__receipt")
    assert "法律援助申请材料接收凭证" in area.value
    area.input("# 收件回执\n{name}{birthday}")
    button(at, "保存").click().run()
    assert "无法识别的占位符：{birthday}" in _shown(at) and "{materials_received}" in _shown(at)
    at.text_area(key="intake__templates__text__receipt").input("# 收件回执\n兹收到 {name} 的材料。")
    button(at, "保存").click().run()
    assert "模板已保存" in _shown(at) and "正在使用管理员修改后的模板" in _shown(at)
    with session_scope(env.engine, write=False) as s:
        assert s.get(Setting, "notice_template:receipt").value["text"].startswith("# 收件回执")
    button(at, "恢复默认").click().run()
    assert "已恢复为默认模板" in _shown(at)
    with session_scope(env.engine, write=False) as s:
        assert s.get(Setting, "notice_template:receipt") is None


def test_settings_page_sets_a_threshold_from_the_urban_figure(env: PageEnv) -> None:
    at = env.app(settings_page, "admin").run()
    assert not at.exception and "尚未设置任何经济困难标准" in _shown(at)
    annual = next(  # (inputs of a st.form here have no key: found by label)
        w for w in at.text_input if unescape(w.label) == "上年度城镇居民人均可支配收入（元/年）")
    annual.input("51600")
    year = next(w for w in at.number_input if unescape(w.label) == "适用年度")
    year.set_value(2026)
    form_buttons = [b for b in at.button if unescape(b.label) == "保存"]
    form_buttons[1].click().run()  # the thresholds tab's form (the office tab comes first)
    assert not at.exception
    assert "2150.00" in _shown(at) and "湛江市" in _shown(at)


def test_panel_in_english(env: PageEnv) -> None:
    rid = _numbered(env, "陈大文", 131)
    at = env.app(panel_page, "staff", rid, lang="en").run()
    shown = _shown(at)
    assert "Application number" in shown and "Exempt from the check (art. 42)" in shown and "pass" in shown
    assert "Proposal" in shown and "grant" in shown
