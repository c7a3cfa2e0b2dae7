"""The records page (pages/records.py) in AppTest over a real SQLite file: paging, search and filters
in SQL, masking and audited reveal, a v1 record after v2 retired a field, edit conflicts, soft
delete / restore for admins only, refusals by URL, child records."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from sqlmodel import select

from engine.access import SYSTEM
from engine.db import session_scope
from engine.errors import PermissionDenied
from engine.forms import get_spec, publish
from engine.storage import bulk_create, create, get_record, soft_delete
from models.tables import AuditEvent, Submission
from tests.app.entry_helpers import (
    PageEnv,
    button,
    frame_text,
    has_button,
    intake_values,
    make_intake,
    make_template,
    page_env,
    records_page,
    texts,
    unescape,
)

B = "records__intake__"


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_template(tmp_path_factory.mktemp("records_tpl") / "console.db")


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, template: Path) -> Iterator[PageEnv]:
    yield from page_env(monkeypatch, tmp_path, template)


def _bulk(env: PageEnv, n: int = 45, criminal: int = 5) -> None:
    rows = []
    for i in range(n):
        values = intake_values(f"申请人{i:02d}", 100 + i, category="criminal" if i < criminal else "civil")
        values["_created_by"] = "staff"
        rows.append(values)
    rows[-1]["name"] = "欧阳娜娜"
    assert bulk_create(env.engine, "intake", rows, actor=SYSTEM) == n


def _caption(at) -> str:
    return unescape(texts(at))


# --- list ------------------------------------------------------------------------------------------
def test_list_pages_in_sql_with_page_size_and_page_number(env: PageEnv) -> None:
    _bulk(env)
    at = env.app(records_page, "staff", "intake").run()
    assert not at.exception
    assert "共 45 条，第 1/3 页" in _caption(at)
    assert len(at.dataframe[0].value) == 20
    first = list(at.dataframe[0].value["编号"])
    at.number_input(key=B + "page").set_value(3).run()
    assert "第 3/3 页" in _caption(at)
    assert len(at.dataframe[0].value) == 5
    assert not set(first) & set(at.dataframe[0].value["编号"])
    at.selectbox(key=B + "size").set_value(50).run()
    assert "共 45 条，第 1/1 页" in _caption(at)  # a new page size starts again at page 1
    assert len(at.dataframe[0].value) == 45
    # the columns are the spec's list_columns, with labels; plus state and who entered it
    columns = list(at.dataframe[0].value.columns)
    assert columns[:4] == ["编号", "申请日期", "姓名", "证件号码"] and "状态" in columns and "登记人" in columns
    assert set(at.dataframe[0].value["登记人"]) == {"李干事"}


def test_search_and_select_filter(env: PageEnv) -> None:
    _bulk(env)
    at = env.app(records_page, "staff", "intake").run()
    at.text_input(key=B + "search").input("欧阳娜娜").run()
    assert "共 1 条" in _caption(at)
    assert list(at.dataframe[0].value["姓名"]) == ["欧阳娜娜"]
    at.text_input(key=B + "search").input("").run()
    at.multiselect(key=B + "f__case_category").set_value(["criminal"]).run()
    assert "共 5 条" in _caption(at)
    assert set(at.dataframe[0].value["案件类别"]) == {"刑事"}
    at.multiselect(key=B + "f__case_category").set_value(["criminal", "civil"]).run()
    assert "共 45 条" in _caption(at)


def test_staff_cannot_find_records_by_a_masked_value(env: PageEnv) -> None:
    rid = make_intake(env, "钱七", 111)
    idno = get_record(env.engine, rid, actor=env.actor("admin")).data["id_number"]
    staff = env.app(records_page, "staff", "intake").run()
    staff.text_input(key=B + "search").input(idno).run()
    assert "没有符合条件的记录" in _caption(staff)
    manager = env.app(records_page, "manager", "intake").run()
    manager.text_input(key=B + "search").input(idno).run()
    assert "共 1 条" in _caption(manager)


def test_open_a_record_from_the_list(env: PageEnv) -> None:
    rid = make_intake(env, "孙八", 113)
    at = env.app(records_page, "staff", "intake").run()
    at.selectbox(key=B + "open").set_value(rid).run()
    assert at.query_params.get("id") in (str(rid), [str(rid)])
    assert "孙八" in _caption(at)
    button(at, "返回列表").click().run()
    assert "id" not in at.query_params
    assert at.dataframe


# --- masking and reveal ------------------------------------------------------------------------------
def test_staff_sees_sensitive_values_masked_everywhere(env: PageEnv) -> None:
    rid = make_intake(env, "周九", 115, residence="湛江市霞山区某街1号")
    data = get_record(env.engine, rid, actor=env.actor("admin")).data
    idno, phone = data["id_number"], data["phone"]
    at = env.app(records_page, "staff", "intake").run()
    page = frame_text(at) + _caption(at)
    assert idno not in page and phone not in page
    assert idno[:3] + "*" in frame_text(at)
    at = env.app(records_page, "staff", "intake", id=rid).run()
    page = frame_text(at) + _caption(at)
    assert "周九" in page
    assert idno not in page and phone not in page and "某街1号" not in page
    assert "138****5634" in page
    assert not has_button(at, "显示敏感信息")
    # the edit form of a non-revealing role does not carry the values either
    button(at, "编辑").click().run()
    values = [str(w.value) for w in list(at.text_input) + list(at.text_area)]
    assert not any(idno in v or phone in v or "某街1号" in v for v in values)
    placeholders = [w.placeholder for w in at.text_input]
    assert any(p.startswith("440***") for p in placeholders)


def test_manager_reveals_with_a_reason_and_the_reveal_is_audited(env: PageEnv) -> None:
    rid = make_intake(env, "吴十", 117)
    idno = get_record(env.engine, rid, actor=env.actor("admin")).data["id_number"]
    at = env.app(records_page, "manager", "intake", id=rid).run()
    assert idno not in _caption(at)
    button(at, "显示敏感信息").click().run()  # no reason: refused, nothing logged
    assert any("理由" in e.value for e in at.error)
    assert idno not in _caption(at)
    at.text_input(key=f"record__{rid}__reveal_reason").input("核对申请人身份").run()
    button(at, "显示敏感信息").click().run()
    assert idno in _caption(at)
    with session_scope(env.engine, write=False) as s:
        events = s.exec(select(AuditEvent).where(AuditEvent.action == "reveal")).all()
    assert len(events) == 1
    event = events[0]
    assert event.username == "manager" and event.entity_id == str(rid) and event.form_slug == "intake"
    assert "id_number" in event.detail["fields"] and "phone" in event.detail["fields"]
    assert event.detail["reason"] == "核对申请人身份"
    # the history lists the reveal; hiding again masks again
    assert "查看敏感信息" in frame_text(at)
    button(at, "隐藏敏感信息").click().run()
    assert idno not in _caption(at)


# --- versions ------------------------------------------------------------------------------------------
def test_v1_record_after_v2_retired_a_field(env: PageEnv) -> None:
    rid = make_intake(env, "郑十一", 119, occupation="木工")
    v1 = get_spec(env.engine, "intake").to_dict()
    v1["fields"] = [f for f in v1["fields"] if f["key"] != "occupation"]
    publish(env.engine, v1, actor=SYSTEM, note="occupation dropped")
    assert get_spec(env.engine, "intake").field("occupation").retired
    at = env.app(records_page, "staff", "intake", id=rid).run()
    assert not at.exception
    shown = _caption(at)
    assert "木工" in shown
    retired = [m.value for m in at.markdown if "职业或工作单位" in m.value]
    assert retired and "已停用" in retired[0]
    assert "表单第 1 版" in shown and "当前为第 2 版" in shown
    # editing the old record keeps the retired value and does not offer the retired field
    button(at, "编辑").click().run()
    keys = [w.key for w in at.text_input]
    assert not any(k.endswith("__occupation") for k in keys)
    facts = next(w for w in at.text_area if w.key.endswith("__facts"))
    facts.input("补充：申请人已提交全部材料，等待审查。").run()
    button(at, "保存修改").click().run()
    assert not at.exception
    data = get_record(env.engine, rid, actor=env.actor("admin")).data
    assert data["occupation"] == "木工" and data["facts"].startswith("补充")


def test_v1_record_edits_a_backfilled_field_of_v2(env: PageEnv) -> None:
    from engine.backfill import backfill

    rid = make_intake(env, "朱十一", 117)
    other = make_intake(env, "秦十一", 118)
    v2 = get_spec(env.engine, "intake").to_dict()
    v2["fields"].append({"key": "followup", "type": "text", "label": {"zh": "回访情况", "en": "Follow-up"}})
    publish(env.engine, v2, actor=SYSTEM, note="followup added")
    assert backfill(env.engine, "intake", "followup", "待回访", actor=env.actor("admin")) == 2
    before = get_record(env.engine, rid, actor=env.actor("admin")).data
    at = env.app(records_page, "staff", "intake", id=rid).run()
    assert not at.exception and "待回访" in _caption(at) and "表单第 1 版" in _caption(at)
    button(at, "编辑").click().run()
    box = at.text_input(key=f"record__{rid}__form1__followup")
    assert box.value == "待回访"
    box.input("已电话回访").run()
    button(at, "保存修改").click().run()
    assert not at.exception and any("修改已保存" in s.value for s in at.success)
    rec = get_record(env.engine, rid, actor=env.actor("admin"))
    assert rec.version == 1  # other stored answers are untouched (unticked boxes are saved as "no")
    assert {k: v for k, v in rec.data.items() if k in before} == {**before, "followup": "已电话回访"}
    assert get_record(env.engine, other, actor=env.actor("admin")).data["followup"] == "待回访"
    assert "回访情况: 待回访 → 已电话回访" in frame_text(env.app(records_page, "staff", "intake", id=rid).run())


# --- edit conflict ---------------------------------------------------------------------------------
def test_second_save_of_a_stale_edit_shows_the_conflict_and_overwrites_nothing(env: PageEnv) -> None:
    rid = make_intake(env, "冯十二", 121)
    first = env.app(records_page, "manager", "intake", id=rid).run()
    second = env.app(records_page, "staff", "intake", id=rid).run()
    button(first, "编辑").click().run()
    button(second, "编辑").click().run()
    key = f"record__{rid}__form1__facts"
    first.text_area(key=key).input("王主任修改的案情摘要，内容足够长。").run()
    button(first, "保存修改").click().run()
    assert any("修改已保存" in s.value for s in first.success)
    second.text_area(key=key).input("李干事修改的案情摘要，也足够长。").run()
    button(second, "保存修改").click().run()
    errors = [unescape(e.value) for e in second.error]
    assert any("此记录已被 王主任 于" in e and "请重新加载" in e for e in errors), errors
    assert get_record(env.engine, rid, actor=env.actor("admin")).data["facts"] == "王主任修改的案情摘要，内容足够长。"
    # the user's edits are still on screen, and reloading shows the saved version
    assert second.text_area(key=key).value == "李干事修改的案情摘要，也足够长。"
    button(second, "重新加载").click().run()
    reloaded = next(w for w in second.text_area if w.key.endswith("__facts"))
    assert reloaded.value == "王主任修改的案情摘要，内容足够长。"
    assert not any("此记录已被" in unescape(e.value) for e in second.error)
    with session_scope(env.engine, write=False) as s:
        updates = s.exec(select(AuditEvent).where(AuditEvent.action == "update")).all()
    assert [u.username for u in updates] == ["manager"]


def test_validation_error_in_edit_keeps_the_input(env: PageEnv) -> None:
    rid = make_intake(env, "陈十三", 123)
    at = env.app(records_page, "staff", "intake", id=rid).run()
    button(at, "编辑").click().run()
    key = f"record__{rid}__form1__facts"
    at.text_area(key=key).input("太短").run()
    button(at, "保存修改").click().run()
    assert at.text_area(key=key).value == "太短"
    assert len(at.error) >= 2  # under the field, and the summary
    assert get_record(env.engine, rid, actor=env.actor("admin")).data["facts"] != "太短"


# --- delete / restore ----------------------------------------------------------------------------
def test_soft_delete_and_restore_are_for_admins_only(env: PageEnv) -> None:
    rid = make_intake(env, "褚十四", 125)
    staff = env.app(records_page, "staff", "intake", id=rid).run()
    assert not has_button(staff, "删除记录")
    with pytest.raises(PermissionDenied):
        soft_delete(env.engine, rid, actor=env.actor("staff"))
    manager = env.app(records_page, "manager", "intake", id=rid).run()
    assert not has_button(manager, "删除记录")

    admin = env.app(records_page, "admin", "intake", id=rid).run()
    button(admin, "删除记录").click().run()
    button(admin, "确认删除").click().run()
    assert any("已被 管理员甲 于" in unescape(w.value) for w in admin.warning)
    with session_scope(env.engine, write=False) as s:
        assert s.get(Submission, rid).deleted_at is not None
    # gone for everybody else, also by URL
    staff = env.app(records_page, "staff", "intake", id=rid).run()
    assert any("不存在" in e.value for e in staff.error) and "褚十四" not in _caption(staff)
    listing = env.app(records_page, "staff", "intake").run()
    assert "褚十四" not in frame_text(listing)
    # an admin can list deleted records and restore them
    admin_list = env.app(records_page, "admin", "intake").run()
    admin_list.toggle(key=B + "deleted").set_value(True).run()
    assert "褚十四" in frame_text(admin_list)
    button(admin, "恢复记录").click().run()
    with session_scope(env.engine, write=False) as s:
        assert s.get(Submission, rid).deleted_at is None
    staff = env.app(records_page, "staff", "intake", id=rid).run()
    assert "褚十四" in _caption(staff)


# --- refusals --------------------------------------------------------------------------------------
def test_records_the_actor_may_not_view_are_refused_also_by_url(env: PageEnv) -> None:
    rid = make_intake(env, "卫十五", 127)
    viewer = env.app(records_page, "viewer", "intake", id=rid).run()
    assert viewer.error and "卫十五" not in _caption(viewer) and not viewer.dataframe
    viewer_list = env.app(records_page, "viewer", "intake").run()
    assert viewer_list.error and not viewer_list.dataframe
    for wanted in ("999999", "abc", "-1"):
        at = env.app(records_page, "staff", "intake", id=wanted).run()
        assert any("不存在" in e.value for e in at.error)
    # a record of another form typed into this form's page
    event = create(env.engine, "outreach_event", _event_values(env, "外表单活动"), actor=env.actor("staff"))
    at = env.app(records_page, "staff", "intake", id=event.id).run()
    assert any("不存在" in e.value for e in at.error) and "外表单活动" not in _caption(at)


def _event_values(env: PageEnv, title: str) -> dict:
    from datetime import date

    from engine.forms import choice_lists

    spec = get_spec(env.engine, "outreach_event")
    lists = choice_lists(env.engine)
    values: dict = {}
    for f in spec.active_fields:
        if not f.required or f.show_if is not None:
            continue
        if f.type in ("text", "textarea"):
            values[f.key] = "测试"
        elif f.type == "date":
            values[f.key] = date.today().isoformat()
        elif f.type in ("select", "reference") and f.choices:
            values[f.key] = f.choices[0].value
        elif f.type == "reference" and f.choice_list:
            values[f.key] = lists[f.choice_list][0].value
        elif f.type == "multiselect" and f.choices:
            values[f.key] = [f.choices[0].value]
        elif f.type == "integer":
            values[f.key] = 1
    values[spec.title_field] = title
    return values


# --- children ------------------------------------------------------------------------------------------
def test_event_lists_its_signups_with_an_add_link(env: PageEnv) -> None:
    event = create(env.engine, "outreach_event", _event_values(env, "敬老院普法"), actor=env.actor("outreach"))
    for name in ("报名甲", "报名乙"):
        create(env.engine, "event_signup", {"name": name, "phone": "13912345678", "group": "elderly"},
               actor=env.actor("outreach"), parent_id=event.id)
    other = create(env.engine, "outreach_event", _event_values(env, "另一场"), actor=env.actor("outreach"))
    create(env.engine, "event_signup", {"name": "别场的人", "group": "general"}, actor=env.actor("outreach"),
           parent_id=other.id)
    at = env.app(records_page, "outreach", "outreach_event", id=event.id).run()
    assert not at.exception
    children = frame_text(at)
    assert "报名甲" in children and "报名乙" in children and "别场的人" not in children
    assert "13912345678" not in children and "139****5678" in children
    links = [pl for pl in at.page_link if pl.proto.page == "event_signup"]
    assert links and links[0].proto.query_string == f"parent={event.id}"


def test_english_list(env: PageEnv) -> None:
    make_intake(env, "英文", 129)
    at = env.app(records_page, "staff", "intake", lang="en").run()
    assert "1 records, page 1 of 1" in _caption(at)
    assert "Name" in list(at.dataframe[0].value.columns)



def _number(env: PageEnv, sub_id: int) -> str:
    """What the list shows as a record's number: its application number, else #id."""
    from sqlmodel import Session

    from models.tables import Submission

    with Session(env.engine) as s:
        return s.get(Submission, sub_id).number or f"#{sub_id}"


def test_date_range_created_by_state_filters_and_sort(env: PageEnv) -> None:
    a = make_intake(env, "甲一", 131, day="2026-01-10")
    b = make_intake(env, "乙二", 133, day="2026-02-10", username="staff2")
    c = make_intake(env, "丙三", 135, day="2026-03-10")
    from engine.storage import transition

    transition(env.engine, b, "accept", actor=env.actor("manager"))
    at = env.app(records_page, "manager", "intake").run()
    assert list(at.dataframe[0].value["编号"]) == [_number(env, c), _number(env, b), _number(env, a)]  # newest first
    at.date_input(key=B + "from").set_value(date(2026, 2, 1))
    at.date_input(key=B + "to").set_value(date(2026, 2, 28)).run()
    assert list(at.dataframe[0].value["姓名"]) == ["乙二"]
    at.date_input(key=B + "from").set_value(None)
    at.date_input(key=B + "to").set_value(None).run()
    at.selectbox(key=B + "by").set_value("staff2").run()
    assert list(at.dataframe[0].value["姓名"]) == ["乙二"]
    assert list(at.dataframe[0].value["登记人"]) == ["陈干事"]
    at.selectbox(key=B + "by").set_value(None).run()
    at.selectbox(key=B + "state").set_value("applied").run()
    assert sorted(at.dataframe[0].value["姓名"]) == ["丙三", "甲一"]
    at.selectbox(key=B + "state").set_value(None).run()
    at.selectbox(key=B + "sort").set_value("application_date")
    at.toggle(key=B + "desc").set_value(False).run()
    assert list(at.dataframe[0].value["姓名"]) == ["甲一", "乙二", "丙三"]
    assert "证件号码" not in at.selectbox(key=B + "sort").options


def test_inactive_choice_is_offered_only_to_records_that_have_it(env: PageEnv) -> None:
    rid = make_intake(env, "蒋十六", 137, education="primary")
    spec = get_spec(env.engine, "intake").to_dict()
    for f in spec["fields"]:
        if f["key"] == "education":
            f["choices"] = [c for c in f["choices"] if c["value"] != "primary"]
    publish(env.engine, spec, actor=SYSTEM)
    at = env.app(records_page, "staff", "intake", id=rid).run()
    button(at, "编辑").click().run()
    box = next(w for w in at.selectbox if w.key.endswith("__education"))
    assert "小学" in box.options and box.value == "primary"
    button(at, "保存修改").click().run()
    assert not at.exception and any("修改已保存" in s.value for s in at.success)
    assert get_record(env.engine, rid, actor=env.actor("admin")).data["education"] == "primary"
    from tests.app.entry_helpers import entry_page

    new = env.app(entry_page, "staff", "intake").run()
    assert "小学" not in new.selectbox(key="entry__intake__0__education").options


def test_history_shows_edits_with_sensitive_values_masked(env: PageEnv) -> None:
    rid = make_intake(env, "沈十七", 139)
    at = env.app(records_page, "manager", "intake", id=rid).run()
    button(at, "编辑").click().run()
    phone = at.text_input(key=f"record__{rid}__form1__phone")
    assert phone.value == "" and phone.placeholder == "138****5634"  # not revealed yet: masked in the form too
    phone.input("13900001111")
    at.text_input(key=f"record__{rid}__form1__occupation").input("保安").run()
    button(at, "保存修改").click().run()
    data = get_record(env.engine, rid, actor=env.actor("admin")).data
    assert data["phone"] == "13900001111" and data["occupation"] == "保安"
    assert data["id_number"].startswith("440803")  # untouched protected values are kept
    staff = env.app(records_page, "staff", "intake", id=rid).run()
    history = frame_text(staff)
    assert "职业或工作单位: — → 保安" in history
    assert "联系电话: 138****5634 → 139****1111" in history
    assert "13900001111" not in history and "13802715634" not in history
    assert "王主任" in history and "修改" in history
