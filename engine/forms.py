"""Forms, their immutable versions, reference (choice) lists, and the first-start load.

- `publish` turns a spec source into the next `FormVersion` (one transaction with its audit event
  and a "forms" stamp bump). Publishing an identical spec changes nothing.
- `get_spec` caches versions per process (they never change); which version is *current* is always
  read from the database, so a publish made by another process is seen at once.
- `choice_lists` is cached per process on the "choice_lists" change stamp.
- `load_builtins` / `init_database` load data/reference and data/forms once, under a lock
  (PostgreSQL advisory lock; SQLite's BEGIN IMMEDIATE write lock), so several processes may start
  at the same time.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import func, text
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from engine import audit, stamps
from engine.access import SYSTEM, Actor
from engine.config import FORMS_DIR, REFERENCE_DIR
from engine.db import MIGRATION_LOCK_ID, is_postgres, session_scope, upgrade, url_key
from engine.errors import EngineError, NotFound, PermissionDenied, Problem, SpecError
from engine.messages import register
from engine.spec import parse_spec
from engine.versioning import PublishPlan, plan_publish
from models.spec import Choice, FormSpec, LText, as_ltext, ltext
from models.tables import ChoiceItem, ChoiceList, Form, FormVersion, Submission, utcnow

log = logging.getLogger(__name__)

register({
    "form.not_found": {"zh": "表单「{form}」不存在。", "en": "Form '{form}' does not exist."},
    "form.version_not_found": {
        "zh": "表单「{form}」没有第 {version} 版。",
        "en": "Form '{form}' has no version {version}.",
    },
    "form.not_published": {"zh": "表单「{form}」尚未发布。", "en": "Form '{form}' has not been published yet."},
    "form.archived": {"zh": "表单「{form}」已停用，不能新增记录。", "en": "Form '{form}' is archived; no new records."},
    "form.forbidden_publish": {
        "zh": "您没有发布表单的权限。",
        "en": "You may not publish forms.",
    },
    "form.publish_refused": {
        "zh": "表单「{form}」不能发布：有 {count} 处问题。",
        "en": "Form '{form}' cannot be published: {count} problem(s).",
    },
    "builtin.bad_file": {"zh": "内置文件「{file}」无法读取：{error}", "en": "Built-in file '{file}' cannot be read: {error}"},
    "builtin.duplicate_slug": {
        "zh": "内置文件「{file}」的表单标识「{form}」与「{other}」重复，未载入。",
        "en": "Built-in file '{file}' declares form '{form}' already declared by '{other}'; not loaded.",
    },
    "choice_list.not_found": {"zh": "参考列表「{name}」不存在。", "en": "Reference list '{name}' does not exist."},
    "choice_list.forbidden": {"zh": "您没有编辑参考列表的权限。", "en": "You may not edit reference lists."},
    "choice_list.bad_name": {
        "zh": "参考列表名称「{name}」无效：只能用小写字母、数字和下划线，以字母开头。",
        "en": "Reference list name '{name}' is invalid: lower-case letters, digits and _ only, starting with a letter.",
    },
    "choice_list.empty_value": {"zh": "第 {row} 项没有填写值。", "en": "Item {row} has no value."},
    "choice_list.duplicate_value": {
        "zh": "值「{value}」在列表中出现了不止一次。",
        "en": "Value '{value}' appears more than once in the list.",
    },
    "choice_list.invalid": {
        "zh": "参考列表「{name}」有 {count} 处问题。",
        "en": "Reference list '{name}' has {count} problem(s).",
    },
    "choice_list.no_item": {
        "zh": "参考列表「{name}」中没有值「{value}」。",
        "en": "Reference list '{name}' has no value '{value}'.",
    },
})

LIST_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # safe; libyaml when present (~20x faster)

# --- caches (per process; keyed by database URL) -----------------------------------------------
_LOCK = threading.Lock()
_SPECS: dict[tuple[str, str, int], FormSpec] = {}  # (url, slug, version) -> spec; versions are immutable
_CHOICES: dict[str, tuple[int, dict[str, list[Choice]]]] = {}  # url -> (stamp, lists incl. inactive)
_COUNTS: dict[str, tuple[int, dict[int, int]]] = {}  # url -> ("data" stamp, {form id: live records})


def _url(engine: Engine) -> str:
    return url_key(engine)


_ON_CLEAR: list[Callable[[], None]] = []  # caches made from specs elsewhere (engine.storage's save gates)


def on_clear_caches(forget: Callable[[], None]) -> None:
    """Have `clear_caches` also call `forget` (for caches that hold specs from this module)."""
    _ON_CLEAR.append(forget)


def clear_caches(engine: Engine | None = None) -> None:
    """Forget cached specs and lists (all, or one database's): after restoring a backup."""
    for forget in _ON_CLEAR:
        forget()
    with _LOCK:
        if engine is None:
            _SPECS.clear()
            _CHOICES.clear()
            _COUNTS.clear()
            return
        url = _url(engine)
        for key in [k for k in _SPECS if k[0] == url]:
            del _SPECS[key]
        _CHOICES.pop(url, None)
        _COUNTS.pop(url, None)


def spec_from_stored(data: Mapping[str, Any]) -> FormSpec:
    """A FormSpec from a stored FormVersion.spec (already checked when it was published)."""
    return FormSpec.model_validate(dict(data))


# --- reading forms -----------------------------------------------------------------------------
@dataclass(frozen=True)
class FormRef:
    """A form and its current version, as read from the database just now."""

    id: int
    slug: str
    version: int
    archived: bool
    spec: FormSpec


@dataclass(frozen=True)
class FormInfo:
    slug: str
    title: LText
    category: str
    version: int
    count: int  # records not deleted (all versions)
    parent: str | None
    archived: bool = False
    builtin: bool = False

    def label(self, lang: str = "zh") -> str:
        return ltext(self.title, lang) or self.slug


def _spec_in(session: Session, url: str, form_id: int, slug: str, version: int) -> FormSpec:
    key = (url, slug, version)
    spec = _SPECS.get(key)
    if spec is not None:
        return spec
    stored = session.exec(
        select(FormVersion.spec).where(FormVersion.form_id == form_id, FormVersion.version == version)
    ).first()
    if stored is None:
        raise NotFound("form.version_not_found", form=slug, version=version)
    spec = spec_from_stored(stored)
    with _LOCK:
        _SPECS[key] = spec
    return spec


def _form_row(session: Session, slug: str) -> tuple[int, int, bool] | None:
    row = session.exec(select(Form.id, Form.current_version, Form.archived).where(Form.slug == slug)).first()
    return None if row is None else (int(row[0]), int(row[1]), bool(row[2]))


_FORM_ROW = text("SELECT id, current_version, archived FROM forms WHERE slug = :slug")


def form_ref_in(session: Session, engine: Engine, slug: str) -> FormRef:
    """`form_ref` inside the caller's transaction (a write reads the version it writes under)."""
    row = session.execute(_FORM_ROW, {"slug": slug}).first()
    if row is None:
        raise NotFound("form.not_found", form=slug)
    form_id, version, archived = int(row[0]), int(row[1]), bool(row[2])
    if version < 1:
        raise NotFound("form.not_published", form=slug)
    spec = _spec_in(session, _url(engine), form_id, slug, version)
    return FormRef(form_id, slug, version, archived, spec)


def cached_ref(engine: Engine, slug: str, form_id: int, version: int, archived: bool) -> FormRef:
    """A FormRef from a form row the caller read in its own transaction (the spec from the cache)."""
    if version < 1:
        raise NotFound("form.not_published", form=slug)
    spec = _SPECS.get((_url(engine), slug, version))
    if spec is None:
        with session_scope(engine, write=False) as session:
            spec = _spec_in(session, _url(engine), form_id, slug, version)
    return FormRef(form_id, slug, version, archived, spec)


def form_ref(engine: Engine, slug: str) -> FormRef:
    """The form `slug` with its current version (read from the database) and that version's spec."""
    with session_scope(engine, write=False) as session:
        return form_ref_in(session, engine, slug)


def get_spec(engine: Engine, slug: str, version: int | None = None) -> FormSpec:
    """The current (or the given) version of form `slug`. Shared cached object: do not mutate it."""
    if version is None:
        return form_ref(engine, slug).spec
    key = (_url(engine), slug, int(version))
    spec = _SPECS.get(key)
    if spec is not None:
        return spec
    with session_scope(engine, write=False) as session:
        row = _form_row(session, slug)
        if row is None:
            raise NotFound("form.not_found", form=slug)
        return _spec_in(session, key[0], row[0], slug, int(version))


def spec_for_form_id(engine: Engine, form_id: int, version: int) -> tuple[str, FormSpec]:
    """(slug, spec) of one version of the form with id `form_id`."""
    with session_scope(engine, write=False) as session:
        slug = session.exec(select(Form.slug).where(Form.id == form_id)).first()
        if slug is None:
            raise NotFound("form.not_found", form=f"#{form_id}")
        return slug, _spec_in(session, _url(engine), form_id, slug, version)


def list_versions(engine: Engine, slug: str) -> list[FormVersion]:
    """Every published version of a form, newest first."""
    with session_scope(engine, write=False) as session:
        row = _form_row(session, slug)
        if row is None:
            raise NotFound("form.not_found", form=slug)
        stmt = select(FormVersion).where(FormVersion.form_id == row[0]).order_by(col(FormVersion.version).desc())
        return list(session.exec(stmt).all())


def list_forms(engine: Engine, include_archived: bool = False) -> list[FormInfo]:
    """Published forms with their current version and live record count (counts cached on the "data" stamp)."""
    stmt = (
        select(Form, FormVersion.spec)
        .join(FormVersion, (FormVersion.form_id == Form.id) & (FormVersion.version == Form.current_version))
        .order_by(Form.category, Form.slug)
    )
    if not include_archived:
        stmt = stmt.where(col(Form.archived).is_(False))
    out: list[FormInfo] = []
    with session_scope(engine, write=False) as session:
        counts = _live_counts(session, _url(engine))
        for form, spec in session.exec(stmt).all():
            out.append(FormInfo(
                slug=form.slug, title=dict(form.title or {}), category=form.category, version=form.current_version,
                count=counts.get(int(form.id), 0), parent=(spec or {}).get("parent"), archived=form.archived,
                builtin=form.builtin,
            ))
    return out


def _live_counts(session: Session, url: str) -> dict[int, int]:
    """{form id: live records}: one GROUP BY over the whole table, so remembered until a record changes
    (the "data" stamp, read first: a write racing the count only makes the next call count again)."""
    stamp = int(session.execute(text("SELECT stamp FROM change_stamps WHERE scope = 'data'")).scalar() or 0)
    cached = _COUNTS.get(url)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    rows = session.execute(select(Submission.form_id, func.count()).where(col(Submission.deleted_at).is_(None))
                           .group_by(Submission.form_id)).all()
    counts = {int(fid): int(n) for fid, n in rows}
    with _LOCK:
        _COUNTS[url] = (stamp, counts)
    return counts


# --- publishing --------------------------------------------------------------------------------
def _known(session: Session) -> tuple[set[str], set[str]]:
    lists = set(session.exec(select(ChoiceList.name)).all())
    forms = set(session.exec(select(Form.slug)).all())
    return lists, forms


def _parse(session: Session, source: FormSpec | Mapping[str, Any] | str | Path) -> FormSpec:
    lists, forms = _known(session)
    if isinstance(source, FormSpec):
        source = source.to_dict()
    if isinstance(source, Mapping):
        source = dict(source)
    own = _peek_slug(source)
    if own:
        forms.add(own)  # a form may reference its own records
    return parse_spec(source, known_lists=lists, known_forms=forms)


def _peek_slug(source: Mapping[str, Any] | str | Path) -> str | None:
    """The slug a source declares, if it can be read cheaply (parse_spec reports any problem)."""
    data: Any = source
    try:
        if isinstance(source, Path):
            if source.suffix.lower() not in (".yaml", ".yml", ".json"):
                return None
            data = yaml.load(source.read_text(encoding="utf-8"), Loader=_YAML_LOADER)
        elif isinstance(source, str):
            data = yaml.load(source, Loader=_YAML_LOADER)
    except (OSError, ValueError, yaml.YAMLError):
        return None
    slug = data.get("slug") if isinstance(data, Mapping) else None
    return slug if isinstance(slug, str) else None


def _plan(session: Session, url: str, new: FormSpec) -> tuple[PublishPlan, Form | None, FormSpec | None]:
    stmt = select(Form).where(Form.slug == new.slug).with_for_update()
    form = session.exec(stmt).first()
    old = None
    if form is not None and form.current_version > 0:
        old = _spec_in(session, url, form.id, form.slug, form.current_version)
        old = old.model_copy(deep=True)  # plan_publish must never touch the cached object
    return plan_publish(old, new), form, old


def _refuse(slug: str, problems: list[Problem]) -> SpecError:
    return SpecError("form.publish_refused", problems=list(problems), form=slug, count=len(problems))


def _change_detail(change: Any) -> Any:
    if dataclasses.is_dataclass(change) and not isinstance(change, type):
        return audit.jsonable(dataclasses.asdict(change))
    return audit.jsonable(getattr(change, "__dict__", change))


def _publish_in(
    session: Session, url: str, source: FormSpec | Mapping[str, Any] | str | Path, *, actor: Actor,
    note: str = "", builtin: bool = False,
) -> tuple[FormVersion, bool]:
    """Publish inside the caller's transaction. Returns (version row, whether a new version was made)."""
    new = _parse(session, source)
    plan, form, old = _plan(session, url, new)
    if plan.problems:
        raise _refuse(new.slug, plan.problems)
    spec_dict = plan.spec.to_dict()
    if form is not None and old is not None and spec_dict == old.to_dict():
        current = session.exec(
            select(FormVersion).where(FormVersion.form_id == form.id, FormVersion.version == form.current_version)
        ).one()
        return current, False
    version = (form.current_version if form is not None else 0) + 1
    if form is None:
        form = Form(slug=plan.spec.slug, title=dict(plan.spec.title), category=plan.spec.category,
                    current_version=version, builtin=builtin)
        session.add(form)
        session.flush()
    else:
        form.title = dict(plan.spec.title)
        form.category = plan.spec.category
        form.current_version = version
        session.add(form)
    fv = FormVersion(form_id=form.id, version=version, spec=spec_dict, published_by=audit.actor_name(actor)[:64],
                     published_at=utcnow(), note=note or "")
    session.add(fv)
    session.flush()
    audit.record(session, actor, "publish", "form", form.slug, form_slug=form.slug, detail={
        "version": version, "note": note or "", "changes": [_change_detail(c) for c in plan.changes],
    })
    stamps.bump(session, "forms")
    return fv, True


def publish(engine: Engine, source: FormSpec | Mapping[str, Any] | str | Path, *, actor: Actor,
            note: str = "") -> FormVersion:
    """Publish `source` as the next version of its form (SpecError listing every problem).

    An identical spec is a no-op: the current version is returned and nothing is written.
    """
    if not actor.can("forms.design"):
        raise PermissionDenied("form.forbidden_publish")
    with session_scope(engine) as session:
        fv, _created = _publish_in(session, _url(engine), source, actor=actor, note=note)
    from engine.indexes import ensure_indexes

    ensure_indexes(engine, fv.spec)  # expression indexes for the fields it lists, filters on, sums up
    return fv


def preview_publish(engine: Engine, source: FormSpec | Mapping[str, Any] | str | Path) -> tuple[PublishPlan, int]:
    """What publishing would change, and how many live records of the form exist (they keep their versions).

    The plan's `problems` are returned, not raised; parse errors raise SpecError.
    """
    with session_scope(engine, write=False) as session:
        new = _parse(session, source)
        form = session.exec(select(Form).where(Form.slug == new.slug)).first()
        old = None
        count = 0
        if form is not None and form.current_version > 0:
            old = _spec_in(session, _url(engine), form.id, form.slug, form.current_version).model_copy(deep=True)
            count = int(session.exec(
                select(func.count()).select_from(Submission)
                .where(Submission.form_id == form.id, col(Submission.deleted_at).is_(None))
            ).one())
    return plan_publish(old, new), count


# --- reference lists ---------------------------------------------------------------------------
@dataclass
class ChoiceItemInfo:
    value: str
    label: LText
    active: bool = True
    position: int = 0
    extra: dict | None = None


@dataclass
class ChoiceListInfo:
    name: str
    title: LText
    builtin: bool
    items: list[ChoiceItemInfo] = field(default_factory=list)


def _load_choices(session: Session) -> dict[str, list[Choice]]:
    stmt = (
        select(ChoiceList.name, ChoiceItem.value, ChoiceItem.label, ChoiceItem.active)
        .join(ChoiceItem, ChoiceItem.list_id == ChoiceList.id, isouter=True)
        .order_by(ChoiceList.name, ChoiceItem.position, ChoiceItem.id)
    )
    out: dict[str, list[Choice]] = {}
    for name, value, label, active in session.exec(stmt).all():
        items = out.setdefault(name, [])
        if value is not None:
            items.append(Choice(value=value, label=dict(label or {}), active=bool(active)))
    return out


_CHOICES_STAMP = text("SELECT stamp FROM change_stamps WHERE scope = 'choice_lists'")


def shared_choice_lists(session: Session, engine: Engine) -> Mapping[str, list[Choice]]:
    """Every reference list (inactive items included), read in the caller's transaction: the cached
    shared object while the lists' stamp is unchanged (the same object each time: never mutate it)."""
    url = _url(engine)
    stamp = int(session.execute(_CHOICES_STAMP).scalar() or 0)
    cached = _CHOICES.get(url)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    lists = _load_choices(session)
    with _LOCK:
        _CHOICES[url] = (stamp, lists)
    return lists


def choice_lists_at(engine: Engine, stamp: int) -> Mapping[str, list[Choice]]:
    """The shared reference lists when the cache holds those of `stamp` (read by the caller in its
    own transaction); else read now. Never mutate the result."""
    cached = _CHOICES.get(_url(engine))
    if cached is not None and cached[0] == stamp:
        return cached[1]
    with session_scope(engine, write=False) as session:
        return shared_choice_lists(session, engine)


def choice_lists(engine: Engine, include_inactive: bool = True) -> dict[str, list[Choice]]:
    """Every reference list: name -> choices in order (with the `active` flag). Cached on the stamp."""
    with session_scope(engine, write=False) as session:
        lists = shared_choice_lists(session, engine)
    if include_inactive:
        return {name: list(items) for name, items in lists.items()}
    return {name: [c for c in items if c.active] for name, items in lists.items()}


def get_choice_list(engine: Engine, name: str) -> ChoiceListInfo:
    """One reference list with every item (inactive ones too) and the items' extra data."""
    with session_scope(engine, write=False) as session:
        lst = session.exec(select(ChoiceList).where(ChoiceList.name == name)).first()
        if lst is None:
            raise NotFound("choice_list.not_found", name=name)
        rows = session.exec(
            select(ChoiceItem).where(ChoiceItem.list_id == lst.id).order_by(ChoiceItem.position, ChoiceItem.id)
        ).all()
        return ChoiceListInfo(lst.name, dict(lst.title or {}), lst.builtin, [
            ChoiceItemInfo(r.value, dict(r.label or {}), r.active, r.position, r.extra) for r in rows
        ])


def list_choice_lists(engine: Engine) -> list[ChoiceListInfo]:
    """All reference lists (without their items)."""
    with session_scope(engine, write=False) as session:
        rows = session.exec(select(ChoiceList).order_by(ChoiceList.name)).all()
        return [ChoiceListInfo(r.name, dict(r.title or {}), r.builtin) for r in rows]


def _norm_items(name: str, items: Iterable[Choice | Mapping[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    problems: list[Problem] = []
    seen: set[str] = set()
    for row, item in enumerate(items, start=1):
        data = item.model_dump() if isinstance(item, Choice) else dict(item)
        value = str(data.get("value") if data.get("value") is not None else "").strip()
        if not value:
            problems.append(Problem("choice_list.empty_value", {"row": row}, row=row))
            continue
        if value in seen:
            problems.append(Problem("choice_list.duplicate_value", {"value": value}, row=row))
            continue
        seen.add(value)
        out.append({"value": value, "label": as_ltext(data.get("label")) or {"zh": value},
                    "active": bool(data.get("active", True)), "extra": data.get("extra")})
    if problems:
        raise EngineError("choice_list.invalid", problems=problems, name=name, count=len(problems))
    return out


def _save_list_in(session: Session, name: str, title: LText | str, items: list[dict[str, Any]], *,
                  builtin: bool = False) -> tuple[ChoiceList, dict[str, Any]]:
    lst = session.exec(select(ChoiceList).where(ChoiceList.name == name)).first()
    title_l = as_ltext(title) or {"zh": name}
    summary: dict[str, Any] = {"added": [], "changed": [], "deactivated": []}
    if lst is None:
        lst = ChoiceList(name=name, title=title_l, builtin=builtin)
        session.add(lst)
        session.flush()
        summary["created"] = True
    elif lst.title != title_l:
        summary["title"] = [lst.title, title_l]
        lst.title = title_l
        session.add(lst)
    existing = {r.value: r for r in session.exec(select(ChoiceItem).where(ChoiceItem.list_id == lst.id)).all()}
    for pos, item in enumerate(items):
        row = existing.pop(item["value"], None)
        if row is None:
            session.add(ChoiceItem(list_id=lst.id, value=item["value"], label=item["label"], active=item["active"],
                                   position=pos, extra=item["extra"]))
            summary["added"].append(item["value"])
            continue
        before = (row.label, row.active, row.position, row.extra)
        row.label, row.active, row.position, row.extra = item["label"], item["active"], pos, item["extra"]
        if before != (row.label, row.active, row.position, row.extra):
            session.add(row)
            summary["changed"].append(item["value"])
    # Values left out are kept inactive, never deleted: stored records still use them.
    for pos, row in enumerate(existing.values(), start=len(items)):
        if row.active or row.position != pos:
            if row.active:
                summary["deactivated"].append(row.value)
            row.active = False
            row.position = pos
            session.add(row)
    return lst, summary


def save_choice_list(engine: Engine, name: str, title: LText | str, items: Iterable[Choice | Mapping[str, Any]],
                     actor: Actor) -> ChoiceListInfo:
    """Create or replace a reference list. Items left out become inactive (never deleted)."""
    if not actor.can("reference.edit"):
        raise PermissionDenied("choice_list.forbidden")
    if not LIST_NAME_RE.match(name or ""):
        raise EngineError("choice_list.bad_name", name=name)
    norm = _norm_items(name, items)
    with session_scope(engine) as session:
        _lst, summary = _save_list_in(session, name, title, norm)
        audit.record(session, actor, "choice_list_update", "choice_list", name, detail=summary)
        stamps.bump(session, "choice_lists")
    return get_choice_list(engine, name)


def _item_for_update(session: Session, name: str, value: str) -> ChoiceItem:
    lst_id = session.exec(select(ChoiceList.id).where(ChoiceList.name == name)).first()
    if lst_id is None:
        raise NotFound("choice_list.not_found", name=name)
    item = session.exec(select(ChoiceItem).where(ChoiceItem.list_id == lst_id, ChoiceItem.value == value)).first()
    if item is None:
        raise NotFound("choice_list.no_item", name=name, value=value)
    return item


def set_choice_active(engine: Engine, name: str, value: str, active: bool, *, actor: Actor) -> None:
    """Switch one item on or off (an inactive item is kept for old records, not offered for new ones)."""
    if not actor.can("reference.edit"):
        raise PermissionDenied("choice_list.forbidden")
    with session_scope(engine) as session:
        item = _item_for_update(session, name, value)
        if item.active == bool(active):
            return
        item.active = bool(active)
        session.add(item)
        audit.record(session, actor, "choice_list_update", "choice_list", name,
                     detail={"value": value, "active": [not item.active, item.active]})
        stamps.bump(session, "choice_lists")


def rename_choice(engine: Engine, name: str, value: str, label: LText | str, *, actor: Actor) -> None:
    """Change an item's label. The stored value never changes, so records keep their meaning."""
    if not actor.can("reference.edit"):
        raise PermissionDenied("choice_list.forbidden")
    new_label = as_ltext(label)
    with session_scope(engine) as session:
        item = _item_for_update(session, name, value)
        if not new_label or item.label == new_label:
            return
        before = dict(item.label or {})
        item.label = new_label
        session.add(item)
        audit.record(session, actor, "choice_list_update", "choice_list", name,
                     detail={"value": value, "label": [before, new_label]})
        stamps.bump(session, "choice_lists")


# --- first start -------------------------------------------------------------------------------
def _read_yaml(path: Path) -> dict[str, Any]:
    data = yaml.load(path.read_text(encoding="utf-8"), Loader=_YAML_LOADER)
    if not isinstance(data, dict):
        raise ValueError("not a mapping")
    return data


def _form_deps(data: Mapping[str, Any]) -> set[str]:
    deps: set[str] = set()
    if isinstance(data.get("parent"), str):
        deps.add(data["parent"])
    for f in data.get("fields") or []:
        if isinstance(f, Mapping) and isinstance(f.get("reference_form"), str):
            deps.add(f["reference_form"])
    return deps


def _ordered_forms(files: list[tuple[Path, dict[str, Any]]],
                   result: dict[str, Any] | None = None) -> list[tuple[Path, dict[str, Any]]]:
    """Parents (and referenced forms) before the forms that point to them; file order otherwise.
    A second file declaring a slug already taken is reported in `result["problems"]` and skipped."""
    by_slug: dict[str, tuple[Path, dict[str, Any]]] = {}
    for p, d in files:
        slug = d.get("slug")
        if not isinstance(slug, str):
            continue
        if slug in by_slug:
            if result is not None:
                result["problems"][p.name] = EngineError(
                    "builtin.duplicate_slug", file=p.name, form=slug, other=by_slug[slug][0].name).describe("en")
            continue
        by_slug[slug] = (p, d)
    done: set[str] = set()
    # A file without a slug still goes through publish, which reports the problem.
    out: list[tuple[Path, dict[str, Any]]] = [(p, d) for p, d in files if not isinstance(d.get("slug"), str)]

    def visit(slug: str, trail: tuple[str, ...]) -> None:
        if slug in done or slug not in by_slug or slug in trail:
            return
        for dep in sorted(_form_deps(by_slug[slug][1])):
            visit(dep, (*trail, slug))
        done.add(slug)
        out.append(by_slug[slug])

    for slug in by_slug:
        visit(slug, ())
    return out


def _lock_first_start(session: Session, engine: Engine) -> None:
    # PostgreSQL: one loader at a time (released with the transaction). SQLite: the
    # session already holds the database write lock (BEGIN IMMEDIATE).
    if is_postgres(engine):
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK_ID})


def load_builtins(engine: Engine, actor: Actor = SYSTEM, *, forms_dir: Path | None = None,
                  reference_dir: Path | None = None) -> dict[str, Any]:
    """Load data/reference/*.yaml and data/forms/*.yaml into an empty database, in one transaction.

    Idempotent: a reference list or form that already exists is left as it is (the office may have
    edited it). A file that does not load is reported in `problems` (and logged); the others load.
    """
    forms_dir = FORMS_DIR if forms_dir is None else forms_dir
    reference_dir = REFERENCE_DIR if reference_dir is None else reference_dir
    result: dict[str, Any] = {"lists_created": [], "lists_skipped": [], "forms_published": [],
                              "forms_skipped": [], "problems": {}}
    url = _url(engine)
    with session_scope(engine) as session:
        _lock_first_start(session, engine)
        lists_changed = _load_reference_files(session, sorted(Path(reference_dir).glob("*.yaml")), actor, result)
        if lists_changed:
            stamps.bump(session, "choice_lists")
        _load_form_files(session, url, sorted(Path(forms_dir).glob("*.yaml")), actor, result)
    for file, problem in result["problems"].items():
        log.error("built-in %s not loaded: %s", file, problem)
    return result


def _load_reference_files(session: Session, paths: list[Path], actor: Actor, result: dict[str, Any]) -> bool:
    existing = set(session.exec(select(ChoiceList.name)).all())
    changed = False
    for path in paths:
        try:
            data = _read_yaml(path)
            name = str(data.get("name") or path.stem)
            if name in existing:
                result["lists_skipped"].append(name)
                continue
            if not LIST_NAME_RE.match(name):
                raise EngineError("choice_list.bad_name", name=name)
            items = _norm_items(name, data.get("items") or [])
            with session.begin_nested():
                _save_list_in(session, name, data.get("title") or name, items, builtin=True)
                audit.record(session, actor, "choice_list_update", "choice_list", name,
                             detail={"builtin": True, "items": len(items)})
        except EngineError as exc:
            result["problems"][path.name] = exc.describe("en")
            continue
        except (OSError, ValueError, yaml.YAMLError) as exc:
            result["problems"][path.name] = EngineError("builtin.bad_file", file=path.name, error=exc).describe("en")
            continue
        existing.add(name)
        result["lists_created"].append(name)
        changed = True
    return changed


def _load_form_files(session: Session, url: str, paths: list[Path], actor: Actor, result: dict[str, Any]) -> None:
    files: list[tuple[Path, dict[str, Any]]] = []
    for path in paths:
        try:
            files.append((path, _read_yaml(path)))
        except (OSError, ValueError, yaml.YAMLError) as exc:
            result["problems"][path.name] = EngineError("builtin.bad_file", file=path.name, error=exc).describe("en")
    existing = set(session.exec(select(Form.slug)).all())
    for path, data in _ordered_forms(files, result):
        slug = str(data.get("slug") or "")
        if slug in existing:
            result["forms_skipped"].append(slug)
            continue
        try:
            with session.begin_nested():
                fv, _created = _publish_in(session, url, data, actor=actor, note="built-in", builtin=True)
        except EngineError as exc:
            result["problems"][path.name] = exc.describe("en")
            continue
        existing.add(slug)
        result["forms_published"].append(slug)
        log.debug("built-in form %s published as version %s", slug, fv.version)


def init_database(engine: Engine) -> dict[str, Any]:
    """Schema upgrade, then the first-start load. Safe when several processes start together.

    PostgreSQL: both steps run under an advisory lock. SQLite: the upgrade runs in a BEGIN IMMEDIATE
    transaction, so a second process waits for the first one's schema instead of racing it.
    """
    upgrade(engine if is_postgres(engine) else engine.execution_options(sqlite_immediate=True))
    from engine.indexes import rebuild_indexes

    result = load_builtins(engine)
    rebuild_indexes(engine)  # creates only what is missing (built-ins, restored files); ms when nothing is
    return result
