"""Build a database as the previous release (0.1, schema revision 0001) left it.

    python tests/reliability/make_previous_release_db.py [DATABASE_URL | PATH.db]
    (default: tests/fixtures/release_0_1.db)

The schema is Alembic revision 0001 only (the first one); the rows are written with raw SQL, as
that release wrote them, not through today's engine: users, reference lists, forms with two
versions of the intake form (records made with each), intake records in every kind of workflow
state (closed, archived, refused, terminated, one deleted) with application numbers and their
counter, an outreach event with sign-ups (child records) and tallies, the audit trail of all of it,
settings and change stamps. Everything is fixed (no clock, no randomness): the same file each time.

tests/reliability/test_migrations.py upgrades a copy to today's schema and checks that every record
is kept, reads and exports.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULT_PATH = ROOT / "tests" / "fixtures" / "release_0_1.db"
FIRST_REVISION = "0001"
T0 = datetime(2025, 3, 3, 1, 30, tzinfo=UTC)  # when the office started using 0.1
RETIRED_LATER = "urgent_first"  # a field the intake form of 0.1 version 1 did not have yet
USERS = [  # username, display name, role
    ("admin", "管理员甲", "admin"), ("manager", "王主任", "manager"), ("staff", "李干事", "staff"),
    ("outreach", "张宣传", "outreach"),
]
STATES = ["applied", "accepted", "reviewing", "granted", "assigned", "handling", "closed", "archived", "refused",
          "terminated"]
PATHS = {  # state -> the transitions that got a record there
    "applied": [], "accepted": ["accept"], "reviewing": ["accept", "review"],
    "granted": ["accept", "review", "grant"], "assigned": ["accept", "review", "grant", "assign"],
    "handling": ["accept", "review", "grant", "assign", "handle"],
    "closed": ["accept", "review", "grant", "assign", "handle", "close"],
    "archived": ["accept", "review", "grant", "assign", "handle", "close", "archive"],
    "refused": ["accept", "review", "refuse"], "terminated": ["accept", "review", "terminate"],
}
TO = {"accept": "accepted", "review": "reviewing", "grant": "granted", "assign": "assigned", "handle": "handling",
      "close": "closed", "archive": "archived", "refuse": "refused", "terminate": "terminated"}
SURNAMES = "陈林黄李张王吴刘蔡杨郑梁谢许何"
GIVEN = ["秀英", "志强", "桂兰", "建华", "丽娟", "国平", "海燕", "伟明", "玉珍", "少华", "美玲", "德胜"]


class Writer:
    """Raw INSERTs on one connection; values converted the way 0.1 stored them per dialect."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.pg = conn.dialect.name == "postgresql"

    def ts(self, value: datetime | None) -> Any:
        if value is None or self.pg:
            return value
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")

    def js(self, value: Any) -> Any:
        return None if value is None else json.dumps(value, ensure_ascii=False)

    def insert(self, table: str, row: dict[str, Any]) -> int | None:
        cols = ", ".join(row)
        marks = ", ".join(f":{c}" for c in row)
        returning = " RETURNING id" if "id" not in row and table not in ("settings", "sequences", "change_stamps",
                                                                            "alembic_version") else ""
        result = self.conn.execute(text(f"INSERT INTO {table} ({cols}) VALUES ({marks}){returning}"), row)
        return int(result.scalar_one()) if returning else None

    def audit(self, at: datetime, user: str, action: str, entity: str, entity_id: Any,
              form_slug: str | None = None, detail: dict | None = None) -> None:
        self.insert("audit_events", {"at": self.ts(at), "username": user, "action": action, "entity": entity,
                                     "entity_id": str(entity_id), "form_slug": form_slug, "detail": self.js(detail)})


def _id_number(birth: date, seq: int) -> str:
    body = f"440803{birth:%Y%m%d}{seq:03d}"
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    check = "10X98765432"[sum(int(d) * w for d, w in zip(body, weights, strict=True)) % 11]
    return body + check


def _mask_id(value: str) -> str:
    return value[:6] + "*" * (len(value) - 10) + value[-4:]


def _intake_data(n: int, version: int) -> dict[str, Any]:
    criminal = n % 4 == 3
    birth = date(1948 + (n * 7) % 60, 1 + n % 12, 1 + n % 27)
    data: dict[str, Any] = {
        "application_date": (date(2025, 3, 3) + timedelta(days=n * 5)).isoformat(),
        "intake_channel": ["window", "liaison_point", "hotline_12348"][n % 3],
        "liaison_point": f"lp{1 + n % 71:02d}",
        "name": SURNAMES[n % len(SURNAMES)] + GIVEN[n % len(GIVEN)],
        "sex": "male" if n % 2 else "female",
        "id_doc_type": "resident_id",
        "id_number": _id_number(birth, 100 + n),
        "phone": f"138{n:04d}5634",
        "residence": f"湛江市霞山区友谊路{n + 1}号",
        "case_category": "criminal" if criminal else ["civil", "labour", "administrative"][n % 3],
        "case_cause": "theft" if criminal else ["support_maintenance", "labour_remuneration", "work_injury"][n % 3],
        "facts": f"第{n + 1}号申请：申请人因{'涉嫌盗窃被提起公诉' if criminal else '纠纷'}申请法律援助，事实经过详见材料。",
        "hardship_route": "exempt",
        "exemption_ground": "social_assistance",
    }
    if criminal:
        data.update({"criminal_route": "applied", "legal_position_criminal": "defendant",
                     "service_type": "criminal_defence"})
    else:
        data.update({"legal_position": "plaintiff", "service_type": "litigation_agency"})
    if version >= 2 and n % 5 == 0:
        data[RETIRED_LATER] = True
    return data


def _spec(name: str) -> dict[str, Any]:
    return yaml.safe_load((ROOT / "data" / "forms" / f"{name}.yaml").read_text(encoding="utf-8"))


def _reference(w: Writer) -> None:
    for path in sorted((ROOT / "data" / "reference").glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        list_id = w.insert("choice_lists", {"name": data["name"], "title": w.js(data["title"]), "builtin": True})
        for pos, item in enumerate(data.get("items") or []):
            w.insert("choice_items", {"list_id": list_id, "value": item["value"], "label": w.js(item["label"]),
                                      "active": True, "position": pos, "extra": w.js(item.get("extra"))})
        w.audit(T0, "system", "choice_list_update", "choice_list", data["name"],
                detail={"builtin": True, "items": len(data.get("items") or [])})


def _form(w: Writer, slug: str, versions: list[dict[str, Any]]) -> int:
    spec = versions[-1]
    form_id = w.insert("forms", {"slug": slug, "title": w.js(spec["title"]), "category": spec.get("category", "general"),
                                 "current_version": len(versions), "builtin": True, "archived": False,
                                 "draft_spec": None, "draft_updated_by": None, "draft_updated_at": None,
                                 "created_at": w.ts(T0)})
    for n, version in enumerate(versions, start=1):
        at = T0 + timedelta(days=40 * (n - 1))
        w.insert("form_versions", {"form_id": form_id, "version": n, "spec": w.js(version),
                                   "published_by": "system" if n == 1 else "admin", "published_at": w.ts(at),
                                   "note": "built-in" if n == 1 else "增加「优先办理」"})
        w.audit(at, "system" if n == 1 else "admin", "publish", "form", slug, form_slug=slug,
                detail={"version": n, "changes": [] if n == 1 else [{"kind": "added", "field": RETIRED_LATER}]})
    assert form_id is not None
    return form_id


def _intakes(w: Writer, form_id: int, count: int = 40) -> list[int]:
    ids = []
    for n in range(count):
        version = 1 if n < count // 2 else 2
        state = STATES[n % len(STATES)]
        created = T0 + timedelta(days=n * 5, hours=n % 7)
        data = _intake_data(n, version)
        number = f"霞援申字〔2025〕第{n + 1:04d}号"
        data["application_no"] = number
        steps = PATHS[state]
        since = created + timedelta(days=2 * len(steps)) if steps else created
        row = {"form_id": form_id, "form_version": version, "data": w.js(data), "number": number, "state": state,
               "state_since": w.ts(since), "due_at": w.ts(since + timedelta(days=7)) if state == "reviewing" else None,
               "paused_at": None, "parent_id": None, "created_by": "staff", "created_at": w.ts(created),
               "updated_by": "manager" if steps else "staff", "updated_at": w.ts(since), "revision": 1 + len(steps),
               "deleted_at": None, "deleted_by": None}
        sid = w.insert("submissions", row)
        assert sid is not None
        masked = {**data, "id_number": _mask_id(data["id_number"]), "phone": data["phone"][:3] + "****" +
                  data["phone"][-4:], "residence": "***"}
        w.audit(created, "staff", "create", "submission", sid, "intake",
                {"version": version, "data": masked, "parent_id": None, "state": "applied", "number": number})
        prev = "applied"
        for i, key in enumerate(steps, start=1):
            w.audit(created + timedelta(days=2 * i), "manager", "transition", "submission", sid, "intake",
                    {"transition": key, "from": prev, "to": TO[key], "reason": "经审查" if key in (
                        "refuse", "terminate") else None, "changes": {}, "revision": 1 + i})
            prev = TO[key]
        ids.append(sid)
    # one record deleted by the admin (kept, restorable)
    gone = ids[7]
    at = T0 + timedelta(days=300)
    w.conn.execute(text("UPDATE submissions SET deleted_at = :at, deleted_by = 'admin', updated_by = 'admin', "
                        "updated_at = :at, revision = revision + 1 WHERE id = :id"), {"at": w.ts(at), "id": gone})
    w.audit(at, "admin", "delete", "submission", gone, "intake", {"revision": None})
    w.insert("sequences", {"name": "intake", "scope": "2025", "last": count})
    return ids


def _outreach(w: Writer, event_form: int, signup_form: int) -> None:
    at = T0 + timedelta(days=60)
    data = {"title": "法援惠民生 扶贫奔小康 进社区", "campaign": "法援惠民生", "event_date": "2025-05-02",
            "place_type": "community", "place_name": "友谊社区", "liaison_point": "lp05", "target_group": "elderly",
            "formats": ["advice_desk", "talk"], "staff_present": "张宣传、李干事"}
    event_id = w.insert("submissions", {
        "form_id": event_form, "form_version": 1, "data": w.js(data), "number": None, "state": None,
        "state_since": None, "due_at": None, "paused_at": None, "parent_id": None, "created_by": "outreach",
        "created_at": w.ts(at), "updated_by": "outreach", "updated_at": w.ts(at), "revision": 1,
        "deleted_at": None, "deleted_by": None})
    w.audit(at, "outreach", "create", "submission", event_id, "outreach_event",
            {"version": 1, "data": data, "parent_id": None, "state": None, "number": None})
    for n in range(6):
        s_at = at + timedelta(minutes=10 * (n + 1))
        s_data = {"name": SURNAMES[n] + "阿姨", "phone": f"1390000{n:04d}", "village_community": "lp05",
                  "group": ["elderly", "general"][n % 2], "topic": ["support", "marriage_family"][n % 2],
                  "referred_to_application": n == 0}
        sid = w.insert("submissions", {
            "form_id": signup_form, "form_version": 1, "data": w.js(s_data), "number": None, "state": None,
            "state_since": None, "due_at": None, "paused_at": None, "parent_id": event_id, "created_by": "outreach",
            "created_at": w.ts(s_at), "updated_by": "outreach", "updated_at": w.ts(s_at), "revision": 1,
            "deleted_at": None, "deleted_by": None})
        w.audit(s_at, "outreach", "create", "submission", sid, "event_signup",
                {"version": 1, "data": {**s_data, "phone": "139****" + s_data["phone"][-4:]}, "parent_id": event_id,
                 "state": None, "number": None})
    taps = [("brochures", 1)] * 25 + [("consultations", 1)] * 9 + [("brochures", -1)]
    for n, (counter, delta) in enumerate(taps):
        w.insert("tally_events", {"submission_id": event_id, "counter": counter, "delta": delta,
                                  "username": "outreach", "device": f"tablet-{n % 2 + 1}",
                                  "tap_id": f"rel01-{n:04d}", "undoes": 1 if delta < 0 else None,
                                  "at": w.ts(at + timedelta(seconds=20 * n))})


def populate(conn: Connection) -> None:
    w = Writer(conn)
    for n, (username, name, role) in enumerate(USERS):
        at = T0 + timedelta(minutes=n)
        w.insert("users", {"username": username, "display_name": name, "email": "", "password_hash": "!",
                           "role": role, "form_editor": role == "admin", "active": True, "failed_logins": 0,
                           "locked_until": None, "language": "zh", "password_changed_at": w.ts(at),
                           "last_logout_at": None, "created_at": w.ts(at)})
        w.audit(at, "admin" if n else "system", "user_create", "user", username, detail={"role": role})
    _reference(w)
    intake = _spec("intake")
    v1 = {**intake, "fields": [f for f in intake["fields"] if f["key"] != RETIRED_LATER]}
    intake_id = _form(w, "intake", [v1, intake])
    event_id = _form(w, "outreach_event", [_spec("outreach_event")])
    signup_id = _form(w, "event_signup", [_spec("event_signup")])
    _intakes(w, intake_id)
    _outreach(w, event_id, signup_id)
    w.insert("settings", {"key": "office_name", "value": w.js({"zh": "湛江市霞山区法律援助处", "en": "Xiashan Legal Aid Office"}),
                          "updated_at": w.ts(T0)})
    for scope, stamp in (("forms", 4), ("choice_lists", 5), ("users", 4), ("data:intake", 47),
                         ("data:outreach_event", 36), ("data:event_signup", 6)):
        w.insert("change_stamps", {"scope": scope, "stamp": stamp})
    w.audit(T0 + timedelta(days=200), "admin", "login", "user", "admin")


def build(url: str) -> None:
    """Schema revision 0001 at `url` (an empty database), then the 0.1 rows."""
    from alembic import command

    from engine.db import _alembic_config

    engine = create_engine(url)
    try:
        cfg = _alembic_config(url)
        with engine.connect() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, FIRST_REVISION)
            conn.commit()
        with engine.begin() as conn:
            populate(conn)
    finally:
        engine.dispose()


def main() -> None:
    target = sys.argv[1] if len(sys.argv) > 1 else str(DEFAULT_PATH)
    if "://" not in target:
        path = Path(target)
        if path.exists():
            path.unlink()
        path.parent.mkdir(parents=True, exist_ok=True)
        target = f"sqlite:///{path}"
    build(target)
    if target.startswith("sqlite:///"):
        import sqlite3

        conn = sqlite3.connect(target.removeprefix("sqlite:///"))
        conn.execute("VACUUM")
        conn.close()
    print(f"previous-release database written: {target}")


if __name__ == "__main__":
    main()
