"""Role matrix: every page × every role × every way in.

Ways in: the navigation (what st.navigation registers for the role), the URL path (open_url: what
typing /<path> does), query parameters (?id= of records of forms the role may not view, ?event=,
?parent=, ?form=) and replayed session / widget state (keys set directly before a run).

For every run: no exception, no sensitive value of the seeded records anywhere in the element tree
(labels, values, help texts, markdown, dataframe cells; the reveal is a separate, audited action that
these runs never take), and for every role's whole sweep: the database is byte-for-byte unchanged
(row counts and a SHA-256 of every table), files offered for download hold no sensitive value either.
"""

from __future__ import annotations

import pytest

from engine.access import Actor, form_allows
from engine.forms import get_spec, list_forms
from tests.app.conftest import current_url, open_url, registered_urls
from tests.security.conftest import SECRET_ID, diff, leaks, snapshot
from tests.security.helpers import capture_downloads, file_text, tree_text
from ui import nav

ROLES = ("admin", "manager", "staff", "outreach", "viewer")
STATS: dict[str, int] = {}


def _count(name: str, n: int = 1) -> None:
    STATS[name] = STATS.get(name, 0) + n


def all_urls(engine) -> list[str]:
    """Every page url the console has (as admin sees them) plus every registered tool url."""
    admin = Actor("admin", "admin", True)
    urls = [i.url_path for i in nav.nav_items(engine, admin, "zh")]
    urls += [t.url for t in nav.TOOLS if t.url not in urls]
    return urls


def allowed_urls(engine, role: str) -> set[str]:
    return {i.url_path for i in nav.nav_items(engine, Actor(role, role, role == "admin"), "zh")}


def check_run(at, where: str) -> str:
    assert not at.exception, f"{where}: {at.exception}"
    text = tree_text(at)
    found = leaks(text)
    assert not found, f"{where}: sensitive values on screen: {found}"
    _count("runs")
    return text


@pytest.mark.parametrize("role", ROLES)
def test_every_page_by_navigation_and_url(sec_env, role):
    engine = sec_env.engine
    before = snapshot(engine)
    allowed = allowed_urls(engine, role)
    # texts of the records of every form this role may not view: none may show on any page
    hidden = {text: slug for rid, slug in sec_env.seeded.all_ids().items()
              if not form_allows(Actor(role, role), get_spec(engine, slug), "view")
              for text in record_strings(engine, rid)}
    with capture_downloads() as downloads:
        at = sec_env.app(role).run()
        check_run(at, f"{role} home")
        assert registered_urls(at) == (allowed - {nav.HOME_URL}) | {""}
        for url in all_urls(engine):
            open_url(at, url)
            text = check_run(at, f"{role} /{url}")
            shown = {f"{slug}: {t}" for t, slug in hidden.items() if t in text}
            assert not shown, f"{role} /{url} shows data of forms it may not view: {shown}"
            if url in allowed and url != nav.HOME_URL:
                assert current_url(at) == url, f"{role} could not open its page /{url}"
            elif url not in allowed:
                assert current_url(at) == "", f"{role} reached /{url}"
    assert not diff(before, snapshot(engine)), f"{role}: browsing changed the database"
    for name, data in downloads.produce():
        _count("downloads")
        assert not leaks(file_text(name, data)), f"{role}: {name} holds sensitive values"


# --- query parameters ------------------------------------------------------------------------------
def record_strings(engine, record_id: int) -> set[str]:
    """Texts of a record that would show up if its data were displayed (Chinese texts, long numbers)."""
    import re

    from sqlalchemy import select

    from models.tables import Submission

    with engine.connect() as conn:
        data = conn.execute(select(Submission.data).where(Submission.id == record_id)).scalar_one()
    out: set[str] = set()

    def walk(value):
        if isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)
        elif isinstance(value, str) and (re.search(r"[\u4e00-\u9fff]", value) or re.fullmatch(r"\d{6,}", value)):
            out.add(value.strip()[:30])

    walk(data)
    return {s for s in out if len(s) >= 2}


def _expected(url: str, param: str, slug: str, deleted: bool, role: str, engine) -> bool:
    """Whether opening `url?param=<a record of form slug>` should show that record to `role`."""
    if url.endswith(nav.RECORDS_SUFFIX):
        return (url == nav.records_url(slug) and form_allows(Actor(role, role), get_spec(engine, slug), "view")
                and (not deleted or role == "admin"))
    return slug == "outreach_event" and not deleted  # outreach-event ?id=, live-tally ?event=, sign-up ?parent=


def _ids_to_try(engine, seeded, role: str, url: str) -> dict[int, str]:
    """The page's own record, the sensitive intake record, the deleted one, an outreach event, and a
    record of every form the role may not view."""
    every = seeded.all_ids()
    own = url.removesuffix(nav.RECORDS_SUFFIX)
    wanted = {seeded.ids["intake"], seeded.deleted, seeded.ids["outreach_event"]}
    wanted |= {rid for rid, slug in every.items() if slug == own and rid in seeded.ids.values()}
    wanted |= {rid for rid, slug in every.items()
               if not form_allows(Actor(role, role), get_spec(engine, slug), "view")}
    return {rid: every[rid] for rid in sorted(wanted)}


@pytest.mark.parametrize("role", ROLES)
def test_query_parameters_never_open_what_the_role_may_not_see(sec_env, role):
    engine = sec_env.engine
    seeded = sec_env.seeded
    before = snapshot(engine)
    allowed = allowed_urls(engine, role)
    pages = [(nav.records_url(f.slug), "id") for f in list_forms(engine)]
    pages += [("outreach-event", "id"), ("live-tally", "event"), (nav.entry_url("event_signup"), "parent")]
    strings = {rid: record_strings(engine, rid) for rid in seeded.all_ids()}
    at = sec_env.app(role).run()
    with capture_downloads() as downloads:
        for url, param in pages:
            if url not in allowed:
                continue
            at.query_params.clear()
            baseline = check_run(open_url(at, url), f"{role} /{url}")
            for rid, slug in _ids_to_try(engine, seeded, role, url).items():
                at.query_params.clear()
                at.query_params[param] = str(rid)
                text = check_run(open_url(at, url), f"{role} /{url}?{param}={rid}")
                _count("query_params")
                if _expected(url, param, slug, rid == seeded.deleted, role, engine):
                    assert not at.error, f"{role} /{url}?{param}={rid}: {[e.value for e in at.error]}"
                    continue
                shown = {s for s in strings[rid] if s in text and s not in baseline}
                assert not shown, f"{role} /{url}?{param}={rid} ({slug}) shows {shown}"
                assert at.error, f"{role} /{url}?{param}={rid} ({slug}): no refusal shown"
        # ?form= on the dashboards: only a form the role may view is ever chosen
        if "dashboards" in allowed:
            for info in list_forms(engine):
                at.query_params.clear()
                at.query_params["form"] = info.slug
                check_run(open_url(at, "dashboards"), f"{role} /dashboards?form={info.slug}")
                _count("query_params")
                chosen = at.selectbox(key="dash_form").value
                assert form_allows(Actor(role, role), get_spec(engine, chosen), "view")
    assert not diff(before, snapshot(engine)), f"{role}: opening records changed the database"
    for name, data in downloads.produce():
        _count("downloads")
        assert not leaks(file_text(name, data)), f"{role}: {name} holds sensitive values"
    after_downloads = diff(before, snapshot(engine))
    # producing the files may only add export audit events
    assert set(after_downloads) <= {"audit_events"}, after_downloads


# --- replayed session and widget state ----------------------------------------------------------
def _record_data(engine, record_id: int) -> dict:
    from engine.storage import get_record

    return dict(get_record(engine, record_id, actor=Actor("admin", "admin", True)).data)


def _click_all(at, where: str, keys_like: tuple[str, ...]) -> int:
    """Click every button whose key contains one of `keys_like` (as a user would); returns how many."""
    clicked = 0
    for button in list(at.button):
        key = getattr(button, "key", None) or ""
        if any(k in key for k in keys_like):
            button.click().run()
            check_run(at, f"{where} click {key}")
            clicked += 1
    return clicked


@pytest.mark.parametrize("role", ["staff", "outreach", "viewer"])
def test_replayed_session_state_cannot_reveal_edit_delete_or_escalate(sec_env, role):
    """Keys that the records, event and tally pages keep in session_state, set as if a previous run
    (or a forged rerun message) had left them: nothing is revealed, edited, deleted or restored, and
    a forged role in session_state is replaced by the database's on the next run."""
    engine = sec_env.engine
    seeded = sec_env.seeded
    before = snapshot(engine)
    rid = seeded.ids["intake"]
    event = seeded.ids["outreach_event"]
    signup = seeded.ids["event_signup"]
    revision = 1
    forged_data = {**_record_data(engine, rid), "name": "篡改者", "facts": "篡改"}
    at = sec_env.app(role)
    # a forged role and form-editor flag: the gate rebuilds the actor from the database
    at.session_state["actor"] = Actor(role, "admin", True)
    at.session_state["roles"] = ["admin"]
    for record, slug in ((rid, "intake"), (seeded.deleted, "consultation"), (signup, "event_signup")):
        base = f"record__{record}"
        at.session_state[f"{base}__revealed"] = True
        at.session_state[f"{base}__edit"] = {"revision": revision, "data": forged_data if slug == "intake" else {}}
        at.session_state[f"{base}__confirm_delete"] = True
        at.session_state[f"records__{slug}__deleted"] = True  # the admins' "include deleted" toggle
    at.session_state["records__intake__sort"] = "id_number"  # a sort the list does not offer: a value oracle
    at.session_state["records__intake__f__health"] = ["serious_illness"]  # a filter on a sensitive field
    at.session_state["event_revealed"] = {event}
    at.session_state["event_export_reveal"] = True
    at.run()
    check_run(at, f"{role} forged actor")
    assert at.session_state["actor"].role == role
    assert "user-admin" not in registered_urls(at) and "form-designer" not in registered_urls(at)
    allowed = allowed_urls(engine, role)
    with capture_downloads() as downloads:
        for url, param, record in ((nav.records_url("intake"), "id", rid), (nav.records_url("intake"), None, None),
                                   (nav.records_url("consultation"), "id", seeded.deleted),
                                   (nav.records_url("consultation"), None, None),
                                   (nav.records_url("event_signup"), "id", signup),
                                   ("outreach-event", "id", event)):
            if url not in allowed:
                continue
            at.query_params.clear()
            if param:
                at.query_params[param] = str(record)
            where = f"{role} /{url}?{param}={record}"
            check_run(open_url(at, url), where)
            _count("replayed_state")
            if record == rid:  # an edit form for a record of someone else: never, whatever the state says
                assert not [b for b in at.button if (b.key or "").startswith(f"record__{rid}__form")], where
            if record == seeded.deleted:
                assert at.error and "13800000002" not in tree_text(at) and "1380000\\*\\*\\*\\*" not in tree_text(at)
            if url == nav.records_url("intake") and param is None:
                assert at.selectbox(key="records__intake__sort").value != "id_number"
            if url == nav.records_url("consultation") and param is None:  # the forged "include deleted" state
                shown = "\n".join(df.value.to_csv() for df in at.dataframe)
                assert shown and f"#{seeded.deleted}," not in shown, f"{where}: the deleted record is listed"
            # whatever buttons a forged state made appear, pressing them changes nothing
            _click_all(at, where, ("__save", "__delete_yes", "__restore", "__reveal"))
    assert not diff(before, snapshot(engine)), f"{role}: replayed state changed the database"
    for name, data in downloads.produce():
        _count("downloads")
        assert not leaks(file_text(name, data)), f"{role}: {name} holds sensitive values"


# --- the engine itself: every write checks the role again ---------------------------------------------
def _engine_attempts(env) -> list[tuple[str, tuple[str, ...], object]]:
    """(what, roles that must be refused, call(actor)) for the writes behind every page."""
    import io

    from engine import auth, eligibility, exporters, forms, importers, storage, tally

    engine = env.engine
    ids = env.ids
    admin_rec = ids["intake"]
    revision = 1
    raw = _record_data(engine, admin_rec)
    csv = "姓名,日期\n张三,2026-01-01\n".encode()
    return [
        ("create intake", ("outreach", "viewer"), lambda a: storage.create(engine, "intake", raw, actor=a)),
        ("create training record", ("outreach", "viewer"),
         lambda a: storage.create(engine, "training_record", {}, actor=a)),
        ("edit someone else's intake", ("staff", "outreach", "viewer"),
         lambda a: storage.update(engine, admin_rec, {**raw, "name": "篡改"}, actor=a, revision=revision)),
        ("delete", ("manager", "staff", "outreach", "viewer"),
         lambda a: storage.soft_delete(engine, admin_rec, actor=a)),
        ("restore", ("manager", "staff", "outreach", "viewer"),
         lambda a: storage.restore(engine, env.seeded.deleted, actor=a)),
        ("workflow step of another role", ("outreach", "viewer"),
         lambda a: storage.transition(engine, admin_rec, "accept", actor=a, revision=revision)),
        ("publish a form", ("manager", "staff", "outreach", "viewer"),
         lambda a: forms.publish(engine, get_spec(engine, "training_record"), actor=a, note="x")),
        ("edit a reference list", ("manager", "staff", "outreach", "viewer"),
         lambda a: forms.save_choice_list(engine, "courts", "法院", [{"value": "x", "label": "X"}], actor=a)),
        ("create a user", ("manager", "staff", "outreach", "viewer"),
         lambda a: auth.create_user(engine, "mallory", "Mallory-Pass-2026", "admin", "M", a)),
        ("make oneself admin", ("manager", "staff", "outreach", "viewer"),
         lambda a: auth.set_role(engine, a.username, "admin", a)),
        ("reset a password", ("manager", "staff", "outreach", "viewer"),
         lambda a: auth.set_password(engine, "admin", "Mallory-Pass-2026", a)),
        ("deactivate the admin", ("manager", "staff", "outreach", "viewer"),
         lambda a: auth.set_active(engine, "admin", False, a)),
        ("tally tap", ("viewer",),
         lambda a: tally.tap(engine, ids["outreach_event"], "brochures", 1, actor=a, device="d1")),
        ("import records", ("staff", "outreach", "viewer"),
         lambda a: importers.commit(engine, "training_record", io.BytesIO(csv), actor=a)),
        ("export unmasked", ("staff", "outreach", "viewer"),
         lambda a: exporters.export_records(engine, "intake", io.BytesIO(), actor=a, reveal=True)),
        ("eligibility decision", ("outreach", "viewer"),
         lambda a: eligibility.record_decision(engine, admin_rec, "grant", "x", a)),
        ("office settings", ("manager", "staff", "outreach", "viewer"),
         lambda a: eligibility.set_office(engine, {"address": "x"}, actor=a)),
    ]


def test_every_engine_write_refuses_the_roles_without_the_right(sec_env):
    from engine.errors import EngineError, PermissionDenied

    engine = sec_env.engine
    before = snapshot(engine)
    tried = 0
    for what, roles, call in _engine_attempts(sec_env):
        for role in roles:
            actor = Actor(role, role)
            with pytest.raises((PermissionDenied, EngineError)) as err:
                call(actor)
            assert isinstance(err.value, PermissionDenied) or "forbidden" in err.value.code, (what, role, err.value)
            tried += 1
    _count("engine_writes", tried)
    assert not diff(before, snapshot(engine)), "a refused write changed the database"


# --- in the browser: the HTML and the websocket payload ----------------------------------------------
@pytest.mark.browser
def test_staff_browser_never_receives_the_raw_id_number(sec_server, new_context):
    """As staff (view, no reveal right): the intake list and the intake record. The raw ID number,
    phone and address are in neither the page's HTML nor any websocket frame the server sent."""
    from engine.idnumber import mask_id
    from tests.security.conftest import PASSWORDS, browser_login, wait_idle

    context = new_context()
    page = context.new_page()
    frames: list[bytes] = []

    def on_socket(ws) -> None:
        ws.on("framereceived", lambda payload: frames.append(payload if isinstance(payload, bytes)
                                                            else payload.encode("utf-8")))

    page.on("websocket", on_socket)
    browser_login(page, sec_server.url, "staff", PASSWORDS["staff"])
    page.goto(f"{sec_server.url}/intake-records")
    page.locator('[data-testid="stDataFrame"]').first.wait_for()
    wait_idle(page)
    html = [page.content()]
    rid = sec_server.seeded.ids["intake"]
    page.goto(f"{sec_server.url}/intake-records?id={rid}")
    page.get_by_text(mask_id(SECRET_ID)).first.wait_for()  # the record is on screen, masked
    wait_idle(page)
    html.append(page.content())
    page.wait_for_timeout(500)
    received = [f.decode("utf-8", errors="replace") + "\n" + f.decode("latin-1") for f in frames]
    _count("browser_frames", len(frames))
    assert frames and any("李秀梅" in r for r in received), "the websocket frames were not captured"
    for text in html + received:
        assert SECRET_ID not in text and not leaks(text), leaks(text)


# --- files: exports, record prints, notices -------------------------------------------------------------
@pytest.mark.parametrize("role", ROLES)
def test_exports_and_prints_hold_no_sensitive_value_unless_revealed_by_a_role_that_may(sec_env, role):
    import io

    from engine.errors import PermissionDenied
    from engine.exporters import export_records
    from engine.notices import KINDS, notice_pdf
    from engine.prints import available_prints, print_record

    engine = sec_env.engine
    actor = Actor(role, role, role == "admin")
    rid = sec_env.ids["intake"]
    viewable = form_allows(actor, get_spec(engine, "intake"), "view")
    files: list[tuple[str, bytes]] = []
    for fmt in ("csv", "xlsx"):
        out = io.BytesIO()
        try:
            export_records(engine, "intake", out, fmt, actor=actor)
            files.append((f"intake.{fmt}", out.getvalue()))
        except PermissionDenied:
            assert not (actor.can("export") and viewable), f"{role} may export"
        _count("exports")
    for kind in available_prints("intake"):
        try:
            files.append((f"{kind.key}.pdf", print_record(engine, rid, kind.key, actor=actor)))
        except PermissionDenied:
            assert not viewable
        _count("prints")
    for key in list(KINDS)[:2]:
        try:
            files.append((f"{key}.pdf", notice_pdf(engine, rid, key, actor=actor)))
        except PermissionDenied:
            assert not viewable
        _count("prints")
    assert bool(files) is viewable
    for name, data in files:
        assert not leaks(file_text(name, data)), f"{role}: {name} holds sensitive values"
    # unmasked: only for the roles that may reveal (and then audited)
    from engine.access import may_reveal

    if not may_reveal(actor, get_spec(engine, "intake")):
        for call in (lambda: export_records(engine, "intake", io.BytesIO(), "csv", actor=actor, reveal=True),
                     lambda: print_record(engine, rid, "record", actor=actor, reveal=True, reason="x")):
            with pytest.raises(PermissionDenied):
                call()
            _count("prints")
    else:
        pdf = print_record(engine, rid, "record", actor=actor, reveal=True, reason="核对")
        assert SECRET_ID in file_text("r.pdf", pdf)  # the control: unmasked where it may be


BAD_IDS = ("99999999999999999999", "3000000000", "-5", "0", "abc", "1.5", "1 OR 1=1", "")


def test_malformed_ids_in_query_parameters_give_a_refusal_not_an_error(sec_env):
    at = sec_env.app("admin").run()
    for url, param in ((nav.records_url("intake"), "id"), ("outreach-event", "id"), ("live-tally", "event"),
                       (nav.entry_url("event_signup"), "parent")):
        for bad in BAD_IDS:
            at.query_params.clear()
            at.query_params[param] = bad
            check_run(open_url(at, url), f"/{url}?{param}={bad!r}")
            _count("query_params")
            if bad:
                assert at.error, f"/{url}?{param}={bad!r}: no refusal shown"
