"""The data-entry page (pages/entry.py) in AppTest over a real SQLite file: every field type, required
marks, live show_if, errors beside fields with the typed values kept, ID-number hints, save, save and
new, child forms entered from their parent."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, time
from pathlib import Path

import pytest
from sqlmodel import select

from engine.access import SYSTEM
from engine.db import session_scope
from engine.forms import publish
from engine.idnumber import make_id
from models.tables import AuditEvent, Submission
from tests.app.entry_helpers import (
    PageEnv,
    button,
    entry_page,
    make_template,
    page_env,
    texts,
    unescape,
)

SLUG = "all_types"
P = f"entry__{SLUG}__0__"  # widget keys of the first (generation 0) form
CHOICES = [{"value": "a", "label": {"zh": "甲类", "en": "Kind A"}},
           {"value": "b", "label": {"zh": "乙类", "en": "Kind B"}},
           {"value": "old", "label": {"zh": "旧类", "en": "Old kind"}, "active": False},
           {"value": "other", "label": {"zh": "其他", "en": "Other"}}]
ALL_TYPES = {
    "slug": SLUG,
    "title": {"zh": "全字段类型测试", "en": "Every field type"},
    "description": {"zh": "测试用表单", "en": "A form for tests"},
    "sections": [{"key": "basic", "title": {"zh": "基本信息", "en": "Basics"}},
                 {"key": "more", "title": {"zh": "更多信息", "en": "More"}}],
    "fields": [
        {"key": "name", "type": "text", "section": "basic", "label": {"zh": "姓名", "en": "Name"}, "required": True,
         "help": {"zh": "填写全名", "en": "Full name"}},
        {"key": "story", "type": "textarea", "section": "basic", "label": {"zh": "经过", "en": "Story"}},
        {"key": "people", "type": "integer", "section": "basic", "label": {"zh": "人数", "en": "People"},
         "min": 0, "max": 100},
        {"key": "ratio", "type": "decimal", "section": "basic", "label": {"zh": "比例", "en": "Ratio"}},
        {"key": "amount", "type": "money", "section": "basic", "label": {"zh": "金额", "en": "Amount"}},
        {"key": "day", "type": "date", "section": "basic", "label": {"zh": "日期", "en": "Day"}, "required": True},
        {"key": "moment", "type": "datetime", "section": "basic", "label": {"zh": "时刻", "en": "Moment"}},
        {"key": "clock", "type": "time", "section": "basic", "label": {"zh": "时间", "en": "Time"}},
        {"key": "kind", "type": "select", "section": "more", "label": {"zh": "类别", "en": "Kind"},
         "choices": CHOICES},
        {"key": "kind_detail", "type": "text", "section": "more", "label": {"zh": "其他类别说明", "en": "Which other"},
         "required": True, "show_if": {"field": "kind", "op": "equals", "value": "other"}},
        {"key": "tags", "type": "multiselect", "section": "more", "label": {"zh": "标签", "en": "Tags"},
         "choices": CHOICES[:2]},
        {"key": "agree", "type": "boolean", "section": "more", "label": {"zh": "同意", "en": "Agrees"}},
        {"key": "checks", "type": "checklist", "section": "more", "label": {"zh": "核对", "en": "Checks"},
         "items": [{"key": "x", "label": {"zh": "材料甲", "en": "Paper X"}},
                   {"key": "y", "label": {"zh": "材料乙", "en": "Paper Y"}}]},
        {"key": "stars", "type": "rating", "section": "more", "label": {"zh": "满意度", "en": "Satisfaction"}},
        {"key": "score", "type": "rating", "section": "more", "label": {"zh": "评分", "en": "Score"},
         "min": 0, "max": 10},
        {"key": "phone", "type": "phone", "section": "more", "label": {"zh": "电话", "en": "Phone"},
         "sensitive": True},
        {"key": "mail", "type": "email", "section": "more", "label": {"zh": "邮箱", "en": "Email"}},
        {"key": "idno", "type": "id_number", "section": "more", "label": {"zh": "身份证号", "en": "ID number"},
         "sensitive": True},
        {"key": "event", "type": "reference", "section": "more", "label": {"zh": "活动", "en": "Event"},
         "reference_form": "outreach_event"},
        {"key": "cause", "type": "reference", "section": "more", "label": {"zh": "案由", "en": "Cause"},
         "choice_list": "case_causes"},
        {"key": "owner", "type": "user", "section": "more", "label": {"zh": "经办人", "en": "Handled by"}},
        {"key": "hint", "type": "note", "section": "more", "label": {"zh": "提示 *不是* 链接", "en": "Hint"},
         "help": {"zh": "<b>不要</b> [点我](http://evil.example)", "en": "Note"}},
        {"key": "taps", "type": "counter", "section": "more", "label": {"zh": "计数", "en": "Taps"}},
    ],
    "title_field": "name",
}


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_template(tmp_path_factory.mktemp("entry_tpl") / "console.db")


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, template: Path) -> Iterator[PageEnv]:
    yield from page_env(monkeypatch, tmp_path, template)


@pytest.fixture
def form(env: PageEnv) -> PageEnv:
    publish(env.engine, ALL_TYPES, actor=SYSTEM)
    return env


def _event(env: PageEnv, title: str = "社区普法") -> int:
    from engine.storage import create

    sub = create(env.engine, "outreach_event", _event_values(env, title), actor=env.actor("staff"))
    return int(sub.id)


def _event_values(env: PageEnv, title: str) -> dict:
    from engine.forms import get_spec

    spec = get_spec(env.engine, "outreach_event")
    values: dict = {}
    for f in spec.active_fields:
        if not f.required:
            continue
        if f.type in ("text", "textarea"):
            values[f.key] = title if f.key == spec.title_field else "测试"
        elif f.type == "date":
            values[f.key] = date.today().isoformat()
        elif f.type in ("select", "reference") and f.choices:
            values[f.key] = f.choices[0].value
        elif f.type == "reference" and f.choice_list:
            from engine.forms import choice_lists

            values[f.key] = choice_lists(env.engine)[f.choice_list][0].value
        elif f.type == "multiselect" and f.choices:
            values[f.key] = [f.choices[0].value]
        elif f.type == "integer":
            values[f.key] = 1
    values[spec.title_field] = title
    return values


def _records(env: PageEnv, slug: str = SLUG) -> list[Submission]:
    from models.tables import Form

    with session_scope(env.engine, write=False) as s:
        fid = s.exec(select(Form.id).where(Form.slug == slug)).one()
        return list(s.exec(select(Submission).where(Submission.form_id == fid).order_by(Submission.id)).all())


def _fill_minimum(at, name: str = "张三") -> None:
    at.text_input(key=P + "name").input(name)
    at.date_input(key=P + "day").set_value(date(2026, 3, 15))


# ---------------------------------------------------------------------------------------------------
def test_every_field_type_has_a_widget_with_required_marks_and_help(form: PageEnv) -> None:
    at = form.app(entry_page, "staff", SLUG).run()
    assert not at.exception
    shown = texts(at)
    assert "全字段类型测试" in shown and "测试用表单" in shown
    assert "基本信息" in shown and "更多信息" in shown
    name = at.text_input(key=P + "name")
    assert name.label.endswith(":red[\\*]") and name.help == "填写全名"
    assert at.date_input(key=P + "day").label.endswith(":red[\\*]")
    assert not at.text_area(key=P + "story").label.endswith(":red[\\*]")
    assert at.number_input(key=P + "people").step == 1
    assert at.number_input(key=P + "amount").step == 0.01
    assert at.date_input(key=P + "day").min == date(1900, 1, 1)
    assert at.datetime_input(key=P + "moment") is not None
    assert at.time_input(key=P + "clock") is not None
    kind = at.selectbox(key=P + "kind")
    assert kind.options == ["甲类", "乙类", "其他"]  # the inactive choice is not offered for new values
    assert at.multiselect(key=P + "tags").options == ["甲类", "乙类"]
    assert at.toggle(key=P + "agree") is not None
    assert [r.key for r in at.radio] == [P + "checks__x__answer", P + "checks__y__answer"]
    assert at.radio(key=P + "checks__x__answer").options == ["是", "否", "不适用"]
    assert len(at.feedback) == 1
    assert at.segmented_control(key=P + "score").options == [str(i) for i in range(11)]
    for key in ("phone", "mail", "idno"):
        assert at.text_input(key=P + key) is not None
    assert at.selectbox(key=P + "event") is not None and at.text_input(key=P + "event__search") is not None
    assert len(at.selectbox(key=P + "cause").options) > 5
    owners = at.selectbox(key=P + "owner").options
    assert "李干事" in owners and "王主任" in owners
    assert any(m.label == "计数" for m in at.metric)
    # the note is shown escaped: no HTML and no live link
    note = [m.value for m in at.markdown if "不要" in m.value]
    assert note and "<b>" not in note[0].replace("\\<", "").replace("\\>", "") and "\\[" in note[0]
    assert P + "kind_detail" not in [w.key for w in at.text_input]


def test_save_every_type_and_show_the_record_number(form: PageEnv) -> None:
    event_id = _event(form)
    at = form.app(entry_page, "staff", SLUG).run()
    _fill_minimum(at)
    at.text_area(key=P + "story").input("来访咨询")
    at.number_input(key=P + "people").set_value(12)
    at.number_input(key=P + "ratio").set_value(0.25)
    at.number_input(key=P + "amount").set_value(1234.5)
    at.datetime_input(key=P + "moment").set_value(datetime(2026, 3, 15, 9, 30))
    at.time_input(key=P + "clock").set_value(time(14, 5))
    at.selectbox(key=P + "kind").set_value("b")
    at.multiselect(key=P + "tags").set_value(["a", "b"])
    at.toggle(key=P + "agree").set_value(True)
    at.radio(key=P + "checks__x__answer").set_value("yes")
    at.radio(key=P + "checks__y__answer").set_value("na")
    at.text_input(key=P + "checks__y__note").input("无需提供")
    at.feedback[0].set_value(3)
    at.segmented_control(key=P + "score").set_value(7)
    at.text_input(key=P + "phone").input("13812345678")
    at.text_input(key=P + "mail").input("Li@Example.COM")
    at.text_input(key=P + "idno").input(make_id("440103", "19900506", 123))
    at.selectbox(key=P + "event").set_value(event_id)
    at.selectbox(key=P + "owner").set_value("manager")
    at.selectbox(key=P + "cause").select_index(0)
    at.run()
    button(at, "保存").click().run()
    assert not at.exception
    rows = _records(form)
    assert len(rows) == 1
    data = rows[0].data
    assert data["name"] == "张三" and data["day"] == "2026-03-15" and data["story"] == "来访咨询"
    assert data["people"] == 12 and data["ratio"] == "0.25" and data["amount"] == "1234.50"
    assert data["moment"] == "2026-03-15T09:30:00" and data["clock"] == "14:05"
    assert data["kind"] == "b" and data["tags"] == ["a", "b"] and data["agree"] is True
    assert data["checks"] == {"x": {"answer": "yes", "note": ""}, "y": {"answer": "na", "note": "无需提供"}}
    assert data["stars"] == 4 and data["score"] == 7  # the fourth star; 7 of 0-10
    assert data["phone"] == "13812345678" and data["mail"] == "Li@example.com"
    assert data["idno"] == make_id("440103", "19900506", 123)
    assert data["event"] == event_id and data["owner"] == "manager"
    assert "hint" not in data and "taps" not in data
    success = [s.value for s in at.success]
    assert success and f"#{rows[0].id}" in success[0]
    link = at.page_link[0]
    assert link.proto.page == f"{SLUG}-records"  # the link opens the records page ...
    assert link.proto.query_string == f"id={rows[0].id}"  # ... on this record
    # after a plain save the form is replaced by the result: no second click can save twice
    assert P + "save" not in [b.key for b in at.button]
    with session_scope(form.engine, write=False) as s:
        assert s.exec(select(AuditEvent).where(AuditEvent.action == "create")).all()


def test_live_show_if_without_submitting(form: PageEnv) -> None:
    at = form.app(entry_page, "staff", SLUG).run()
    assert P + "kind_detail" not in [w.key for w in at.text_input]
    at.selectbox(key=P + "kind").set_value("other").run()
    detail = at.text_input(key=P + "kind_detail")
    assert detail.label.startswith("其他类别说明") and detail.label.endswith(":red[\\*]")
    assert not _records(form)  # nothing was saved: the field appeared on the rerun
    at.selectbox(key=P + "kind").set_value("a").run()
    assert P + "kind_detail" not in [w.key for w in at.text_input]


def test_invalid_id_number_error_beside_field_keeps_typed_values(form: PageEnv) -> None:
    at = form.app(entry_page, "staff", SLUG).run()
    _fill_minimum(at, "李四")
    good = make_id("440103", "19900506", 123)
    bad = good[:-1] + ("0" if good[-1] != "0" else "1")
    at.text_input(key=P + "idno").input(bad)
    at.text_area(key=P + "story").input("不要丢失我")
    at.run()
    button(at, "保存").click().run()
    assert not _records(form)
    errors = [e.value for e in at.error]
    assert any("校验" in unescape(e) for e in errors), errors
    # the field's error is drawn right after the ID widget (before the next field's widget)
    flat = _flatten(at.main)
    id_pos = next(i for i, el in enumerate(flat) if getattr(el, "key", None) == P + "idno")
    after = flat[id_pos + 1:]
    next_widget = next(i for i, el in enumerate(after) if getattr(el, "key", None))
    assert any(type(el).__name__ == "Error" and "校验" in unescape(el.value) for el in after[:next_widget])
    # summary at the bottom, typed values kept
    assert any("需要修改" in e for e in errors)
    assert at.text_input(key=P + "idno").value == bad
    assert at.text_input(key=P + "name").value == "李四"
    assert at.text_area(key=P + "story").value == "不要丢失我"


def _flatten(block) -> list:
    out = []

    def walk(node) -> None:
        children = getattr(node, "children", None)
        if isinstance(children, dict):
            for child in children.values():
                walk(child)
        else:
            out.append(node)

    walk(block)
    return out


def test_id_number_shows_birth_sex_age_and_elderly_hint(form: PageEnv) -> None:
    at = form.app(entry_page, "staff", SLUG).run()
    old = make_id("440103", "19500307", 124)  # even sequence: female
    at.text_input(key=P + "idno").input(old).run()
    shown = texts(at)
    assert "1950\\-03\\-07" in shown or "1950-03-07" in shown
    assert "女" in shown
    assert "60岁以上老年人" in shown
    age = date.today().year - 1950 - ((date.today().month, date.today().day) < (3, 7))
    assert f"{age} 岁" in unescape(shown)
    young = make_id("440103", "19950101", 123)
    at.text_input(key=P + "idno").input(young).run()
    assert "60岁以上老年人" not in texts(at)


def test_save_and_new_clears_the_form(form: PageEnv) -> None:
    at = form.app(entry_page, "staff", SLUG).run()
    _fill_minimum(at, "王五")
    at.selectbox(key=P + "kind").set_value("a")
    at.run()
    button(at, "保存并新建").click().run()
    rows = _records(form)
    assert len(rows) == 1 and rows[0].data["name"] == "王五"
    assert any(f"#{rows[0].id}" in s.value for s in at.success)
    fresh = f"entry__{SLUG}__1__"
    assert at.text_input(key=fresh + "name").value == ""
    assert at.date_input(key=fresh + "day").value is None
    assert at.selectbox(key=fresh + "kind").value is None
    # and a second record can be entered straight away
    at.text_input(key=fresh + "name").input("赵六")
    at.date_input(key=fresh + "day").set_value(date(2026, 3, 16))
    at.run()
    button(at, "保存并新建").click().run()
    assert [r.data["name"] for r in _records(form)] == ["王五", "赵六"]


def test_role_without_submit_is_refused(form: PageEnv) -> None:
    at = form.app(entry_page, "viewer", SLUG).run()
    assert any("不能" in e.value for e in at.error)
    assert not at.text_input and not at.button


def test_english_labels(form: PageEnv) -> None:
    at = form.app(entry_page, "staff", SLUG, lang="en").run()
    assert at.text_input(key=P + "name").label.startswith("Name")
    assert at.selectbox(key=P + "kind").options == ["Kind A", "Kind B", "Other"]
    assert any(b.label == "Save and new" for b in at.button)


def test_child_form_from_parent_query_param(form: PageEnv) -> None:
    event_id = _event(form, "村居普法")
    at = form.app(entry_page, "outreach", "event_signup", parent=event_id).run()
    assert not at.exception
    assert "村居普法" in unescape(texts(at))
    spec_keys = [w.key for w in at.text_input]
    name_key = next(k for k in spec_keys if k.endswith("__name"))
    at.text_input(key=name_key).input("报名人")
    _fill_required_signup(form, at)
    button(at, "保存").click().run()
    rows = _records(form, "event_signup")
    assert len(rows) == 1 and rows[0].parent_id == event_id


def test_child_form_without_parent_asks_to_pick_one(form: PageEnv) -> None:
    first = _event(form, "第一场")
    second = _event(form, "第二场")
    at = form.app(entry_page, "outreach", "event_signup").run()
    picker = at.selectbox(key="entry__event_signup__parent")
    assert any("第二场" in o for o in picker.options) and any("第一场" in o for o in picker.options)
    assert not any(k and k.endswith("__name") for k in [w.key for w in at.text_input])  # no form before a pick
    picker.set_value(second).run()
    name_key = next(k for k in [w.key for w in at.text_input] if k and k.endswith("__name"))
    at.text_input(key=name_key).input("报名人乙")
    _fill_required_signup(form, at)
    button(at, "保存").click().run()
    rows = _records(form, "event_signup")
    assert len(rows) == 1 and rows[0].parent_id == second != first


def _fill_required_signup(env: PageEnv, at) -> None:
    from engine.forms import get_spec

    spec = get_spec(env.engine, "event_signup")
    prefix = "entry__event_signup__0__"
    for f in spec.active_fields:
        if not f.required or f.key == "name" or f.show_if is not None:
            continue
        key = prefix + f.key
        if f.type in ("select", "reference"):
            at.selectbox(key=key).select_index(0)
        elif f.type in ("text", "textarea"):
            (at.text_input if f.type == "text" else at.text_area)(key=key).input("测试")
        elif f.type == "phone":
            at.text_input(key=key).input("13812345678")
        elif f.type == "multiselect" and f.choices:
            at.multiselect(key=key).set_value([f.choices[0].value])
    at.run()
