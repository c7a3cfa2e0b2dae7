"""Parse and check form specs (YAML / JSON text, files, or plain dicts) into `FormSpec`.

`check_spec` is the non-raising core: it walks the plain data, collects *every* problem as a coded
`Problem` (naming the form, the field and, for text sources, the 1-based line), and only builds the
`FormSpec` when there is none. `parse_spec` raises `SpecError("spec.invalid", problems=[...])`.
`dump_spec` writes the canonical YAML or JSON; `parse_spec(dump_spec(s, fmt)) == s` for both formats.

Pydantic is only the last safety net: anything it still rejects is translated into a coded
`spec.schema` / `spec.unknown_key` problem; its raw messages never reach users.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from engine.errors import Problem, SpecError
from engine.fields import REGISTRY, FieldProblem
from engine.messages import register
from models.spec import (
    ROLES,
    AccessSpec,
    FieldSpec,
    FormSpec,
    SectionSpec,
    StateSpec,
    TransitionSpec,
    as_ltext,
)

__all__ = [
    "KEY_RE",
    "check_spec",
    "dump_spec",
    "field_type_names",
    "load_source",
    "parse_spec",
]

# Slugs and field keys: lowercase letters, digits, underscore; 2-64 chars; starts with a letter.
KEY_RE = re.compile(r"^[a-z][a-z0-9_]{1,63}$")

_FIELD_ATTRS = frozenset(
    (info.alias or name) for name, info in FieldSpec.model_fields.items()
)
_FIELD_DEFAULTS = {
    (info.alias or name): info.get_default(call_default_factory=True) for name, info in FieldSpec.model_fields.items()
}
_TOP_KEYS = tuple((info.alias or name) for name, info in FormSpec.model_fields.items())
_ACCESS_KEYS = tuple(AccessSpec.model_fields)
_OPS = ("equals", "not_equals", "in", "not_in", "not_empty", "empty", "gt", "lt", "gte", "lte", "contains")
_NO_VALUE_OPS = ("empty", "not_empty")
_LIST_OPS = ("in", "not_in")
_CHOICE_TYPES = ("select", "multiselect")
MAX_CHOICES = 2000  # options listed in one field; longer lists belong in a reference list (choice_list)
_DATE_TYPES = ("date", "datetime")


# --------------------------------------------------------------------------------------------
# Field-type registry (engine.fields.REGISTRY is the source of truth)
# --------------------------------------------------------------------------------------------
def field_type_names() -> tuple[str, ...]:
    """The known field type names, in the registry's order."""
    return tuple(REGISTRY)


def _allowed_attrs(type_name: str) -> frozenset[str]:
    return REGISTRY[type_name].allowed_attrs


def _stores_value(type_name: str) -> bool:
    return REGISTRY[type_name].stores_value


# --------------------------------------------------------------------------------------------
# YAML: YAML-1.2-like scalars (``no`` / ``on`` stay text, ``10:30`` is not 630, dates stay text)
# --------------------------------------------------------------------------------------------
_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_BOOL_RE = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_INT_RE = re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$")
# Floats need a dot (``1e5`` stays text, as in YAML 1.1); what the dumper writes always has one.
_FLOAT_RE = re.compile(
    r"^(?:[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core-schema booleans and numbers, and no timestamps."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_BOOL, _INT, _FLOAT, _TIMESTAMP)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(_BOOL, _BOOL_RE, list("tTfF"))
_Loader.add_implicit_resolver(_INT, _INT_RE, list("-+0123456789"))
_Loader.add_implicit_resolver(_FLOAT, _FLOAT_RE, list("-+0123456789."))


class _Dumper(yaml.SafeDumper):
    """Readable YAML: indented lists, short scalar lists inline, multi-line text as blocks.

    Its resolvers are YAML 1.1's plus the loader's, so any string that either could read as
    something else is quoted."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


_Dumper.add_implicit_resolver(_FLOAT, _FLOAT_RE, list("-+0123456789."))


_ODD_BREAKS = re.compile("[\x85\u2028\u2029]")  # PyYAML folds these away unless escaped


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    style = '"' if _ODD_BREAKS.search(data) else "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


def _represent_list(dumper: yaml.SafeDumper, data: list) -> yaml.Node:
    flow = (
        0 < len(data) <= 12
        and all(
            isinstance(x, int | float | bool) or (isinstance(x, str) and "\n" not in x and len(x) <= 30)
            for x in data
        )
        and sum(len(str(x)) for x in data) <= 80
    )
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_FLOW_KEYS = frozenset({"value", "key", "label", "active", "group", "field", "op"})


def _inline(value: Any) -> bool:
    """Short one-line scalars, and small dicts of them, read best inline."""
    if isinstance(value, str):
        return "\n" not in value
    if isinstance(value, bool | int | float) or value is None:
        return True
    if isinstance(value, dict):
        return all(isinstance(k, str) and _inline(v) for k, v in value.items())
    return False


def _represent_dict(dumper: yaml.SafeDumper, data: dict) -> yaml.Node:
    ltext = all(isinstance(k, str) and len(k) <= 5 and isinstance(v, str) for k, v in data.items())
    flow = (
        bool(data)
        and (ltext or set(data) <= _FLOW_KEYS)
        and all(_inline(v) for v in data.values())
        and len(json.dumps(data, ensure_ascii=False)) <= 90
    )
    return dumper.represent_mapping("tag:yaml.org,2002:map", data, flow_style=flow)


_Dumper.add_representer(str, _represent_str)
_Dumper.add_representer(list, _represent_list)
_Dumper.add_representer(dict, _represent_dict)


# --------------------------------------------------------------------------------------------
# Messages
# --------------------------------------------------------------------------------------------
register(
    {
        "spec.invalid": {
            "zh": "表单「{form}」的定义有 {count} 处问题，请按下面的提示逐条修改后再保存或发布。",
            "en": "The definition of form '{form}' has {count} problem(s). Fix each one listed below, then save or publish again.",
        },
        "spec.syntax": {
            "zh": "第 {line} 行（第 {column} 列）附近的格式有误，无法读取。常见原因：缩进不整齐、冒号后缺少空格、引号或括号没有配对。请检查这一行和它的上一行。",
            "en": "The text cannot be read near line {line}, column {column} ({detail}). Common causes: uneven indentation, a missing space after a colon, an unclosed quote or bracket. Check this line and the one above it.",
        },
        "spec.file_unreadable": {
            "zh": "无法读取表单定义文件「{path}」：文件不存在或不是 UTF-8 文本。请确认文件路径，并以 UTF-8 编码保存。",
            "en": "Cannot read the form definition file '{path}': it does not exist or is not UTF-8 text. Check the path and save the file as UTF-8.",
        },
        "spec.format_unknown": {
            "zh": "不认识的文件格式「{fmt}」。表单定义请使用 .yaml、.yml、.json 或 .xlsx（XLSForm）文件。",
            "en": "Unknown file format '{fmt}'. Use a .yaml, .yml, .json or .xlsx (XLSForm) file for a form definition.",
        },
        "spec.not_mapping": {
            "zh": "表单定义应当是一组「名称: 值」的设置（例如 slug: intake），现在读到的是{got}。请从模板复制后再修改。",
            "en": "A form definition must be a set of 'name: value' settings (e.g. slug: intake), but this is {got}. Start from a template and edit it.",
        },
        "spec.duplicate_key": {
            "zh": "设置「{key}」在同一处写了两次（第 {first_line} 行和第 {line} 行），后一个会覆盖前一个。请删除其中一个。",
            "en": "The setting '{key}' is written twice in the same place (lines {first_line} and {line}); the second would silently replace the first. Delete one of them.",
        },
        "spec.slug_missing": {
            "zh": "表单缺少标识（slug）。请添加一行，例如 slug: legal_aid_intake。",
            "en": "The form has no identifier (slug). Add a line such as slug: legal_aid_intake.",
        },
        "spec.slug_invalid": {
            "zh": "表单标识「{slug}」不合格：只能用小写英文字母、数字和下划线，以字母开头，长度 2 到 64 个字符（例如 legal_aid_intake）。",
            "en": "The form identifier '{slug}' is not valid: use lowercase letters, digits and underscores only, start with a letter, 2 to 64 characters (e.g. legal_aid_intake).",
        },
        "spec.title_missing": {
            "zh": "表单缺少中文标题。请添加 title，例如 title: 法律援助申请登记，或 title: {{zh: 法律援助申请登记, en: Legal aid application}}。",
            "en": "The form has no Chinese title. Add a title, e.g. title: 法律援助申请登记, or title: {{zh: 法律援助申请登记, en: Legal aid application}}.",
        },
        "spec.unknown_key": {
            "zh": "{where_zh}没有「{key}」这个设置{hint_zh}。可用的设置有：{allowed}。请改正拼写或删除这一行。",
            "en": "{where_en} has no setting called '{key}'{hint_en}. Allowed settings: {allowed}. Fix the spelling or delete the line.",
        },
        "spec.schema": {
            "zh": "「{path}」的值格式不对：这里应当填写{expected_zh}。",
            "en": "The value of '{path}' has the wrong form: it should be {expected_en}.",
        },
        "spec.field_not_mapping": {
            "zh": "第 {index} 个字段不是一组「名称: 值」的设置。每个字段应以「- key: 字段标识」开头，下面再写 type、label 等。",
            "en": "Field number {index} is not a set of 'name: value' settings. Each field starts with '- key: field_key' followed by type, label, etc.",
        },
        "spec.field_key_missing": {
            "zh": "第 {index} 个字段缺少标识（key）。请添加，例如 key: applicant_name。",
            "en": "Field number {index} has no key. Add one, e.g. key: applicant_name.",
        },
        "spec.field_key_invalid": {
            "zh": "字段标识「{key}」不合格：只能用小写英文字母、数字和下划线，以字母开头，长度 2 到 64 个字符（例如 applicant_name）。",
            "en": "The field key '{key}' is not valid: use lowercase letters, digits and underscores only, start with a letter, 2 to 64 characters (e.g. applicant_name).",
        },
        "spec.field_key_duplicate": {
            "zh": "字段标识「{key}」已被第 {first_index} 个字段使用。每个字段的标识必须不同，请换一个新的标识。",
            "en": "The field key '{key}' is already used by field number {first_index}. Every field needs its own key; choose a new one.",
        },
        "spec.field_type_missing": {
            "zh": "字段缺少类型（type）。可用的类型有：{known}。",
            "en": "The field has no type. Available types: {known}.",
        },
        "spec.field_type_unknown": {
            "zh": "不认识的字段类型「{type}」。可用的类型有：{known}。",
            "en": "Unknown field type '{type}'. Available types: {known}.",
        },
        "spec.field_unknown_attr": {
            "zh": "字段没有「{attr}」这个设置{hint_zh}。请改正拼写或删除这一行。",
            "en": "Fields have no setting called '{attr}'{hint_en}. Fix the spelling or delete the line.",
        },
        "spec.attr_not_allowed": {
            "zh": "设置「{attr}」对「{type}」类型的字段没有作用。请删除这一行，或换用合适的字段类型。",
            "en": "The setting '{attr}' means nothing for a field of type '{type}'. Delete the line or choose a suitable field type.",
        },
        "spec.choices_missing": {
            "zh": "选择题字段需要选项：请填写 choices（选项列表），或用 choice_list 指定一个参考名单。",
            "en": "A choice field needs options: list them under choices, or name a reference list with choice_list.",
        },
        "spec.choices_both": {
            "zh": "选择题字段同时填写了 choices 和 choice_list，只能二选一。请删除其中一个。",
            "en": "The choice field has both choices and choice_list; use only one of them. Delete the other.",
        },
        "spec.too_many_choices": {
            "zh": "选项太多：此字段有 {n} 个选项，最多 {max} 个。选项很多时请改用参考名单（choice_list），在「参考名单」页面维护。",
            "en": "Too many options: this field has {n}, at most {max} are allowed. For a long list use a reference "
                  "list (choice_list), kept on the Reference lists page.",
        },
        "spec.choice_duplicate": {
            "zh": "选项值「{value}」重复出现。每个选项的值必须不同，请修改或删除重复的选项。",
            "en": "The option value '{value}' appears more than once. Every option needs its own value; change or delete the duplicate.",
        },
        "spec.choice_list_unknown": {
            "zh": "找不到名为「{name}」的参考名单。请先在「参考名单」里建立它，或改成已有的名单：{known}。",
            "en": "There is no reference list called '{name}'. Create it under Reference lists first, or use an existing one: {known}.",
        },
        "spec.items_missing": {
            "zh": "清单字段需要检查项：请在 items 下列出各项（每项有 key 和 label）。",
            "en": "A checklist field needs items: list them under items (each with a key and a label).",
        },
        "spec.item_duplicate": {
            "zh": "检查项标识「{key}」重复出现。每个检查项的标识必须不同。",
            "en": "The checklist item key '{key}' appears more than once. Every item needs its own key.",
        },
        "spec.min_gt_max": {
            "zh": "最小值 {min} 大于最大值 {max}，这样任何值都填不进去。请调整 min 或 max。",
            "en": "The minimum {min} is greater than the maximum {max}, so no value could ever be entered. Adjust min or max.",
        },
        "spec.length_min_gt_max": {
            "zh": "最短长度 {min_length} 大于最长长度 {max_length}（或长度为负数）。请调整 min_length 或 max_length。",
            "en": "The minimum length {min_length} is greater than the maximum length {max_length} (or a length is negative). Adjust min_length or max_length.",
        },
        "spec.pattern_invalid": {
            "zh": "格式规则（pattern）「{pattern}」写得不对，无法使用（{error}）。请改正或删除它；不确定时请向技术人员求助。",
            "en": "The format rule (pattern) '{pattern}' is not a valid regular expression ({error}). Fix or delete it; ask a technical person if unsure.",
        },
        "spec.default_invalid": {
            "zh": "默认值「{default}」对这个字段无效（类型或范围不符）。请改成一个可以直接提交的值，或删除 default。",
            "en": "The default value '{default}' is not valid for this field (wrong kind of value or out of range). Use a value that could be submitted as is, or delete default.",
        },
        "spec.show_if_malformed": {
            "zh": "显示条件（show_if）写法不对：{reason_zh}。条件写成 {{field: 字段标识, op: equals, value: 值}}，或用 all / any / not 组合。",
            "en": "The display condition (show_if) is malformed: {reason_en}. Write a condition as {{field: key, op: equals, value: ...}}, or combine them with all / any / not.",
        },
        "spec.show_if_bad_op": {
            "zh": "显示条件中的比较方式「{op}」无效。可用的有：{allowed}。",
            "en": "The comparison '{op}' in the display condition is not valid. Available: {allowed}.",
        },
        "spec.show_if_missing_value": {
            "zh": "显示条件「{op}」需要填写 value（要比较的值）{list_zh}。只有 empty / not_empty 不需要 value。",
            "en": "The display condition '{op}' needs a value to compare with{list_en}. Only empty / not_empty need no value.",
        },
        "spec.show_if_unknown_field": {
            "zh": "显示条件引用了不存在的字段「{ref}」。请改成本表单中已有的字段标识。",
            "en": "The display condition refers to a field '{ref}' that does not exist. Use the key of a field of this form.",
        },
        "spec.show_if_self": {
            "zh": "字段的显示条件不能依赖它自己。请改成依赖其他字段，或删除 show_if。",
            "en": "A field's display condition cannot depend on the field itself. Make it depend on another field, or delete show_if.",
        },
        "spec.show_if_retired": {
            "zh": "显示条件引用了已停用的字段「{ref}」，新填写的记录里它永远为空。请改用仍在使用的字段，或删除这个条件。",
            "en": "The display condition refers to the retired field '{ref}', which is always empty on new entries. Use an active field or delete the condition.",
        },
        "spec.show_if_cycle": {
            "zh": "这些字段的显示条件互相依赖，形成了循环：{cycle}。请去掉其中一个条件。",
            "en": "The display conditions of these fields depend on each other in a circle: {cycle}. Remove one of the conditions.",
        },
        "spec.section_unknown": {
            "zh": "字段所属的分组「{section}」没有在 sections 中定义。可用的分组：{known}。请改正或先添加该分组。",
            "en": "The field's section '{section}' is not declared under sections. Declared sections: {known}. Fix it or add the section first.",
        },
        "spec.section_duplicate": {
            "zh": "分组标识「{key}」重复出现。每个分组的标识必须不同。",
            "en": "The section key '{key}' appears more than once. Every section needs its own key.",
        },
        "spec.workflow_initial_unknown": {
            "zh": "流程的起始状态「{state}」不在状态列表中。可用的状态：{known}。",
            "en": "The workflow's initial state '{state}' is not one of its states: {known}.",
        },
        "spec.transition_state_unknown": {
            "zh": "流程步骤「{transition}」引用了不存在的状态「{state}」。可用的状态：{known}。",
            "en": "The workflow step '{transition}' refers to a state '{state}' that does not exist. States: {known}.",
        },
        "spec.state_duplicate": {
            "zh": "流程状态标识「{state}」重复出现。每个状态的标识必须不同。",
            "en": "The workflow state key '{state}' appears more than once. Every state needs its own key.",
        },
        "spec.transition_duplicate": {
            "zh": "流程步骤标识「{transition}」重复出现。每个步骤的标识必须不同。",
            "en": "The workflow step key '{transition}' appears more than once. Every step needs its own key.",
        },
        "spec.transition_role_unknown": {
            "zh": "流程步骤「{transition}」中的角色「{role}」不存在。可用的角色：{known}。",
            "en": "The role '{role}' in workflow step '{transition}' does not exist. Roles: {known}.",
        },
        "spec.due_days_negative": {
            "zh": "流程步骤「{transition}」的期限天数 {due_days} 是负数。请填写 0 或正整数，或删除 due_days。",
            "en": "The time limit of workflow step '{transition}' is negative ({due_days} days). Use 0 or a positive number of days, or delete due_days.",
        },
        "spec.keep_due_with_due_days": {
            "zh": "流程步骤「{transition}」同时设置了「保留原办理期限」（keep_due）和期限天数 {due_days}，两者互相矛盾。保留原期限请删除 due_days；要重新计算期限请删除 keep_due。",
            "en": "Workflow step '{transition}' has both keep_due (keep the running time limit) and a time limit of {due_days} days, which contradict each other. To keep the running limit delete due_days; to start a new limit delete keep_due.",
        },
        "spec.pause_with_due_days": {
            "zh": "流程步骤「{transition}」会暂停计时（pause），同时设置了期限天数 {due_days}：暂停期间原期限冻结，这个天数不会生效。请删除 due_days；若补充材料等也有期限，请在恢复计时的那一步之后另设步骤。",
            "en": "Workflow step '{transition}' pauses the clock (pause) and also has a time limit of {due_days} days: while paused the running limit is frozen, so those days would never apply. Delete due_days; if the wait itself has a limit, add it on a later step.",
        },
        "spec.needs_field_unknown": {
            "zh": "流程步骤「{transition}」要求填写的字段「{ref}」不存在或已停用。请改成本表单中正在使用的字段。",
            "en": "Workflow step '{transition}' requires the field '{ref}', which does not exist or is retired. Use an active field of this form.",
        },
        "spec.access_role_unknown": {
            "zh": "权限「{action}」中的角色「{role}」不存在。可用的角色：{known}。",
            "en": "The role '{role}' in the '{action}' permission does not exist. Roles: {known}.",
        },
        "spec.parent_unknown": {
            "zh": "上级表单「{parent}」不存在。请先发布上级表单，或改成已有的表单：{known}。",
            "en": "The parent form '{parent}' does not exist. Publish it first, or use an existing form: {known}.",
        },
        "spec.list_column_unknown": {
            "zh": "列表显示列（list_columns）中的「{ref}」不是本表单的字段。请改成已有的字段标识。",
            "en": "The list column '{ref}' (list_columns) is not a field of this form. Use an existing field key.",
        },
        "spec.summary_unknown": {
            "zh": "统计维度（summary）中的「{ref}」不是本表单的字段。请改成已有的字段标识。",
            "en": "The summary dimension '{ref}' is not a field of this form. Use an existing field key.",
        },
        "spec.date_field_unknown": {
            "zh": "日期字段（date_field）「{ref}」不是本表单的日期字段。请改成一个 date 或 datetime 类型的字段，或删除这一行（将使用登记时间）。",
            "en": "The date field '{ref}' (date_field) is not a date field of this form. Use a field of type date or datetime, or delete the line (the entry time is used).",
        },
        "spec.title_field_unknown": {
            "zh": "标题字段（title_field）「{ref}」不是本表单的字段。请改成已有的字段标识。",
            "en": "The title field '{ref}' (title_field) is not a field of this form. Use an existing field key.",
        },
        "spec.steps_invalid": {
            "zh": "计数器的按钮步长（steps）应当是正整数列表，例如 [1, 5, 10]；现在是「{steps}」。",
            "en": "A counter's button steps must be a list of positive whole numbers such as [1, 5, 10]; got '{steps}'.",
        },
        "spec.reference_target_missing": {
            "zh": "引用字段需要指明从哪里选：填写 reference_form（另一个表单的标识）或 choice_list（参考名单的名称）。",
            "en": "A reference field must say what is picked: set reference_form (another form's identifier) or choice_list (a reference list's name).",
        },
        "spec.reference_form_unknown": {
            "zh": "引用的表单「{ref}」不存在。请先发布该表单，或改成已有的表单：{known}。",
            "en": "The referenced form '{ref}' does not exist. Publish it first, or use an existing form: {known}.",
        },
        "spec.sex_field_invalid": {
            "zh": "身份证字段的性别字段（sex_field）「{ref}」必须是本表单中的一个单选字段（select）。",
            "en": "The sex field '{ref}' (sex_field) of an ID-number field must be a single-choice (select) field of this form.",
        },
        "spec.doc_type_field_invalid": {
            "zh": "身份证字段的证件类型字段（doc_type_field）「{ref}」必须是本表单中的一个单选字段（select）。",
            "en": "The document-type field '{ref}' (doc_type_field) of an ID-number field must be a single-choice (select) field of this form.",
        },
    }
)

# What a value should have been, per pydantic error kind (our words, both languages).
_EXPECT: dict[str, tuple[str, str]] = {
    "bool": ("是或否（true / false）", "yes or no (true / false)"),
    "int": ("整数", "a whole number"),
    "float": ("数字", "a number"),
    "str": ("文字", "text"),
    "list": ("一个列表（每项一行，以「- 」开头）", "a list (one item per line, starting with '- ')"),
    "dict": ("一组「名称: 值」的设置", "a set of 'name: value' settings"),
    "missing": ("内容（这一项必须填写）", "present (this setting is required)"),
    "other": ("另一种格式的值（请参考模板）", "a value of another kind (see the templates)"),
}


def _expect_kind(err_type: str) -> str:
    if err_type == "missing":
        return "missing"
    for prefix, kind in (
        ("bool", "bool"),
        ("int", "int"),
        ("float", "float"),
        ("decimal", "float"),
        ("string", "str"),
        ("str", "str"),
        ("list", "list"),
        ("tuple", "list"),
        ("iterable", "list"),
        ("set", "list"),
        ("dict", "dict"),
        ("model", "dict"),
        ("mapping", "dict"),
    ):
        if err_type.startswith(prefix):
            return kind
    return "other"


def _fmt_path(path: Iterable[Any]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part + 1}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _where(path: str) -> dict[str, str]:
    if not path:
        return {"where": "", "where_zh": "表单", "where_en": "The form"}
    return {"where": path, "where_zh": f"「{path}」中", "where_en": f"'{path}'"}


def _hint(word: str, allowed: Iterable[str]) -> tuple[str, str]:
    close = difflib.get_close_matches(word, list(allowed), n=1, cutoff=0.6)
    if not close:
        return "", ""
    return f"（是不是想写「{close[0]}」？）", f" (did you mean '{close[0]}'?)"


# --------------------------------------------------------------------------------------------
# Loading sources
# --------------------------------------------------------------------------------------------
Lines = dict[tuple[Any, ...], int]


def _node_lines(root: yaml.Node | None) -> tuple[Lines, list[tuple[str, int, int, tuple[Any, ...]]]]:
    """Map each data path (e.g. ``("fields", 2, "min")``) to the 1-based line of its key or item;
    also collect duplicated mapping keys as (key, first_line, line, path)."""
    lines: Lines = {}
    dups: list[tuple[str, int, int, tuple[Any, ...]]] = []
    if root is None:
        return lines, dups
    lines[()] = root.start_mark.line + 1
    stack: list[tuple[yaml.Node, tuple[Any, ...]]] = [(root, ())]
    seen_nodes: set[int] = set()
    while stack:
        node, path = stack.pop()
        if id(node) in seen_nodes:  # aliases can repeat nodes
            continue
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first: dict[str, int] = {}
            for key_node, value_node in node.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
                if key is None:
                    continue
                line = key_node.start_mark.line + 1
                if key in first:
                    dups.append((key, first[key], line, path))
                    continue
                first[key] = line
                lines[path + (key,)] = line
                stack.append((value_node, path + (key,)))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                lines[path + (i,)] = item.start_mark.line + 1
                stack.append((item, path + (i,)))
    return lines, dups


def _alias_loop(root: yaml.Node | None) -> yaml.Node | None:
    """A collection node that contains itself through an alias (``&a [*a]``), if any."""
    done: set[int] = set()
    on_path: set[int] = set()

    def visit(node: yaml.Node) -> yaml.Node | None:
        if id(node) in on_path:
            return node
        if id(node) in done or isinstance(node, yaml.ScalarNode):
            return None
        on_path.add(id(node))
        children = (
            [v for pair in node.value for v in pair] if isinstance(node, yaml.MappingNode) else list(node.value)
        )
        for child in children:
            found = visit(child)
            if found is not None:
                return found
        on_path.discard(id(node))
        done.add(id(node))
        return None

    return visit(root) if root is not None else None


def _syntax_problem(exc: Exception, fmt: str) -> Problem:
    if isinstance(exc, json.JSONDecodeError):
        line, column, detail = exc.lineno, exc.colno, exc.msg
    else:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 1 if mark else 1
        column = mark.column + 1 if mark else 1
        detail = getattr(exc, "problem", None) or type(exc).__name__
    return Problem("spec.syntax", {"line": line, "column": column, "detail": detail, "fmt": fmt}, row=line)


def _looks_like_json(text: str) -> bool:
    return text.lstrip().startswith(("{", "["))


def load_source(
    source: Mapping[str, Any] | str | Path, fmt: str | None = None
) -> tuple[Any, Lines | None, list[Problem]]:
    """Read a spec source into plain data. Returns (data, line map or None, problems)."""
    if isinstance(source, Mapping):
        return dict(source), None, []
    if isinstance(source, Path):
        suffix = source.suffix.lower().lstrip(".")
        fmt = fmt or {"yml": "yaml", "yaml": "yaml", "json": "json"}.get(suffix)
        if fmt is None:
            return None, None, [Problem("spec.format_unknown", {"fmt": source.suffix or source.name})]
        try:
            text = source.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError):
            return None, None, [Problem("spec.file_unreadable", {"path": str(source)})]
    elif isinstance(source, str):
        text = source.lstrip("\ufeff")
    else:
        return source, None, []
    if fmt not in (None, "yaml", "yml", "json"):
        return None, None, [Problem("spec.format_unknown", {"fmt": fmt})]
    if fmt == "json" or (fmt is None and _looks_like_json(text)):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            if fmt == "json":
                return None, None, [_syntax_problem(exc, "json")]
            # Not JSON after all: a YAML flow mapping such as ``{slug: x}``; read it as YAML.
        else:
            try:  # JSON is YAML: use the YAML composer for line numbers (best effort)
                lines, _ = _node_lines(yaml.compose(text, Loader=_Loader))
            except yaml.YAMLError:
                lines = {}
            return data, lines, []
    try:
        node = yaml.compose(text, Loader=_Loader)
        # lines first: constructing flattens merge keys (``<<: *anchor``) into the nodes
        lines, dups = _node_lines(node)
        loop = _alias_loop(node)
        if loop is not None:
            return None, None, [Problem("spec.syntax", {"line": loop.start_mark.line + 1,
                                                        "column": loop.start_mark.column + 1,
                                                        "detail": "an alias (*name) refers to its own anchor",
                                                        "fmt": "yaml"}, row=loop.start_mark.line + 1)]
        data = _Loader("").construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        return None, None, [_syntax_problem(exc, "yaml")]
    problems = [
        Problem("spec.duplicate_key", {"key": key, "first_line": first, "line": line, "path": _fmt_path(path)},
                row=line)
        for key, first, line, path in dups
    ]
    return data, lines, problems


# --------------------------------------------------------------------------------------------
# The checker
# --------------------------------------------------------------------------------------------
def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _describe_got(value: Any) -> str:
    if value is None:
        return "空内容 / nothing"
    if isinstance(value, list):
        return "列表 / a list"
    if isinstance(value, str):
        return "一段文字 / plain text"
    return type(value).__name__


class _Checker:
    def __init__(
        self,
        data: Any,
        lines: Lines | None,
        known_lists: set[str] | None,
        known_forms: set[str] | None,
        problems: list[Problem] | None = None,
    ) -> None:
        self.data = data
        self.lines = lines
        self.known_lists = known_lists
        self.known_forms = known_forms
        self.problems: list[Problem] = list(problems or [])
        self.slug: str | None = None
        # keys of every field that has a string key (valid or not), for reference checks
        self.all_keys: set[str] = set()
        self.fields: list[tuple[int, FieldSpec]] = []  # (index in source, model)
        self.sections: list[SectionSpec] | None = None
        self.dropped: dict[str, set[str]] = {}  # field key -> settings rejected by the schema check

    # -- helpers ---------------------------------------------------------------------------
    def line(self, path: tuple[Any, ...]) -> int | None:
        if self.lines is None:
            return None
        p = tuple(path)
        while p and p not in self.lines:
            p = p[:-1]
        return self.lines.get(p)

    def add(self, code: str, at: tuple[Any, ...] = (), field: str | None = None, **params: Any) -> None:
        """Record a problem; `at` is the data path (for the source line), params fill the message."""
        self.problems.append(Problem(code, params, form=self.slug, field=field, row=self.line(at)))

    def model(
        self, cls: type[BaseModel], raw: Any, path: tuple[Any, ...], field: str | None = None
    ) -> BaseModel | None:
        """Validate one part with pydantic; translate any rejection into coded problems."""
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            self.translate(exc.errors(), cls, path, field)
            return None

    def translate(
        self, errors: list[Any], cls: type[BaseModel], path: tuple[Any, ...], field: str | None
    ) -> None:
        for err in errors:
            loc = tuple(err.get("loc", ()))
            full = path + loc
            # For a field, name paths relative to it (the problem already names the field).
            shown = loc if field is not None else full
            if err["type"] == "extra_forbidden":
                key = str(loc[-1]) if loc else "?"
                owner = _owner_model(cls, loc[:-1])
                allowed = sorted((i.alias or n) for n, i in owner.model_fields.items()) if owner else []
                hz, he = _hint(key, allowed)
                self.add("spec.unknown_key", full, field, key=key, **_where(_fmt_path(shown[:-1])),
                         allowed=", ".join(allowed), hint_zh=hz, hint_en=he)
                continue
            kind = _expect_kind(err["type"])
            zh, en = _EXPECT[kind]
            if err["type"] == "literal_error":
                options = (err.get("ctx") or {}).get("expected", "")
                zh, en = f"以下之一：{options}", f"one of {options}"
            self.add("spec.schema", full, field, path=_fmt_path(shown) or "?", expected_zh=zh, expected_en=en)

    # -- run -------------------------------------------------------------------------------
    def run(self) -> tuple[FormSpec | None, list[Problem]]:
        data = self.data
        if not isinstance(data, dict):
            self.add("spec.not_mapping", got=_describe_got(data))
            return None, self.problems
        raw_slug = data.get("slug")
        self.slug = raw_slug if isinstance(raw_slug, str) and raw_slug else None
        for p in self.problems:  # problems found while loading (duplicate keys) name the form and field too
            p.form = p.form or self.slug
            m = re.match(r"fields\[(\d+)\]", str(p.params.get("path", "")))
            fields = data.get("fields")
            if m and p.field is None and isinstance(fields, list) and int(m.group(1)) <= len(fields):
                item = fields[int(m.group(1)) - 1]
                key = item.get("key") if isinstance(item, dict) else None
                p.field = key if isinstance(key, str) else None
        norm: dict[str, Any] = {}
        self.check_top(data, norm)
        self.check_sections(data.get("sections"), norm)
        self.check_fields(data.get("fields"), norm)
        self.check_fields_semantics()
        self.check_workflow(data.get("workflow"), norm)
        self.check_access(data.get("access"), norm)
        self.check_form_refs(data)
        if self.problems:
            # in source order when lines are known (stable: same-line problems keep check order)
            self.problems.sort(key=lambda p: p.row if p.row is not None else 0)
            return None, self.problems
        try:
            spec = FormSpec.model_validate(norm)
        except ValidationError as exc:  # safety net: must not happen after the checks above
            self.translate(exc.errors(), FormSpec, (), None)
            return None, self.problems
        return spec, []

    # -- top level -------------------------------------------------------------------------
    def check_top(self, data: dict[str, Any], norm: dict[str, Any]) -> None:
        raw_slug = data.get("slug")
        if raw_slug is None or raw_slug == "":
            self.add("spec.slug_missing", ("slug",))
        elif not isinstance(raw_slug, str) or not KEY_RE.match(raw_slug):
            self.add("spec.slug_invalid", ("slug",), slug=str(raw_slug))
        for key in data:
            if key not in _TOP_KEYS:
                hz, he = _hint(str(key), _TOP_KEYS)
                self.add("spec.unknown_key", (key,), key=str(key), **_where(""), allowed=", ".join(_TOP_KEYS),
                         hint_zh=hz, hint_en=he)
        if "zh" not in as_ltext(data.get("title")):
            self.add("spec.title_missing", ("title",))
        # Plain settings: validate them together (without the parts checked one by one below).
        parts = ("sections", "fields", "workflow", "access")
        plain = {k: v for k, v in data.items() if k in _TOP_KEYS and k not in parts}
        plain.setdefault("slug", "x")
        try:
            FormSpec.model_validate(plain)
        except ValidationError as exc:
            # the slug is reported above in admin words
            self.translate([e for e in exc.errors() if e.get("loc", ("",))[0] != "slug"], FormSpec, (), None)
        norm.update(plain)
        if not isinstance(raw_slug, str):
            norm.pop("slug", None)
        else:
            norm["slug"] = raw_slug

    # -- sections --------------------------------------------------------------------------
    def check_sections(self, raw: Any, norm: dict[str, Any]) -> None:
        if raw is None:
            return
        if not isinstance(raw, list):
            self.add("spec.schema", ("sections",), path="sections", expected_zh=_EXPECT["list"][0],
                     expected_en=_EXPECT["list"][1])
            return
        out: list[SectionSpec] = []
        seen: set[str] = set()
        for i, item in enumerate(raw):
            sec = self.model(SectionSpec, item, ("sections", i))
            if sec is None:
                continue
            assert isinstance(sec, SectionSpec)
            if sec.key in seen:
                self.add("spec.section_duplicate", ("sections", i), key=sec.key)
            seen.add(sec.key)
            out.append(sec)
        self.sections = out
        norm["sections"] = raw

    # -- fields ----------------------------------------------------------------------------
    def check_fields(self, raw: Any, norm: dict[str, Any]) -> None:
        if raw is None:
            norm["fields"] = []
            return
        if not isinstance(raw, list):
            self.add("spec.schema", ("fields",), path="fields", expected_zh=_EXPECT["list"][0],
                     expected_en=_EXPECT["list"][1])
            return
        first_index: dict[str, int] = {}
        out: list[dict[str, Any]] = []
        for i, item in enumerate(raw):
            path = ("fields", i)
            if not isinstance(item, dict):
                self.add("spec.field_not_mapping", path, index=i + 1)
                continue
            key = item.get("key")
            fkey = key if isinstance(key, str) and key else None
            if fkey is None:
                self.add("spec.field_key_missing", path + ("key",), index=i + 1)
            else:
                self.all_keys.add(fkey)
                if not KEY_RE.match(fkey):
                    self.add("spec.field_key_invalid", path + ("key",), fkey, key=fkey)
                if fkey in first_index:
                    self.add("spec.field_key_duplicate", path + ("key",), fkey, key=fkey,
                             first_index=first_index[fkey] + 1)
                else:
                    first_index[fkey] = i
            fnorm = self.check_field_raw(item, path, fkey)
            out.append(fnorm)
            fspec = self.field_model(fnorm, path, fkey)
            if fspec is not None and fkey is not None:
                self.fields.append((i, fspec))
        norm["fields"] = out

    def field_model(self, fnorm: dict[str, Any], path: tuple[Any, ...], key: str | None) -> FieldSpec | None:
        """The FieldSpec of one field. When some settings are rejected, they are reported and the
        field is rebuilt without them, so that the checks of its other settings still run."""
        try:
            return FieldSpec.model_validate(fnorm)
        except ValidationError as exc:
            errors = exc.errors()
        self.translate(errors, FieldSpec, path, key)
        bad = {e["loc"][0] for e in errors if e.get("loc")}
        if key is None or bad & {"key", "type"}:
            return None
        self.dropped[key] = {str(b) for b in bad}
        try:
            return FieldSpec.model_validate({k: v for k, v in fnorm.items() if k not in bad})
        except ValidationError:
            return None

    def check_field_raw(self, item: dict[str, Any], path: tuple[Any, ...], key: str | None) -> dict[str, Any]:
        """Checks on the plain data of one field; returns the normalised dict to validate."""
        known = field_type_names()
        ftype = item.get("type")
        type_ok = isinstance(ftype, str) and ftype in known
        if ftype is None or ftype == "":
            self.add("spec.field_type_missing", path, key, known=", ".join(known))
        elif not type_ok:
            self.add("spec.field_type_unknown", path + ("type",), key, type=str(ftype), known=", ".join(known))
        fnorm: dict[str, Any] = {}
        allowed = _allowed_attrs(ftype) if type_ok else None
        defaults = _FIELD_DEFAULTS
        for attr, value in item.items():
            if attr not in _FIELD_ATTRS:
                hz, he = _hint(str(attr), _FIELD_ATTRS)
                self.add("spec.field_unknown_attr", path + (attr,), key, attr=str(attr), hint_zh=hz, hint_en=he)
                continue
            meaningless = allowed is not None and attr not in allowed
            if meaningless and value not in (None, defaults.get(attr)) and not (
                attr == "pattern_message" and not as_ltext(value)
            ):
                self.add("spec.attr_not_allowed", path + (attr,), key, attr=attr, type=ftype)
                continue
            fnorm[attr] = value
        if key is None:
            fnorm.setdefault("key", "")
        if not type_ok:
            fnorm["type"] = "" if ftype is None else str(ftype)  # reported above
        # show_if: checked here (structure) so that a bad op is named in admin words
        if fnorm.get("show_if") is not None and not self.check_condition(fnorm["show_if"], path + ("show_if",), key):
            fnorm.pop("show_if")
        # shorthands: an option or checklist item given as plain text
        for attr, name in (("choices", "value"), ("items", "key")):
            values = fnorm.get(attr)
            if isinstance(values, list):
                fnorm[attr] = [_short_item(v, name) for v in values]
        if ftype == "counter":
            steps = fnorm.get("steps")
            if steps is None:
                fnorm["steps"] = [1]
            elif not (isinstance(steps, list) and steps and all(_is_int(s) and s > 0 for s in steps)):
                self.add("spec.steps_invalid", path + ("steps",), key, steps=_short(steps))
                fnorm.pop("steps")
        return fnorm

    def check_condition(self, raw: Any, path: tuple[Any, ...], key: str | None) -> bool:
        if not isinstance(raw, dict):
            self.add("spec.show_if_malformed", path, key, reason_zh="条件应当是一组「名称: 值」的设置",
                     reason_en="a condition must be a set of 'name: value' settings")
            return False
        groups = [g for g in ("all", "any", "not", "not_") if g in raw]
        leaf = [k for k in ("field", "op", "value") if k in raw]
        extra = [k for k in raw if k not in ("field", "op", "value", "all", "any", "not", "not_")]
        if extra:
            self.add("spec.show_if_malformed", path + (extra[0],), key,
                     reason_zh=f"没有「{extra[0]}」这个写法", reason_en=f"'{extra[0]}' is not part of a condition")
            return False
        if (groups and leaf) or len(groups) > 1:
            self.add("spec.show_if_malformed", path, key, reason_zh="一个条件只能是单个比较，或 all / any / not 之一",
                     reason_en="a condition is either one comparison or exactly one of all / any / not")
            return False
        if groups:
            g = groups[0]
            sub = raw[g]
            if g in ("all", "any"):
                if not isinstance(sub, list) or not sub:
                    self.add("spec.show_if_malformed", path + (g,), key,
                             reason_zh=f"{g} 下面应当列出至少一个条件", reason_en=f"{g} must list at least one condition")
                    return False
                return all([self.check_condition(s, path + (g, i), key) for i, s in enumerate(sub)])
            return self.check_condition(sub, path + (g,), key)
        ok = True
        ref = raw.get("field")
        if not isinstance(ref, str) or not ref:
            self.add("spec.show_if_malformed", path, key, reason_zh="缺少要比较的字段（field）",
                     reason_en="the field to compare (field) is missing")
            ok = False
        op = raw.get("op")
        if op not in _OPS:
            self.add("spec.show_if_bad_op", path + ("op",), key, op="" if op is None else str(op),
                     allowed=", ".join(_OPS))
            return False
        if op not in _NO_VALUE_OPS:
            value = raw.get("value")
            if value is None or (op in _LIST_OPS and not isinstance(value, list)):
                self.add("spec.show_if_missing_value", path + ("value" if "value" in raw else "op",), key, op=op,
                         list_zh="（一个列表）" if op in _LIST_OPS else "",
                         list_en=" (a list)" if op in _LIST_OPS else "")
                ok = False
        return ok

    def check_fields_semantics(self) -> None:
        by_key = {f.key: f for _, f in self.fields}
        known_types = field_type_names()
        for i, f in self.fields:
            path = ("fields", i)
            if f.type not in known_types:
                continue
            dropped = self.dropped.get(f.key, set())
            if f.type in _CHOICE_TYPES and not dropped & {"choices", "choice_list"}:
                if not f.choices and not f.choice_list:
                    self.add("spec.choices_missing", path + ("choices",), f.key)
                elif f.choices and f.choice_list:
                    self.add("spec.choices_both", path + ("choice_list",), f.key)
            if f.choices and len(f.choices) > MAX_CHOICES:
                self.add("spec.too_many_choices", path + ("choices",), f.key, n=len(f.choices), max=MAX_CHOICES)
            elif f.choices:
                seen: set[str] = set()
                for j, c in enumerate(f.choices):
                    if c.value in seen:
                        self.add("spec.choice_duplicate", path + ("choices", j), f.key, value=c.value)
                    seen.add(c.value)
            if f.choice_list and self.known_lists is not None and f.choice_list not in self.known_lists:
                self.add("spec.choice_list_unknown", path + ("choice_list",), f.key, name=f.choice_list,
                         known=", ".join(sorted(self.known_lists)) or "-")
            if f.type == "checklist" and "items" not in dropped:
                if not f.items:
                    self.add("spec.items_missing", path + ("items",), f.key)
                else:
                    seen = set()
                    for j, it in enumerate(f.items):
                        if it.key in seen:
                            self.add("spec.item_duplicate", path + ("items", j), f.key, key=it.key)
                        seen.add(it.key)
            if f.min is not None and f.max is not None and f.min > f.max:
                self.add("spec.min_gt_max", path + ("min",), f.key, min=_num(f.min), max=_num(f.max))
            lo, hi = f.min_length, f.max_length
            if (lo is not None and lo < 0) or (hi is not None and hi < 0) or (
                lo is not None and hi is not None and lo > hi
            ):
                self.add("spec.length_min_gt_max", path + ("min_length" if lo is not None else "max_length",),
                         f.key, min_length="-" if lo is None else lo, max_length="-" if hi is None else hi)
            pattern_ok = True
            if f.pattern is not None:
                try:
                    re.compile(f.pattern)
                except re.error as exc:
                    pattern_ok = False
                    self.add("spec.pattern_invalid", path + ("pattern",), f.key, pattern=f.pattern, error=str(exc))
            if f.type == "reference":
                if not f.reference_form and not f.choice_list and not dropped & {"reference_form", "choice_list"}:
                    self.add("spec.reference_target_missing", path, f.key)
                if f.reference_form and self.known_forms is not None and f.reference_form not in self.known_forms:
                    self.add("spec.reference_form_unknown", path + ("reference_form",), f.key, ref=f.reference_form,
                             known=", ".join(sorted(self.known_forms)) or "-")
            for attr, code in (("sex_field", "spec.sex_field_invalid"), ("doc_type_field", "spec.doc_type_field_invalid")):
                ref = getattr(f, attr)
                if ref is not None:
                    target = by_key.get(ref)
                    if target is None or target.type != "select" or ref == f.key:
                        self.add(code, path + (attr,), f.key, ref=ref)
            if (f.default is not None and pattern_ok and not dropped and _stores_value(f.type)
                    and not (f.type in _CHOICE_TYPES and f.choice_list)
                    and not _default_ok(f)):
                self.add("spec.default_invalid", path + ("default",), f.key, default=_short(f.default))
            if (self.sections is not None and self.sections and f.section is not None and not f.retired
                    and f.section not in {s.key for s in self.sections}):
                self.add("spec.section_unknown", path + ("section",), f.key, section=f.section,
                         known=", ".join(s.key for s in self.sections))
        self.check_show_if(by_key)

    def check_show_if(self, by_key: dict[str, FieldSpec]) -> None:
        index = {f.key: i for i, f in self.fields}
        graph: dict[str, list[str]] = {}
        for i, f in self.fields:
            if f.show_if is None:
                continue
            path = ("fields", i, "show_if")
            refs = sorted(f.show_if.referenced_fields())
            edges: list[str] = []
            for ref in refs:
                if ref == f.key:
                    self.add("spec.show_if_self", path, f.key, ref=ref)
                elif ref not in by_key:
                    if ref not in self.all_keys:  # a field that failed its own checks is reported there
                        self.add("spec.show_if_unknown_field", path, f.key, ref=ref)
                elif by_key[ref].retired and not f.retired:
                    self.add("spec.show_if_retired", path, f.key, ref=ref)
                else:
                    edges.append(ref)
            graph[f.key] = edges
        for cycle in _cycles(graph, order=[f.key for _, f in self.fields]):
            first = cycle[0]
            self.add("spec.show_if_cycle", ("fields", index[first], "show_if"), first,
                     cycle=" → ".join(cycle + [first]))

    # -- workflow --------------------------------------------------------------------------
    def check_workflow(self, raw: Any, norm: dict[str, Any]) -> None:
        if raw is None:
            return
        base = ("workflow",)
        if not isinstance(raw, dict):
            self.add("spec.schema", base, path="workflow", expected_zh=_EXPECT["dict"][0],
                     expected_en=_EXPECT["dict"][1])
            return
        wnorm: dict[str, Any] = {}
        for k, v in raw.items():
            if k not in ("initial", "states", "transitions"):
                hz, he = _hint(str(k), ("initial", "states", "transitions"))
                self.add("spec.unknown_key", base + (k,), key=str(k), **_where("workflow"),
                         allowed="initial, states, transitions", hint_zh=hz, hint_en=he)
            else:
                wnorm[k] = v
        states: list[StateSpec] = []
        raw_states = wnorm.get("states")
        if not isinstance(raw_states, list) or not raw_states:
            self.add("spec.schema", base + ("states",), path="workflow.states", expected_zh=_EXPECT["list"][0],
                     expected_en=_EXPECT["list"][1])
            raw_states = []
        seen: set[str] = set()
        raw_states = [_short_item(s, "key") if isinstance(s, str) else s for s in raw_states]
        wnorm["states"] = raw_states
        for i, item in enumerate(raw_states):
            st = self.model(StateSpec, item, base + ("states", i))
            if st is None:
                continue
            assert isinstance(st, StateSpec)
            if st.key in seen:
                self.add("spec.state_duplicate", base + ("states", i), state=st.key)
            seen.add(st.key)
            states.append(st)
        state_keys = list(dict.fromkeys(s.key for s in states))
        known = ", ".join(state_keys) or "-"
        initial = wnorm.get("initial")
        if (not isinstance(initial, str) or initial not in state_keys) and (raw_states or initial is not None):
            self.add("spec.workflow_initial_unknown", base + ("initial",), state=_short(initial), known=known)
        raw_trans = wnorm.get("transitions", [])
        if raw_trans is None:
            raw_trans = []
        if not isinstance(raw_trans, list):
            self.add("spec.schema", base + ("transitions",), path="workflow.transitions",
                     expected_zh=_EXPECT["list"][0], expected_en=_EXPECT["list"][1])
            raw_trans = []
        tnorm: list[Any] = []
        seen = set()
        active_keys = {f.key for _, f in self.fields if not f.retired}
        failed_keys = self.all_keys - {f.key for _, f in self.fields}  # reported with the field itself
        for i, item in enumerate(raw_trans):
            tpath = base + ("transitions", i)
            if isinstance(item, dict) and isinstance(item.get("from"), str):
                item = {**item, "from": [item["from"]]}  # shorthand: from: one_state
            tnorm.append(item)
            tr = self.model(TransitionSpec, item, tpath)
            if tr is None:
                continue
            assert isinstance(tr, TransitionSpec)
            if tr.key in seen:
                self.add("spec.transition_duplicate", tpath, transition=tr.key)
            seen.add(tr.key)
            for st in tr.from_:
                if st not in state_keys:
                    self.add("spec.transition_state_unknown", tpath + ("from",), transition=tr.key, state=st,
                             known=known)
            if tr.to not in state_keys:
                self.add("spec.transition_state_unknown", tpath + ("to",), transition=tr.key, state=tr.to, known=known)
            for role in tr.roles:
                if role not in ROLES:
                    self.add("spec.transition_role_unknown", tpath + ("roles",), transition=tr.key, role=role,
                             known=", ".join(ROLES))
            if tr.due_days is not None and tr.due_days < 0:
                self.add("spec.due_days_negative", tpath + ("due_days",), transition=tr.key, due_days=tr.due_days)
            if tr.keep_due and tr.due_days is not None:
                self.add("spec.keep_due_with_due_days", tpath + ("keep_due",), transition=tr.key,
                         due_days=tr.due_days)
            if tr.pause and tr.due_days is not None:
                self.add("spec.pause_with_due_days", tpath + ("pause",), transition=tr.key, due_days=tr.due_days)
            if tr.needs_field is not None and tr.needs_field not in active_keys | failed_keys:
                self.add("spec.needs_field_unknown", tpath + ("needs_field",), transition=tr.key, ref=tr.needs_field)
        if "transitions" in wnorm:
            wnorm["transitions"] = tnorm
        norm["workflow"] = wnorm

    # -- access ----------------------------------------------------------------------------
    def check_access(self, raw: Any, norm: dict[str, Any]) -> None:
        if raw is None:
            return
        if not isinstance(raw, dict):
            self.add("spec.schema", ("access",), path="access", expected_zh=_EXPECT["dict"][0],
                     expected_en=_EXPECT["dict"][1])
            return
        for action, roles in raw.items():
            if action not in _ACCESS_KEYS:
                continue  # reported by the model check below as unknown_key
            if isinstance(roles, list):
                for j, role in enumerate(roles):
                    if role not in ROLES:
                        self.add("spec.access_role_unknown", ("access", action, j), action=action, role=_short(role),
                                 known=", ".join(ROLES))
        self.model(AccessSpec, raw, ("access",))
        norm["access"] = raw

    # -- form-level references -------------------------------------------------------------
    def check_form_refs(self, data: dict[str, Any]) -> None:
        by_key = {f.key: f for _, f in self.fields}
        known = by_key.keys() | self.all_keys

        def listed(name: str) -> list[tuple[int, Any]]:
            value = data.get(name)
            return list(enumerate(value)) if isinstance(value, list) else []

        for j, ref in listed("list_columns"):
            if isinstance(ref, str) and ref not in known:
                self.add("spec.list_column_unknown", ("list_columns", j), ref=ref)
        for j, ref in listed("summary"):
            if isinstance(ref, str) and ref not in known:
                self.add("spec.summary_unknown", ("summary", j), ref=ref)
        ref = data.get("date_field")
        if isinstance(ref, str) and (ref not in known or (ref in by_key and by_key[ref].type not in _DATE_TYPES)):
            self.add("spec.date_field_unknown", ("date_field",), ref=ref)
        ref = data.get("title_field")
        if isinstance(ref, str) and ref not in known:
            self.add("spec.title_field_unknown", ("title_field",), ref=ref)
        parent = data.get("parent")
        if isinstance(parent, str) and self.known_forms is not None and parent not in self.known_forms:
            self.add("spec.parent_unknown", ("parent",), parent=parent,
                     known=", ".join(sorted(self.known_forms)) or "-")


def _owner_model(cls: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model class at a location inside `cls` (for listing its allowed keys)."""
    current: Any = cls
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        info = next((i for n, i in current.model_fields.items() if part in (n, i.alias)), None)
        if info is None:
            return None
        current = _inner_model(info.annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _inner_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _short_item(value: Any, name: str) -> Any:
    """An option / checklist item written as plain text (or a number) means value = label = text."""
    if isinstance(value, str) or _is_number(value):
        text = str(value)
        return {name: text, "label": {"zh": text}}
    if isinstance(value, dict) and _is_number(value.get(name)):
        return {**value, name: str(value[name])}
    return value


def _short(value: Any, limit: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _cycles(graph: dict[str, list[str]], order: list[str]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan), members in spec order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, []):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                pos = {k: n for n, k in enumerate(order)}
                out.append(sorted(comp, key=lambda k: pos.get(k, 0)))

    for v in order:
        if v in graph and v not in index:
            visit(v)
    return sorted(out, key=lambda comp: order.index(comp[0]))


# --------------------------------------------------------------------------------------------
# Default values
# --------------------------------------------------------------------------------------------
def _default_ok(field: FieldSpec) -> bool:
    """A default must be a value that could be submitted as is (the type's own coerce decides)."""
    try:
        REGISTRY[field.type].coerce(field.default, field, None)
    except FieldProblem:
        return False
    return True


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------
def check_spec(
    data: Mapping[str, Any] | FormSpec | Any,
    *,
    known_lists: set[str] | None = None,
    known_forms: set[str] | None = None,
    lines: Lines | None = None,
) -> tuple[FormSpec | None, list[Problem]]:
    """Check plain spec data; return (FormSpec, []) or (None, every problem found).

    `lines` maps data paths to source lines (see `load_source`); a FormSpec is re-checked via its
    canonical dict. Never raises for bad input."""
    if isinstance(data, FormSpec):
        data = data.to_dict()
    return _Checker(data, lines, known_lists, known_forms).run()


def parse_spec(
    source: Mapping[str, Any] | str | Path,
    *,
    fmt: str | None = None,
    known_lists: set[str] | None = None,
    known_forms: set[str] | None = None,
) -> FormSpec:
    """Read and check a spec from a dict, YAML / JSON text, or a .yaml / .yml / .json file
    (an .xlsx XLSForm file is read by `engine.xlsform.import_xlsform`; its warnings are dropped).

    Raises `SpecError("spec.invalid", problems=[...], form=slug, count=n)` listing every problem."""
    if isinstance(source, Path) and (fmt or source.suffix.lower().lstrip(".")) == "xlsx":
        return _parse_xlsx(source, known_lists, known_forms)
    data, lines, load_problems = load_source(source, fmt)
    if load_problems and data is None:
        raise SpecError("spec.invalid", problems=load_problems, form="?", count=len(load_problems))
    checker = _Checker(data, lines, known_lists, known_forms, problems=load_problems)
    spec, problems = checker.run()
    if spec is None or problems:
        slug = checker.slug or "?"
        raise SpecError("spec.invalid", problems=problems, form=slug, count=len(problems))
    return spec


def _parse_xlsx(path: Path, known_lists: set[str] | None, known_forms: set[str] | None) -> FormSpec:
    try:
        from engine.xlsform import import_xlsform
    except ImportError:
        problems = [Problem("spec.format_unknown", {"fmt": path.suffix})]
        raise SpecError("spec.invalid", problems=problems, form="?", count=1) from None
    spec, problems, _warnings = import_xlsform(path)
    if spec is not None and not problems:
        spec, problems = check_spec(spec, known_lists=known_lists, known_forms=known_forms)
    if spec is None or problems:
        slug = next((p.form for p in problems if p.form), None) or path.stem
        raise SpecError("spec.invalid", problems=problems, form=slug, count=len(problems))
    return spec


def dump_spec(spec: FormSpec, fmt: str = "yaml") -> str:
    """The canonical text of a spec: readable YAML (unicode, keys in model order) or JSON."""
    data = spec.to_dict()
    if fmt == "json":
        return json.dumps(data, ensure_ascii=False, indent=2) + "\n"
    if fmt in ("yaml", "yml"):
        return yaml.dump(data, Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=4096, indent=2)
    raise ValueError(f"unknown spec format {fmt!r} (use 'yaml' or 'json')")


