"""The navigation: built on every run from the actor's role and the published forms.

`nav_items(engine, actor, lang)` decides which pages exist for this actor (pure: no Streamlit
calls; cached on the "forms" change stamp, so a newly published form appears at the next run);
`build_navigation(engine, actor)` turns them into `st.Page`s grouped by section for
`st.navigation`. A page the role may not use is simply absent, so Streamlit itself refuses its URL;
each page function checks the role again when it runs (defence in depth), and the form pages are
also wrapped in a check here.

Pages:
- home (default page, `pages.home.render_home`);
- per form the actor may use, grouped by the form's category: entry (`pages.entry.render_entry`,
  url `<slug>`) when the role may submit, records (`pages.records.render_records`, url
  `<slug>-records`) when it may view;
- tools from `TOOLS` whose module exists and whose ability the role has (users, account, ...).
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import streamlit as st
from sqlalchemy.engine import Engine

from engine import forms, stamps
from engine.access import Actor, form_allows
from ui.i18n import translate

HOME_URL = "start"
PAGES_DIR = Path(__file__).resolve().parent.parent / "pages"
RECORDS_SUFFIX = "-records"
ENTRY_ICON = ":material/edit_note:"
RECORDS_ICON = ":material/table_rows:"

# Category of a form -> nav.yaml key of its section title; listed in this order, others after.
CATEGORY_KEYS: dict[str, str] = {
    "cases": "nav.cat_cases",
    "outreach": "nav.cat_outreach",
    "quality": "nav.cat_quality",
    "integrity": "nav.cat_integrity",
    "general": "nav.cat_general",
}
SECTION_KEYS: dict[str, str] = {
    "main": "nav.section_main",
    "tools": "nav.section_tools",
    "admin": "nav.section_admin",
    "account": "nav.section_account",
}


@dataclass(frozen=True)
class Tool:
    """A page that is not about one form. Shown when `module` exists, the role has `ability` and,
    with `form`, the role may view that form."""

    url: str  # url path: never the name of a pages/*.py file (see _page_stems)
    module: str
    function: str
    ability: str | None  # None: every logged-in user
    title_key: str
    icon: str
    section: str  # key of SECTION_KEYS
    form: str | None = None


# Pages written by other modules join the navigation by adding a line here (other pages link to
# these url paths, e.g. pages/event.py and pages/tally.py).
TOOLS: tuple[Tool, ...] = (
    Tool("outreach-event", "pages.event", "render_event", None, "nav.event", ":material/campaign:", "tools",
         form="outreach_event"),
    Tool("live-tally", "pages.tally", "render_tally", "tally", "nav.tally", ":material/touch_app:", "tools"),
    Tool("deadlines", "pages.intake_tools", "render_deadlines_page", "workflow", "nav.deadlines",
         ":material/alarm:", "tools"),
    Tool("dashboards", "pages.dashboard", "render_dashboard", "dashboards", "nav.dashboard",
         ":material/monitoring:", "tools"),
    Tool("year-report", "pages.report", "render_report", "reports", "nav.reports", ":material/summarize:", "tools"),
    Tool("import-data", "pages.import_records", "render_import", "import", "nav.import", ":material/upload_file:",
         "tools"),
    Tool("form-designer", "pages.designer", "render_designer", "forms.design", "nav.designer",
         ":material/design_services:", "admin"),
    Tool("reference-lists", "pages.reference_lists", "render_reference_lists", "reference.edit", "nav.reference",
         ":material/list_alt:", "admin"),
    Tool("user-admin", "pages.users", "render_users", "users", "nav.users", ":material/group:", "admin"),
    Tool("intake-settings", "pages.intake_tools", "render_intake_settings", "settings", "nav.intake_settings",
         ":material/tune:", "admin"),
    Tool("data-retention", "pages.retention", "render_retention", "settings", "nav.retention",
         ":material/auto_delete:", "admin"),
    Tool("audit-log", "pages.audit", "render_audit", "audit.view", "nav.audit", ":material/history:", "admin"),
    Tool("backups", "pages.backup", "render_backup", "backup", "nav.backup", ":material/backup:", "admin"),
    Tool("my-account", "pages.account", "render_account", None, "nav.account", ":material/person:", "account"),
)
SETUP_URL = "first-run"
LOGIN_URL = "login"
RESERVED_URLS = frozenset({HOME_URL, SETUP_URL, LOGIN_URL} | {tool.url for tool in TOOLS})


def _page_stems() -> frozenset[str]:
    """Names of the files in pages/. Streamlit (and AppTest on every run) still treats pages/ as
    an old-style multipage folder until st.navigation runs: a url_path equal to a file's name
    would run that file instead of app.py (a blank page). No url_path here may be one of them."""
    return frozenset(p.stem for p in PAGES_DIR.glob("*.py"))


@dataclass(frozen=True)
class NavItem:
    section: str  # section title ("" for the pages above every section)
    kind: str  # "home" | "entry" | "records" | "tool"
    url_path: str
    title: str
    icon: str
    module: str
    function: str
    slug: str | None = None


def entry_url(slug: str) -> str:
    return slug if slug not in RESERVED_URLS | _page_stems() else f"form-{slug}"


def records_url(slug: str) -> str:
    return f"{slug}{RECORDS_SUFFIX}"


_FOUND: set[str] = set()


def _module_exists(name: str) -> bool:
    """Whether page module `name` exists (remembered once found; a missing one is looked for again)."""
    if name in _FOUND:
        return True
    try:
        found = importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        found = False
    if found:
        _FOUND.add(name)
    return found


def _category_title(category: str, lang: str) -> str:
    key = CATEGORY_KEYS.get(category)
    return translate(key, lang) if key else category


def _form_items(engine: Engine, actor: Actor, lang: str) -> list[NavItem]:
    order = {c: i for i, c in enumerate(CATEGORY_KEYS)}
    infos = sorted(forms.list_forms(engine), key=lambda f: (order.get(f.category, len(order)), f.category))
    items: list[NavItem] = []
    for info in infos:
        spec = forms.get_spec(engine, info.slug)
        section = _category_title(info.category, lang)
        label = info.label(lang)
        if form_allows(actor, spec, "submit"):
            items.append(NavItem(section, "entry", entry_url(info.slug), label, ENTRY_ICON,
                                 "pages.entry", "render_entry", info.slug))
        if form_allows(actor, spec, "view"):
            items.append(NavItem(section, "records", records_url(info.slug),
                                 translate("nav.records_title", lang, form=label), RECORDS_ICON,
                                 "pages.records", "render_records", info.slug))
    return items


def tool_allowed(actor: Actor, tool: Tool, viewable: set[str]) -> bool:
    """Whether `actor` gets `tool` in the navigation (`viewable`: slugs of the forms they may view)."""
    if not _module_exists(tool.module):
        return False
    if tool.ability is not None and not actor.can(tool.ability):
        return False
    return tool.form is None or tool.form in viewable


def _tool_items(actor: Actor, lang: str, viewable: set[str]) -> list[NavItem]:
    items = []
    for section in ("tools", "admin", "account"):
        for tool in TOOLS:
            if tool.section == section and tool_allowed(actor, tool, viewable):
                items.append(NavItem(translate(SECTION_KEYS[section], lang), "tool", tool.url,
                                     translate(tool.title_key, lang), tool.icon, tool.module, tool.function))
    return items


_CACHE: dict[tuple, list[NavItem]] = {}
_CACHE_LOCK = threading.Lock()
_CACHE_MAX = 256


def nav_items(engine: Engine, actor: Actor, lang: str) -> list[NavItem]:
    """Every page this actor may use, in navigation order. Cached on the "forms" change stamp
    (list_forms counts records: not something to run on every rerun)."""
    key = (engine.url.render_as_string(hide_password=True), stamps.current(engine, "forms"),
           actor.role, actor.form_editor, lang)
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
    if cached is not None:
        return cached
    items = [NavItem("", "home", HOME_URL, translate("nav.home", lang), ":material/home:",
                     "pages.home", "render_home")]
    form_items = _form_items(engine, actor, lang)
    viewable = {i.slug for i in form_items if i.kind == "records" and i.slug}
    items += form_items
    items += _tool_items(actor, lang, viewable)
    with _CACHE_LOCK:
        if len(_CACHE) >= _CACHE_MAX:
            _CACHE.clear()
        _CACHE[key] = items
    return items


# --- Streamlit pages ---------------------------------------------------------------------------
def _call(module: str, function: str, *args: str) -> None:
    render = getattr(importlib.import_module(module), function, None) if _module_exists(module) else None
    if render is None:
        st.info(translate("nav.page_pending", _lang()))
        return
    render(*args)


def _lang() -> str:
    from ui.state import lang

    return lang()


def _form_page(engine: Engine, kind: str, module: str, function: str, slug: str) -> None:
    """A form page, with the role checked again when it runs."""
    from ui.auth import current_actor, refuse

    actor = current_actor()
    action = "submit" if kind == "entry" else "view"
    if actor is None or not form_allows(actor, forms.get_spec(engine, slug), action):
        refuse()
    _call(module, function, slug)


def page_function(engine: Engine, item: NavItem) -> Callable[[], None]:
    if item.slug is not None:
        return functools.partial(_form_page, engine, item.kind, item.module, item.function, item.slug)
    return functools.partial(_call, item.module, item.function)


def build_navigation(engine: Engine, actor: Actor, lang: str) -> dict[str, list[st.Page]]:
    """Section title -> pages, for `st.navigation`."""
    sections: dict[str, list[st.Page]] = {}
    for item in nav_items(engine, actor, lang):
        page = st.Page(page_function(engine, item), title=item.title, url_path=item.url_path, icon=item.icon,
                       default=item.kind == "home")
        sections.setdefault(item.section, []).append(page)
    return sections
