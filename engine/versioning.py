"""Plan the publishing of a new form version against the current one.

Principle (DESIGN §2): a field key never changes meaning, and nothing stored is ever lost or
misread. So `plan_publish(old, new)` never drops anything that records may hold:

- a field missing from `new` is carried into the plan's spec with ``retired: true``, at its old
  relative position (right after the field that preceded it in `old`);
- a field re-added with the same type is restored; a key kept or re-added with a different type is
  refused, except the widenings in `WIDENINGS`, which cannot misread stored values;
- an option removed from a select / multiselect is carried with ``active: false``; a checklist item
  removed is carried back (items cannot be deactivated), and both are reported;
- removing a workflow state, changing the slug, the parent form, a reference field's target form, or
  switching between inline choices and a reference list is refused;
- everything else (labels, help, order, rules, workflow steps, access) is allowed and reported as a
  `Change` so the designer can show what publishing will do. Tighter rules apply to new entries only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel

from engine.errors import Problem
from engine.messages import register, render
from engine.spec import check_spec
from models.spec import ChecklistItem, Choice, FieldSpec, FormSpec, WorkflowSpec

__all__ = ["CHANGE_KINDS", "WIDENINGS", "Change", "PublishPlan", "compatible_type", "plan_publish"]

CHANGE_KINDS: tuple[str, ...] = (
    "added", "retired", "restored", "relabelled", "choices_changed", "rules_changed", "help_changed",
    "reordered", "workflow_changed", "access_changed",
)

# (old type, new type) changes that cannot misread a stored value.
WIDENINGS: frozenset[tuple[str, str]] = frozenset({
    ("text", "textarea"),
    ("textarea", "text"),  # only when no max_length is added (see compatible_type)
    ("integer", "decimal"),
    ("rating", "integer"),
})

_CHOICE_TYPES = ("select", "multiselect")
# FieldSpec attributes whose change is a rule change (label / help / choices / items / section are
# reported under their own kinds; key / type / retired are handled separately).
_RULE_ATTRS = (
    "required", "default", "min", "max", "min_length", "max_length", "pattern", "pattern_message", "show_if",
    "sensitive", "unique", "choice_list", "reference_form", "sex_field", "doc_type_field", "steps",
)
_FORM_RULE_ATTRS = ("category", "parent", "list_columns", "summary", "date_field", "title_field")

register({
    "version.slug_changed": {
        "zh": "表单标识不能修改（原来是「{old}」，现在是「{new}」）：已有记录都挂在原标识下。如需新表单，请另建一个表单。",
        "en": "A form's identifier cannot change (was '{old}', now '{new}'): stored records belong to the old one. "
              "To make a different form, create a new form instead.",
    },
    "version.type_changed": {
        "zh": "字段「{field}」的类型不能从「{old_type}」改为「{new_type}」，否则已保存的数据会被误读。"
              "请保留这个字段（或删除它让它停用），另外新增一个使用新标识的字段。",
        "en": "The type of field '{field}' cannot change from '{old_type}' to '{new_type}': stored answers would be "
              "misread. Retire this field (remove it) and add a new field with a new key instead.",
    },
    "version.choice_source_changed": {
        "zh": "字段「{field}」不能在「自带选项」和「参考名单」之间切换，否则已保存的选项会无法识别。"
              "请删除这个字段让它停用，另外新增一个使用新标识的字段。",
        "en": "Field '{field}' cannot switch between its own options and a reference list: stored answers would "
              "no longer be recognised. Retire this field (remove it) and add a new field with a new key instead.",
    },
    "version.reference_changed": {
        "zh": "关联字段「{field}」不能从关联「{old}」改为关联「{new}」：已保存的记录编号属于原来的表单。"
              "请删除这个字段让它停用，另外新增一个使用新标识的关联字段。",
        "en": "The linked field '{field}' cannot change from linking '{old}' to '{new}': stored record numbers "
              "belong to the old form. Retire this field (remove it) and add a new linked field with a new key.",
    },
    "version.parent_changed": {
        "zh": "上级表单不能从「{old}」改为「{new}」：已有记录挂在原上级表单的记录下。如需改变，请另建一个表单。",
        "en": "The parent form cannot change from '{old}' to '{new}': stored records are linked to records of the "
              "old parent. Create a new form instead.",
    },
    "version.state_removed": {
        "zh": "不能删除流程状态「{state}」：已有记录可能正处于这个状态。请保留它（可以设为终止状态 terminal: true，"
              "并去掉进入它的步骤）。",
        "en": "The workflow state '{state}' cannot be removed: stored records may be in it. Keep the state "
              "(you may mark it terminal: true and remove the steps leading into it).",
    },
    "version.show_if_retired": {
        "zh": "字段「{field}」的显示条件引用了已停用的字段「{ref}」，新填写的记录里它永远为空。"
              "请修改或删除这个显示条件，或恢复字段「{ref}」。",
        "en": "The display condition of field '{field}' refers to the retired field '{ref}', which is always empty "
              "on new entries. Change or delete the condition, or restore the field '{ref}'.",
    },
    "change.added": {"zh": "新增字段「{field}」", "en": "Field '{field}' added"},
    "change.retired": {
        "zh": "字段「{field}」停用：不再出现在新填写的表单中，旧记录中的数据照常显示和导出",
        "en": "Field '{field}' retired: hidden from new entries; stored answers are still shown and exported",
    },
    "change.restored": {"zh": "恢复使用字段「{field}」", "en": "Field '{field}' restored"},
    "change.relabelled": {"zh": "字段「{field}」的名称已修改", "en": "Field '{field}' relabelled"},
    "change.relabelled.form": {"zh": "表单或分组的标题已修改", "en": "Form or section titles changed"},
    "change.choices_changed": {
        "zh": "字段「{field}」的选项有变化（删除的选项会保留为停用，旧记录照常显示）",
        "en": "Options of field '{field}' changed (removed options are kept as inactive; stored answers still show)",
    },
    "change.rules_changed": {
        "zh": "字段「{field}」的填写规则有变化（新规则只对新填写或修改的记录生效）",
        "en": "Rules of field '{field}' changed (new rules apply to new or edited entries only)",
    },
    "change.rules_changed.form": {"zh": "表单设置有变化", "en": "Form settings changed"},
    "change.help_changed": {"zh": "字段「{field}」的说明已修改", "en": "Help text of field '{field}' changed"},
    "change.reordered": {"zh": "字段「{field}」移到了其他分组", "en": "Field '{field}' moved to another section"},
    "change.reordered.form": {"zh": "字段或分组的顺序有变化", "en": "Order of fields or sections changed"},
    "change.workflow_changed.form": {"zh": "流程有变化", "en": "Workflow changed"},
    "change.access_changed.form": {"zh": "权限有变化", "en": "Access rights changed"},
})


@dataclass
class Change:
    """One reported change. `field` is None for form-level changes; `detail` is plain JSON data."""

    kind: str
    field: str | None
    detail: dict[str, Any] = field(default_factory=dict)

    def describe(self, lang: str = "zh") -> str:
        code = f"change.{self.kind}" if self.field else f"change.{self.kind}.form"
        return render(code, lang, field=self.field or "")


@dataclass
class PublishPlan:
    """What publishing `new` over `old` means: the spec to store, the changes, and refusals.

    Publish only when `problems` is empty."""

    spec: FormSpec
    changes: list[Change]
    problems: list[Problem]

    @property
    def ok(self) -> bool:
        return not self.problems

    def changed(self, kind: str) -> list[Change]:
        return [c for c in self.changes if c.kind == kind]


def compatible_type(old: FieldSpec, new: FieldSpec) -> bool:
    """Can values stored under `old` be read under `new`? Same type, or a listed widening."""
    if old.type == new.type:
        return True
    if (old.type, new.type) not in WIDENINGS:
        return False
    return not ((old.type, new.type) == ("textarea", "text") and new.max_length is not None and old.max_length is None)


# --------------------------------------------------------------------------------------------
# Ordering: new order for what is in new; what only old had keeps its place after its old predecessor
# --------------------------------------------------------------------------------------------
T = TypeVar("T")


def _merge_order(old: Iterable[T], new: Iterable[T], key: Callable[[T], str]) -> list[tuple[T | None, T | None]]:
    """Pairs (old item or None, new item or None) in the merged order."""
    old = list(old)
    new = list(new)
    old_by = {key(o): o for o in old}
    new_keys = {key(n) for n in new}
    merged: list[tuple[T | None, T | None]] = [(old_by.get(key(n)), n) for n in new]
    anchor: str | None = None
    for o in old:
        k = key(o)
        if k not in new_keys:
            at = 0 if anchor is None else next(
                i for i, (a, b) in enumerate(merged) if key(b if b is not None else a) == anchor  # type: ignore[arg-type]
            ) + 1
            merged.insert(at, (o, None))
        anchor = k
    return merged


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


# --------------------------------------------------------------------------------------------
# Per field
# --------------------------------------------------------------------------------------------
class _Planner:
    def __init__(self, old: FormSpec, new: FormSpec) -> None:
        self.old = old
        self.new = new
        self.slug = new.slug
        self.changes: list[Change] = []
        self.problems: list[Problem] = []

    def change(self, kind: str, key: str | None, **detail: Any) -> None:
        self.changes.append(Change(kind, key, detail))

    def refuse(self, code: str, key: str | None = None, **params: Any) -> None:
        if key is not None:
            params.setdefault("field", key)
        self.problems.append(Problem(code, params, form=self.slug, field=key))

    # -- fields ----------------------------------------------------------------------------
    def fields(self) -> list[FieldSpec]:
        out: list[FieldSpec] = []
        for o, n in _merge_order(self.old.fields, self.new.fields, key=lambda f: f.key):
            if n is None:
                assert o is not None
                if not o.retired:
                    self.change("retired", o.key, type=o.type, label=dict(o.label))
                out.append(o if o.retired else o.model_copy(update={"retired": True}))
            elif o is None:
                self.change("added", n.key, type=n.type, **({"retired": True} if n.retired else {}))
                out.append(n)
            else:
                out.append(self.field(o, n))
        return out

    def field(self, o: FieldSpec, n: FieldSpec) -> FieldSpec:
        key = n.key
        if not compatible_type(o, n):
            self.refuse("version.type_changed", key, old_type=o.type, new_type=n.type)
            return o  # refused: the plan keeps the field as it was (and stays a valid spec)
        if o.retired and not n.retired:
            self.change("restored", key, type=n.type)
        elif n.retired and not o.retired:
            self.change("retired", key, type=n.type, label=dict(n.label))
        if o.label != n.label:
            self.change("relabelled", key, old=dict(o.label), new=dict(n.label))
        if o.help != n.help:
            self.change("help_changed", key, old=dict(o.help), new=dict(n.help))
        if o.section != n.section:
            self.change("reordered", key, section={"old": o.section, "new": n.section})
        update: dict[str, Any] = {}
        if n.type in _CHOICE_TYPES:
            choices = self.choices(o, n)
            if choices is not None:
                update["choices"] = choices
        if o.items or n.items:
            update["items"] = self.items(o, n)
        self.rules(o, n)
        return n.model_copy(update=update) if update else n

    def choices(self, o: FieldSpec, n: FieldSpec) -> list[Choice] | None:
        key = n.key
        if (o.choices and n.choice_list) or (o.choice_list and n.choices):
            self.refuse("version.choice_source_changed", key)
            return None
        if not o.choices or not n.choices:
            return None
        merged: list[Choice] = []
        detail: dict[str, Any] = {}
        for oc, nc in _merge_order(o.choices, n.choices, key=lambda c: c.value):
            if nc is None:
                assert oc is not None
                if oc.active:
                    detail.setdefault("deactivated", []).append(oc.value)
                merged.append(oc if not oc.active else oc.model_copy(update={"active": False}))
                continue
            merged.append(nc)
            if oc is None:
                detail.setdefault("added", []).append(nc.value)
                continue
            if oc.active and not nc.active:
                detail.setdefault("deactivated", []).append(nc.value)
            elif nc.active and not oc.active:
                detail.setdefault("reactivated", []).append(nc.value)
            if oc.label != nc.label:
                detail.setdefault("relabelled", []).append(nc.value)
        common_old = [c.value for c in o.choices if c.value in {x.value for x in n.choices}]
        common_new = [c.value for c in n.choices if c.value in {x.value for x in o.choices}]
        if common_old != common_new:
            detail["reordered"] = True
        if detail:
            self.change("choices_changed", key, **detail)
        return merged

    def items(self, o: FieldSpec, n: FieldSpec) -> list[ChecklistItem]:
        merged: list[ChecklistItem] = []
        detail: dict[str, Any] = {}
        for oi, ni in _merge_order(o.items or [], n.items or [], key=lambda i: i.key):
            if ni is None:
                assert oi is not None
                # Items cannot be deactivated: stored answers keep their item, so it stays in the list.
                detail.setdefault("items_kept", []).append(oi.key)
                merged.append(oi)
                continue
            merged.append(ni)
            if oi is None:
                detail.setdefault("items_added", []).append(ni.key)
            elif oi.label != ni.label or oi.group != ni.group:
                detail.setdefault("items_relabelled", []).append(ni.key)
        if detail:
            self.change("choices_changed", n.key, **detail)
        return merged

    def rules(self, o: FieldSpec, n: FieldSpec) -> None:
        key = n.key
        attrs: dict[str, Any] = {}
        for attr in _RULE_ATTRS:
            a, b = getattr(o, attr), getattr(n, attr)
            if a != b:
                attrs[attr] = {"old": _plain(a), "new": _plain(b)}
        if o.type != n.type:
            attrs["type"] = {"old": o.type, "new": n.type}
        if (o.type == "reference" or n.type == "reference") and o.reference_form != n.reference_form and (
            o.reference_form is not None or o.choice_list is not None
        ):
            self.refuse("version.reference_changed", key, old=o.reference_form or o.choice_list or "",
                        new=n.reference_form or n.choice_list or "")
        if not attrs:
            return
        tightened = [a for a in _RULE_ATTRS if a in attrs and _tighter(a, getattr(o, a), getattr(n, a))]
        detail: dict[str, Any] = {"attrs": attrs}
        if tightened:
            detail["tightened"] = tightened
            detail["new_entries_only"] = True
        if o.sensitive and not n.sensitive:
            detail["unmasked"] = True
        if o.type != n.type:
            detail["widened"] = True
        self.change("rules_changed", key, **detail)

    # -- form level ------------------------------------------------------------------------
    def form(self, merged: list[FieldSpec]) -> None:
        o, n = self.old, self.new
        if o.slug != n.slug:
            self.refuse("version.slug_changed", old=o.slug, new=n.slug)
        if o.title != n.title or o.description != n.description:
            self.change("relabelled", None, title={"old": dict(o.title), "new": dict(n.title)},
                        **({"description": True} if o.description != n.description else {}))
        old_sections = [s.key for s in o.sections]
        new_sections = [s.key for s in n.sections]
        if old_sections != new_sections:
            self.change("reordered", None, sections={"old": old_sections, "new": new_sections})
        old_by = {s.key: s for s in o.sections}
        relabelled = [s.key for s in n.sections if s.key in old_by and old_by[s.key] != s]
        if relabelled:
            self.change("relabelled", None, sections=relabelled)
        new_keys = {f.key for f in n.fields}
        old_keys = {f.key for f in o.fields}
        common_old = [f.key for f in o.fields if f.key in new_keys]
        common_new = [f.key for f in n.fields if f.key in old_keys]
        if common_old != common_new:
            self.change("reordered", None, fields={"old": common_old, "new": common_new})
        if o.parent is not None and o.parent != n.parent:
            self.refuse("version.parent_changed", old=o.parent, new=n.parent or "-")
        attrs = {a: {"old": _plain(getattr(o, a)), "new": _plain(getattr(n, a))}
                 for a in _FORM_RULE_ATTRS if getattr(o, a) != getattr(n, a)}
        if attrs:
            self.change("rules_changed", None, attrs=attrs)
        if o.access != n.access:
            self.change("access_changed", None, **{
                a: {"old": getattr(o.access, a), "new": getattr(n.access, a)}
                for a in type(o.access).model_fields if getattr(o.access, a) != getattr(n.access, a)
            })
        self.workflow(o.workflow, n.workflow)
        retired = {f.key for f in merged if f.retired}
        for f in merged:
            if f.retired or f.show_if is None:
                continue
            for ref in sorted(f.show_if.referenced_fields() & retired):
                self.refuse("version.show_if_retired", f.key, ref=ref)

    def workflow(self, o: WorkflowSpec | None, n: WorkflowSpec | None) -> None:
        if o is None and n is None:
            return
        if o is None:
            assert n is not None
            self.change("workflow_changed", None, added=True, states=[s.key for s in n.states])
            return
        new_states = {s.key: s for s in (n.states if n else [])}
        removed = [s.key for s in o.states if s.key not in new_states]
        if removed:
            self.refuse("version.state_removed", state=", ".join(removed), states=removed)
        if n is None:
            return
        detail: dict[str, Any] = {}
        old_states = {s.key: s for s in o.states}
        added = [k for k in new_states if k not in old_states]
        if added:
            detail["states_added"] = added
        changed = [k for k, s in new_states.items() if k in old_states and old_states[k] != s]
        if changed:
            detail["states_changed"] = changed
        if o.initial != n.initial:
            detail["initial"] = {"old": o.initial, "new": n.initial}
        old_tr = {t.key: t for t in o.transitions}
        new_tr = {t.key: t for t in n.transitions}
        for name, keys in (
            ("transitions_added", [k for k in new_tr if k not in old_tr]),
            ("transitions_removed", [k for k in old_tr if k not in new_tr]),
            ("transitions_changed", [k for k in new_tr if k in old_tr and old_tr[k] != new_tr[k]]),
        ):
            if keys:
                detail[name] = keys
        if [s.key for s in o.states] != [s.key for s in n.states if s.key in old_states] and not removed:
            detail["states_reordered"] = True
        if detail:
            self.change("workflow_changed", None, **detail)


def _tighter(attr: str, old: Any, new: Any) -> bool:
    """Does the change make the rule stricter for new entries?"""
    if attr in ("required", "unique"):
        return bool(new) and not old
    if attr in ("min", "min_length"):
        return new is not None and (old is None or new > old)
    if attr in ("max", "max_length"):
        return new is not None and (old is None or new < old)
    if attr == "pattern":
        return new is not None
    return False


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------
def plan_publish(old: FormSpec | None, new: FormSpec) -> PublishPlan:
    """Plan publishing `new` as the next version after `old` (None for a new form).

    The plan's spec is `new` plus everything `old` had that records may hold (retired fields, inactive
    options, kept checklist items); `changes` lists what changes; `problems` lists refusals (coded
    ``version.*``). Neither argument is modified."""
    new = new.model_copy(deep=True)
    if old is None:
        changes = [Change("added", f.key, {"type": f.type}) for f in new.fields]
        problems = _recheck(new, [])
        return PublishPlan(new, changes, problems)
    planner = _Planner(old.model_copy(deep=True), new)
    merged = planner.fields()
    planner.form(merged)
    spec = new.model_copy(update={"fields": merged})
    problems = _recheck(spec, planner.problems)
    return PublishPlan(spec, planner.changes, problems)


def _recheck(spec: FormSpec, problems: list[Problem]) -> list[Problem]:
    """The plan's spec must itself pass `check_spec`; add whatever it still finds (not already said)."""
    _, found = check_spec(spec)
    said = {(p.field, p.params.get("ref")) for p in problems if p.code == "version.show_if_retired"}
    extra = [p for p in found if not (p.code == "spec.show_if_retired" and (p.field, p.params.get("ref")) in said)]
    return problems + extra
