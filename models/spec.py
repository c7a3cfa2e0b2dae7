"""Non-table shapes: the form spec that a non-programmer edits.

A spec is plain data (YAML / JSON / XLSForm / designer grid). `engine.spec.parse_spec`
checks it and returns a `FormSpec`; nothing here evaluates code.

Localised text (`LText`) is a dict such as ``{"zh": "姓名", "en": "Name"}``; a plain
string in a source file is accepted and stored as ``{"zh": s}``.
"""

from __future__ import annotations

import weakref
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

LText = dict[str, str]
ROLES: tuple[str, ...] = ("admin", "manager", "staff", "outreach", "viewer")
LANGS: tuple[str, ...] = ("zh", "en")


def as_ltext(value: Any) -> LText:
    """Normalise a label given as str or dict into an LText dict."""
    if value is None:
        return {}
    if isinstance(value, str):
        return {"zh": value} if value else {}
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items() if v not in (None, "")}
    return {"zh": str(value)}


def ltext(value: LText | str | None, lang: str = "zh") -> str:
    """Pick the text for a language, falling back to zh, then en, then any."""
    if not value:
        return ""
    if isinstance(value, str):
        return value
    return value.get(lang) or value.get("zh") or value.get("en") or next(iter(value.values()), "")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Choice(_Model):
    value: str
    label: LText = Field(default_factory=dict)
    active: bool = True

    _norm = field_validator("label", mode="before")(as_ltext)


class ChecklistItem(_Model):
    key: str
    label: LText = Field(default_factory=dict)
    group: str | None = None  # e.g. "criminal" / "civil" for archive checklists

    _norm = field_validator("label", mode="before")(as_ltext)


class Condition(_Model):
    """A structured `show_if` condition. Exactly one form is used:

    - leaf: ``{field, op, value}`` with op in equals / not_equals / in / not_in /
      not_empty / empty / gt / lt / gte / lte / contains (for multiselect)
    - ``{all: [...]}`` (and), ``{any: [...]}`` (or), ``{not: {...}}``
    """

    field: str | None = None
    op: Literal[
        "equals", "not_equals", "in", "not_in", "not_empty", "empty", "gt", "lt", "gte", "lte", "contains"
    ] | None = None
    value: Any = None
    all: list[Condition] | None = None
    any: list[Condition] | None = None
    not_: Condition | None = Field(default=None, alias="not")

    def referenced_fields(self) -> set[str]:
        out: set[str] = {self.field} if self.field else set()
        for sub in (self.all or []) + (self.any or []) + ([self.not_] if self.not_ else []):
            out |= sub.referenced_fields()
        return out


class FieldSpec(_Model):
    key: str
    type: str
    label: LText = Field(default_factory=dict)
    help: LText = Field(default_factory=dict)
    section: str | None = None
    required: bool = False
    default: Any = None
    choices: list[Choice] | None = None
    choice_list: str | None = None  # name of a ChoiceList (reference list)
    items: list[ChecklistItem] | None = None  # checklist items
    min: float | None = None
    max: float | None = None
    min_length: int | None = None
    max_length: int | None = None
    pattern: str | None = None
    pattern_message: LText = Field(default_factory=dict)
    show_if: Condition | None = None
    sensitive: bool = False
    unique: bool = False
    reference_form: str | None = None  # type=reference: slug of the form whose records are picked
    sex_field: str | None = None  # type=id_number: key of the sex field to check against
    doc_type_field: str | None = None  # type=id_number: key of a select giving the document type
    steps: list[int] | None = None  # type=counter: tap steps, e.g. [1, 5, 10]
    retired: bool = False  # set by publishing when a field is removed; never shown for new entry

    _norm = field_validator("label", "help", "pattern_message", mode="before")(as_ltext)


class SectionSpec(_Model):
    key: str
    title: LText = Field(default_factory=dict)
    help: LText = Field(default_factory=dict)

    _norm = field_validator("title", "help", mode="before")(as_ltext)


class StateSpec(_Model):
    key: str
    label: LText = Field(default_factory=dict)
    terminal: bool = False

    _norm = field_validator("label", mode="before")(as_ltext)


class TransitionSpec(_Model):
    key: str
    label: LText = Field(default_factory=dict)
    from_: list[str] = Field(alias="from")
    to: str
    roles: list[str] = Field(default_factory=lambda: ["admin", "manager"])
    due_days: int | None = None  # time limit for the *next* step, counted from entering `to`
    needs_reason: bool = False
    needs_field: str | None = None  # a field (e.g. lawyer) that must be set when taking this step
    pause: bool = False  # "waiting for materials": the deadline clock stops in `to`
    # keep the record's running time limit (due_at) as it is instead of setting a new one; e.g. the
    # review step keeps the decision limit that acceptance started. Not with due_days (a spec error).
    keep_due: bool = False

    _norm = field_validator("label", mode="before")(as_ltext)


class WorkflowSpec(_Model):
    initial: str
    states: list[StateSpec]
    transitions: list[TransitionSpec] = Field(default_factory=list)


class AccessSpec(_Model):
    submit: list[str] = Field(default_factory=lambda: ["admin", "manager", "staff"])
    view: list[str] = Field(default_factory=lambda: ["admin", "manager", "staff", "viewer"])
    edit: list[str] = Field(default_factory=lambda: ["admin", "manager", "staff"])
    reveal: list[str] = Field(default_factory=lambda: ["admin", "manager"])


# id(spec) -> (weak ref to the spec, its fields list, that list's length, {key: first field}, the
# sensitive ones of those first fields, the active unique fields, the active reference fields); kept
# outside the model so that it never takes part in == or in dumps
_FieldIndex = tuple[weakref.ref, list, int, dict, list, list, list]
_FIELD_INDEX: dict[int, _FieldIndex] = {}


def _index_fields(spec: FormSpec) -> _FieldIndex:
    by_key: dict[str, FieldSpec] = {}
    for f in spec.fields:
        by_key.setdefault(f.key, f)
    sensitive = [f for f in by_key.values() if f.sensitive]
    unique = [f for f in spec.fields if f.unique and not f.retired]
    references = [f for f in spec.fields if f.reference_form and not f.retired]
    key = id(spec)
    entry = (weakref.ref(spec, lambda _ref, k=key: _FIELD_INDEX.pop(k, None)), spec.fields, len(spec.fields), by_key,
             sensitive, unique, references)
    _FIELD_INDEX[key] = entry
    return entry


class FormSpec(_Model):
    slug: str
    title: LText = Field(default_factory=dict)
    description: LText = Field(default_factory=dict)
    category: str = "general"
    access: AccessSpec = Field(default_factory=AccessSpec)
    sections: list[SectionSpec] = Field(default_factory=list)
    fields: list[FieldSpec] = Field(default_factory=list)
    workflow: WorkflowSpec | None = None
    parent: str | None = None  # slug of the parent form (e.g. sign-up -> outreach_event)
    list_columns: list[str] = Field(default_factory=list)
    summary: list[str] = Field(default_factory=list)  # dashboard dimensions (field keys)
    date_field: str | None = None  # the field that dates a record for reports (else created_at)
    title_field: str | None = None  # the field shown as a record's title in lists and pickers

    _norm = field_validator("title", "description", mode="before")(as_ltext)

    # --- convenience -------------------------------------------------------------------------
    def field(self, key: str) -> FieldSpec | None:
        """The field `key` (the first one, should a draft repeat a key), from an index kept on the
        spec and rebuilt whenever its `fields` list is another one (model_copy) or changed in length."""
        return self._fields_index()[3].get(key)

    def sensitive_fields(self) -> list[FieldSpec]:
        """The fields marked sensitive (the first of a repeated key), from the same index as `field`."""
        return self._fields_index()[4]

    def unique_fields(self) -> list[FieldSpec]:
        """The active fields whose values must be unique (from the same index as `field`)."""
        return self._fields_index()[5]

    def reference_fields(self) -> list[FieldSpec]:
        """The active fields that point at records of another form (from the same index as `field`)."""
        return self._fields_index()[6]

    def _fields_index(self) -> _FieldIndex:
        entry = _FIELD_INDEX.get(id(self))
        if entry is None or entry[0]() is not self or entry[1] is not self.fields or entry[2] != len(self.fields):
            entry = _index_fields(self)
        return entry

    @property
    def active_fields(self) -> list[FieldSpec]:
        return [f for f in self.fields if not f.retired]

    @property
    def counters(self) -> list[FieldSpec]:
        return [f for f in self.fields if f.type == "counter" and not f.retired]

    def to_dict(self) -> dict[str, Any]:
        """The canonical plain-data form (what is stored as FormVersion.spec and exported)."""
        return self.model_dump(mode="json", by_alias=True, exclude_defaults=True)


Condition.model_rebuild()
