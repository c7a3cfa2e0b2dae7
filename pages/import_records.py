"""Import records from CSV or XLSX: `render_import()` (ability "import"; forms the user may submit to).

Upload → each column mapped to a field (guessed from the headers, changeable with a select box) →
a dry run listing every refused row and field in the user's language → commit (all rows or none)
→ the last import can be undone (its records soft-deleted, audited). engine.importers does the work.
"""

from __future__ import annotations

import hashlib
from typing import Any

import streamlit as st

from engine.access import form_allows
from engine.errors import EngineError
from models.spec import ltext
from ui.auth import error_text, require_ability
from ui.i18n import t
from ui.state import db, lang
from ui.widgets import md_escape

SKIP = ""
REPORT_KEY = "import_report"
DONE_KEY = "import_done"


def _forms(engine, who) -> dict[str, str]:
    from engine.forms import get_spec, list_forms

    out = {}
    for info in list_forms(engine):
        spec = get_spec(engine, info.slug)
        if form_allows(who, spec, "submit") or who.role == "admin":
            out[info.slug] = ltext(spec.title, lang()) or info.slug
    return out


def _targets(spec, lg: str) -> dict[str, str]:
    from engine.importers import STATE_KEY

    options = {SKIP: t("import.skip_column")}
    for f in spec.active_fields:
        if f.type not in ("note", "counter"):
            options[f.key] = f"{ltext(f.label, lg) or f.key} ({f.key})"
    if spec.workflow is not None:
        options[STATE_KEY] = t("import.state_column")
    return options


def _mapping_editor(spec, headers: list[str], guess, digest: str, lg: str) -> dict[int, str | None]:
    options = _targets(spec, lg)
    keys = list(options)
    chosen: dict[int, str | None] = {}
    st.markdown(f"**{t('import.mapping')}**")
    st.caption(t("import.mapping_help"))
    cols = st.columns(3)
    for match in guess.columns:
        default = match.target if match.target in options else SKIP
        pick = cols[match.index % 3].selectbox(
            md_escape(match.header) if match.header else t("import.blank_header", n=match.index + 1), keys,
            index=keys.index(default),
            format_func=options.get, key=f"import_map_{digest}_{match.index}")
        chosen[match.index] = pick or None
    if guess.unknown:
        st.caption(t("import.unknown_columns", columns=md_escape("、".join(guess.unknown))))
    return chosen


def _show_report(report, lg: str) -> None:
    cols = st.columns(3)
    cols[0].metric(t("import.rows_total"), report.rows_total, border=True)
    cols[1].metric(t("import.rows_ok"), report.rows_ok, border=True)
    cols[2].metric(t("import.rows_refused"), report.rows_refused, border=True)
    if report.problems_total:
        st.error(t("import.refused", rows=report.rows_refused, problems=report.problems_total))
        rows = [{t("import.col_row"): m["row"], t("import.col_field"): m["field"], t("import.col_problem"): m["message"]}
                for m in report.messages(lg)]
        st.dataframe(rows, hide_index=True, width="stretch")
        if report.problems_total > len(report.problems):
            st.caption(t("import.more_problems", n=report.problems_total - len(report.problems)))
    elif report.rows_total:
        st.success(t("import.check_passed", n=report.rows_ok))
    else:
        st.warning(t("import.empty"))


def _undo_section(engine, who, slug: str) -> None:
    from engine.importers import recent_imports, undo_import

    batches = [b for b in recent_imports(engine, slug, actor=who, limit=5) if not b.undone]
    if not batches:
        return
    last = batches[0]
    st.divider()
    st.markdown(f"**{t('import.undo_title')}**")
    when = last.at.astimezone().strftime("%Y-%m-%d %H:%M") if last.at else ""
    st.caption(t("import.last_batch", id=last.audit_id, n=last.count, user=last.username, at=when))
    if st.button(t("import.undo", n=last.count), key=f"import_undo_{last.audit_id}", icon=":material/undo:"):
        try:
            n = undo_import(engine, last.audit_id, actor=who)
        except EngineError as exc:
            st.error(error_text(exc))
            return
        st.session_state[DONE_KEY] = t("import.undone", n=n, id=last.audit_id)
        st.rerun()


def render_import() -> None:
    """The import page (st.Page target)."""
    from engine.forms import get_spec
    from engine.importers import ImportRefused, commit, dry_run, map_columns, read_table

    who = require_ability("import")
    lg = lang()
    engine = db()
    st.title(t("import.title"))
    st.caption(t("import.intro"))
    done = st.session_state.pop(DONE_KEY, None)
    if done:
        st.success(done)
    forms = _forms(engine, who)
    if not forms:
        st.info(t("import.no_forms"))
        return
    slug = st.selectbox(t("import.form"), list(forms), format_func=forms.get, key="import_form")
    spec = get_spec(engine, slug)
    upload = st.file_uploader(t("import.file"), type=["csv", "xlsx"], key="import_file", help=t("import.file_help"))
    if upload is None:
        _undo_section(engine, who, slug)
        return
    data = upload.getvalue()
    digest = hashlib.sha256(data).hexdigest()[:16]
    try:
        table = read_table(data)
        guess = map_columns(spec, table.headers)
    except EngineError as exc:
        st.error(error_text(exc))
        return
    mapping = _mapping_editor(spec, table.headers, guess, digest, lg)
    state_key = (slug, digest, tuple(sorted(mapping.items(), key=lambda kv: kv[0])))
    cols = st.columns(2)
    if cols[0].button(t("import.check"), key="import_check", icon=":material/fact_check:"):
        try:
            report = dry_run(engine, slug, data, mapping, actor=who, lang=lg)
        except EngineError as exc:
            st.error(error_text(exc))
            return
        st.session_state[REPORT_KEY] = (state_key, report)
    saved: Any = st.session_state.get(REPORT_KEY)
    report = saved[1] if saved and saved[0] == state_key else None
    if report is not None:
        _show_report(report, lg)
    ready = report is not None and report.ok
    if cols[1].button(t("import.commit"), key="import_commit", type="primary", disabled=not ready,
                      icon=":material/upload:"):
        try:
            result = commit(engine, slug, data, mapping, actor=who, lang=lg)
        except ImportRefused as exc:
            st.session_state[REPORT_KEY] = (state_key, exc.report)
            _show_report(exc.report, lg)
            return
        except EngineError as exc:
            st.error(error_text(exc))
            return
        st.session_state.pop(REPORT_KEY, None)
        st.session_state[DONE_KEY] = t("import.imported", n=result.count, id=result.audit_id or "?")
        st.rerun()
    if report is None:
        st.caption(t("import.check_first"))
    _undo_section(engine, who, slug)
