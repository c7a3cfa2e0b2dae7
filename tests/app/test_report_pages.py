"""The year-end report, dashboard and import pages in AppTest over a real SQLite file holding the seed
dataset (tests/fixtures/seed_dataset.py): a manager sees the seed figures and their record links;
staff and outreach users are refused the report, outreach the dashboards; imports check, refuse with
per-row problems, commit and undo."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from streamlit.testing.v1 import AppTest  # noqa: E402

from engine.access import Actor  # noqa: E402
from engine.db import dispose_engine, get_engine, upgrade  # noqa: E402

TIMEOUT = 90


@pytest.fixture(scope="session")
def seeded_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.fixtures.seed_dataset import build_seed

    path = tmp_path_factory.mktemp("report_pages") / "console.db"
    url = f"sqlite:///{path}"
    engine = get_engine(url)
    upgrade(engine)
    build_seed(engine)
    dispose_engine(url)
    return path


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, seeded_template: Path) -> Iterator[str]:
    path = tmp_path / "console.db"
    shutil.copyfile(seeded_template, path)
    url = f"sqlite:///{path}"
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("LAC_DATA_DIR", str(tmp_path / "data"))
    yield url
    dispose_engine(url)


def report_page() -> None:
    from pages.report import render_report

    render_report()


def dashboard_page() -> None:
    from pages.dashboard import render_dashboard

    render_dashboard()


def import_page() -> None:
    from pages.import_records import render_import

    render_import()


def _app(script, role: str, lang: str = "zh") -> AppTest:
    at = AppTest.from_function(script, default_timeout=TIMEOUT)
    at.session_state["actor"] = Actor(role, role, form_editor=role == "admin", language=lang)
    at.session_state["lang"] = lang
    return at


def _texts(at: AppTest) -> str:
    parts = []
    for kind in ("title", "header", "subheader", "markdown", "caption", "error", "warning", "info", "success",
                 "metric"):
        for el in getattr(at, kind):
            parts.append(str(getattr(el, "value", "")))
            label = getattr(el, "label", None)
            if label:
                parts.append(str(label))
    return "\n".join(parts)


def _frames(at: AppTest) -> list:
    return [df.value for df in at.dataframe]


def _cell(frames: list, label_col: str, label: str, col: str) -> str:
    for frame in frames:
        if label_col in frame.columns:
            hit = frame[frame[label_col].astype(str).str.strip() == label]
            if len(hit):
                return str(hit.iloc[0][col])
    raise AssertionError(f"no row {label!r}")


# --- the report ----------------------------------------------------------------------------------
def test_manager_sees_the_seed_figures_with_links_to_their_records(env):
    at = _app(report_page, "manager").run()
    assert not at.exception
    at.radio(key="report_mode").set_value("years").run()
    at.selectbox(key="report_y1").set_value(2023).run()
    at.selectbox(key="report_y2").set_value(2025).run()
    assert not at.exception
    text = _texts(at)
    assert "2023—2025年法律援助工作统计" in text
    frames = _frames(at)
    assert _cell(frames, "label", "受理法律援助案件", "value") == "2,158"
    assert _cell(frames, "label", "参加庭审旁听", "value") == "29"
    assert _cell(frames, "label", "庭审旁听人次", "value") == "34"
    assert _cell(frames, "label", "开展宣传活动", "value") == "13"
    assert _cell(frames, "label", "老年人专场", "value") == "2"
    assert _cell(frames, "label", "农民工专场", "value") == "1"
    assert _cell(frames, "label", "发放宣传资料（份）", "value") == "3,200"
    assert _cell(frames, "label", "解答咨询（人次）", "value") == "675"
    link = _cell(frames, "label", "庭审旁听人次", "url")
    assert link == "/hearing_observation-records?date_from=2023-01-01&date_to=2025-12-31"
    link = _cell(frames, "label", "老年人专场", "url")
    assert link.startswith("/outreach_event-records?") and "f_target_group=elderly" in link
    # the previous period (2020-2022) is shown beside
    assert _cell(frames, "label", "参加庭审旁听", "previous") == "3"
    assert at.metric[0].value == "2,158"


def test_report_in_english(env):
    at = _app(report_page, "manager", lang="en").run()
    at.radio(key="report_mode").set_value("years").run()
    at.selectbox(key="report_y1").set_value(2023).run()
    at.selectbox(key="report_y2").set_value(2025).run()
    frames = _frames(at)
    assert _cell(frames, "label", "Court hearings attended", "value") == "29"
    assert "Legal aid statistics 2023–2025" in _texts(at)


def test_viewer_sees_figures_but_no_links_to_personal_records(env):
    at = _app(report_page, "viewer").run()
    at.radio(key="report_mode").set_value("years").run()
    at.selectbox(key="report_y1").set_value(2023).run()
    at.selectbox(key="report_y2").set_value(2025).run()
    frames = _frames(at)
    assert _cell(frames, "label", "受理法律援助案件", "value") == "2,158"
    assert _cell(frames, "label", "受理法律援助案件", "url") in ("None", "")  # intake: not viewable by viewers
    assert _cell(frames, "label", "开展宣传活动", "url").startswith("/outreach_event-records")


@pytest.mark.parametrize("role", ["staff", "outreach"])
def test_report_is_refused_to_staff_and_outreach(env, role):
    at = _app(report_page, role).run()
    assert "您的角色无权使用此页面。" in _texts(at)
    assert not at.dataframe and not at.metric


# --- dashboards -----------------------------------------------------------------------------------
def test_manager_dashboard_shows_counts_funnel_and_breakdowns(env):
    at = _app(dashboard_page, "manager").run()
    assert not at.exception
    at.selectbox(key="dash_form").set_value("hearing_observation").run()
    assert not at.exception
    assert at.metric[0].value == "32"  # 29 + 3 of 2022 (the deleted one is not counted)
    at.selectbox(key="dash_form").set_value("intake").run()
    assert not at.exception
    text = _texts(at)
    assert "办理流程" in text and "案件类型" in text and "特殊群体" in text  # v2 relabelled case_category
    funnel = _frames(at)[0]
    assert int(funnel[funnel["环节"] == "申请"]["记录数"].iloc[0]) == 41


def test_dashboard_is_refused_to_outreach_users_without_the_ability(env):
    at = _app(dashboard_page, "outreach").run()
    assert "您的角色无权使用此页面。" in _texts(at)
    assert not at.metric


def test_staff_dashboard_lists_only_forms_staff_may_view(env):
    at = _app(dashboard_page, "staff").run()
    assert not at.exception
    options = at.selectbox(key="dash_form").options
    assert "法律援助申请登记" in options and at.metric


# --- imports ---------------------------------------------------------------------------------------
HEADER = ("开庭日期,审理机关,审级,旁听人次,仪表仪态与庭审礼仪,庭前准备,对案件事实的掌握,举证质证,法律适用,"
          "辩论与表达,工作态度与责任心,总体效果\n")
GOOD = HEADER + "2025-01-05,xiashan_court,一审,2,4,4,4,4,4,4,4,4\n2025-02-05,湛江市霞山区人民法院,二审,1,5,5,5,5,5,5,5,5\n"
BAD = GOOD + "2025-13-05,xiashan_court,一审,1,4,4,4,4,4,4,4,9\n"


def _button(at: AppTest, key: str):
    return next(b for b in at.button if b.key == key)


def test_import_page_checks_refuses_commits_and_undoes(env):
    from engine.storage import count_live

    engine = get_engine(env)
    before = count_live(engine, "hearing_observation")
    at = _app(import_page, "manager").run()
    assert not at.exception
    at.selectbox(key="import_form").set_value("hearing_observation").run()
    at.file_uploader[0].set_value(("hearings.csv", BAD.encode("utf-8-sig"), "text/csv")).run()
    assert not at.exception
    assert at.selectbox(key=next(s.key for s in at.selectbox if s.label == "旁听人次")).value == "observer_count"
    _button(at, "import_check").click().run()
    problems = _frames(at)[0]
    assert set(problems["行号"]) == {4}  # the header is row 1
    assert "日期格式不正确" in " ".join(problems["问题"])
    assert "请选择 1 到 5 之间的分数" in " ".join(problems["问题"])
    assert _button(at, "import_commit").disabled
    assert count_live(engine, "hearing_observation") == before

    at.file_uploader[0].set_value(("hearings.csv", GOOD.encode("gb18030"), "text/csv")).run()
    _button(at, "import_check").click().run()
    assert "检查通过：2 行均可导入。" in _texts(at)
    _button(at, "import_commit").click().run()
    assert not at.exception
    assert "已导入 2 条记录" in _texts(at)
    assert count_live(engine, "hearing_observation") == before + 2
    undo = next(b for b in at.button if (b.key or "").startswith("import_undo_"))
    undo.click().run()
    assert "删除了 2 条记录" in _texts(at)
    assert count_live(engine, "hearing_observation") == before


@pytest.mark.parametrize("role", ["staff", "outreach", "viewer"])
def test_import_page_is_refused_without_the_import_ability(env, role):
    at = _app(import_page, role).run()
    assert "您的角色无权使用此页面。" in _texts(at)
