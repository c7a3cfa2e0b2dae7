"""Conflict and duplicate check of an intake record (利益冲突审查、重复申请).

Everyone named on the record — the applicant (name, ID number, birth date) and every opposing party
(one per line of `opposing_parties`; a line may carry an ID number or a birth date after the name,
e.g. "李四 440803198001011234" or "王五（1975年3月2日出生）") — is matched against every person named
as applicant or opposing party in every other live intake record:

- **strong**: the same ID number; the same name and birth date; a similar name and the same birth date;
- **weak**: the same name, the same pinyin (张伟 / 张玮), or one character different in names of equal
  length (for two-character names the differing characters must also start with the same pinyin
  letter, otherwise every 张X would match every other 张Y).

Two people are never matched when both carry 18-digit resident ID numbers that differ, or when both
have birth dates that differ. Each match is classified:

- **conflict**: our applicant is an opposing party elsewhere, or our opposing party is (or was) the
  applicant elsewhere;
- **duplicate**: an open case (state not refused / closed / archived / terminated) of the same person
  as applicant;
- **previous**: an earlier, finished application of the same person (for information).

The candidate search runs in SQL: exact ID numbers and names via `json_field` (and LIKE over the
opposing-parties text); for similar names a keyset-paged projection of (id, name, opposing_parties)
only — never whole records — is compared in Python. Fine for tens of thousands of intakes.

A staff member confirms or clears each match with a reason (`decide`): a `Decision` row (kind
"conflict", subject = the match key) and an audit event "conflict_decision". A decision stores the
fingerprint of the record's parties (applicant + opposing parties); when the parties change, earlier
decisions no longer apply (`status` shows them as reset).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import unicodedata
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.engine import Engine
from sqlmodel import col

from engine import audit, stamps
from engine.access import Actor, form_allows
from engine.db import session_scope, url_key
from engine.eligibility import INTAKE, load_intake
from engine.errors import EngineError, NotFound, PermissionDenied
from engine.messages import register
from engine.queries import json_field
from models.decisions import Decision
from models.tables import Form, Submission, utcnow

register({
    "conflict.unknown_match": {
        "zh": "此项比对结果已不存在（记录可能已修改），请刷新后再处理。",
        "en": "This match no longer exists (a record may have changed); please reload.",
    },
    "conflict.bad_outcome": {
        "zh": "只能「确认」或「排除」。",
        "en": "The outcome must be 'confirmed' or 'cleared'.",
    },
    "conflict.reason_required": {
        "zh": "请写明确认或排除的理由。",
        "en": "Please give the reason for confirming or clearing.",
    },
    "conflict.forbidden": {
        "zh": "您的角色不能处理此申请的利益冲突审查。",
        "en": "Your role may not decide on this application's conflict check.",
    },
})

CLOSED_STATES: frozenset[str] = frozenset({"refused", "archived", "terminated", "closed"})
CONFIRMED, CLEARED = "confirmed", "cleared"
APPLICANT, OPPONENT = "applicant", "opponent"
KIND_ORDER = {"conflict": 0, "duplicate": 1, "previous": 2}
PAGE = 5000
STRONG_BASES = frozenset({"same_id", "same_name_birth", "similar_name_birth"})

ID_RE = re.compile(r"(?<![0-9A-Za-z])([0-9]{17}[0-9Xx]|[0-9]{15})(?![0-9A-Za-z])")
DATE_RE = re.compile(r"(?<![0-9])((?:19|20)[0-9]{2})\s*[-/.年]\s*([0-9]{1,2})\s*[-/.月]\s*([0-9]{1,2})\s*日?"
                     r"(?:\s*出生|\s*生)?")
ROLE_PREFIX_RE = re.compile(r"^(?:被申请人|被告人|被告|对方当事人|对方|第三人|被上诉人|被请求人)\s*[:：]?\s*")
LABEL_RE = re.compile(r"(?:公民身份号码|身份证号码|身份证号|身份证|证件号码|证件号|出生日期|出生于|出生|生于|生日|"
                      r"性别|男性|女性)")
SPLIT_RE = re.compile(r"[\s,，;；:：()（）\[\]【】<>《》/|]+")
MULTI_RE = re.compile(r"[、;；]")
DOTS = str.maketrans({"・": "·", "•": "·", "‧": "·", "∙": "·", "．": "·"})
SEX_WORDS = frozenset({"男", "女"})


# --- people ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Person:
    role: str  # "applicant" | "opponent"
    name: str  # as written
    norm: str  # normalised for comparison
    id_number: str | None = None  # normalised (15-digit resident IDs widened to 18)
    birth: str | None = None  # ISO date

    @property
    def tag(self) -> str:
        if self.role == APPLICANT:
            return "A"
        return "O" + hashlib.sha1(self.norm.encode("utf-8")).hexdigest()[:10]


def norm_name(name: str) -> str:
    text = unicodedata.normalize("NFKC", str(name or "")).translate(DOTS)
    return re.sub(r"\s+", "", text).casefold()


def norm_id(value: Any) -> str | None:
    from engine.idnumber import make_id

    text = re.sub(r"\s+", "", unicodedata.normalize("NFKC", str(value or ""))).upper()
    if not text:
        return None
    if re.fullmatch(r"[0-9]{15}", text):
        try:
            return make_id(text[:6], "19" + text[6:12], text[12:15])
        except ValueError:
            return text
    return text


def _is_resident_id(number: str | None) -> bool:
    return bool(number) and re.fullmatch(r"[0-9]{17}[0-9X]", number or "") is not None


def _birth_from_id(number: str | None) -> str | None:
    if not _is_resident_id(number):
        return None
    from engine.fields import FieldProblem
    from engine.idnumber import parse_id

    try:
        return parse_id(number or "").birth_date.isoformat()
    except FieldProblem:
        return None


def _iso(value: Any) -> str | None:
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str) and re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}.*", value):
        return value[:10]
    return None


def applicant_of(data: Mapping[str, Any]) -> Person | None:
    name = str(data.get("name") or "").strip()
    if not name:
        return None
    number = norm_id(data.get("id_number"))
    birth = _iso(data.get("birth_date")) or _birth_from_id(number)
    return Person(APPLICANT, name, norm_name(name), number, birth)


def _clean_name(text: str) -> str:
    text = ROLE_PREFIX_RE.sub("", text.strip())
    for chunk in SPLIT_RE.split(LABEL_RE.sub(" ", text)):
        chunk = chunk.strip("-_—·.。 ")
        if chunk and chunk not in SEX_WORDS:
            return chunk
    return ""


def parse_parties(text: Any) -> list[Person]:
    """Opposing parties from the textarea: one per line (a line of several names split by 、 or ；)."""
    out: list[Person] = []
    for raw in str(text or "").splitlines():
        line = unicodedata.normalize("NFKC", raw).strip()
        if not line:
            continue
        ids = [norm_id(m.group(1)) for m in ID_RE.finditer(line)]
        found_date = DATE_RE.search(line)
        rest = DATE_RE.sub(" ", ID_RE.sub(" ", line))
        number = ids[0] if ids else None
        birth = None
        if found_date:
            try:
                birth = date(int(found_date.group(1)), int(found_date.group(2)), int(found_date.group(3))).isoformat()
            except ValueError:
                birth = None
        birth = birth or _birth_from_id(number)
        if number is None and birth is None and MULTI_RE.search(rest):
            names = [_clean_name(part) for part in MULTI_RE.split(ROLE_PREFIX_RE.sub("", rest))]
        else:
            names = [_clean_name(rest)]
        for name in names:
            if name:
                out.append(Person(OPPONENT, name, norm_name(name), number, birth))
    return out


def persons_of(data: Mapping[str, Any]) -> list[Person]:
    app = applicant_of(data)
    return ([app] if app else []) + parse_parties(data.get("opposing_parties"))


def fingerprint(data: Mapping[str, Any]) -> str:
    """A hash of who is on the record (applicant and opposing parties): decisions hold while it stays."""
    app = applicant_of(data)
    opp = sorted({(p.norm, p.id_number or "", p.birth or "") for p in parse_parties(data.get("opposing_parties"))})
    blob = json.dumps({"a": [app.norm, app.id_number or "", app.birth or ""] if app else None, "o": opp},
                      ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:20]


# --- names ----------------------------------------------------------------------------------------
@lru_cache(maxsize=20_000)
def _char_pinyin(ch: str) -> str:
    from pypinyin import lazy_pinyin

    return "".join(lazy_pinyin(ch)).casefold()


@lru_cache(maxsize=100_000)
def pinyin_of(name: str) -> tuple[str, ...]:
    """pypinyin's lazy_pinyin per character (cached per character and per name: scans stay fast)."""
    return tuple(_char_pinyin(ch) for ch in name)


def name_similarity(a: str, b: str) -> str | None:
    """"same_name" | "same_pinyin" | "one_char" | None for two normalised names."""
    if not a or not b:
        return None
    if a == b:
        return "same_name"
    if len(a) != len(b) or len(a) < 2:
        return None
    diff = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
    if all(_char_pinyin(a[i]) == _char_pinyin(b[i]) for i in diff):
        return "same_pinyin"
    if len(diff) == 1:
        i = diff[0]
        if len(a) >= 3:
            return "one_char"
        pa, pb = _char_pinyin(a[i]), _char_pinyin(b[i])
        if pa[:1] and pa[:1] == pb[:1]:
            return "one_char"
    return None


def compare(ours: Person, theirs: Person) -> tuple[str, str] | None:
    """(basis, "strong" | "weak") when the two may be the same person, else None."""
    if ours.id_number and theirs.id_number:
        if ours.id_number == theirs.id_number:
            return "same_id", "strong"
        if _is_resident_id(ours.id_number) and _is_resident_id(theirs.id_number):
            return None
    if ours.birth and theirs.birth and ours.birth != theirs.birth:
        return None
    similar = name_similarity(ours.norm, theirs.norm)
    if similar is None:
        return None
    if ours.birth and theirs.birth:
        return ("same_name_birth" if similar == "same_name" else "similar_name_birth"), "strong"
    return similar, "weak"


# --- matches --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Match:
    key: str
    kind: str  # "conflict" | "duplicate" | "previous"
    strength: str  # "strong" | "weak"
    basis: str  # same_id / same_name_birth / similar_name_birth / same_name / same_pinyin / one_char
    our_role: str
    our_name: str
    their_role: str
    their_name: str
    other_id: int
    other_number: str | None
    other_state: str | None
    other_open: bool

    @property
    def needs_decision(self) -> bool:
        return self.kind in ("conflict", "duplicate")


@dataclass
class _Row:
    id: int
    name: Any
    id_number: Any
    birth_date: Any
    opposing: Any
    state: str | None
    number: str | None


def _classify(ours: Person, theirs: Person, row: _Row) -> str | None:
    open_case = row.state not in CLOSED_STATES
    if ours.role == APPLICANT and theirs.role == APPLICANT:
        return "duplicate" if open_case else "previous"
    if ours.role != theirs.role:
        return "conflict"
    return None  # the same opponent in two cases is no conflict


def _matches_in(row: _Row, ours: list[Person]) -> Iterator[Match]:
    theirs = persons_of({"name": row.name, "id_number": row.id_number, "birth_date": row.birth_date,
                         "opposing_parties": row.opposing})
    for p in ours:
        for q in theirs:
            found = compare(p, q)
            if found is None:
                continue
            kind = _classify(p, q, row)
            if kind is None:
                continue
            basis, strength = found
            yield Match(key=f"{row.id}:{p.tag}:{q.tag}", kind=kind, strength=strength, basis=basis,
                        our_role=p.role, our_name=p.name, their_role=q.role, their_name=q.name, other_id=row.id,
                        other_number=row.number, other_state=row.state, other_open=row.state not in CLOSED_STATES)


def _intake_form_id(engine: Engine) -> int | None:
    with session_scope(engine, write=False) as session:
        return session.execute(select(Form.id).where(Form.slug == INTAKE)).scalar()


def _escape_like(term: str) -> str:
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _exact_candidates(engine: Engine, form_id: int, ours: list[Person], exclude_id: int | None) -> set[int]:
    """Records naming one of our people exactly: by ID number or name, as applicant or in the opponents' text."""
    dialect = engine.dialect.name
    ids = sorted({p.id_number for p in ours if p.id_number})
    raw_ids = set(ids) | {i[:6] + i[8:17] for i in ids if _is_resident_id(i) and i[6:8] == "19"}  # legacy form
    names = sorted({p.name.strip() for p in ours if p.name.strip()})
    opp = json_field(dialect, "opposing_parties")
    conds = []
    if ids:
        conds.append(json_field(dialect, "id_number").in_(sorted(raw_ids | {i.lower() for i in ids})))
    if names:
        conds.append(json_field(dialect, "name").in_(names))
    for term in sorted(raw_ids) + names:
        conds.append(opp.like("%" + _escape_like(term) + "%", escape="\\"))
    if not conds:
        return set()
    found: set[int] = set()
    with session_scope(engine, write=False) as session:
        for i in range(0, len(conds), 50):
            where = [Submission.form_id == form_id, col(Submission.deleted_at).is_(None), or_(*conds[i:i + 50])]
            if exclude_id is not None:
                where.append(Submission.id != exclude_id)
            found.update(int(x) for x in session.execute(select(Submission.id).where(and_(*where))).scalars())
    return found


class _NameIndex:
    """Our people's names, indexed so that one candidate name is checked in O(its length):
    exact name, pinyin key, and one-character-wildcard keys."""

    def __init__(self, ours: list[Person]) -> None:
        self.names = {p.norm for p in ours if p.norm}
        self.lengths = {len(n) for n in self.names}
        self.pinyin = {pinyin_of(n) for n in self.names if len(n) >= 2}
        self.wild = {_wild(n, i) for n in self.names if len(n) >= 2 for i in range(len(n))}

    def hit(self, name: str) -> bool:
        if len(name) not in self.lengths:
            return False
        if name in self.names:
            return True
        if len(name) < 2:
            return False
        if pinyin_of(name) in self.pinyin:
            return True
        return not self.wild.isdisjoint(_wild(name, i) for i in range(len(name))) and any(
            name_similarity(ours, name) for ours in self.names if len(ours) == len(name))


def _wild(name: str, i: int) -> str:
    return name[:i] + "\0" + name[i + 1:]


PLAIN_NAME_RE = re.compile(r"[\u3400-\u9fff\uf900-\ufaff·]{1,40}")


def quick_names(text: Any) -> list[str]:
    """Normalised names of an opposing-parties text; plain Chinese lines skip the full parse."""
    out = []
    for line in str(text or "").splitlines():
        line = line.strip()
        if not line:
            continue
        if PLAIN_NAME_RE.fullmatch(line):
            out.append(line)
        else:
            out.extend(p.norm for p in parse_parties(line))
    return out


_NAMES_CACHE: dict[tuple[str, int], tuple[int, list[tuple[int, tuple[str, ...]]]]] = {}
_NAMES_LOCK = threading.Lock()


def _name_table(engine: Engine, form_id: int) -> list[tuple[int, tuple[str, ...]]]:
    """(record id, normalised names: applicant then opposing parties) of every live intake record.

    A keyset-paged projection of (id, name, opposing_parties) only; kept per process until the
    "data:intake" change stamp moves (the stamp is read first, so a cached table is never newer)."""
    key = (url_key(engine), form_id)
    stamp = stamps.current(engine, stamps.data_scope(INTAKE))
    with _NAMES_LOCK:
        cached = _NAMES_CACHE.get(key)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    dialect = engine.dialect.name
    name_expr, opp_expr = json_field(dialect, "name"), json_field(dialect, "opposing_parties")
    table: list[tuple[int, tuple[str, ...]]] = []
    after = 0
    while True:
        with session_scope(engine, write=False) as session:
            rows = session.execute(select(Submission.id, name_expr, opp_expr).where(
                Submission.form_id == form_id, col(Submission.deleted_at).is_(None), Submission.id > after)
                .order_by(Submission.id).limit(PAGE)).all()
        for sid, name, opposing in rows:
            names = [name if PLAIN_NAME_RE.fullmatch(name) else norm_name(name)] if isinstance(name, str) and name \
                else []
            if opposing:
                names += quick_names(opposing)
            table.append((int(sid), tuple(names)))
        if len(rows) < PAGE:
            break
        after = int(rows[-1][0])
    with _NAMES_LOCK:
        if key not in _NAMES_CACHE and len(_NAMES_CACHE) >= 8:
            _NAMES_CACHE.clear()  # one database in production; tests make many
        _NAMES_CACHE[key] = (stamp, table)
    return table


def _similar_candidates(engine: Engine, form_id: int, ours: list[Person], exclude_id: int | None) -> set[int]:
    """Records naming someone with the same or a similar name (as applicant or opposing party)."""
    index = _NameIndex(ours)
    return {sid for sid, names in _name_table(engine, form_id)
            if sid != exclude_id and any(index.hit(n) for n in names)}


def _details(engine: Engine, ids: Iterable[int]) -> Iterator[_Row]:
    dialect = engine.dialect.name
    wanted = sorted(set(ids))
    cols = (Submission.id, json_field(dialect, "name"), json_field(dialect, "id_number"),
            json_field(dialect, "birth_date"), json_field(dialect, "opposing_parties"), Submission.state,
            Submission.number)
    for i in range(0, len(wanted), 500):
        with session_scope(engine, write=False) as session:
            rows = session.execute(select(*cols).where(col(Submission.id).in_(wanted[i:i + 500]))).all()
        for r in rows:
            yield _Row(int(r[0]), r[1], r[2], r[3], r[4], r[5], r[6])


def check(engine: Engine, record: int | Mapping[str, Any], *, exclude_id: int | None = None) -> list[Match]:
    """Possible conflicts / duplicates of a record (by id) or of values about to be saved (a dict)."""
    if isinstance(record, Mapping):
        data = record
    else:
        with session_scope(engine, write=False) as session:
            sub, _slug = load_intake(session, int(record))
        data = sub.data or {}
        exclude_id = int(record) if exclude_id is None else exclude_id
    ours = persons_of(data)
    form_id = _intake_form_id(engine)
    if not ours or form_id is None:
        return []
    candidates = _exact_candidates(engine, form_id, ours, exclude_id)
    candidates |= _similar_candidates(engine, form_id, ours, exclude_id)
    matches: dict[str, Match] = {}
    for row in _details(engine, candidates):
        for m in _matches_in(row, ours):
            old = matches.get(m.key)
            if old is None or (old.strength == "weak" and m.strength == "strong"):
                matches[m.key] = m
    return sorted(matches.values(), key=lambda m: (KIND_ORDER[m.kind], m.strength != "strong", -m.other_id, m.key))


# --- decisions ------------------------------------------------------------------------------------
@dataclass
class MatchStatus:
    match: Match
    decision: Decision | None  # in force (same parties' fingerprint), newest

    @property
    def open(self) -> bool:
        return self.match.needs_decision and self.decision is None


@dataclass
class ConflictStatus:
    matches: list[MatchStatus]
    fingerprint: str
    reset: int = 0  # decisions taken for earlier parties that no longer apply
    history: list[Decision] = field(default_factory=list)  # every conflict decision, newest first

    @property
    def open(self) -> list[MatchStatus]:
        return [m for m in self.matches if m.open]

    @property
    def confirmed(self) -> list[MatchStatus]:
        return [m for m in self.matches if m.decision is not None and m.decision.outcome == CONFIRMED]


def _decisions(engine: Engine, sub_id: int) -> list[Decision]:
    with session_scope(engine, write=False) as session:
        stmt = (select(Decision).where(Decision.submission_id == int(sub_id), Decision.kind == "conflict")
                .order_by(col(Decision.id).desc()))
        return list(session.execute(stmt).scalars().all())


def status(engine: Engine, sub_id: int) -> ConflictStatus:
    """The record's matches, each with the decision in force (decisions for other parties do not apply)."""
    with session_scope(engine, write=False) as session:
        sub, _slug = load_intake(session, int(sub_id))
    fp = fingerprint(sub.data or {})
    history = _decisions(engine, sub_id)
    current: dict[str, Decision] = {}
    for d in history:  # newest first
        if (d.data or {}).get("fingerprint") == fp and d.subject not in current:
            current[d.subject] = d
    reset = len({d.subject for d in history if (d.data or {}).get("fingerprint") != fp})
    matches = [MatchStatus(m, current.get(m.key)) for m in check(engine, int(sub_id))]
    return ConflictStatus(matches=matches, fingerprint=fp, reset=reset, history=history)


def decide(engine: Engine, sub_id: int, match_key: str, outcome: str, reason: str | None, actor: Actor) -> Decision:
    """Confirm or clear one match, with a reason; audited; valid while the record's parties stay the same."""
    from engine.forms import get_spec

    if outcome not in (CONFIRMED, CLEARED):
        raise EngineError("conflict.bad_outcome")
    why = (reason or "").strip()
    if not why:
        raise EngineError("conflict.reason_required")
    with session_scope(engine, write=False) as session:
        sub, slug = load_intake(session, int(sub_id))
    if not form_allows(actor, get_spec(engine, slug), "edit"):
        raise PermissionDenied("conflict.forbidden")
    match = next((m for m in check(engine, int(sub_id)) if m.key == match_key), None)
    if match is None:
        raise EngineError("conflict.unknown_match")
    fp = fingerprint(sub.data or {})
    row = Decision(submission_id=int(sub_id), kind="conflict", subject=match.key[:128], outcome=outcome,
                   reason=why[:4000], username=actor.username, at=utcnow(), data={
                       "fingerprint": fp, "kind": match.kind, "basis": match.basis, "strength": match.strength,
                       "other_id": match.other_id, "other_number": match.other_number, "our_role": match.our_role,
                       "our_name": match.our_name, "their_role": match.their_role, "their_name": match.their_name,
                   })
    with session_scope(engine) as session:
        if session.get(Submission, int(sub_id)) is None:
            raise NotFound("record.not_found", id=sub_id)
        session.add(row)
        session.flush()
        audit.record(session, actor, "conflict_decision", "submission", sub_id, form_slug=slug, detail={
            "match": match.key, "kind": match.kind, "basis": match.basis, "other_id": match.other_id,
            "outcome": outcome, "reason": why[:500], "decision_id": row.id,
        })
        stamps.bump(session, stamps.data_scope(slug))
    return row


__all__ = [
    "CLEARED", "CLOSED_STATES", "CONFIRMED", "ConflictStatus", "Match", "MatchStatus", "Person", "applicant_of",
    "check", "compare", "decide", "fingerprint", "name_similarity", "parse_parties", "persons_of", "pinyin_of",
    "status",
]
