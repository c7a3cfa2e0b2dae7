"""The navigation per role, over the built-in forms: a page the role may not use is absent (so its
URL is refused by Streamlit), and the page functions refuse again when called with a lesser role."""

from __future__ import annotations

import pytest

from engine.access import SYSTEM, Actor
from engine.forms import publish
from tests.app.conftest import NAMES, current_url, open_url, registered_urls, texts
from ui import nav

ALL_FORMS = ("intake", "consultation", "outreach_event", "event_signup", "archive_checklist",
             "hearing_observation", "return_visit", "integrity_check", "training_record")
BOTH = {url for slug in ALL_FORMS for url in (slug, f"{slug}-records")}

# From the access lists of the built-in templates (data/forms/*.yaml) and DESIGN §7.
FORM_PAGES = {
    "admin": BOTH,
    "manager": BOTH,
    "staff": BOTH,
    "outreach": {"outreach_event", "outreach_event-records", "event_signup", "event_signup-records"},
    "viewer": {"outreach_event-records", "training_record-records"},
}
ALWAYS = {nav.HOME_URL, "my-account"}


def tool_pages(role: str) -> set[str]:
    """Tool pages whose module exists (some are written by others, later) and the role may use."""
    actor = Actor(role, role, form_editor=role == "admin")
    viewable = {url.removesuffix("-records") for url in FORM_PAGES[role] if url.endswith("-records")}
    return {t.url for t in nav.TOOLS if nav.tool_allowed(actor, t, viewable)}


@pytest.mark.parametrize("role", ["admin", "manager", "staff", "outreach", "viewer"])
def test_each_role_sees_exactly_its_pages(app_env, role):
    items = nav.nav_items(app_env.engine, app_env.actor(role), "zh")
    urls = {i.url_path for i in items}
    assert urls == FORM_PAGES[role] | ALWAYS | tool_pages(role)
    assert ("user-admin" in urls) is (role == "admin")
    assert ("outreach-event" in urls) is nav._module_exists("pages.event")  # every role may view events
    if role in ("outreach", "viewer"):
        assert not urls & {"deadlines", "import-data", "intake-settings"}
    if role in ("outreach", "viewer"):
        assert not urls & {"intake", "intake-records", "consultation-records"}

    # the real app registers exactly those pages with st.navigation (the default page is "")
    at = app_env.app(role).run()
    assert not at.exception
    assert registered_urls(at) == (urls - {nav.HOME_URL}) | {""}


def test_pages_are_grouped_by_category_with_titles_in_the_users_language(app_env):
    items = nav.nav_items(app_env.engine, app_env.actor("staff"), "zh")
    by_url = {i.url_path: i for i in items}
    assert by_url["intake"].title == "法律援助申请登记" and by_url["intake"].section == "案件办理"
    assert by_url["intake-records"].title == "法律援助申请登记·记录"
    assert by_url["outreach_event"].section == "宣传活动"
    assert by_url["hearing_observation"].section == "质量管理"
    assert by_url["my-account"].section == "我的账户"
    assert items[0].kind == "home"
    en = {i.url_path: i for i in nav.nav_items(app_env.engine, app_env.actor("staff"), "en")}
    assert en["intake"].title == "Legal aid application" and en["intake"].section == "Cases"
    assert en["intake-records"].title == "Legal aid application — records"


def test_sidebar_shows_name_and_role(app_env):
    at = app_env.app("outreach").run()
    sidebar = " ".join(str(m.value) for m in at.sidebar.markdown)
    assert NAMES["outreach"] in sidebar and "宣传人员" in sidebar


@pytest.mark.parametrize(("role", "url"), [("viewer", "intake-records"), ("outreach", "intake"),
                                           ("staff", "user-admin"), ("viewer", "consultation")])
def test_a_forbidden_url_is_refused_by_streamlit(app_env, role, url):
    at = app_env.app(role).run()
    open_url(at, url)
    assert not at.exception
    assert current_url(at) == ""  # Streamlit fell back to the default (home) page
    assert "法律援助申请登记" not in texts(at)


def test_an_allowed_url_opens_its_page(app_env):
    at = app_env.app("admin").run()
    open_url(at, "user-admin")
    assert current_url(at) == "user-admin"
    assert "用户管理" in texts(at)


def test_logged_out_every_url_shows_the_login(app_env):
    at = app_env.app().run()
    open_url(at, "intake-records")
    assert registered_urls(at) == {""}
    assert {ti.label for ti in at.text_input} == {"用户名", "密码"}


def test_a_newly_published_form_appears_without_restart(app_env):
    at = app_env.app("staff").run()
    assert "visit_log" not in registered_urls(at)
    publish(app_env.engine, {
        "slug": "visit_log", "title": {"zh": "来访登记", "en": "Visit log"}, "category": "cases",
        "fields": [{"key": "name", "type": "text", "label": {"zh": "姓名", "en": "Name"}, "required": True}],
        "access": {"submit": ["admin", "staff"], "view": ["admin", "staff", "manager"]},
    }, actor=SYSTEM)
    at.run()
    assert {"visit_log", "visit_log-records"} <= registered_urls(at)
    manager = {i.url_path for i in nav.nav_items(app_env.engine, app_env.actor("manager"), "zh")}
    assert "visit_log-records" in manager and "visit_log" not in manager


# --- the page functions refuse on their own (defence in depth) ----------------------------------------
def records_page(slug):
    from pages.records import render_records

    render_records(slug)


def entry_page(slug):
    from pages.entry import render_entry

    render_entry(slug)


def guarded_records(slug):
    from ui import nav
    from ui.state import db

    nav._form_page(db(), "records", "pages.records", "render_records", slug)


@pytest.mark.parametrize(("page", "role", "slug"), [
    (records_page, "viewer", "intake"),
    (records_page, "outreach", "consultation"),
    (entry_page, "outreach", "intake"),
    (entry_page, "viewer", "training_record"),
    (guarded_records, "viewer", "intake"),
])
def test_a_forbidden_page_function_refuses_and_shows_no_data(app_env, page, role, slug):
    at = app_env.page(page, role, slug).run()
    assert not at.exception
    assert at.error, "a refusal"
    assert not at.dataframe and not at.table and not at.text_input


def test_no_url_path_is_the_name_of_a_file_in_pages():
    """Streamlit treats pages/ as an old-style page folder until st.navigation runs (AppTest on every
    run): a url_path equal to a file name there would run that file instead of app.py."""
    stems = nav._page_stems()
    urls = {nav.HOME_URL, nav.SETUP_URL, nav.LOGIN_URL} | {t.url for t in nav.TOOLS}
    assert not urls & stems
    assert all(nav.entry_url(stem) != stem for stem in stems)
