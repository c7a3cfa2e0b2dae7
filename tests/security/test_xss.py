"""XSS and Markdown injection: script / HTML payloads typed into every text-like field of every built-in
form (text, textarea, checklist notes), into form titles, descriptions, labels, help texts and choice
labels published through engine.forms.publish (as the designer does), and into reference-list item
names. They must render inert:

- in AppTest: no element that allows raw HTML carries a payload; every Markdown body, widget label
  and help text that shows a payload shows it escaped (the raw payload text, which Markdown would
  turn into a link, an image, a colour directive or HTML, never appears unescaped);
- in Chromium: on the entry page, the records list and the record page, no payload ran
  (`window.__x` stays undefined) and no element was injected (no <script> in the app, nothing with
  an onerror / onload attribute, no <img src=x>, no link to javascript:).
"""

from __future__ import annotations

import copy
import re

import pytest

from engine.access import SYSTEM, Actor
from engine.errors import ValidationFailed
from engine.forms import get_spec, list_forms, publish, save_choice_list
from engine.storage import create
from tests.app.conftest import open_url
from tests.security.conftest import SAMPLES, snapshot
from ui import nav
from ui.widgets import md_escape

PAYLOADS = (
    "<script>window.__x=1</script>",
    '<img src=x onerror="window.__x=1">',
    '"><svg onload=window.__x=1>',
    "javascript:window.__x=1",
    "[x](javascript:window.__x=1)",
    '![x](x" onerror="window.__x=1)',
    ":red[红色指令] **粗体** <b>b</b>",
    '<a href="javascript:window.__x=1">链接</a>',
)
SHORT = "<svg onload=__x=1>"  # for fields of at most 30 characters
ADMIN = Actor("admin", "admin", True)
STATS: dict[str, int] = {}

# Markdown constructs a payload would smuggle in (what an unescaped payload looks like in a body).
RAW = re.compile(r"(?<!\\)<(script|img|svg|a|b)\b|(?<!\\)\]\((?:javascript|x)|(?<!\\):red(?<!\\)\[|(?<!\\)!(?<!\\)\[x")


def _payload_for(f, i: int) -> str | None:
    text = PAYLOADS[i % len(PAYLOADS)]
    if f.max_length is not None and len(text) > f.max_length:
        text = SHORT if len(SHORT) <= f.max_length else None
    return text


def plant_record_payloads(engine, parents: dict[str, int]) -> dict[str, int]:
    """One record per built-in form whose every text / textarea field and checklist note holds a payload."""
    out: dict[str, int] = {}
    n = 0
    for info in sorted(list_forms(engine), key=lambda f: f.parent is not None):
        if info.slug not in SAMPLES["records"]:
            continue
        spec = get_spec(engine, info.slug)
        raw = copy.deepcopy(SAMPLES["records"][info.slug]["valid"][0]["data"])
        for f in spec.active_fields:
            if f.reference_form and f.key in raw:
                raw[f.key] = parents["intake"]
            if f.type in ("text", "textarea") and not f.pattern:
                value = _payload_for(f, n)
                n += 1
                if value is not None:
                    raw[f.key] = value if f.type == "textarea" else value.replace("\n", " ")
            elif f.type == "checklist" and isinstance(raw.get(f.key), dict):
                for item in raw[f.key].values():
                    item["note"] = PAYLOADS[n % len(PAYLOADS)]
                    n += 1
        parent = parents.get(spec.parent) if spec.parent else None
        try:
            sub = create(engine, info.slug, raw, actor=ADMIN, parent_id=parent)
        except ValidationFailed as exc:  # a field refuses some character: store the others
            for key in exc.errors:
                raw.pop(key, None)
            sub = create(engine, info.slug, raw, actor=ADMIN, parent_id=parent)
        out[info.slug] = int(sub.id)
        STATS["record_fields"] = STATS.get("record_fields", 0) + sum(
            1 for v in raw.values() if isinstance(v, str) and ("__x" in v or "red[" in v))
    return out


def publish_payload_labels(engine) -> None:
    """As the designer would: a new version of the training record form whose title, description,
    labels, help texts and choice labels are payloads; and payloads as reference-list item names."""
    spec = get_spec(engine, "training_record").model_dump(mode="json", exclude_none=True, by_alias=True)
    spec["title"] = {"zh": "培训" + PAYLOADS[0], "en": "Training" + PAYLOADS[1]}
    spec["description"] = {"zh": PAYLOADS[4] + PAYLOADS[6], "en": PAYLOADS[5]}
    for i, f in enumerate(spec["fields"]):
        f["label"] = {"zh": f"{f['label']['zh']}{PAYLOADS[i % len(PAYLOADS)]}", "en": PAYLOADS[(i + 1) % len(PAYLOADS)]}
        f["help"] = {"zh": PAYLOADS[(i + 2) % len(PAYLOADS)], "en": PAYLOADS[(i + 3) % len(PAYLOADS)]}
        for j, choice in enumerate(f.get("choices") or []):
            choice["label"] = {"zh": f"{choice['value']}{PAYLOADS[(i + j) % len(PAYLOADS)]}", "en": PAYLOADS[j % 3]}
    publish(engine, spec, actor=SYSTEM, note="payloads")
    STATS["designer_texts"] = STATS.get("designer_texts", 0) + 3 + 2 * len(spec["fields"])
    courts = [{"value": "xiashan_court", "label": {"zh": "法院" + PAYLOADS[1], "en": PAYLOADS[4]}},
              {"value": "evil_court", "label": {"zh": PAYLOADS[6], "en": PAYLOADS[0]}}]
    save_choice_list(engine, "courts", {"zh": "审理机关" + PAYLOADS[2], "en": "Courts"}, courts, actor=SYSTEM)
    STATS["list_names"] = STATS.get("list_names", 0) + 3


def _strings(message) -> list[tuple[str, str]]:
    """(field name, value) of every string in a proto message, nested ones included."""
    out: list[tuple[str, str]] = []
    for desc, value in message.ListFields():
        values = value if getattr(desc, "is_repeated", False) else [value]
        for v in values:
            if desc.type == desc.TYPE_STRING:
                out.append((desc.name, v))
            elif desc.type == desc.TYPE_MESSAGE:
                out += _strings(v)
    return out


# Proto fields Streamlit renders as Markdown (bodies, labels, help texts, radio options and captions).
MARKDOWN_FIELDS = {"body", "label", "help", "captions"}
MARKDOWN_OPTIONS = {"Radio", "ButtonGroup"}  # widgets whose options are Markdown too


def assert_inert(at, where: str) -> int:
    """No payload can act in this run's elements; returns how many payload texts were shown (escaped)."""
    assert not at.exception, f"{where}: {at.exception}"
    shown = 0
    for node in at._tree:
        proto = getattr(node, "proto", None)
        if proto is None:
            continue
        kind = type(node).__name__
        if kind == "Html" or getattr(proto, "allow_html", False) or getattr(proto, "unsafe_allow_html", False):
            assert "__x" not in str(proto.body) and "red[" not in str(proto.body), \
                f"{where}: a payload in an element that allows HTML: {proto.body[:200]}"
        for name, text in _strings(proto):
            if "__x" not in text and "红色指令" not in text:
                continue
            if name in MARKDOWN_FIELDS or (name == "options" and kind in MARKDOWN_OPTIONS):
                bad = RAW.search(text)
                assert bad is None, f"{where}: unescaped payload in {kind}.{name}: {text[:160]!r}"
            shown += 1
    return shown


def test_payloads_render_inert_in_every_form_page(sec_env):
    engine = sec_env.engine
    planted = plant_record_payloads(engine, sec_env.ids)
    publish_payload_labels(engine)
    training = create(engine, "training_record", copy.deepcopy(SAMPLES["records"]["training_record"]["valid"][0]["data"]),
                      actor=ADMIN)
    planted["training_record_v2"] = int(training.id)
    before = snapshot(engine)
    shown = 0
    runs = 0
    for role in ("admin", "staff"):
        at = sec_env.app(role).run()
        runs += 1
        shown += assert_inert(at, f"{role} home")
        for info in list_forms(engine):
            for url in (nav.entry_url(info.slug), nav.records_url(info.slug)):
                at.query_params.clear()
                open_url(at, url)
                shown += assert_inert(at, f"{role} /{url}")
                runs += 1
            for key in (info.slug, f"{info.slug}_v2"):
                if key in planted:
                    at.query_params.clear()
                    at.query_params["id"] = str(planted[key])
                    open_url(at, nav.records_url(info.slug))
                    assert not at.error, f"{role}: {[e.value for e in at.error]}"
                    shown += assert_inert(at, f"{role} record {key}")
                    runs += 1
        at.session_state["reflists__pick"] = "courts"
        at.session_state["import_form"] = "training_record"
        for url in [t.url for t in nav.TOOLS]:
            at.query_params.clear()
            if url == "outreach-event":
                at.query_params["id"] = str(planted["outreach_event"])
            if url == "live-tally":
                at.query_params["event"] = str(planted["outreach_event"])
            if url in ("form-designer", "dashboards"):
                at.query_params["form"] = "training_record"
            open_url(at, url)
            shown += assert_inert(at, f"{role} /{url}")
            runs += 1
    assert shown > 50, "the payloads were not on screen: the test would prove nothing"
    # the escaped text is what the user sees: e.g. a record's name shown literally
    at.query_params.clear()
    at.query_params["id"] = str(planted["consultation"])
    open_url(at, nav.records_url("consultation"))
    bodies = "\n".join(str(m.proto.body) for m in at.markdown)
    assert any(md_escape(p) in bodies for p in PAYLOADS), "no payload shown escaped on the record page"
    assert snapshot(engine) == before
    STATS["apptest_runs"] = runs
    STATS["payloads_shown"] = shown


def import_page() -> None:
    from pages.import_records import render_import

    render_import()


def test_payloads_in_an_imported_files_headers_and_cells_render_inert(sec_env):
    """Column headers and cells of an uploaded CSV are shown on the import page (mapping labels,
    unknown-column notes, the problems table): all inert."""
    header = ["主题" + PAYLOADS[4], PAYLOADS[0], PAYLOADS[6], "培训日期"]
    rows = [[PAYLOADS[1], PAYLOADS[2], PAYLOADS[7], "not a date " + PAYLOADS[5]]]
    csv = "\n".join(",".join('"' + c.replace('"', '""') + '"' for c in r) for r in [header, *rows]).encode("utf-8")
    at = sec_env.page(import_page, "admin")
    at.session_state["import_form"] = "training_record"
    at.run()
    at.file_uploader(key="import_file").set_value(("payload.csv", csv, "text/csv")).run()
    shown = assert_inert(at, "import mapping")
    at.button(key="import_check").click().run()
    shown += assert_inert(at, "import check")
    assert shown >= 3
    STATS["import_cells"] = len(header) + len(rows[0])


DOM_CHECK = """() => {
  const app = document.querySelector('[data-testid="stApp"]') || document.body;
  const bad = [...app.querySelectorAll('script, [onerror], [onload], img[src="x"], a[href^="javascript:" i], '
    + 'iframe[src^="javascript:" i], object, embed')]
    .filter(e => !(e.tagName === 'IFRAME' && (e.getAttribute('src') || '').startsWith('http')))
    .map(e => e.outerHTML.slice(0, 200));
  return {x: typeof window.__x, bad: bad, text: app.innerText};
}"""


@pytest.mark.browser
def test_payloads_run_nowhere_in_chromium(sec_server, new_context):
    """The entry page, the records list and record pages holding the payloads, as an administrator:
    no payload ran and none became an element (help tooltips hovered too)."""
    from tests.security.conftest import PASSWORDS, browser_login, wait_idle

    engine = sec_server.engine
    planted = plant_record_payloads(engine, sec_server.seeded.ids)
    publish_payload_labels(engine)
    page = new_context().new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    browser_login(page, sec_server.url, "admin", PASSWORDS["admin"])
    targets = [nav.entry_url("training_record"), nav.records_url("training_record"), nav.entry_url("hearing_observation")]
    targets += [f"{nav.records_url(slug)}?id={planted[slug]}" for slug in
                ("intake", "consultation", "hearing_observation", "training_record", "event_signup")]
    targets += [f"outreach-event?id={planted['outreach_event']}"]
    seen_text = ""
    for target in targets:
        page.goto(f"{sec_server.url}/{target}")
        page.locator('[data-testid="stMain"] h1').first.wait_for()
        wait_idle(page)
        page.wait_for_timeout(300)
        for icon in page.locator('[data-testid="stMain"] [data-testid="stTooltipIcon"]').all()[:3]:
            icon.hover()
            page.wait_for_timeout(200)
        result = page.evaluate(DOM_CHECK)
        assert result["x"] == "undefined", f"/{target}: a payload ran"
        assert not result["bad"], f"/{target}: injected elements {result['bad']}"
        seen_text += result["text"]
        STATS["browser_pages"] = STATS.get("browser_pages", 0) + 1
    assert not dialogs
    assert "window.__x=1" in seen_text, "the payloads were not on screen: the test would prove nothing"
    # control: the same check does see an element that is injected for real
    page.evaluate("""document.querySelector('[data-testid="stApp"]').insertAdjacentHTML('beforeend',
                     '<img src=x onerror="window.__x=1">')""")
    page.wait_for_function("typeof window.__x !== 'undefined'")
    control = page.evaluate(DOM_CHECK)
    assert control["x"] == "number" and control["bad"], "the DOM check cannot see an injected element"
