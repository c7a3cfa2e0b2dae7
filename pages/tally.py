"""Live tally on a tablet held in one hand: `render_tally()`.

Query param `event=<id>`: the outreach event being counted (kept in the URL, so a reload keeps it).
Without it, the page shows the event picker: today's events as one-tap buttons, other events
(upcoming, then recent) in a select box.

Counting: every counter of the event's form gets its running total for all tablets and this
tablet's own count, refreshed live (a `st.fragment(run_every=2)` per counter, around the numbers
only), and big buttons +1 and the spec's larger steps (outside the fragments: see `_live`). Each
button carries the tap id of its next press, made when the button is drawn, i.e. BEFORE writing
(`button_tap_id`); the callback keeps the tap as pending until the database confirmed it. A tap
whose write failed stays on screen as "not counted" with a retry button that re-sends the SAME tap
id (engine.tally.tap is idempotent on it), so a tap is never silently lost and never counted twice.
"Undo my last tap" writes a compensating tap.

Device: a per-browser-tab id in st.session_state["tally_device"] (the "this tablet" of the counts
and of undo).

Quick sign-up: name, phone, village/community, group, topic, referred to an application; saved by
`engine.outreach.quick_signup` in one tap, the form then clears for the next person (it keeps what
was typed when the values are invalid or the person was signed up a moment ago, so nothing typed is
lost); the duplicate prompt offers "仍然保存".
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import streamlit as st

from engine import outreach, tally
from engine.errors import EngineError, NotFound, PermissionDenied, ValidationFailed
from models.spec import FormSpec, ltext
from ui.auth import error_text, require_ability
from ui.i18n import t
from ui.records_view import LOCAL_TZ
from ui.state import actor, db, lang
from ui.widgets import md_escape

REFRESH_SECONDS = 2
SS_DEVICE = "tally_device"
SS_PENDING = "tally_pending"  # tap_id -> {event, counter, delta, kind, status, error}
SS_FLASH = "tally_flash"  # [(icon, text)] toasts to show on the next render
SS_LAST = "tally_last"  # (event, counter) -> text of the last confirmation
SS_NEXT_ID = "tally_next_id"  # button key -> the tap id its next press sends
SS_HANDLED = "tally_handled"  # tap ids of presses already handled (most recent HANDLED_KEEP)
HANDLED_KEEP = 500
SS_SIGNUP_GEN = "tally_signup_gen"
SS_SIGNUP_ERRORS = "tally_signup_errors"
SS_SIGNUP_DUP = "tally_signup_dup"
SS_SIGNUP_DONE = "tally_signup_done"
EVENT_PARAM = "event"
INTAKE_FORM = "intake"
INTAKE_PARAM = "from_signup"  # /intake?from_signup=<sign-up id>: no name or phone in the URL
EVENT_URL = "outreach-event"  # the event page's url path (ui.nav)
SIGNUP_FIELDS = ("name", "phone", "village_community", "group", "topic", "referred_to_application")

CSS = """
<style>
[class*="st-key-tally_tap_"] button { min-height: 64px; touch-action: manipulation; }
[class*="st-key-tally_tap_"] button p { font-size: 1.6rem; font-weight: 700; }
[class*="st-key-tally_undo_"] button, [class*="st-key-tally_pick_"] button,
[class*="st-key-tally_retry_"] button, [class*="st-key-tally_drop_"] button,
.st-key-tally_change button, [data-testid="stFormSubmitButton"] button,
.st-key-tally_dup_yes button, .st-key-tally_dup_no button { min-height: 56px; touch-action: manipulation; }
[class*="st-key-tally_steps_"] [data-testid="stHorizontalBlock"],
[class*="st-key-tally_nums_"] [data-testid="stHorizontalBlock"] { flex-wrap: nowrap; gap: 0.5rem; }
[class*="st-key-tally_steps_"] [data-testid="stColumn"],
[class*="st-key-tally_nums_"] [data-testid="stColumn"] { min-width: 0 !important; flex: 1 1 0 !important; }
[class*="st-key-tally_total_"] [data-testid="stMetricValue"] { font-size: 2.6rem; }
.st-key-tally_counters [data-testid="stColumn"] { min-width: min(100%, 300px); }
.st-key-tally_counters [data-testid="stHorizontalBlock"] { flex-wrap: wrap; }
</style>
"""


# --- session helpers -----------------------------------------------------------------------------
def device_id() -> str:
    """This browser tab's stable id (one Streamlit session)."""
    dev = st.session_state.get(SS_DEVICE)
    if not dev:
        dev = st.session_state[SS_DEVICE] = "tab-" + uuid.uuid4().hex[:16]
    return str(dev)


def _pending() -> dict[str, dict[str, Any]]:
    return st.session_state.setdefault(SS_PENDING, {})


def _flash(icon: str, text: str) -> None:
    st.session_state.setdefault(SS_FLASH, []).append((icon, text))


def _label(spec: FormSpec | None, key: str) -> str:
    f = spec.field(key) if spec is not None else None
    return (ltext(f.label, lang()) if f else "") or key


# --- callbacks (run before the script body; no Streamlit element is drawn in them) ----------------
def _send(tap_id: str) -> None:
    """Write the pending tap `tap_id` (first try or retry: the same id each time)."""
    item = _pending().get(tap_id)
    if item is None:
        return
    item["status"] = "sending"
    who = actor()
    label = item.get("label") or item["counter"]
    try:
        if item["kind"] == "undo":
            res = tally.undo_last(db(), item["event"], item["counter"], actor=who, device=device_id(), tap_id=tap_id)
        else:
            res = tally.tap(db(), item["event"], item["counter"], item["delta"], actor=who, device=device_id(),
                            tap_id=tap_id)
    except EngineError as exc:
        if exc.code == "tally.nothing_to_undo":
            _pending().pop(tap_id, None)
            _flash(":material/info:", exc.message(lang()))
            return
        item.update(status="failed", error=exc.message(lang()))
        _flash(":material/error:", t("tally.not_counted_toast", counter=label))
        return
    except Exception as exc:  # the database is unreachable, locked, ...: keep the tap to retry
        item.update(status="failed", error=str(exc).splitlines()[0][:200])
        _flash(":material/error:", t("tally.not_counted_toast", counter=label))
        return
    _pending().pop(tap_id, None)
    if item["kind"] == "undo":
        text = t("tally.undone", counter=label, total=res.total)
    else:
        text = t("tally.counted", counter=label, delta=item["delta"], total=res.total)
    st.session_state.setdefault(SS_LAST, {})[f"{item['event']}:{item['counter']}"] = text
    _flash(":material/check_circle:", text)


def button_tap_id(button_key: str) -> str:
    """The tap id the button `button_key` sends when pressed next.

    It is made when the button is drawn (before any write) and bound to the button's callback, so
    one press is one tap id even if Streamlit delivers the press twice (e.g. a run interrupted by
    the next message): the second delivery is recognised here, or by the engine, and not counted.
    A new id is made once the press was handled."""
    ids = st.session_state.setdefault(SS_NEXT_ID, {})
    if button_key not in ids:
        ids[button_key] = tally.new_tap_id()
    return str(ids[button_key])


def _handled(button_key: str, tap_id: str) -> bool:
    """Whether this press (its tap id) was already handled; else mark it and give the button a new id."""
    done: list[str] = st.session_state.setdefault(SS_HANDLED, [])
    if tap_id in done or tap_id in _pending():
        return True
    done.append(tap_id)
    del done[:-HANDLED_KEEP]
    st.session_state.setdefault(SS_NEXT_ID, {})[button_key] = tally.new_tap_id()
    return False


def _tap(event_id: int, counter: str, delta: int, label: str, button_key: str, tap_id: str) -> None:
    if _handled(button_key, tap_id):
        return
    _pending()[tap_id] = {"event": event_id, "counter": counter, "delta": delta, "kind": "tap",
                          "status": "sending", "label": label, "at": datetime.now(LOCAL_TZ).strftime("%H:%M:%S")}
    _send(tap_id)


def _undo(event_id: int, counter: str, label: str, button_key: str, tap_id: str) -> None:
    if _handled(button_key, tap_id):
        return
    _pending()[tap_id] = {"event": event_id, "counter": counter, "delta": 0, "kind": "undo",
                          "status": "sending", "label": label, "at": datetime.now(LOCAL_TZ).strftime("%H:%M:%S")}
    _send(tap_id)


def _drop(tap_id: str) -> None:
    item = _pending().pop(tap_id, None)
    if item is not None:
        _flash(":material/delete:", t("tally.dropped", counter=item.get("label") or item["counter"]))


def _settle_interrupted() -> None:
    """A tap still 'sending' at render time was interrupted: ask the database whether it counted."""
    stuck = [k for k, v in _pending().items() if v.get("status") == "sending"]
    if not stuck:
        return
    try:
        stored = outreach.tap_stored(db(), stuck)
    except Exception:
        stored = set()
    for tap_id in stuck:
        if tap_id in stored:
            _pending().pop(tap_id, None)
        else:
            _pending()[tap_id].update(status="failed", error=t("tally.interrupted"))


# --- page ----------------------------------------------------------------------------------------
def render_tally() -> None:
    """The tally page (st.Page target)."""
    who = require_ability("tally")
    st.html(CSS)
    device_id()
    st.title(t("tally.title"))
    _body(who)
    # The same CSS again, in the page itself: a style-only st.html lives in Streamlit's event
    # container, which was seen emptied on tablets right after a cookie login (buttons back to
    # 40 px until the next full run); an element of the page is only ever replaced by a full run.
    st.markdown(CSS, unsafe_allow_html=True)


def _body(who: Any) -> None:
    event_id, rec = _chosen_event(who)
    if event_id is None:
        _show_flash()
        _pending_panel(None)
        _picker(who)
        return
    _live(event_id, rec)
    if rec is not None:
        _signup_section(event_id)


def _chosen_event(who: Any) -> tuple[int | None, Any]:
    """(event id, its record or None) from ?event=; a missing event with taps still pending is kept
    (record None), so that its pending taps stay on screen (e.g. the event was deleted meanwhile)."""
    raw = st.query_params.get(EVENT_PARAM)
    if not raw:
        return None, None
    try:
        rec = outreach.load_event(db(), int(raw), who)
    except (ValueError, NotFound, PermissionDenied):
        st.error(t("tally.event_missing"), icon=":material/event_busy:")
        if any(str(v["event"]) == str(raw) for v in _pending().values()):
            return int(raw), None
        return None, None
    _header(rec)
    return rec.id, rec


def _header(rec: Any) -> None:
    data = rec.data
    when = str(data.get("event_date") or "")
    place = str(data.get("place_name") or "")
    st.subheader(md_escape(str(data.get("title") or f"#{rec.id}")))
    st.caption(md_escape(" · ".join(x for x in (when, place) if x)))
    cols = st.columns([1, 1])
    if cols[0].button(t("tally.change_event"), key="tally_change", icon=":material/swap_horiz:", width="stretch"):
        st.query_params.pop(EVENT_PARAM, None)
        st.rerun()
    with cols[1]:
        _event_page_link(rec.id)


def _event_page_link(event_id: int) -> None:
    from ui.records_view import _no_op

    try:
        st.page_link(st.Page(_no_op, title=t("tally.event_page"), url_path=EVENT_URL), label=t("tally.event_page"),
                     query_params={"id": str(event_id)}, icon=":material/event_note:")
    except Exception:  # the event page is not in this user's navigation
        return


def _picker(who: Any) -> None:
    today = datetime.now(LOCAL_TZ).date()
    try:
        rows = outreach.todays_events(db(), today, who)
    except EngineError as exc:
        st.error(error_text(exc))
        return
    todays = [r for r in rows if r.is_today]
    others = [r for r in rows if not r.is_today]
    st.markdown(f"#### {t('tally.today')}")
    if not todays:
        st.info(t("tally.no_today"), icon=":material/event_available:")
    for row in todays:
        text = " · ".join(x for x in (row.title, row.place) if x)
        if st.button(md_escape(text), key=f"tally_pick_{row.id}", type="primary", icon=":material/touch_app:",
                     width="stretch"):
            _choose(row.id)
    if others:
        options = {r.id: f"{r.event_date.isoformat() if r.event_date else '?'} · {r.title}" for r in others}
        picked = st.selectbox(t("tally.other_events"), list(options), index=None, format_func=options.get,
                              key="tally_pick_other", placeholder=t("tally.pick_placeholder"))
        if picked is not None:
            _choose(int(picked))


def _choose(event_id: int) -> None:
    st.query_params[EVENT_PARAM] = str(event_id)
    st.rerun()


def _show_flash() -> None:
    for icon, text in st.session_state.pop(SS_FLASH, []):
        st.toast(md_escape(text), icon=icon)


# --- counting: pending taps, live totals and buttons -----------------------------------------------
# The buttons are NOT inside a fragment: Streamlit drops a click made inside a fragment whose id
# changed or was cleared by a full-app rerun ("fragment ... does not exist anymore"), which would
# lose the tap silently. Only the numbers are fragments (run_every); a tap reruns the page.
def _live(event_id: int, rec: Any) -> None:
    _show_flash()
    _settle_interrupted()
    _pending_panel(event_id)
    if rec is None:  # gone (the error is shown above): only its pending taps
        return
    eng = db()
    try:
        mine = tally.totals(eng, event_id, device=device_id())
    except Exception:
        mine = {}
    counters = _counter_fields(rec)
    if not counters:
        st.info(t("tally.no_counters"))
        return
    st.caption(t("tally.live_note", seconds=REFRESH_SECONDS))
    with st.container(key="tally_counters"):
        for start in range(0, len(counters), 2):
            cols = st.columns(2)
            for col, f in zip(cols, counters[start:start + 2], strict=False):
                with col:
                    _counter_card(event_id, f, int(mine.get(f.key, 0)))


@st.fragment(run_every=REFRESH_SECONDS)
def _numbers(event_id: int, counter: str) -> None:
    """One counter's total over every tablet and this tablet's count, refreshed live."""
    eng = db()
    try:
        total = tally.total(eng, event_id, counter)
        mine = tally.totals(eng, event_id, device=device_id()).get(counter, 0)
    except Exception as exc:
        st.warning(t("tally.offline", error=md_escape(str(exc).splitlines()[0][:200])), icon=":material/wifi_off:")
        return
    left, right = st.columns(2)
    with left, st.container(key=f"tally_total_{counter}"):
        st.metric(t("tally.total_all"), int(total))
    with right, st.container(key=f"tally_mine_{counter}"):
        st.metric(t("tally.mine"), int(mine))


def _counter_fields(rec: Any) -> list[Any]:
    """The event's counters: its own version's, then any the current version added."""
    from engine.forms import get_spec

    out = {f.key: f for f in rec.spec.counters}
    try:
        for f in get_spec(db(), rec.slug).counters:
            out.setdefault(f.key, f)
    except EngineError:
        pass
    return list(out.values())


def _counter_card(event_id: int, f: Any, mine: int) -> None:
    label = ltext(f.label, lang()) or f.key
    steps = [s for s in (f.steps or [1]) if isinstance(s, int) and s > 0] or [1]
    with st.container(border=True, key=f"tally_card_{f.key}"):
        st.markdown(f"**{md_escape(label)}**")
        with st.container(key=f"tally_nums_{f.key}"):
            _numbers(event_id, f.key)
        with st.container(key=f"tally_steps_{f.key}"):
            cols = st.columns(len(steps))
            for col, step in zip(cols, steps, strict=True):
                key = f"tally_tap_{f.key}_{step}"
                col.button(f"+{step}", key=key, type="primary", width="stretch", on_click=_tap,
                           args=(event_id, f.key, step, label, key, button_tap_id(key)))
        last = st.session_state.get(SS_LAST, {}).get(f"{event_id}:{f.key}")
        if last:
            st.caption(f":green[:material/check_circle:] {md_escape(last)}")
        key = f"tally_undo_{f.key}"
        st.button(t("tally.undo"), key=key, icon=":material/undo:", width="stretch", disabled=mine <= 0,
                  on_click=_undo, args=(event_id, f.key, label, key, button_tap_id(key)))


def _pending_panel(event_id: int | None) -> None:
    """Taps not (yet) counted, each with a retry that re-sends the same tap id."""
    items = [(k, v) for k, v in _pending().items() if v.get("status") == "failed"
             and (event_id is None or v["event"] == event_id)]
    if not items:
        return
    with st.container(border=True, key="tally_pending"):
        st.error(t("tally.pending_title", n=len(items)), icon=":material/sync_problem:")
        for tap_id, item in items:
            what = (t("tally.pending_undo", counter=item.get("label") or item["counter"]) if item["kind"] == "undo"
                    else t("tally.pending_tap", counter=item.get("label") or item["counter"], delta=item["delta"]))
            st.markdown(f"**{md_escape(what)}** · {md_escape(item.get('at', ''))} — {t('tally.not_counted')}")
            if item.get("error"):
                st.caption(md_escape(item["error"]))
            cols = st.columns(2)
            cols[0].button(t("tally.retry"), key=f"tally_retry_{tap_id}", type="primary", icon=":material/refresh:",
                           width="stretch", on_click=_send, args=(tap_id,))
            cols[1].button(t("tally.drop"), key=f"tally_drop_{tap_id}", icon=":material/delete:", width="stretch",
                           on_click=_drop, args=(tap_id,))


# --- quick sign-up -------------------------------------------------------------------------------
def _signup_key(name: str) -> str:
    return f"tally_su_{st.session_state.get(SS_SIGNUP_GEN, 0)}_{name}"


def _signup_values() -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key in SIGNUP_FIELDS:
        value = st.session_state.get(_signup_key(key))
        if isinstance(value, str):
            value = value.strip()
        if value not in (None, "", False):
            values[key] = value
    if "referred_to_application" not in values:
        values["referred_to_application"] = False
    return values


def _signup_clear() -> None:
    st.session_state[SS_SIGNUP_GEN] = st.session_state.get(SS_SIGNUP_GEN, 0) + 1
    st.session_state.pop(SS_SIGNUP_ERRORS, None)
    st.session_state.pop(SS_SIGNUP_DUP, None)


def _signup_store(event_id: int, values: dict[str, Any], confirm: bool) -> None:
    try:
        sub = outreach.quick_signup(db(), event_id, values, actor=actor(), confirm_duplicate=confirm)
    except outreach.DuplicateSignup as exc:
        st.session_state[SS_SIGNUP_DUP] = {"event": event_id, "values": values, "message": exc.message(lang())}
        st.session_state.pop(SS_SIGNUP_ERRORS, None)
        return
    except ValidationFailed as exc:
        st.session_state[SS_SIGNUP_ERRORS] = {k: p.message(lang()) for k, p in exc.errors.items()}
        st.session_state.pop(SS_SIGNUP_DUP, None)
        return
    except EngineError as exc:
        st.session_state[SS_SIGNUP_ERRORS] = {"": exc.message(lang())}
        return
    st.session_state[SS_SIGNUP_DONE] = {"id": sub.id, "name": values.get("name", ""),
                                        "referred": bool(values.get("referred_to_application"))}
    _signup_clear()


def _signup_submit(event_id: int) -> None:
    values = _signup_values()
    if set(values) == {"referred_to_application"} and not values["referred_to_application"]:
        return  # nothing typed (e.g. a second tap on the save button): nothing to save
    st.session_state.pop(SS_SIGNUP_DONE, None)
    _signup_store(event_id, values, confirm=False)


def _signup_confirm() -> None:
    dup = st.session_state.get(SS_SIGNUP_DUP)
    if dup:
        _signup_store(int(dup["event"]), dict(dup["values"]), confirm=True)


def _signup_section(event_id: int) -> None:
    from engine.forms import choice_lists, get_spec
    from engine.queries import ListQuery, count_records

    eng, who, lg = db(), actor(), lang()
    try:
        spec = get_spec(eng, outreach.SIGNUP_FORM)
    except EngineError:
        return
    from engine.access import form_allows

    if not form_allows(who, spec, "submit"):
        return
    st.divider()
    st.markdown(f"#### {t('tally.signup_title')}")
    try:
        n = count_records(eng, outreach.SIGNUP_FORM, ListQuery(parent_id=event_id), actor=who)
        st.caption(t("tally.signup_count", n=n))
    except EngineError:
        pass
    _signup_done(lg)
    errors: dict[str, str] = st.session_state.get(SS_SIGNUP_ERRORS) or {}
    lists = choice_lists(eng, include_inactive=False)
    with st.form("tally_signup_form", border=True, enter_to_submit=False):
        cols = st.columns(2)
        cols[0].text_input(_label(spec, "name"), key=_signup_key("name"), max_chars=50)
        cols[1].text_input(_label(spec, "phone"), key=_signup_key("phone"), max_chars=20)
        _select(spec, "village_community", lists, lg, cols[0])
        _select(spec, "group", lists, lg, cols[1], default="general")
        _select(spec, "topic", lists, lg, cols[0])
        cols[1].checkbox(_label(spec, "referred_to_application"), key=_signup_key("referred_to_application"))
        st.form_submit_button(t("tally.signup_save"), type="primary", icon=":material/person_add:",
                              width="stretch", on_click=_signup_submit, args=(event_id,))
    for key, message in errors.items():
        prefix = f"{_label(spec, key)}：" if key and lg == "zh" else (f"{_label(spec, key)}: " if key else "")
        st.error(md_escape(prefix + message), icon=":material/error:")
    dup = st.session_state.get(SS_SIGNUP_DUP)
    if dup and dup.get("event") == event_id:
        with st.container(border=True, key="tally_dup"):
            st.warning(md_escape(dup["message"]), icon=":material/content_copy:")
            c1, c2 = st.columns(2)
            c1.button(t("tally.dup_save"), key="tally_dup_yes", type="primary", width="stretch",
                      on_click=_signup_confirm)
            c2.button(t("tally.dup_cancel"), key="tally_dup_no", width="stretch", on_click=_signup_clear)


def _select(spec: FormSpec, key: str, lists: dict[str, Any], lg: str, where: Any, default: str | None = None) -> None:
    f = spec.field(key)
    if f is None or f.retired:
        return
    choices = [c for c in (f.choices or lists.get(f.choice_list or "", [])) if getattr(c, "active", True)]
    labels = {c.value: ltext(c.label, lg) or c.value for c in choices}
    options = list(labels)
    index = options.index(default) if default in options else None
    where.selectbox(_label(spec, key), options, index=index, format_func=lambda v: labels.get(v, v),
                    key=_signup_key(key), placeholder=t("tally.choose"))


def _signup_done(lg: str) -> None:
    done = st.session_state.get(SS_SIGNUP_DONE)
    if not done:
        return
    st.success(t("tally.signup_saved", name=md_escape(done["name"])), icon=":material/how_to_reg:")
    if not done.get("referred"):
        return
    from engine.access import form_allows
    from engine.forms import get_spec

    try:
        may_intake = form_allows(actor(), get_spec(db(), INTAKE_FORM), "submit")
    except EngineError:
        may_intake = False
    if not may_intake:
        st.info(t("tally.referred_hand_over"), icon=":material/assignment_ind:")
        return
    from ui.records_view import page_for

    try:
        st.page_link(page_for("entry", INTAKE_FORM, t("tally.open_intake")), label=t("tally.open_intake"),
                     query_params={INTAKE_PARAM: str(done["id"])}, icon=":material/assignment_add:")
    except Exception:
        st.info(t("tally.referred_hand_over"), icon=":material/assignment_ind:")
