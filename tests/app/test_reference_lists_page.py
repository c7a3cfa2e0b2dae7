"""The reference-lists page (pages/reference_lists.py) in AppTest over a real SQLite file: add an item,
rename it, deactivate / reactivate one; a deactivated item is no longer offered on the entry page but
is still displayed on the record that chose it; every change is audited; only admins reach the page."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import select

from engine.access import SYSTEM
from engine.db import session_scope
from engine.forms import choice_lists, get_choice_list, publish
from engine.storage import create
from models.tables import AuditEvent
from tests.app.entry_helpers import (
    PageEnv,
    button,
    entry_page,
    make_template,
    page_env,
    records_page,
    texts,
    unescape,
)

HEARING = {
    "slug": "court_visit", "title": {"zh": "庭审登记", "en": "Court visit"},
    "fields": [
        {"key": "title", "type": "text", "label": {"zh": "案件", "en": "Case"}, "required": True},
        {"key": "court", "type": "select", "label": {"zh": "审理法院", "en": "Court"}, "choice_list": "courts"},
    ],
}
XIASHAN = "湛江市霞山区人民法院"


def lists_page() -> None:
    from pages.reference_lists import render_reference_lists

    render_reference_lists()


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_template(tmp_path_factory.mktemp("reflists_tpl") / "console.db")


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, template: Path) -> Iterator[PageEnv]:
    yield from page_env(monkeypatch, tmp_path, template)


def by_suffix(elements, suffix: str):
    found = [e for e in elements if e.key and e.key.endswith(suffix)]
    assert len(found) == 1, f"{len(found)} elements with a key ending {suffix!r}: {[e.key for e in elements]}"
    return found[0]


def open_list(env: PageEnv, name: str):
    at = env.app(lists_page, "admin").run()
    assert not at.exception, at.exception
    at.selectbox(key="reflists__pick").select(name).run()
    assert not at.exception, at.exception
    return at


def audits(env: PageEnv) -> list[AuditEvent]:
    with session_scope(env.engine, write=False) as s:
        return list(s.exec(select(AuditEvent).where(AuditEvent.action == "choice_list_update",
                                                    AuditEvent.entity_id == "courts")
                           .order_by(AuditEvent.id)).all())


def court_options(env: PageEnv) -> list[str]:
    at = env.app(entry_page, "staff", "court_visit").run()
    assert not at.exception, at.exception
    return list(at.selectbox(key="entry__court_visit__0__court").options)


def test_add_rename_deactivate_and_reactivate(env: PageEnv) -> None:
    before = len(audits(env))
    at = open_list(env, "courts")
    assert "审理机关" in texts(at) and XIASHAN in at.dataframe[0].value.to_string()

    # add: the value is generated from the English label when none is given
    by_suffix(at.text_input, "__add_zh").input("霞山区劳动人事争议仲裁院")
    by_suffix(at.text_input, "__add_en").input("Xiashan Labour Arbitration")
    button(at, "添加").click().run()
    assert not at.exception, at.exception
    assert "已添加「霞山区劳动人事争议仲裁院」（值 xiashan_labour_arbitration）" in unescape(texts(at))
    items = {i.value: i for i in get_choice_list(env.engine, "courts").items}
    assert items["xiashan_labour_arbitration"].label == {"zh": "霞山区劳动人事争议仲裁院",
                                                         "en": "Xiashan Labour Arbitration"}
    assert items["xiashan_labour_arbitration"].active

    # rename: only the label changes, the value stays
    by_suffix(at.selectbox, "__rename_pick_courts").select("xiashan_labour_arbitration").run()
    by_suffix(at.text_input, "__rename_zh_xiashan_labour_arbitration").input("霞山区劳动仲裁院")
    button(at, "保存名称").click().run()
    assert not at.exception, at.exception
    item = next(i for i in get_choice_list(env.engine, "courts").items if i.value == "xiashan_labour_arbitration")
    assert item.label["zh"] == "霞山区劳动仲裁院"

    # deactivate, then reactivate
    by_suffix(at.selectbox, "__active_pick_courts").select("chikan_court").run()
    button(at, "停用").click().run()
    assert not at.exception, at.exception
    assert "已停用" in texts(at)
    assert not next(i for i in get_choice_list(env.engine, "courts").items if i.value == "chikan_court").active
    by_suffix(at.selectbox, "__active_pick_courts").select("chikan_court").run()
    button(at, "重新启用").click().run()
    assert next(i for i in get_choice_list(env.engine, "courts").items if i.value == "chikan_court").active

    assert len(audits(env)) == before + 4  # add, rename, deactivate, reactivate: each audited
    assert {e.username for e in audits(env)[before:]} == {"admin"}


def test_a_deactivated_item_is_not_offered_but_old_records_still_show_it(env: PageEnv) -> None:
    publish(env.engine, HEARING, actor=SYSTEM)
    old = create(env.engine, "court_visit", {"title": "张某赡养案", "court": "xiashan_court"},
                 actor=env.actor("staff"))
    assert XIASHAN in court_options(env)

    at = open_list(env, "courts")
    by_suffix(at.selectbox, "__active_pick_courts").select("xiashan_court").run()
    button(at, "停用").click().run()
    assert not at.exception, at.exception
    assert not next(c for c in choice_lists(env.engine)["courts"] if c.value == "xiashan_court").active

    assert XIASHAN not in court_options(env)  # not offered for new records ...
    detail = env.app(records_page, "staff", "court_visit", id=int(old.id)).run()
    assert not detail.exception
    assert XIASHAN in unescape(texts(detail))  # ... still displayed on the old one


def test_create_a_list_and_only_admins_reach_the_page(env: PageEnv) -> None:
    at = env.app(lists_page, "admin").run()
    at.text_input(key="reflists__new_name").input("mediators")
    at.text_input(key="reflists__new_title_zh").input("人民调解员")
    button(at, "创建名单").click().run()
    assert not at.exception, at.exception
    assert get_choice_list(env.engine, "mediators").title == {"zh": "人民调解员"}
    assert at.selectbox(key="reflists__pick").value == "mediators"

    staff = env.app(lists_page, "staff").run()
    assert staff.error and not staff.selectbox


def test_import_a_list_from_a_spreadsheet_column(env: PageEnv) -> None:
    at = open_list(env, "courts")
    before = len(get_choice_list(env.engine, "courts").items)
    csv = ("编号,法院名称,English\n"
           f",{XIASHAN},\n"  # already in the list: kept, not doubled
           ",遂溪县人民法院,Suixi County Court\n"
           ",廉江市人民法院,\n"
           ",,\n").encode("utf-8-sig")
    by_suffix(at.file_uploader, "__upload_courts").set_value(("courts.csv", csv, "text/csv")).run()
    assert not at.exception, at.exception
    by_suffix(at.selectbox, "__imp_zh").select(1).run()
    by_suffix(at.selectbox, "__imp_en").select(2).run()
    assert "将新增 2 项，更新 0 项名称，跳过 1 行" in texts(at)
    button(at, "导入").click().run()
    assert not at.exception, at.exception
    assert "已导入：新增 2 项" in texts(at)
    items = {i.value: i for i in get_choice_list(env.engine, "courts").items}
    assert len(items) == before + 2
    assert items["suixi_county_court"].label == {"zh": "遂溪县人民法院", "en": "Suixi County Court"}
    generated = [v for v, i in items.items() if i.label.get("zh") == "廉江市人民法院"]
    assert generated == ["courts_001"]  # no value column, no ASCII label: a generated value
