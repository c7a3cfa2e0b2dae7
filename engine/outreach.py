"""Outreach events: picking today's event, quick sign-ups, per-event and per-campaign summaries.

Everything here is SQL: counter totals are SUM(delta) over the append-only tally events
(`engine.tally`), sign-ups are GROUP BY over the child form's records (`parent_id` = the event),
events are filtered and grouped on their JSON fields through `engine.queries.json_field`, so no
function loads a table into Python to count it.

- `todays_events(engine, today, actor)`: today's events first, then upcoming, then recent.
- `event_summary(engine, event_id)`: totals, sign-ups by group / topic, staff, timeline of taps.
- `campaign_summary(engine, date_from, date_to, campaign=None)`: events, by target group, counter
  totals summed across events, events per liaison point.
- `quick_signup(engine, event_id, values, *, actor, confirm_duplicate=False)`: a sign-up in one
  call; the same name and phone at the same event within `DUPLICATE_WINDOW` raises
  `DuplicateSignup` ("signup.duplicate") unless confirmed.
- `signups_csv(...)`, `event_pdf(...)`: the sign-up export of one event and a one-page summary PDF.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, literal_column, select
from sqlalchemy.engine import Engine
from sqlmodel import col

from engine import messages
from engine.access import Actor, form_allows
from engine.db import session_scope
from engine.errors import EngineError, NotFound, PermissionDenied
from engine.queries import json_equals, json_field
from models.spec import FormSpec, LText, ltext
from models.tables import Submission, TallyEvent, User, utcnow

EVENT_FORM = "outreach_event"
SIGNUP_FORM = "event_signup"
DUPLICATE_WINDOW = timedelta(seconds=60)
MAX_EVENTS = 30
NONE_KEY = ""  # the group of records without a value (no liaison point, no topic, ...)

messages.register(
    {
        "signup.duplicate": {
            "zh": "「{name}」（电话 {phone}）{seconds} 秒前已在本场活动登记过。是否仍要再登记一次？",
            "en": "'{name}' (phone {phone}) was signed up at this event {seconds} seconds ago. "
                  "Save this sign-up again anyway?",
        },
        "outreach.not_event": {
            "zh": "记录 #{id} 不是宣传活动。",
            "en": "Record #{id} is not an outreach event.",
        },
        "outreach.forbidden": {
            "zh": "您的角色不能查看宣传活动。",
            "en": "Your role may not see outreach events.",
        },
    }
)


class DuplicateSignup(EngineError):
    """The same name and phone were signed up at this event a moment ago (`existing_id`)."""

    def __init__(self, existing_id: int, **params: Any) -> None:
        self.existing_id = existing_id
        super().__init__("signup.duplicate", **params)


# --- helpers -----------------------------------------------------------------------------------
def _form_id(engine: Engine, slug: str) -> int:
    from engine.forms import form_ref

    return form_ref(engine, slug).id


def _spec(engine: Engine, slug: str) -> FormSpec:
    from engine.forms import get_spec

    return get_spec(engine, slug)


def _dialect(engine: Engine) -> str:
    return engine.dialect.name


def _live(form_id: int) -> list[Any]:
    return [Submission.form_id == form_id, col(Submission.deleted_at).is_(None)]


def _as_date(value: Any) -> date | None:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value)[:10])
    except (TypeError, ValueError):
        return None


def _key(value: Any) -> str:
    """A GROUP BY value as a dict key (booleans and numbers as text; NULL as NONE_KEY)."""
    if value is None:
        return NONE_KEY
    return str(value)


def choice_labels(spec: FormSpec, key: str, lists: Mapping[str, list[Any]] | None = None) -> dict[str, LText]:
    """value -> label of a select / reference field (inline choices, or its reference list)."""
    f = spec.field(key)
    if f is None:
        return {}
    choices = list(f.choices or [])
    if not choices and f.choice_list and lists is not None:
        choices = list(lists.get(f.choice_list, []))
    return {c.value: dict(c.label) for c in choices}


# --- picking the event ---------------------------------------------------------------------------
@dataclass(frozen=True)
class EventRow:
    id: int
    title: str
    event_date: date | None
    place: str
    target_group: str | None
    liaison_point: str | None
    is_today: bool


def todays_events(engine: Engine, today: date, actor: Actor, *, limit: int = MAX_EVENTS) -> list[EventRow]:
    """Events for the tally picker: today's first, then upcoming (soonest first), then recent
    (latest first); at most `limit` rows, each group read by one ordered, limited SQL query."""
    spec = _spec(engine, EVENT_FORM)
    if not form_allows(actor, spec, "view"):
        raise PermissionDenied("outreach.forbidden")
    form_id = _form_id(engine, EVENT_FORM)
    d = _dialect(engine)
    day = json_field(d, "event_date")
    cols = (Submission.id, json_field(d, "title"), day, json_field(d, "place_name"), json_field(d, "target_group"),
            json_field(d, "liaison_point"))
    iso = today.isoformat()
    nxt = (today + timedelta(days=1)).isoformat()
    queries = [
        select(*cols).where(*_live(form_id), day >= iso, day < nxt).order_by(col(Submission.id).asc()),
        select(*cols).where(*_live(form_id), day >= nxt).order_by(day.asc(), col(Submission.id).asc()),
        select(*cols).where(*_live(form_id), day < iso).order_by(day.desc(), col(Submission.id).desc()),
    ]
    rows: list[EventRow] = []
    with session_scope(engine, write=False) as s:
        for q in queries:
            left = limit - len(rows)
            if left <= 0:
                break
            for sid, title, when, place, group, point in s.execute(q.limit(left)).all():
                on = _as_date(when)
                rows.append(EventRow(int(sid), str(title or f"#{sid}"), on, str(place or ""), group, point,
                                     on == today))
    return rows


def load_event(engine: Engine, event_id: int, actor: Actor) -> Any:
    """The event record (engine.storage.Record) if it exists, is live, is an outreach event and the
    actor may view it; NotFound / PermissionDenied otherwise."""
    from engine.storage import get_record

    rec = get_record(engine, int(event_id), actor=actor, history_limit=0)  # no history needed
    if rec.slug != EVENT_FORM:
        raise NotFound("outreach.not_event", id=event_id)
    if rec.deleted:
        raise NotFound("tally.no_event", id=event_id)
    return rec


def tap_stored(engine: Engine, tap_ids: Iterable[str]) -> set[str]:
    """Which of these client tap ids are stored (a tap whose answer was lost did or did not count)."""
    wanted = sorted(set(tap_ids))
    if not wanted:
        return set()
    with session_scope(engine, write=False) as s:
        return set(s.execute(select(TallyEvent.tap_id).where(col(TallyEvent.tap_id).in_(wanted))).scalars().all())


# --- per event -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class StaffRow:
    username: str
    name: str
    taps: int  # taps (not undos) made
    signups: int  # sign-ups entered
    devices: int  # tablets used


@dataclass(frozen=True)
class HourRow:
    hour: datetime  # start of the hour, aware UTC
    counter: str
    delta: int  # net change in that hour (undos included)
    taps: int  # tally events in that hour


@dataclass
class EventSummary:
    event_id: int
    title: str
    event_date: date | None
    data: dict[str, Any]
    spec: FormSpec  # the event's own form version
    counters: list[tuple[str, LText]]  # (key, label) of every counter the event can have
    totals: dict[str, int]  # counter -> SUM(delta) over all tablets
    signups: int
    referred: int  # sign-ups referred to an application
    by_group: dict[str, int]  # sign-up group value -> count ("" = none given)
    by_topic: dict[str, int]
    group_labels: dict[str, LText]
    topic_labels: dict[str, LText]
    staff_listed: list[str]  # names in the event's "staff present" field
    staff: list[StaffRow]  # users who tapped or signed people up
    timeline: list[Any]  # engine.tally.TimelineRow, newest first (limited)
    hours: list[HourRow]  # taps per hour and counter, oldest first
    first_tap: datetime | None = None
    last_tap: datetime | None = None

    def total(self, counter: str) -> int:
        return int(self.totals.get(counter, 0))

    def counter_label(self, key: str, lang: str = "zh") -> str:
        return next((ltext(label, lang) for k, label in self.counters if k == key), key) or key


def _counters(engine: Engine, own: FormSpec) -> list[tuple[str, LText]]:
    """The event's counters: those of its own version, then any the current version added."""
    out: dict[str, LText] = {f.key: dict(f.label) for f in own.counters}
    try:
        latest = _spec(engine, own.slug)
    except NotFound:
        latest = own
    for f in latest.counters:
        out.setdefault(f.key, dict(f.label))
    return list(out.items())


def _hour_expr(engine: Engine) -> Any:
    if _dialect(engine) == "postgresql":
        return func.to_char(func.timezone("UTC", TallyEvent.at), literal_column("'YYYY-MM-DD HH24'"))
    return func.substr(TallyEvent.at, 1, 13)


def _parse_hour(text: Any) -> datetime:
    return datetime.strptime(str(text)[:13], "%Y-%m-%d %H").replace(tzinfo=UTC)


def _names(s: Any, usernames: Iterable[str]) -> dict[str, str]:
    wanted = sorted({u for u in usernames if u})
    if not wanted:
        return {}
    rows = s.execute(select(User.username, User.display_name).where(col(User.username).in_(wanted))).all()
    return {u: (n or u) for u, n in rows}


def _signup_groups(engine: Engine, event_ids_cond: Any, key: str) -> dict[str, int]:
    """Sign-ups of the matching events grouped by one field (SQL GROUP BY)."""
    form_id = _form_id(engine, SIGNUP_FORM)
    expr = json_field(_dialect(engine), key)
    q = select(expr, func.count()).where(*_live(form_id), event_ids_cond).group_by(expr)
    with session_scope(engine, write=False) as s:
        out: dict[str, int] = {}
        for value, n in s.execute(q).all():
            out[_key(value)] = out.get(_key(value), 0) + int(n)
    return dict(sorted(out.items(), key=lambda kv: (-kv[1], kv[0])))


def signups_by(engine: Engine, event_id: int, key: str) -> dict[str, int]:
    """value of sign-up field `key` -> number of sign-ups at the event."""
    return _signup_groups(engine, Submission.parent_id == int(event_id), key)


def event_summary(engine: Engine, event_id: int, *, timeline_limit: int = 200) -> EventSummary:
    """Everything the event page and the PDF show about one event (no personal data)."""
    from engine import tally
    from engine.forms import choice_lists, get_spec, spec_for_form_id

    with session_scope(engine, write=False) as s:
        sub = s.get(Submission, int(event_id))
    if sub is None or sub.deleted_at is not None:
        raise NotFound("tally.no_event", id=event_id)
    slug, own = spec_for_form_id(engine, sub.form_id, sub.form_version)
    if slug != EVENT_FORM:
        raise NotFound("outreach.not_event", id=event_id)
    data = dict(sub.data or {})
    eid = int(event_id)
    totals = tally.totals(engine, eid)
    signup_form = _form_id(engine, SIGNUP_FORM)
    d = _dialect(engine)
    signup_live = and_(*_live(signup_form), Submission.parent_id == eid)
    hour = _hour_expr(engine)
    with session_scope(engine, write=False) as s:
        count, referred = s.execute(
            select(func.count(), func.count().filter(json_equals(d, "referred_to_application", True)))
            .where(signup_live)
        ).one()
        tappers = s.execute(
            select(TallyEvent.username,
                   func.count().filter(TallyEvent.delta > 0),
                   func.count(func.distinct(TallyEvent.device)))
            .where(TallyEvent.submission_id == eid).group_by(TallyEvent.username)
        ).all()
        writers = s.execute(
            select(Submission.created_by, func.count()).where(signup_live).group_by(Submission.created_by)
        ).all()
        span = s.execute(
            select(func.min(TallyEvent.at), func.max(TallyEvent.at)).where(TallyEvent.submission_id == eid)
        ).one()
        hours = s.execute(
            select(hour, TallyEvent.counter, func.sum(TallyEvent.delta), func.count())
            .where(TallyEvent.submission_id == eid).group_by(hour, TallyEvent.counter).order_by(hour, TallyEvent.counter)
        ).all()
        names = _names(s, [u for u, *_ in tappers] + [u for u, _ in writers])
    staff: dict[str, dict[str, int]] = {}
    for user, taps, devices in tappers:
        row = staff.setdefault(user or "", {"taps": 0, "signups": 0, "devices": 0})
        row["taps"] += int(taps or 0)
        row["devices"] = max(row["devices"], int(devices or 0))
    for user, n in writers:
        staff.setdefault(user or "", {"taps": 0, "signups": 0, "devices": 0})["signups"] += int(n)
    signup_spec = get_spec(engine, SIGNUP_FORM)
    lists = choice_lists(engine)
    listed = [line.strip() for line in str(data.get("staff_present") or "").splitlines() if line.strip()]
    first, last = span
    return EventSummary(
        event_id=eid,
        title=str(data.get("title") or f"#{eid}"),
        event_date=_as_date(data.get("event_date")),
        data=data,
        spec=own,
        counters=_counters(engine, own),
        totals=totals,
        signups=int(count or 0),
        referred=int(referred or 0),
        by_group=signups_by(engine, eid, "group"),
        by_topic=signups_by(engine, eid, "topic"),
        group_labels=choice_labels(signup_spec, "group", lists),
        topic_labels=choice_labels(signup_spec, "topic", lists),
        staff_listed=listed,
        staff=sorted((StaffRow(u, names.get(u, u), v["taps"], v["signups"], v["devices"]) for u, v in staff.items()),
                     key=lambda r: (-(r.taps + r.signups), r.username)),
        timeline=tally.timeline(engine, eid, limit=timeline_limit),
        hours=[HourRow(_parse_hour(h), str(c), int(n or 0), int(k or 0)) for h, c, n, k in hours],
        first_tap=_aware(first),
        last_tap=_aware(last),
    )


def _aware(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.utcoffset() is None else value.astimezone(UTC)


# --- per campaign / period -----------------------------------------------------------------------
@dataclass
class CampaignSummary:
    date_from: date | None
    date_to: date | None
    campaign: str | None
    events: int
    by_target_group: dict[str, int]  # target group value -> events
    totals: dict[str, int]  # counter -> SUM(delta) across the events
    by_liaison_point: dict[str, int]  # liaison point value ("" = none) -> events
    signups: int
    target_labels: dict[str, LText] = field(default_factory=dict)
    counter_labels: dict[str, LText] = field(default_factory=dict)
    liaison_labels: dict[str, LText] = field(default_factory=dict)

    def total(self, counter: str) -> int:
        return int(self.totals.get(counter, 0))

    @property
    def brochures(self) -> int:
        return self.total("brochures")

    @property
    def consultations(self) -> int:
        return self.total("consultations")

    @property
    def onsite_applications(self) -> int:
        return self.total("onsite_applications")

    @property
    def people_reached(self) -> int:
        return self.total("people_reached")

    def group_label(self, value: str, lang: str = "zh") -> str:
        return ltext(self.target_labels.get(value, {}), lang) or value

    def point_label(self, value: str, lang: str = "zh") -> str:
        if value == NONE_KEY:
            return "（未填）" if lang == "zh" else "(none)"
        return ltext(self.liaison_labels.get(value, {}), lang) or value

    def headline(self, lang: str = "zh") -> str:
        """E.g. "13 场活动，其中老年人专场 2 场、农民工专场 1 场" (the groups other than general)."""
        special = [(k, n) for k, n in self.by_target_group.items() if k not in ("general", NONE_KEY) and n]
        if lang == "zh":
            text = f"{self.events} 场活动"
            if special:
                text += "，其中" + "、".join(f"{self.group_label(k, lang)} {n} 场" for k, n in special)
            return text
        text = f"{self.events} event" + ("" if self.events == 1 else "s")
        if special:
            text += ", of which " + ", ".join(f"{n} {self.group_label(k, lang)}" for k, n in special)
        return text


def _event_conditions(engine: Engine, date_from: date | None, date_to: date | None,
                      campaign: str | None) -> list[Any]:
    d = _dialect(engine)
    conds = _live(_form_id(engine, EVENT_FORM))
    day = json_field(d, "event_date")
    if date_from is not None:
        conds.append(day >= date_from.isoformat())
    if date_to is not None:
        conds.append(day < (date_to + timedelta(days=1)).isoformat())
    if campaign:
        conds.append(json_field(d, "campaign") == campaign)
    return conds


def campaign_summary(engine: Engine, date_from: date | None, date_to: date | None,
                     campaign: str | None = None) -> CampaignSummary:
    """Events dated from `date_from` to `date_to` (inclusive; None = open), optionally of one campaign:
    their number, by target group and liaison point, the tallies summed across them, sign-ups."""
    from engine.forms import choice_lists

    d = _dialect(engine)
    conds = _event_conditions(engine, date_from, date_to, campaign)
    ids = select(Submission.id).where(*conds)
    group = json_field(d, "target_group")
    point = json_field(d, "liaison_point")
    signup_form = _form_id(engine, SIGNUP_FORM)
    with session_scope(engine, write=False) as s:
        by_group = s.execute(select(group, func.count()).where(*conds).group_by(group)).all()
        by_point = s.execute(select(point, func.count()).where(*conds).group_by(point)).all()
        sums = s.execute(
            select(TallyEvent.counter, func.sum(TallyEvent.delta))
            .where(col(TallyEvent.submission_id).in_(ids)).group_by(TallyEvent.counter)
        ).all()
        signups = s.execute(
            select(func.count()).select_from(Submission)
            .where(*_live(signup_form), col(Submission.parent_id).in_(ids))
        ).scalar_one()
    groups: dict[str, int] = {}
    for value, n in by_group:
        groups[_key(value)] = groups.get(_key(value), 0) + int(n)
    points: dict[str, int] = {}
    for value, n in by_point:
        points[_key(value)] = points.get(_key(value), 0) + int(n)
    spec = _spec(engine, EVENT_FORM)
    lists = choice_lists(engine)
    target_labels = choice_labels(spec, "target_group", lists)
    order = {k: i for i, k in enumerate(target_labels)}
    return CampaignSummary(
        date_from=date_from,
        date_to=date_to,
        campaign=campaign or None,
        events=sum(groups.values()),
        by_target_group=dict(sorted(groups.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0]))),
        totals={str(c): int(n or 0) for c, n in sums},
        by_liaison_point=dict(sorted(points.items(), key=lambda kv: (-kv[1], kv[0]))),
        signups=int(signups or 0),
        target_labels=target_labels,
        counter_labels={f.key: dict(f.label) for f in spec.counters},
        liaison_labels=choice_labels(spec, "liaison_point", lists),
    )


def campaigns(engine: Engine, limit: int = 50) -> list[str]:
    """Campaign names used by events (for a picker), most events first."""
    d = _dialect(engine)
    expr = json_field(d, "campaign")
    q = (select(expr, func.count()).where(*_live(_form_id(engine, EVENT_FORM)), expr.is_not(None))
         .group_by(expr).order_by(func.count().desc()).limit(limit))
    with session_scope(engine, write=False) as s:
        return [str(v) for v, _n in s.execute(q).all() if v]


# --- quick sign-up -------------------------------------------------------------------------------
def _recent_duplicate(engine: Engine, event_id: int, name: str, phone: str | None) -> tuple[int, datetime] | None:
    d = _dialect(engine)
    conds = [*_live(_form_id(engine, SIGNUP_FORM)), Submission.parent_id == int(event_id),
             Submission.created_at >= utcnow() - DUPLICATE_WINDOW, json_field(d, "name") == name]
    phone_expr = json_field(d, "phone")
    conds.append(phone_expr == phone if phone else phone_expr.is_(None))
    q = select(Submission.id, Submission.created_at).where(*conds).order_by(col(Submission.id).desc()).limit(1)
    with session_scope(engine, write=False) as s:
        row = s.execute(q).first()
    return None if row is None else (int(row[0]), _aware(row[1]) or utcnow())


def quick_signup(engine: Engine, event_id: int, values: Mapping[str, Any], *, actor: Actor,
                 confirm_duplicate: bool = False) -> Submission:
    """Store a sign-up at the event (engine.storage.create with parent_id=event_id).

    The values are validated first (ValidationFailed as usual). If the same name and phone were
    signed up at this event within the last minute, `DuplicateSignup` is raised and nothing is
    saved, unless `confirm_duplicate` is true.
    """
    from engine.fields import mask_value
    from engine.forms import choice_lists
    from engine.storage import create
    from engine.validate import ValidationContext, validate

    spec = _spec(engine, SIGNUP_FORM)
    raw = dict(values)
    ctx = ValidationContext(lang=actor.language, choice_lists=choice_lists(engine))
    clean, errors = validate(spec, raw, ctx)
    if not errors and not confirm_duplicate and clean.get("name"):
        phone = clean.get("phone") or None
        dup = _recent_duplicate(engine, event_id, str(clean["name"]), phone)
        if dup is not None:
            existing, at = dup
            seconds = max(0, int((utcnow() - at).total_seconds()))
            phone_field = spec.field("phone")
            shown = mask_value(phone_field, str(phone)) if phone and phone_field else "—"
            raise DuplicateSignup(existing, name=clean["name"], phone=shown, seconds=seconds, id=existing)
    return create(engine, SIGNUP_FORM, raw, actor=actor, parent_id=int(event_id), ctx=ctx)


# --- export and PDF ------------------------------------------------------------------------------
def signups_csv(engine: Engine, event_id: int, *, actor: Actor, lang: str = "zh", reveal: bool = False,
                reason: str | None = None) -> bytes:
    """The sign-ups of one event as CSV (UTF-8 with BOM): phones masked unless `reveal` and the role
    may reveal. Checked like any export; an export holding a sensitive column is audited (with
    `reason`: why it was exported unmasked)."""
    from engine import audit
    from engine.exporters import CsvWriter, check_export_allowed
    from engine.fields import REGISTRY, is_empty, mask_value
    from engine.forms import choice_lists, spec_for_form_id

    spec = _spec(engine, SIGNUP_FORM)
    check_export_allowed(actor, spec, reveal)
    load_event(engine, event_id, actor)
    lists = choice_lists(engine)
    fields = [f for f in spec.fields if REGISTRY.get(f.type) is not None and REGISTRY[f.type].stores_value]
    out = io.BytesIO()
    writer = CsvWriter(out, SIGNUP_FORM)
    meta = {"zh": ("记录ID", "登记人", "登记时间"), "en": ("Record ID", "Created by", "Created at")}[
        "en" if lang == "en" else "zh"]
    writer.header([meta[0]] + [ltext(f.label, lang) or f.key for f in fields] + [meta[1], meta[2]])
    form_id = _form_id(engine, SIGNUP_FORM)
    q = (select(Submission).where(*_live(form_id), Submission.parent_id == int(event_id))
         .order_by(col(Submission.id).asc()))
    count = 0
    with session_scope(engine, write=False) as s:
        rows = s.execute(q).scalars().all()
    for sub in rows:
        _slug, own = spec_for_form_id(engine, sub.form_id, sub.form_version)
        cells: list[Any] = [sub.id]
        for f in fields:
            value = (sub.data or {}).get(f.key)
            fs = own.field(f.key) or f
            if fs.choice_list and not fs.choices and fs.choice_list in lists:
                fs = fs.model_copy(update={"choices": list(lists[fs.choice_list])})
            text = "" if is_empty(value) else REGISTRY[fs.type].display(value, fs, lang)
            if fs.sensitive and text and not reveal:
                text = mask_value(fs, text)
            cells.append(text)
        cells += [sub.created_by, sub.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")]
        writer.row(cells)
        count += 1
    writer.close()
    sensitive = [f.key for f in fields if f.sensitive]
    if sensitive:
        with session_scope(engine) as s:
            audit.record(s, actor, "export", "submission", str(event_id), form_slug=SIGNUP_FORM, detail={
                "form": SIGNUP_FORM, "format": "csv", "count": count, "parent_id": int(event_id),
                "sensitive": sensitive, "revealed": bool(reveal), "reason": (reason or "").strip()[:500] or None,
            })
    return out.getvalue()


def _label(labels: Mapping[str, LText], value: str, lang: str) -> str:
    if value == NONE_KEY:
        return "（未填）" if lang == "zh" else "(none)"
    return ltext(labels.get(value, {}), lang) or value


def event_pdf(engine: Engine, event_id: int, *, lang: str = "zh", office: str | None = None) -> bytes:
    """A one-page summary of the event in Chinese (or English): details, totals, sign-ups by group
    and topic, staff, taps per hour. No personal data of the people signed up."""
    from engine.forms import choice_lists
    from engine.pdf import Document

    summary = event_summary(engine, event_id, timeline_limit=1)
    zh = lang != "en"
    spec = summary.spec
    data = summary.data
    lists = choice_lists(engine)

    def lbl(key: str) -> str:
        f = spec.field(key)
        return (ltext(f.label, lang) if f else "") or key

    def choice(key: str) -> str:
        value = data.get(key)
        if value in (None, ""):
            return ""
        return _label(choice_labels(spec, key, lists), str(value), lang)

    doc = Document(title="宣传活动小结" if zh else "Outreach event summary", lang="zh" if zh else "en", office=office)
    doc.heading(summary.title, level=1)
    details = [
        (lbl("event_date"), summary.event_date.isoformat() if summary.event_date else ""),
        (lbl("campaign"), str(data.get("campaign") or "")),
        (lbl("place_type"), choice("place_type")),
        (lbl("place_name"), str(data.get("place_name") or "")),
        (lbl("liaison_point"), choice("liaison_point")),
        (lbl("target_group"), choice("target_group")),
        (lbl("staff_present"), "、".join(summary.staff_listed) if zh else ", ".join(summary.staff_listed)),
        (lbl("lawyers_present"), str(data.get("lawyers_present") or "")),
    ]
    doc.kv([(k, v) for k, v in details if v], label_width=40)
    doc.heading("现场计数" if zh else "Tallies", level=2)
    doc.table(["计数项" if zh else "Counter", "合计" if zh else "Total"],
              [(ltext(label, lang) or key, summary.total(key)) for key, label in summary.counters],
              widths=[3, 1])
    doc.heading((f"现场登记 {summary.signups} 人（引导申请 {summary.referred} 人）" if zh else
                 f"Sign-ups: {summary.signups} ({summary.referred} referred to an application)"), level=2)
    if summary.signups:
        groups = [(_label(summary.group_labels, k, lang), n) for k, n in summary.by_group.items()]
        topics = [(_label(summary.topic_labels, k, lang), n) for k, n in summary.by_topic.items()]
        width = max(len(groups), len(topics))
        rows = [((groups[i][0], groups[i][1]) if i < len(groups) else ("", "")) +
                ((topics[i][0], topics[i][1]) if i < len(topics) else ("", "")) for i in range(width)]
        doc.table(["人员类别" if zh else "Group", "人数" if zh else "People",
                   "咨询问题" if zh else "Topic", "人数" if zh else "People"], rows[:12], widths=[3, 1, 3, 1])
    if summary.staff:
        doc.heading("工作人员" if zh else "Staff", level=2)
        doc.table(["姓名" if zh else "Name", "计数次数" if zh else "Taps", "登记人数" if zh else "Sign-ups",
                   "平板数" if zh else "Tablets"],
                  [(r.name, r.taps, r.signups, r.devices) for r in summary.staff[:8]], widths=[3, 1, 1, 1])
    if summary.hours:
        from zoneinfo import ZoneInfo

        tz = ZoneInfo("Asia/Shanghai")
        by_hour: dict[datetime, int] = {}
        for h in summary.hours:
            by_hour[h.hour] = by_hour.get(h.hour, 0) + h.taps
        items = [(h.astimezone(tz).strftime("%m-%d %H:00"), n) for h, n in sorted(by_hour.items())][:10]
        doc.bar_chart("每小时计数次数" if zh else "Taps per hour", items)
    return doc.output()


__all__ = [
    "CampaignSummary", "DuplicateSignup", "EventRow", "EventSummary", "HourRow", "StaffRow", "campaign_summary",
    "campaigns", "choice_labels", "event_pdf", "event_summary", "load_event", "quick_signup", "signups_by",
    "signups_csv", "tap_stored", "todays_events",
]
