"""The built-in legal-aid pack (data/forms, data/reference) parses, checks and accepts real records.

Every form spec must parse with `engine.spec.parse_spec` against the shipped reference lists and form
slugs; every reference list must have the loader's shape; realistic sample records
(tests/fixtures/sample_records.yaml) must validate, and deliberately wrong ones must fail on exactly
the fields expected. A few contracts that reports and other modules rely on (choice values, workflow
states, counters) are pinned here so that a template edit cannot silently break them.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from models.spec import ROLES, Choice, FormSpec

ROOT = Path(__file__).resolve().parents[2]
FORMS_DIR = ROOT / "data" / "forms"
REFERENCE_DIR = ROOT / "data" / "reference"
SAMPLES_PATH = ROOT / "tests" / "fixtures" / "sample_records.yaml"
TODAY = date(2026, 6, 30)

FORM_PATHS = sorted(FORMS_DIR.glob("*.yaml"))
REFERENCE_PATHS = sorted(REFERENCE_DIR.glob("*.yaml"))
EXPECTED_FORMS = {
    "intake", "consultation", "outreach_event", "event_signup", "hearing_observation",
    "integrity_check", "archive_checklist", "return_visit", "training_record",
}
EXPECTED_LISTS = {"liaison_points", "courts", "case_causes", "lawyers", "streets"}


def _load(path: Path) -> Any:
    with path.open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def _reference_data() -> dict[str, dict[str, Any]]:
    out = {}
    for path in REFERENCE_PATHS:
        data = _load(path)
        out[data["name"]] = data
    return out


SAMPLES: dict[str, Any] = _load(SAMPLES_PATH)
KNOWN_LISTS = set(_reference_data())
KNOWN_FORMS = {p.stem for p in FORM_PATHS}


def _parse(slug: str) -> FormSpec:
    from engine.spec import parse_spec

    return parse_spec(FORMS_DIR / f"{slug}.yaml", known_lists=KNOWN_LISTS, known_forms=KNOWN_FORMS)


def _choice_lists() -> dict[str, list[Choice]]:
    """The shipped reference lists as the app loads them, plus the fixture's lawyers (the shipped
    lawyers list is empty: the office fills it in the app)."""
    lists = {
        name: [Choice(value=item["value"], label=item["label"]) for item in data["items"]]
        for name, data in _reference_data().items()
    }
    for name, items in SAMPLES.get("extra_choices", {}).items():
        lists.setdefault(name, []).extend(Choice(**item) for item in items)
    return lists


def _validate(slug: str, raw: dict[str, Any]) -> tuple[dict, dict]:
    from engine.validate import ValidationContext, validate

    ctx = ValidationContext(lang="zh", today=TODAY, choice_lists=_choice_lists())
    return validate(_parse(slug), raw, ctx)


def _samples(kind: str) -> list[Any]:
    return [
        pytest.param(slug, sample, id=f"{slug}: {sample['name']}")
        for slug, entry in SAMPLES["records"].items()
        for sample in entry.get(kind, [])
    ]


def _ltexts(node: Any, path: str = "") -> list[tuple[str, Any]]:
    """Every localised text in raw YAML data: any mapping with a zh or en key."""
    if isinstance(node, dict):
        if "zh" in node or "en" in node:
            return [(path, node)]
        return [hit for key, value in node.items() for hit in _ltexts(value, f"{path}.{key}")]
    if isinstance(node, list):
        return [hit for i, value in enumerate(node) for hit in _ltexts(value, f"{path}[{i}]")]
    return []


def _is_bilingual(text: Any) -> bool:
    return (
        isinstance(text, dict)
        and set(text) == {"zh", "en"}
        and all(isinstance(v, str) and v.strip() for v in text.values())
    )


# --------------------------------------------------------------------------------------------------
# Form specs
# --------------------------------------------------------------------------------------------------
def test_the_pack_ships_every_form_and_list() -> None:
    assert KNOWN_FORMS == EXPECTED_FORMS
    assert KNOWN_LISTS == EXPECTED_LISTS
    assert {p.stem for p in REFERENCE_PATHS} == EXPECTED_LISTS


@pytest.mark.parametrize("path", FORM_PATHS, ids=lambda p: p.stem)
def test_form_file_builds_the_spec_model_and_is_named_by_slug(path: Path) -> None:
    spec = FormSpec(**_load(path))  # pydantic forbids unknown keys
    assert spec.slug == path.stem


@pytest.mark.parametrize("path", FORM_PATHS, ids=lambda p: p.stem)
def test_form_parses_and_checks_without_problems(path: Path) -> None:
    from engine.spec import check_spec

    spec = _parse(path.stem)
    assert spec.slug == path.stem
    again, problems = check_spec(spec, known_lists=KNOWN_LISTS, known_forms=KNOWN_FORMS)
    assert problems == []
    assert again == spec


@pytest.mark.parametrize("path", FORM_PATHS, ids=lambda p: p.stem)
def test_every_text_in_a_form_is_in_chinese_and_english(path: Path) -> None:
    data = _load(path)
    # A flow mapping with an unquoted comma would silently turn part of a label into an extra key.
    bad = [(where, text) for where, text in _ltexts(data) if not _is_bilingual(text)]
    assert bad == []
    spec = FormSpec(**data)
    assert _is_bilingual(spec.title)
    assert _is_bilingual(spec.description)
    for section in spec.sections:
        assert _is_bilingual(section.title), section.key
    for field in spec.fields:
        assert _is_bilingual(field.label), field.key
        for choice in field.choices or []:
            assert _is_bilingual(choice.label), (field.key, choice.value)
        for item in field.items or []:
            assert _is_bilingual(item.label), (field.key, item.key)
    if spec.workflow:
        for state in spec.workflow.states:
            assert _is_bilingual(state.label), state.key
        for transition in spec.workflow.transitions:
            assert _is_bilingual(transition.label), transition.key


@pytest.mark.parametrize("path", FORM_PATHS, ids=lambda p: p.stem)
def test_form_has_list_columns_a_title_and_sensible_access(path: Path) -> None:
    spec = FormSpec(**_load(path))
    assert spec.list_columns and spec.title_field
    assert spec.access.reveal == ["admin", "manager"]
    sensitive = [f.key for f in spec.fields if f.sensitive]
    if sensitive:
        # Viewers see dashboards and reports only: never records holding personal data.
        assert "viewer" not in spec.access.view, sensitive
    for action in ("submit", "view", "edit", "reveal"):
        assert set(getattr(spec.access, action)) <= set(ROLES)


# --------------------------------------------------------------------------------------------------
# Contracts other modules count on (reports, tallies, the workflow engine)
# --------------------------------------------------------------------------------------------------
def _values(spec: FormSpec, key: str) -> list[str]:
    field = spec.field(key)
    assert field is not None, key
    return [c.value for c in field.choices or []]


def test_intake_choice_values_used_by_reports() -> None:
    spec = FormSpec(**_load(FORMS_DIR / "intake.yaml"))
    assert _values(spec, "case_category") == ["criminal", "civil", "administrative", "labour"]
    assert _values(spec, "criminal_route") == ["applied", "notified"]
    assert _values(spec, "sex") == ["male", "female"]
    assert _values(spec, "id_doc_type") == ["resident_id", "passport", "hk_macau_permit", "taiwan_permit", "other"]
    assert _values(spec, "special_groups") == [
        "elderly", "disabled", "minor", "women", "migrant_worker", "servicemen", "low_income", "other",
    ]
    assert _values(spec, "intake_channel") == [
        "window", "liaison_point", "duty_lawyer", "hotline_12348", "online", "notified",
    ]
    assert _values(spec, "refusal_reason") == ["not_eligible_economic", "not_in_scope", "false_information", "other"]
    assert _values(spec, "hardship_route") == ["certificate", "commitment", "exempt", "not_required"]
    id_field = spec.field("id_number")
    assert id_field.type == "id_number" and id_field.sensitive and id_field.required
    assert (id_field.sex_field, id_field.doc_type_field) == ("sex", "id_doc_type")
    assert spec.field("id_doc_type").default == "resident_id"
    assert all(spec.field(k).sensitive for k in ("phone", "residence", "health"))
    assert spec.field("case_cause").choice_list == "case_causes"
    assert spec.field("liaison_point").choice_list == "liaison_points"
    assert spec.field("lawyer").choice_list == "lawyers"
    assert (spec.date_field, spec.title_field) == ("application_date", "name")
    assert set(spec.summary) >= {"case_category", "intake_channel", "special_groups", "case_cause", "service_type"}
    assert "viewer" not in spec.access.view


def test_intake_workflow_follows_the_legal_aid_procedure() -> None:
    wf = FormSpec(**_load(FORMS_DIR / "intake.yaml")).workflow
    assert wf is not None and wf.initial == "applied"
    states = {s.key: s for s in wf.states}
    assert list(states) == [
        "applied", "accepted", "reviewing", "waiting_materials", "granted", "refused", "assigned",
        "handling", "closed", "archived", "terminated",
    ]
    assert {k for k, s in states.items() if s.terminal} == {"refused", "archived", "terminated"}
    steps = {t.key: t for t in wf.transitions}
    expected = {
        "accept": (["applied"], "accepted"),
        "review": (["accepted"], "reviewing"),
        "request_materials": (["reviewing"], "waiting_materials"),
        "materials_received": (["waiting_materials"], "reviewing"),
        "grant": (["reviewing"], "granted"),
        "refuse": (["reviewing"], "refused"),
        "assign": (["granted"], "assigned"),
        "handle": (["assigned"], "handling"),
        "close": (["handling"], "closed"),
        "archive": (["closed"], "archived"),
        "terminate": (["accepted", "reviewing", "granted", "assigned", "handling"], "terminated"),
    }
    assert {k: (t.from_, t.to) for k, t in steps.items()} == expected
    # Time limits: decision within 7 days of acceptance (starting the review keeps that limit; the
    # clock is paused while waiting for materials and resumed, not restarted, when they arrive),
    # assignment within 3 days, file archived within 30 days.
    assert steps["accept"].due_days == 7
    assert steps["review"].keep_due and steps["review"].due_days is None
    assert [k for k, t in steps.items() if t.keep_due] == ["review"]
    assert steps["grant"].due_days == 3
    assert steps["close"].due_days == 30
    assert steps["materials_received"].due_days is None
    assert steps["request_materials"].pause and not any(t.pause for k, t in steps.items() if k != "request_materials")
    assert steps["refuse"].needs_reason and steps["terminate"].needs_reason
    assert steps["assign"].needs_field == "lawyer"
    decisions = {"grant", "refuse", "assign", "terminate", "archive"}
    for key, t in steps.items():
        if key in decisions:
            assert set(t.roles) == {"admin", "manager"}, key
        else:
            assert set(t.roles) == {"admin", "manager", "staff"}, key
    # Every state is reachable, and every non-terminal state has a way out.
    reachable, frontier = {wf.initial}, [wf.initial]
    while frontier:
        here = frontier.pop()
        for t in wf.transitions:
            if here in t.from_ and t.to not in reachable:
                reachable.add(t.to)
                frontier.append(t.to)
    assert reachable == set(states)
    for key, state in states.items():
        assert state.terminal != any(key in t.from_ for t in wf.transitions), key


def test_other_forms_choice_values_used_by_reports() -> None:
    consultation = FormSpec(**_load(FORMS_DIR / "consultation.yaml"))
    assert _values(consultation, "channel") == [
        "walk_in", "hotline_12348", "online", "liaison_point", "outreach_event", "duty_lawyer",
    ]
    event = FormSpec(**_load(FORMS_DIR / "outreach_event.yaml"))
    assert _values(event, "target_group") == ["general", "elderly", "migrant_workers", "women", "minors", "disabled"]
    assert {f.key: f.steps for f in event.counters} == {
        "brochures": [1, 5, 10], "consultations": [1], "onsite_applications": [1], "people_reached": [1, 5, 10],
    }
    assert event.field("campaign").default == "法援惠民生 扶贫奔小康"
    assert "outreach" in event.access.submit and "outreach" in event.access.view
    signup = FormSpec(**_load(FORMS_DIR / "event_signup.yaml"))
    assert signup.parent == "outreach_event" and "outreach" in signup.access.submit
    assert signup.field("phone").sensitive
    hearing = FormSpec(**_load(FORMS_DIR / "hearing_observation.yaml"))
    count = hearing.field("observer_count")
    assert (count.type, count.required, count.min) == ("integer", True, 1)
    assert hearing.date_field == "hearing_date"
    visit = FormSpec(**_load(FORMS_DIR / "return_visit.yaml"))
    assert _values(visit, "reached") == ["connected", "no_answer", "wrong_number"]
    assert _values(visit, "satisfaction") == ["satisfied", "basic", "dissatisfied"]
    archive = FormSpec(**_load(FORMS_DIR / "archive_checklist.yaml"))
    assert _values(archive, "complete") == ["complete", "incomplete"]
    assert archive.field("case_ref").reference_form == "intake"
    integrity = FormSpec(**_load(FORMS_DIR / "integrity_check.yaml"))
    assert integrity.field("month").pattern and integrity.field("month").required


# --------------------------------------------------------------------------------------------------
# Reference lists
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", REFERENCE_PATHS, ids=lambda p: p.stem)
def test_reference_list_shape(path: Path) -> None:
    data = _load(path)
    assert set(data) == {"name", "title", "items"}
    assert data["name"] == path.stem
    assert _is_bilingual(data["title"])
    assert isinstance(data["items"], list)
    values = [item["value"] for item in data["items"]]
    assert len(values) == len(set(values)), "values must be unique"
    for item in data["items"]:
        assert set(item) <= {"value", "label", "extra"}, item
        assert isinstance(item["value"], str) and item["value"] == item["value"].strip().lower()
        assert _is_bilingual(item["label"]), item
        assert isinstance(item.get("extra", {}), dict)
        Choice(value=item["value"], label=item["label"])


def test_liaison_points_are_the_71_placeholders() -> None:
    items = _reference_data()["liaison_points"]["items"]
    assert len(items) == 71
    assert [i["value"] for i in items] == [f"lp{n:02d}" for n in range(1, 72)]
    assert items[0]["label"]["zh"] == "法律服务联络点01" and items[70]["label"]["zh"] == "法律服务联络点71"
    assert all(i["extra"] == {"level": "village_or_community"} for i in items)


def test_courts_causes_lawyers_and_streets() -> None:
    lists = _reference_data()
    courts = {i["label"]["zh"]: i for i in lists["courts"]["items"]}
    assert "湛江市霞山区人民法院" in courts and "湛江市中级人民法院" in courts
    assert courts["湛江市劳动人事争议仲裁委员会"]["extra"]["kind"] == "arbitration"
    causes = {i["label"]["zh"]: i["extra"]["group"] for i in lists["case_causes"]["items"]}
    assert causes["工伤"] == "civil" and causes["盗窃"] == "criminal"
    assert {"婚姻家庭", "劳动报酬", "国家赔偿", "环境损害", "危险驾驶", "毒品犯罪"} <= set(causes)
    assert lists["lawyers"]["items"] == [] and lists["lawyers"]["title"]["zh"] == "承办律师"
    streets = {i["label"]["zh"] for i in lists["streets"]["items"]}
    assert {"解放街道", "海头街道", "东新街道"} <= streets


# --------------------------------------------------------------------------------------------------
# Sample records
# --------------------------------------------------------------------------------------------------
def test_every_form_has_valid_and_invalid_samples_with_real_field_keys() -> None:
    records = SAMPLES["records"]
    assert set(records) == KNOWN_FORMS
    for slug, entry in records.items():
        spec = FormSpec(**_load(FORMS_DIR / f"{slug}.yaml"))
        keys = {f.key for f in spec.fields}
        assert entry.get("valid") and entry.get("invalid"), slug
        for sample in entry["valid"] + entry["invalid"]:
            # A misspelt key would be ignored by validation and make a sample test pass vacuously.
            assert set(sample["data"]) <= keys, (slug, sample["name"], set(sample["data"]) - keys)
            assert set(sample.get("errors", [])) <= keys, (slug, sample["name"])


@pytest.mark.parametrize("id_text", ["440803195804120022", "44080320080915003X", "440803198503072518"])
def test_sample_id_numbers_have_correct_check_characters(id_text: str) -> None:
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    total = sum(int(d) * w for d, w in zip(id_text[:17], weights, strict=True))
    assert "10X98765432"[total % 11] == id_text[17]


@pytest.mark.parametrize(("slug", "sample"), _samples("valid"))
def test_valid_sample_record_validates(slug: str, sample: dict[str, Any]) -> None:
    clean, errors = _validate(slug, sample["data"])
    assert {k: p.message("en") for k, p in errors.items()} == {}
    for key, value in sample["data"].items():
        if value not in (None, "", [], {}):
            assert key in clean, key


def _code_matches(code: str, expected: str) -> bool:
    """An expected code ending in "." names a family of codes (e.g. "phone." for any phone problem)."""
    return code.startswith(expected) if expected.endswith(".") else code == expected


@pytest.mark.parametrize(("slug", "sample"), _samples("invalid"))
def test_invalid_sample_record_fails_on_the_expected_fields(slug: str, sample: dict[str, Any]) -> None:
    from engine.validate import visible_fields

    clean, errors = _validate(slug, sample["data"])
    expected: dict[str, str] = sample["errors"]
    got = {
        key: expected[key] if key in expected and _code_matches(problem.code, expected[key]) else problem.code
        for key, problem in errors.items()
    }
    assert got == expected, {k: p.message("en") for k, p in errors.items()}
    # Values given for hidden fields (show_if false) are neither checked nor kept.
    visible = {f.key for f in visible_fields(_parse(slug), sample["data"])}
    assert set(clean) <= visible
