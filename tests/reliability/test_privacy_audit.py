"""Privacy: every reveal of sensitive data and every export containing it is in the audit log with
who, when, what and why; the audit log is append-only from the UI.

Code paths where sensitive personal data (ID numbers, phones, addresses, health) can leave masked
form, each asserted to write an audit event:
- records page: "show sensitive information" (pages/records.py, a reason is required);
- event page: showing sign-ups' full phones, and the sign-up CSV export with full phones
  (pages/event.py -> engine.outreach.signups_csv; a reason is required before the download);
- intake notices (pages/intake_tools.py -> engine.notices.notice_pdf), unmasked only after the
  audited reveal on the records page, whose reason they carry;
- per-record prints (engine.prints.print_record) and record exports (engine.exporters.export_records,
  `manage.py export-records`), masked or not;
- backup downloads (pages/backup.py): a backup holds everything, unmasked.

Append-only: no code in pages/ or ui/ writes AuditEvent rows other than through engine.audit.record,
nothing outside engine/audit.py creates them (engine/importers.py appends its undo events in bulk),
and only engine/retention.py (the audited retention run) rewrites details; the audit page offers no
control that changes the log.
"""

from __future__ import annotations

import ast
import io
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from engine.access import Actor
from engine.db import get_engine, session_scope
from engine.idnumber import make_id
from engine.storage import create
from models.tables import AuditEvent, utcnow
from tests.app.entry_helpers import PageEnv, button, has_button, make_intake, page_env, texts, unescape

ROOT = Path(__file__).resolve().parents[2]
MANAGER = Actor("manager", "manager")
OUTREACH = Actor("outreach", "outreach")
ID_NO = make_id("440803", "19800101", 123)  # what intake_values(..., 123) stores


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, template_db: Path) -> Iterator[PageEnv]:
    yield from page_env(monkeypatch, tmp_path, template_db)


def _events(engine: Any, since_id: int = 0, action: str | None = None) -> list[AuditEvent]:
    stmt = select(AuditEvent).where(AuditEvent.id > since_id).order_by(AuditEvent.id)
    if action:
        stmt = stmt.where(AuditEvent.action == action)
    with session_scope(engine, write=False) as s:
        return list(s.execute(stmt).scalars().all())


def _last_id(engine: Any) -> int:
    with session_scope(engine, write=False) as s:
        return int(s.execute(select(func.max(AuditEvent.id))).scalar() or 0)


def _who_when(event: AuditEvent, username: str) -> None:
    assert event.username == username
    at = event.at if event.at.tzinfo else event.at.replace(tzinfo=utcnow().tzinfo)
    assert utcnow() - timedelta(minutes=5) < at <= utcnow() + timedelta(seconds=5)


def _intake(env: PageEnv, name: str = "隐私甲", seq: int = 123) -> int:  # seq 123: ID_NO
    return make_intake(env, name, seq, residence="湛江市霞山区人民大道南1号")


# --- reveals -----------------------------------------------------------------------------------------
def test_reveal_on_the_records_page_needs_a_reason_and_is_audited(env: PageEnv) -> None:
    from tests.app.entry_helpers import records_page

    rid = _intake(env)
    staff = env.app(records_page, "staff", "intake", id=rid).run()
    assert ID_NO not in unescape(texts(staff)) and not has_button(staff, "显示敏感信息")
    start = _last_id(env.engine)
    at = env.app(records_page, "manager", "intake", id=rid).run()
    assert ID_NO not in unescape(texts(at))
    button(at, "显示敏感信息").click().run()  # no reason: refused, nothing shown, nothing logged
    assert ID_NO not in unescape(texts(at)) and _events(env.engine, start, "reveal") == []
    at.text_input(key=f"record__{rid}__reveal_reason").input("核对身份证件以出具受理通知").run()
    button(at, "显示敏感信息").click().run()
    assert ID_NO in unescape(texts(at))
    [event] = _events(env.engine, start, "reveal")
    _who_when(event, "manager")
    assert event.entity == "submission" and event.entity_id == str(rid) and event.form_slug == "intake"
    assert {"id_number", "phone", "residence"} <= set(event.detail["fields"])
    assert event.detail["reason"] == "核对身份证件以出具受理通知"


def test_event_page_phone_reveal_and_unmasked_export_need_a_reason(env: PageEnv) -> None:
    from engine.outreach import signups_csv

    eid = int(create(env.engine, "outreach_event", {
        "title": "社区普法", "event_date": "2026-03-15", "place_type": "community", "target_group": "general",
    }, actor=OUTREACH).id)
    create(env.engine, "event_signup", {"name": "梁阿姨", "phone": "13902715634"}, actor=OUTREACH, parent_id=eid)

    def event_page() -> None:
        from pages.event import render_event

        render_event()

    start = _last_id(env.engine)
    at = env.app(event_page, "manager", id=eid).run()
    assert not at.exception
    assert "13902715634" not in str([df.value for df in at.dataframe])
    # the unmasked export: its download stays disabled until a reason is typed
    at.checkbox(key="event_export_reveal").check().run()
    export = next(b for b in at.get("download_button") if b.key == "event_export")
    assert export.proto.disabled
    at.text_input(key="event_export_reason").input("回访核实登记人联系方式").run()
    export = next(b for b in at.get("download_button") if b.key == "event_export")
    assert not export.proto.disabled
    # showing the full phones on screen
    at.text_input(key=f"event_reveal_reason_{eid}").input("电话回访").run()
    button(at, "显示完整电话（将记录日志）").click().run()
    assert "13902715634" in str([df.value for df in at.dataframe])
    [reveal] = _events(env.engine, start, "reveal")
    _who_when(reveal, "manager")
    assert reveal.detail["fields"] == ["phone"] and reveal.detail["reason"] == "电话回访"
    # what the download button hands out (the engine call the page binds), with the reason typed
    data = signups_csv(env.engine, eid, actor=MANAGER, reveal=True, reason="回访核实登记人联系方式")
    assert "13902715634" in data.decode("utf-8-sig")
    [export_event] = _events(env.engine, start, "export")
    _who_when(export_event, "manager")
    assert export_event.detail["revealed"] is True and export_event.detail["sensitive"] == ["phone"]
    assert export_event.detail["reason"] == "回访核实登记人联系方式" and export_event.detail["parent_id"] == eid


# --- exports and prints ----------------------------------------------------------------------------
@pytest.mark.parametrize("reveal", [False, True])
def test_record_exports_with_sensitive_columns_are_audited(loaded_url: str, reveal: bool) -> None:
    from engine.exporters import export_records
    from tests.app.entry_helpers import intake_values

    engine = get_engine(loaded_url)
    create(engine, "intake", intake_values("导出乙", 123), actor=Actor("staff", "staff"))
    start = _last_id(engine)
    out = io.BytesIO()
    export_records(engine, "intake", out, "csv", actor=MANAGER, reveal=reveal,
                   reason="向司法局报送年度名单" if reveal else None)
    assert (ID_NO in out.getvalue().decode("utf-8-sig")) == reveal
    [event] = _events(engine, start)
    _who_when(event, "manager")
    assert event.action == "export" and event.entity_id == "intake"
    assert event.detail["count"] == 1 and "id_number" in event.detail["sensitive"]
    assert "id_number" in event.detail["columns"] and event.detail["revealed"] == reveal
    assert event.detail["reason"] == ("向司法局报送年度名单" if reveal else None)


def test_prints_and_notices_unmasked_are_audited_with_the_reason(env: PageEnv) -> None:
    from engine.notices import notice_pdf
    from engine.prints import print_record

    rid = _intake(env)
    start = _last_id(env.engine)
    print_record(env.engine, rid, "application", actor=MANAGER)  # masked: nothing sensitive leaves
    assert _events(env.engine, start, "reveal") == []
    print_record(env.engine, rid, "application", actor=MANAGER, reveal=True, reason="当事人申请复印")
    [printed] = _events(env.engine, start, "reveal")
    _who_when(printed, "manager")
    assert printed.detail["via"] == "print:application" and "id_number" in printed.detail["fields"]
    assert printed.detail["reason"] == "当事人申请复印" and printed.entity_id == str(rid)
    notice_pdf(env.engine, rid, "receipt", actor=MANAGER, reveal=True, reason="出具材料接收凭证")
    [notice] = _events(env.engine, printed.id, "export")
    _who_when(notice, "manager")
    assert notice.entity_id == str(rid) and notice.detail["notice"] == "receipt"
    assert notice.detail["revealed"] is True and notice.detail["reason"] == "出具材料接收凭证"


def test_intake_notices_after_a_reveal_carry_its_reason(env: PageEnv) -> None:
    """The records page binds the reveal's reason to the notice downloads it offers."""
    source = (ROOT / "pages" / "intake_tools.py").read_text(encoding="utf-8")
    body = source[source.index("def _notices("):source.index("# =====", source.index("def _notices("))]
    assert "reason=why" in body and "__revealed" in body
    records = (ROOT / "pages" / "records.py").read_text(encoding="utf-8")
    assert 'st.session_state[f"{base}__revealed"] = reason.strip()' in records


def test_backup_download_is_audited(env: PageEnv, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import engine.backup as backups

    monkeypatch.setattr(backups, "BACKUP_DIR", tmp_path / "backups")

    def backup_page() -> None:
        from pages.backup import render_backup

        render_backup()

    at = env.app(backup_page, "admin").run()
    button(at, "立即备份").click().run()
    start = _last_id(env.engine)
    assert not [b for b in at.get("download_button") if b.key and b.key.startswith("backup_dl_")]
    [made] = at.selectbox(key="backup_pick").options  # a backup is offered for download once picked
    at.selectbox(key="backup_pick").select_index(0).run()
    [download] = [b for b in at.get("download_button") if b.key and b.key.startswith("backup_dl_")]
    assert download.key == "backup_dl_" + made.split(" · ")[0]
    download.click().run()
    [event] = _events(env.engine, start, "export")
    _who_when(event, "admin")
    assert event.detail["backup_file"].startswith("console-") and event.detail["sensitive"] is True


# --- append-only ------------------------------------------------------------------------------------
WRITE_VERBS = {"update", "delete", "sql_update", "sql_delete"}
APPEND_VERBS = {"insert", "sql_insert"}
AUDIT_FIELDS = {"detail", "username", "action", "entity", "entity_id", "form_slug", "at"}
RAW_SQL = re.compile(r"(UPDATE|DELETE\s+FROM|INSERT\s+INTO)\s+audit_events", re.I)
ALLOWED = {
    "creates an AuditEvent": {"engine/audit.py"},  # engine.audit.record: the one way in
    "updates or deletes AuditEvent rows": {"engine/retention.py"},  # the audited retention run (documented)
    "appends AuditEvent rows in bulk": {"engine/importers.py"},  # undo of an import: one delete event per record
}


def _name(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def _audit_writes(source: str) -> list[tuple[str, int]]:
    """(what, line) for every write to the audit log the code could make."""
    found: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            if _name(node.func) == "AuditEvent":
                found.append(("creates an AuditEvent", node.lineno))
            if _name(node.func) in WRITE_VERBS and node.args and _name(node.args[0]) == "AuditEvent":
                found.append(("updates or deletes AuditEvent rows", node.lineno))
            if _name(node.func) in APPEND_VERBS and node.args and _name(node.args[0]) == "AuditEvent":
                found.append(("appends AuditEvent rows in bulk", node.lineno))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and RAW_SQL.search(node.value):
            found.append(("raw SQL on audit_events", node.lineno))
        elif isinstance(node, ast.Assign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if (isinstance(target, ast.Attribute) and target.attr in AUDIT_FIELDS
                        and _name(target.value) in {"event", "ev", "audit_event", "e"}):
                    found.append(("sets a field of an audit event", node.lineno))
    return found


def _sources(*folders: str) -> Iterator[tuple[str, str]]:
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            yield str(path.relative_to(ROOT)), path.read_text(encoding="utf-8")


def test_nothing_in_pages_or_ui_writes_the_audit_log_except_through_engine_audit_record() -> None:
    found = [f"{name}:{line}: {what}" for name, source in _sources("pages", "ui")
             for what, line in _audit_writes(source)]
    for name, source in _sources("pages", "ui"):  # pages read the log only through engine.audit_log
        if re.search(r"^from models\.tables import .*\bAuditEvent\b", source, re.M):
            found.append(f"{name}: imports the AuditEvent table")
    assert found == []


def test_only_engine_audit_creates_and_only_retention_rewrites_audit_rows() -> None:
    found = []
    for name, source in [*_sources("engine"), ("app.py", (ROOT / "app.py").read_text(encoding="utf-8")),
                         ("manage.py", (ROOT / "manage.py").read_text(encoding="utf-8"))]:
        found += [f"{name}:{line}: {what}" for what, line in _audit_writes(source)
                  if name not in ALLOWED.get(what, set())]
    assert found == []


def test_the_scan_finds_writes() -> None:
    """The scan itself works (so that the two tests above can fail)."""
    sample = (
        "from models.tables import AuditEvent\n"
        "s.add(AuditEvent(action='x'))\n"
        "s.execute(sql_update(AuditEvent).values(detail=None))\n"
        "s.execute(delete(AuditEvent))\n"
        "conn.exec_driver_sql('DELETE FROM audit_events')\n"
        "event.detail = {}\n"
    )
    assert sorted(_audit_writes(sample), key=lambda w: w[1]) == [
        ("creates an AuditEvent", 2), ("updates or deletes AuditEvent rows", 3),
        ("updates or deletes AuditEvent rows", 4), ("raw SQL on audit_events", 5),
        ("sets a field of an audit event", 6),
    ]


def test_audit_page_offers_no_way_to_change_the_log(env: PageEnv) -> None:
    def audit_page() -> None:
        from pages.audit import render_audit

        render_audit()

    _intake(env)
    before = _events(env.engine)
    at = env.app(audit_page, "admin").run()
    assert not at.exception and at.dataframe
    assert not at.button and not at.get("download_button") and not at.checkbox and not at.toggle
    assert not at.get("arrow_data_editor") and not at.text_area
    # what there is only filters the view
    filters = {w.key for w in [*at.selectbox, *at.text_input, *at.number_input, *at.date_input]}
    assert filters == {"audit_action", "audit_user", "audit_entity", "audit_size", "audit_dates", "audit_page"}
    source = (ROOT / "pages" / "audit.py").read_text(encoding="utf-8")
    assert "data_editor" not in source and "session_scope" not in source and "audit.record(" not in source
    at.text_input(key="audit_user").input("staff").run()
    at.selectbox(key="audit_action").select("create").run()
    assert not at.exception
    assert _events(env.engine) == before  # looking at the log changes nothing
    for role in ("manager", "staff", "outreach", "viewer"):
        other = env.app(audit_page, role).run()
        assert not other.dataframe and "审计日志" not in unescape(texts(other))
