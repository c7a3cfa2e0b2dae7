"""Eligibility screen of a legal-aid application (法律援助申请审查), per criterion with its legal ground.

`screen(data, threshold=...)` is pure: it reads an intake record's values and returns each criterion
as pass / fail / na with its reason (zh and en) and a proposal, 给予 (grant) or 不予 (refuse):

- **Mandatory notified defence** (Legal Aid Law art. 25(1)): a minor, blind/deaf/mute person, adult
  not fully able to understand own conduct, possible life or death sentence, death-penalty review,
  trial in absentia -> always grant, nothing else is examined. Other notified cases (art. 25(2),
  art. 28) are granted as well: a notified case is not screened for hardship. A suspect/defendant whom
  the ID number shows to be under 18 falls under art. 25(1)(i) even when the case came as an application.
- **Criminal application grounds** (art. 24): hardship -> the economic test applies; co-defendants
  already have counsel / procuratorate protest / major social impact -> the economic situation is not
  examined (Ministry of Justice et al. 2013 rules art. 2, Guangdong practice).
- **Scope** (art. 31): civil / administrative matters listed by the law pass; others are "na" (check
  local rules: Guangdong extends the list), never an automatic refusal.
- **Hardship not required** (art. 32) and **exempt from the check** (art. 42): the economic test is
  "na". Exemptions for minors and the elderly without fixed income are checked against the age that
  the resident ID number shows (`engine.validate.derive`); migrant workers must claim wages or
  work-injury compensation.
- **Economic test** (art. 34; Guangdong: household average monthly disposable income per member over
  the last 6 months below 50% of the prior-year urban per-capita monthly figure): passes when
  `monthly_income_total < threshold * household_size` (strictly below). No threshold configured for
  the office's city and the application year -> "na" with that reason.
- **High-value assets**: owning them fails the test.
- **Commitment route** (告知承诺): the commitment letter, the statement of economic situation and the
  verification authorisation must be recorded as received ("yes"), else it fails naming the missing.

Proposal: grant when notified / mandatory; otherwise refuse when any criterion fails, else grant.

Settings (admin, audited as "setting_update"): the threshold per (city, year) in Setting
"eligibility_threshold" (`{city: {year: {"threshold": "2150.00", "basis": ..., "by": ..., "at": ...}}}`;
year = the year the threshold applies to, i.e. computed from the figure of the year before), and the
office profile in Setting "intake_office" (city, supervising justice bureau, address, phone, days
allowed for missing materials). The office *name* is Setting "office_name" (read by engine.pdf).

Decisions: `record_decision` stores a `Decision` row (kind "eligibility") and audits
"eligibility_decision"; a decision against the proposal needs a written reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from engine import audit, stamps
from engine.access import Actor, form_allows
from engine.db import session_scope
from engine.errors import EngineError, NotFound, PermissionDenied
from engine.fields import LOCAL_TZ, is_empty
from engine.messages import register
from models.decisions import Decision
from models.spec import FieldSpec, FormSpec, LText, ltext
from models.tables import Form, Setting, Submission, utcnow

INTAKE = "intake"

register({
    "eligibility.reason_required": {
        "zh": "所作决定（{decision}）与系统建议（{proposal}）不一致，须写明理由。",
        "en": "The decision ({decision}) differs from the proposal ({proposal}): a written reason is required.",
    },
    "eligibility.bad_decision": {
        "zh": "决定只能是「给予」或「不予」。",
        "en": "The decision must be 'grant' or 'refuse'.",
    },
    "eligibility.not_intake": {
        "zh": "记录 #{id} 不是法律援助申请登记记录。",
        "en": "Record #{id} is not a legal-aid application.",
    },
    "eligibility.forbidden": {
        "zh": "您的角色不能对此申请作出审查决定。",
        "en": "Your role may not record a decision on this application.",
    },
    "eligibility.bad_threshold": {
        "zh": "经济困难标准必须是大于 0 的金额（元），现在是「{value}」。",
        "en": "The threshold must be an amount (CNY) above 0, not '{value}'.",
    },
    "eligibility.bad_year": {
        "zh": "年度必须是 2000 至 2100 之间的整数，现在是「{value}」。",
        "en": "The year must be a whole number from 2000 to 2100, not '{value}'.",
    },
    "eligibility.bad_city": {
        "zh": "请填写城市名称（不超过 32 个字）。",
        "en": "Enter the city's name (at most 32 characters).",
    },
    "eligibility.bad_office": {
        "zh": "「{field}」的值无效：{value}",
        "en": "The value of '{field}' is not valid: {value}",
    },
    "settings.forbidden": {
        "zh": "只有管理员可以修改此设置。",
        "en": "Only administrators may change this setting.",
    },
})

GRANT, REFUSE = "grant", "refuse"
PASS, FAIL, NA = "pass", "fail", "na"
PROPOSAL_LABELS: dict[str, LText] = {GRANT: {"zh": "给予", "en": "grant"}, REFUSE: {"zh": "不予", "en": "refuse"}}
OUTCOME_LABELS: dict[str, LText] = {
    PASS: {"zh": "符合", "en": "pass"},
    FAIL: {"zh": "不符合", "en": "fail"},
    NA: {"zh": "不适用", "en": "n/a"},
}


def _lt(zh: str, en: str) -> LText:
    return {"zh": zh, "en": en}


# --- the law's grounds, as data -------------------------------------------------------------------
ART25_MANDATORY: dict[str, LText] = {
    "minor": _lt("《法律援助法》第二十五条第一款第（一）项：未成年人",
                 "Legal Aid Law art. 25(1)(i): a minor"),
    "blind_deaf_mute": _lt("《法律援助法》第二十五条第一款第（二）项：视力、听力、言语残疾人",
                           "art. 25(1)(ii): blind, deaf or mute"),
    "mental_incapacity": _lt("《法律援助法》第二十五条第一款第（三）项：不能完全辨认自己行为的成年人",
                             "art. 25(1)(iii): adult not fully able to understand own conduct"),
    "life_or_death_sentence": _lt("《法律援助法》第二十五条第一款第（四）项：可能被判处无期徒刑、死刑的人",
                                  "art. 25(1)(iv): possible life or death sentence"),
    "death_penalty_review": _lt("《法律援助法》第二十五条第一款第（五）项：申请法律援助的死刑复核案件被告人",
                                "art. 25(1)(v): death-penalty review"),
    "trial_in_absentia": _lt("《法律援助法》第二十五条第一款第（六）项：缺席审判案件的被告人",
                             "art. 25(1)(vi): trial in absentia"),
}
NOTIFIED_OTHER: LText = _lt("《法律援助法》第二十五条第二款、第二十八条：人民法院等通知指派的其他情形",
                            "arts. 25(2) and 28: other cases notified by the court or other authority")
ART24_APPLIED: dict[str, tuple[LText, bool]] = {  # ground -> (text, does the economic test apply?)
    "hardship": (_lt("《法律援助法》第二十四条：因经济困难没有委托辩护人",
                     "art. 24: no counsel because of economic hardship"), True),
    "co_defendants_have_counsel": (_lt("《法律援助法》第二十四条（其他原因）：共同犯罪中其他人已委托辩护人，不审查经济状况",
                                       "art. 24 (other reasons): co-defendants have counsel; economic situation not examined"),
                                   False),
    "procuratorate_protest": (_lt("《法律援助法》第二十四条（其他原因）：人民检察院抗诉，不审查经济状况",
                                  "art. 24 (other reasons): procuratorate protest; economic situation not examined"), False),
    "major_social_impact": (_lt("《法律援助法》第二十四条（其他原因）：案件具有重大社会影响，不审查经济状况",
                                "art. 24 (other reasons): major social impact; economic situation not examined"), False),
    "other_applied": (_lt("《法律援助法》第二十四条：其他原因没有委托辩护人（须审查经济困难状况）",
                          "art. 24: other reasons (the economic situation is examined)"), True),
}
ART29_POSITIONS = frozenset({"victim", "private_prosecutor", "close_relative"})
ART31_SCOPE: dict[str, LText] = {  # case cause -> the item of art. 31
    "state_compensation": _lt("第三十一条第（一）项：依法请求国家赔偿", "art. 31(i): state compensation"),
    "social_insurance": _lt("第三十一条第（二）项：请求给予社会保险待遇或者社会救助",
                            "art. 31(ii): social insurance or social assistance"),
    "pension_benefits": _lt("第三十一条第（三）项：请求发给抚恤金", "art. 31(iii): survivor / pension benefits"),
    "support_maintenance": _lt("第三十一条第（四）项：请求给付赡养费、抚养费、扶养费",
                               "art. 31(iv): support and maintenance"),
    "labour_relation": _lt("第三十一条第（五）项：请求确认劳动关系或者支付劳动报酬",
                           "art. 31(v): employment relationship or wages"),
    "labour_remuneration": _lt("第三十一条第（五）项：请求确认劳动关系或者支付劳动报酬",
                               "art. 31(v): employment relationship or wages"),
    "work_injury": _lt("第三十一条第（七）项：请求工伤事故人身损害赔偿", "art. 31(vii): work-injury compensation"),
    "traffic_accident": _lt("第三十一条第（七）项：请求交通事故人身损害赔偿",
                            "art. 31(vii): traffic-accident compensation"),
    "medical_damage": _lt("第三十一条第（七）项：请求医疗事故人身损害赔偿", "art. 31(vii): medical-accident compensation"),
    "environmental_damage": _lt("第三十一条第（八）项：请求环境污染、生态破坏损害赔偿",
                                "art. 31(viii): environmental damage"),
}
ART32_GROUNDS: dict[str, LText] = {
    "heroes_reputation": _lt("《法律援助法》第三十二条第（一）项：英雄烈士近亲属维护英雄烈士的人格权益",
                             "art. 32(i): close relative protecting a hero's or martyr's reputation"),
    "good_samaritan": _lt("《法律援助法》第三十二条第（二）项：因见义勇为行为主张相关民事权益",
                          "art. 32(ii): claim arising from a good-Samaritan act"),
    "state_compensation_acquittal": _lt("《法律援助法》第三十二条第（三）项：再审改判无罪请求国家赔偿",
                                        "art. 32(iii): state compensation after acquittal on retrial"),
    "abuse_victim": _lt("《法律援助法》第三十二条第（四）项：遭受虐待、遗弃或者家庭暴力的受害人主张相关权益",
                        "art. 32(iv): victim of abuse, abandonment or domestic violence"),
    "other_rule": _lt("《法律援助法》第三十二条第（五）项：法律、法规、规章规定的其他情形",
                      "art. 32(v): other cases under laws and rules"),
}
ART42_GROUNDS: dict[str, LText] = {
    "no_income_minor": _lt("《法律援助法》第四十二条第（一）项：无固定生活来源的未成年人",
                           "art. 42(i): minor without fixed income"),
    "no_income_elderly": _lt("《法律援助法》第四十二条第（一）项：无固定生活来源的老年人",
                             "art. 42(i): elderly person without fixed income"),
    "no_income_disabled": _lt("《法律援助法》第四十二条第（一）项：无固定生活来源的残疾人",
                              "art. 42(i): disabled person without fixed income"),
    "social_assistance": _lt("《法律援助法》第四十二条第（二）项：社会救助对象",
                             "art. 42(ii): recipient of social assistance"),
    "judicial_assistance": _lt("《法律援助法》第四十二条第（二）项：司法救助对象",
                               "art. 42(ii): recipient of judicial assistance"),
    "preferential_care": _lt("《法律援助法》第四十二条第（二）项：优抚对象",
                             "art. 42(ii): entitled to preferential care"),
    "migrant_worker_wages_injury": _lt("《法律援助法》第四十二条第（三）项：申请支付劳动报酬或者请求工伤事故人身损害赔偿的进城务工人员",
                                       "art. 42(iii): migrant worker claiming wages or work-injury compensation"),
    "other_rule": _lt("《法律援助法》第四十二条第（四）项：法律、法规、规章规定的其他人员",
                      "art. 42(iv): other persons under laws and rules"),
}
ECONOMIC_GROUND: LText = _lt("《法律援助法》第三十四条：经济困难标准（广东：上年度城镇居民月人均可支配收入的50%）",
                             "art. 34: economic hardship standard (Guangdong: 50% of the prior-year urban monthly "
                             "disposable income per person)")
MIGRANT_CAUSES = frozenset({"labour_remuneration", "work_injury"})
COMMITMENT_DOCS: dict[str, LText] = {
    "commitment_letter": _lt("个人诚信承诺书", "Commitment letter"),
    "economic_statement": _lt("经济困难状况说明表", "Statement of economic situation"),
    "verification_authorisation": _lt("授权核查声明", "Verification authorisation"),
}
CRITERIA: dict[str, LText] = {
    "criminal_mandatory": _lt("通知辩护（第二十五条）", "Mandatory notified defence (art. 25)"),
    "criminal_application": _lt("刑事申请情形（第二十四条）", "Criminal application ground (art. 24)"),
    "scope": _lt("援助事项范围（第三十一条）", "Matter within scope (art. 31)"),
    "not_required": _lt("不受经济困难条件限制（第三十二条）", "Hardship not required (art. 32)"),
    "exempt": _lt("免予核查经济困难状况（第四十二条）", "Exempt from the check (art. 42)"),
    "economic": _lt("经济困难标准", "Economic test"),
    "assets": _lt("高价值资产", "High-value assets"),
    "commitment_documents": _lt("告知承诺材料", "Commitment documents"),
}


# --- result shapes --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Criterion:
    key: str
    label: LText
    outcome: str  # "pass" | "fail" | "na"
    reason: LText

    def label_in(self, lang: str = "zh") -> str:
        return ltext(self.label, lang)

    def reason_in(self, lang: str = "zh") -> str:
        return ltext(self.reason, lang)


@dataclass
class Screening:
    criteria: list[Criterion]
    proposal: str  # "grant" | "refuse"
    grounds: list[LText] = field(default_factory=list)  # the legal grounds the proposal rests on
    notes: list[LText] = field(default_factory=list)  # hints for the reviewer (derived age, missing proof)
    mandatory: bool = False  # notified / mandatory defence: granted whatever else
    threshold: Decimal | None = None
    per_person: Decimal | None = None  # monthly disposable income per household member
    undetermined: list[str] = field(default_factory=list)  # criteria that could not be evaluated

    def criterion(self, key: str) -> Criterion:
        return next(c for c in self.criteria if c.key == key)

    @property
    def failed(self) -> list[Criterion]:
        return [c for c in self.criteria if c.outcome == FAIL]

    def summary(self) -> dict[str, Any]:
        """A JSON-safe snapshot (stored with a decision)."""
        return {
            "proposal": self.proposal,
            "criteria": {c.key: c.outcome for c in self.criteria},
            "threshold": None if self.threshold is None else str(self.threshold),
            "per_person": None if self.per_person is None else str(self.per_person),
            "grounds": [ltext(g, "zh") for g in self.grounds],
        }


# --- helpers --------------------------------------------------------------------------------------
def _money(value: Any) -> Decimal | None:
    if is_empty(value) or isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value).replace(",", "").strip())
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def _int(value: Any) -> int | None:
    if is_empty(value) or isinstance(value, bool):
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def fmt_money(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01'), rounding=ROUND_HALF_UP):,}"


_ID_SPEC = FormSpec(slug=INTAKE, fields=[
    FieldSpec(key="id_number", type="id_number", doc_type_field="id_doc_type", sex_field="sex"),
])


def applicant_age(data: Mapping[str, Any], today: date | None = None) -> tuple[int | None, str]:
    """(age in full years, source "id" | "birth_date" | "") from the resident ID number, else birth_date."""
    from engine.idnumber import age_on
    from engine.validate import derive

    today = today or datetime.now(LOCAL_TZ).date()
    facts = derive(_ID_SPEC, data, today).get("id_number")
    if facts:
        return int(facts["age"]), "id"
    birth = data.get("birth_date")
    if isinstance(birth, str) and birth:
        try:
            return age_on(date.fromisoformat(birth[:10]), today), "birth_date"
        except ValueError:
            return None, ""
    return None, ""


def _groups(data: Mapping[str, Any]) -> set[str]:
    value = data.get("special_groups")
    return {str(v) for v in value} if isinstance(value, list) else set()


def _answered_yes(data: Mapping[str, Any], key: str, item: str) -> bool:
    value = data.get(key)
    if not isinstance(value, Mapping):
        return False
    entry = value.get(item)
    answer = entry.get("answer") if isinstance(entry, Mapping) else entry
    return str(answer or "").lower() == "yes"


def _checklist_labels(spec: FormSpec | None, key: str, default: Mapping[str, LText]) -> dict[str, LText]:
    f = spec.field(key) if spec is not None else None
    if f is None or not f.items:
        return dict(default)
    return {i.key: (i.label or default.get(i.key) or _lt(i.key, i.key)) for i in f.items}


# --- the screen -----------------------------------------------------------------------------------
class _Screen:
    def __init__(self, data: Mapping[str, Any], threshold: Decimal | None, today: date | None,
                 spec: FormSpec | None) -> None:
        self.d = data or {}
        self.threshold = threshold
        self.today = today
        self.spec = spec
        self.out: dict[str, Criterion] = {}
        self.grounds: list[LText] = []
        self.notes: list[LText] = []
        self.undetermined: list[str] = []
        self.per_person: Decimal | None = None
        self.age, self.age_source = applicant_age(self.d, today)
        self.category = str(self.d.get("case_category") or "")
        self.route = str(self.d.get("hardship_route") or "")

    def put(self, key: str, outcome: str, reason: LText) -> None:
        self.out[key] = Criterion(key, CRITERIA[key], outcome, reason)

    def na(self, key: str, zh: str, en: str) -> None:
        self.put(key, NA, _lt(zh, en))

    # criminal ------------------------------------------------------------------------------------
    def criminal(self) -> tuple[bool, bool]:
        """(mandatory grant, economic test applies) for criminal cases; sets both criminal criteria."""
        if self.category != "criminal":
            self.na("criminal_mandatory", "非刑事案件", "not a criminal case")
            self.na("criminal_application", "非刑事案件", "not a criminal case")
            return False, True
        route = str(self.d.get("criminal_route") or "")
        ground = str(self.d.get("criminal_grounds") or "")
        position = str(self.d.get("legal_position_criminal") or "")
        accused = position in ("suspect", "defendant", "")
        if route == "notified":
            self.na("criminal_application", "通知辩护（代理）案件，无需申请情形", "notified case: no application ground needed")
            text = ART25_MANDATORY.get(ground, NOTIFIED_OTHER)
            self.put("criminal_mandatory", PASS, _lt("办案机关通知指派：" + text["zh"], "notified by the authority: "
                                                     + text["en"]))
            self.grounds.append(text)
            if ground == "minor" and self.age is not None and self.age >= 18 and self.age_source == "id":
                self.notes.append(_lt(f"身份证号显示其现年 {self.age} 周岁，请核对作案时或诉讼时是否未成年。",
                                      f"The ID number shows age {self.age}: check whether a minor at the relevant time."))
            return True, False
        if accused and self.age is not None and self.age < 18:
            src = "身份证号" if self.age_source == "id" else "出生日期"
            src_en = "ID number" if self.age_source == "id" else "birth date"
            self.put("criminal_mandatory", PASS, _lt(
                f"{src}显示犯罪嫌疑人、被告人现年 {self.age} 周岁，属未成年人，应通知辩护：" + ART25_MANDATORY["minor"]["zh"],
                f"the {src_en} shows the suspect/defendant is {self.age}, a minor: " + ART25_MANDATORY["minor"]["en"]))
            self.na("criminal_application", "适用第二十五条", "art. 25 applies")
            self.grounds.append(ART25_MANDATORY["minor"])
            return True, False
        self.na("criminal_mandatory", "非通知辩护情形", "no mandatory-defence ground")
        if position in ART29_POSITIONS:
            self.put("criminal_application", PASS, _lt(
                "《法律援助法》第二十九条：被害人、自诉人及其近亲属因经济困难申请，须审查经济困难状况",
                "art. 29: victim / private prosecutor applying because of hardship; the economic test applies"))
            self.grounds.append(_lt("《法律援助法》第二十九条", "Legal Aid Law art. 29"))
            return False, True
        if ground in ART25_MANDATORY or ground == "other_notified":
            self.put("criminal_application", FAIL, _lt(
                "所选情形属通知辩护，但案件来源为当事人申请：请核对案件来源或申请情形",
                "the ground chosen is a notified-defence ground but the case was applied for: check the route"))
            return False, True
        entry = ART24_APPLIED.get(ground)
        if entry is None:
            self.put("criminal_application", FAIL, _lt("未记录刑事法律援助情形", "no criminal legal-aid ground recorded"))
            return False, True
        text, economic = entry
        self.put("criminal_application", PASS, text)
        self.grounds.append(text)
        return False, economic

    # scope ---------------------------------------------------------------------------------------
    def scope(self) -> None:
        if self.category == "criminal":
            self.na("scope", "刑事案件适用第二十四条、第二十五条", "criminal case: arts. 24 and 25 apply")
            return
        cause = str(self.d.get("case_cause") or "")
        item = ART31_SCOPE.get(cause)
        if item is not None:
            self.put("scope", PASS, item)
            self.grounds.append(item)
        elif self.route == "not_required":
            self.na("scope", "适用第三十二条", "art. 32 applies")
        else:
            self.na("scope", "案由未列入第三十一条第（一）至（八）项：请依第（九）项及《广东省法律援助条例》等规定核对",
                    "cause not listed in art. 31(i)-(viii): check art. 31(ix) and the Guangdong regulation")
            self.undetermined.append("scope")

    # hardship ------------------------------------------------------------------------------------
    def not_required(self) -> bool:
        if self.route != "not_required":
            self.na("not_required", "未选择此认定方式", "not the chosen route")
            return False
        ground = str(self.d.get("not_required_ground") or "")
        text = ART32_GROUNDS.get(ground)
        if text is None:
            self.put("not_required", FAIL, _lt("未记录第三十二条的具体情形", "no art. 32 ground recorded"))
            return False
        self.put("not_required", PASS, text)
        self.grounds.append(text)
        return True

    def exempt(self) -> bool:
        if self.route != "exempt":
            self.na("exempt", "未选择此认定方式", "not the chosen route")
            return False
        ground = str(self.d.get("exemption_ground") or "")
        text = ART42_GROUNDS.get(ground)
        if text is None:
            self.put("exempt", FAIL, _lt("未记录第四十二条的具体情形", "no art. 42 ground recorded"))
            return False
        problem = self._exempt_problem(ground)
        if problem is not None:
            self.put("exempt", FAIL, problem)
            return False
        reason = dict(text)
        if ground in ("no_income_minor", "no_income_elderly") and self.age is not None:
            reason = _lt(text["zh"] + f"（现年 {self.age} 周岁）", text["en"] + f" (aged {self.age})")
        self.put("exempt", PASS, reason)
        self.grounds.append(text)
        if not _answered_yes(self.d, "materials", "exemption_proof"):
            self.notes.append(_lt("尚未登记收到免予核查的证明材料。", "No proof of the exemption is recorded as received."))
        return True

    def _exempt_problem(self, ground: str) -> LText | None:
        age, src = self.age, self.age_source
        src_zh = {"id": "身份证号", "birth_date": "出生日期"}.get(src, "")
        src_en = {"id": "the ID number", "birth_date": "the birth date"}.get(src, "")
        if ground == "no_income_minor":
            if age is None:
                self.notes.append(_lt("无法从证件推算年龄：请核对是否未成年。", "Age cannot be derived: check the person is a minor."))
            elif age >= 18:
                return _lt(f"{src_zh}显示申请人现年 {age} 周岁，不是未成年人", f"{src_en} shows age {age}: not a minor")
        elif ground == "no_income_elderly":
            if age is None:
                self.notes.append(_lt("无法从证件推算年龄：请核对是否年满60周岁。", "Age cannot be derived: check the person is 60 or older."))
            elif age < 60:
                return _lt(f"{src_zh}显示申请人现年 {age} 周岁，未满60周岁", f"{src_en} shows age {age}: under 60")
        elif ground == "no_income_disabled":
            if "disabled" not in _groups(self.d) and self.d.get("health") != "disabled":
                return _lt("健康状况或特殊群体中未登记为残疾人", "not recorded as disabled (health or special groups)")
        elif ground == "migrant_worker_wages_injury":
            if str(self.d.get("case_cause") or "") not in MIGRANT_CAUSES:
                return _lt("案由不是劳动报酬或工伤：第四十二条第（三）项仅适用于请求支付劳动报酬或工伤赔偿",
                           "the cause is not wages or work injury, which art. 42(iii) requires")
            if "migrant_worker" not in _groups(self.d):
                self.notes.append(_lt("特殊群体中未勾选「农民工」。", "'Migrant worker' is not ticked in special groups."))
        elif ground == "social_assistance" and "low_income" not in _groups(self.d):
            self.notes.append(_lt("请核对社会救助（低保、特困）证明。", "Check the proof of social assistance."))
        return None

    def economic(self, applies: bool) -> None:
        if not applies or self.route not in ("certificate", "commitment"):
            why = {
                "exempt": ("免予核查经济困难状况（第四十二条）", "exempt from the check (art. 42)"),
                "not_required": ("不受经济困难条件限制（第三十二条）", "hardship not required (art. 32)"),
            }.get(self.route, ("本案不审查经济困难状况", "the economic situation is not examined in this case"))
            self.na("economic", *why)
            self.na("assets", *why)
            if applies and self.route not in ("exempt", "not_required"):
                self.put("economic", FAIL, _lt("未记录经济困难认定方式", "how hardship is shown is not recorded"))
            return
        self._note_derived_groups()
        size = _int(self.d.get("household_size"))
        total = _money(self.d.get("monthly_income_total"))
        if size is None or size < 1 or total is None:
            self.put("economic", FAIL, _lt("未记录家庭人口数或家庭月收入", "household size or income not recorded"))
        else:
            self.per_person = (total / size).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
            per = fmt_money(self.per_person)
            entered = _money(self.d.get("income_threshold"))
            if entered is not None and self.threshold is None:
                self.notes.append(_lt(f"登记表填写的适用标准为 {fmt_money(entered)} 元，请管理员设置本市本年度标准后自动判断。",
                                      f"The record states a threshold of {fmt_money(entered)} CNY; the test runs "
                                      "once the administrator sets the city's threshold for the year."))
            elif entered is not None and entered != self.threshold:
                self.notes.append(_lt(f"登记表填写的适用标准 {fmt_money(entered)} 元与系统设置的 {fmt_money(self.threshold)} 元不一致，"
                                      "以系统设置为准。",
                                      f"The record states a threshold of {fmt_money(entered)} CNY, the configured one is "
                                      f"{fmt_money(self.threshold)} CNY (used)."))
            if self.threshold is None:
                self.put("economic", NA, _lt(f"未设置本市本年度经济困难标准（人均 {per} 元）",
                                             f"threshold not configured (per person {per} CNY)"))
                self.undetermined.append("economic")
            elif total < self.threshold * size:
                lim = fmt_money(self.threshold)
                self.put("economic", PASS, _lt(f"家庭月人均可支配收入 {per} 元，低于标准 {lim} 元",
                                               f"monthly income per household member {per} CNY, below the "
                                               f"threshold {lim} CNY"))
                self.grounds.append(ECONOMIC_GROUND)
            else:
                lim = fmt_money(self.threshold)
                self.put("economic", FAIL, _lt(f"家庭月人均可支配收入 {per} 元，不低于标准 {lim} 元",
                                               f"monthly income per household member {per} CNY, not below the "
                                               f"threshold {lim} CNY"))
        if self.d.get("high_value_assets") is True:
            self.put("assets", FAIL, _lt("申请人家庭拥有高价值资产", "the household owns high-value assets"))
        else:
            self.put("assets", PASS, _lt("未申报高价值资产", "no high-value assets declared"))

    def _note_derived_groups(self) -> None:
        if self.age is None or self.age_source != "id":
            return
        if self.age < 18:
            self.notes.append(_lt(f"身份证号显示申请人现年 {self.age} 周岁（未成年人）：如无固定生活来源，可依第四十二条第（一）项免予核查。",
                                  f"The ID number shows age {self.age} (a minor): without fixed income, art. 42(i) "
                                  "exempts from the check."))
        elif self.age >= 60:
            self.notes.append(_lt(f"身份证号显示申请人现年 {self.age} 周岁（老年人）：如无固定生活来源，可依第四十二条第（一）项免予核查。",
                                  f"The ID number shows age {self.age} (elderly): without fixed income, art. 42(i) "
                                  "exempts from the check."))

    def commitment(self) -> None:
        if self.route != "commitment":
            self.na("commitment_documents", "未选择告知承诺方式", "not the commitment route")
            return
        labels = _checklist_labels(self.spec, "commitment_documents", COMMITMENT_DOCS)
        missing = [labels.get(k, COMMITMENT_DOCS[k]) for k in COMMITMENT_DOCS
                   if not _answered_yes(self.d, "commitment_documents", k)]
        if missing:
            self.put("commitment_documents", FAIL, _lt(
                "缺少：" + "、".join(ltext(m, "zh") for m in missing),
                "missing: " + ", ".join(ltext(m, "en") for m in missing)))
        else:
            self.put("commitment_documents", PASS, _lt("承诺书、经济困难状况说明表、授权核查声明均已签署提交",
                                                       "commitment letter, economic statement and verification "
                                                       "authorisation all recorded"))

    def run(self) -> Screening:
        mandatory, economic_applies = self.criminal()
        self.scope()
        if mandatory:
            for key in ("not_required", "exempt", "economic", "assets", "commitment_documents"):
                self.na(key, "通知辩护案件不审查经济困难状况", "notified / mandatory defence: no hardship check")
            self.undetermined = [k for k in self.undetermined if k != "scope"]
        else:
            if self.not_required() | self.exempt():
                economic_applies = False
            self.economic(economic_applies)
            self.commitment()
        criteria = [self.out[k] for k in CRITERIA]
        failed = any(c.outcome == FAIL for c in criteria)
        proposal = GRANT if mandatory or not failed else REFUSE
        return Screening(criteria=criteria, proposal=proposal, grounds=self.grounds, notes=self.notes,
                         mandatory=mandatory, threshold=self.threshold, per_person=self.per_person,
                         undetermined=self.undetermined)


def screen(data: Mapping[str, Any], *, threshold: Decimal | None, today: date | None = None,
           spec: FormSpec | None = None) -> Screening:
    """Screen one intake record's values (see the module doc). `spec` only supplies checklist labels."""
    if threshold is not None and not isinstance(threshold, Decimal):
        threshold = Decimal(str(threshold))
    return _Screen(data, threshold, today, spec).run()


# =====================================================================================================
# Settings
# =====================================================================================================
THRESHOLD_KEY = "eligibility_threshold"
OFFICE_KEY = "intake_office"
OFFICE_DEFAULTS: dict[str, Any] = {
    "city": "湛江市",
    "justice_bureau": "湛江市霞山区司法局",
    "address": "",
    "phone": "",
    "materials_days": 15,  # days allowed to hand in missing materials (补充材料通知)
}


def read_setting(engine: Engine, key: str) -> Any:
    with session_scope(engine, write=False) as session:
        return session.execute(select(Setting.value).where(Setting.key == key)).scalar()


def write_setting(session: Session, key: str, value: Any, actor: Actor | str, *,
                  detail: Mapping[str, Any] | None = None) -> None:
    """Insert / replace / delete (value None) a Setting row and audit it, in the caller's transaction."""
    row = session.get(Setting, key)
    before = row.value if row is not None else None
    if value is None:
        if row is not None:
            session.delete(row)
    elif row is None:
        session.add(Setting(key=key, value=value, updated_at=utcnow()))
    else:
        row.value = value
        row.updated_at = utcnow()
        session.add(row)
    audit.record(session, actor, "setting_update", "setting", key, detail={
        **(dict(detail) if detail else {}), "deleted": value is None, "had_value": before is not None})


def require_admin(actor: Actor) -> None:
    if not actor.can("settings"):
        raise PermissionDenied("settings.forbidden")


def office(engine: Engine) -> dict[str, Any]:
    """The office profile used by the intake tools (defaults filled in)."""
    value = read_setting(engine, OFFICE_KEY)
    out = dict(OFFICE_DEFAULTS)
    if isinstance(value, Mapping):
        out.update({k: v for k, v in value.items() if k in OFFICE_DEFAULTS})
    return out


def set_office(engine: Engine, values: Mapping[str, Any], *, actor: Actor) -> dict[str, Any]:
    require_admin(actor)
    current = office(engine)
    for key, value in values.items():
        if key not in OFFICE_DEFAULTS:
            raise EngineError("eligibility.bad_office", field=key, value=str(value)[:40])
        if key == "materials_days":
            days = _int(value)
            if days is None or not 1 <= days <= 90:
                raise EngineError("eligibility.bad_office", field=key, value=str(value)[:40])
            current[key] = days
        else:
            text = str(value or "").strip()
            if len(text) > 100 or (key == "city" and not text):
                raise EngineError("eligibility.bad_office", field=key, value=text[:40])
            current[key] = text
    with session_scope(engine) as session:
        write_setting(session, OFFICE_KEY, current, actor, detail={"office": current})
    return current


def _check_city_year(city: str, year: Any) -> tuple[str, int]:
    city = str(city or "").strip()
    if not city or len(city) > 32:
        raise EngineError("eligibility.bad_city")
    y = _int(year)
    if y is None or not 2000 <= y <= 2100:
        raise EngineError("eligibility.bad_year", value=str(year)[:20])
    return city, y


def _thresholds(engine: Engine) -> dict[str, dict[str, dict[str, Any]]]:
    value = read_setting(engine, THRESHOLD_KEY)
    return {str(c): dict(v) for c, v in value.items() if isinstance(v, Mapping)} if isinstance(value, Mapping) else {}


def get_threshold(engine: Engine, city: str, year: int) -> Decimal | None:
    """The per-person monthly threshold for `city` in `year` (the year it applies to), or None."""
    entry = _thresholds(engine).get(str(city).strip(), {}).get(str(year))
    return _money(entry.get("threshold")) if isinstance(entry, Mapping) else None


@dataclass(frozen=True)
class ThresholdRow:
    city: str
    year: int
    threshold: Decimal
    basis: str
    by: str
    at: str


def list_thresholds(engine: Engine) -> list[ThresholdRow]:
    rows = []
    for city, years in _thresholds(engine).items():
        for year, entry in years.items():
            amount = _money(entry.get("threshold")) if isinstance(entry, Mapping) else None
            if amount is not None and str(year).isdigit():
                rows.append(ThresholdRow(city, int(year), amount, str(entry.get("basis") or ""),
                                         str(entry.get("by") or ""), str(entry.get("at") or "")))
    return sorted(rows, key=lambda r: (r.city, -r.year))


def threshold_from_urban_income(*, annual: Any = None, monthly: Any = None, ratio: Any = "0.5") -> Decimal:
    """Guangdong: 50% of the prior-year urban per-capita (monthly) disposable income, to the fen."""
    if annual is not None:
        base = _money(annual)
        base = None if base is None else base / 12
    else:
        base = _money(monthly)
    rate = _money(ratio)
    if base is None or base <= 0 or rate is None or rate <= 0:
        raise EngineError("eligibility.bad_threshold", value=str(annual if annual is not None else monthly))
    return (base * rate).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def set_threshold_from_input(engine: Engine, city: str, year: int, *, amount: str = "", urban_annual: str = "",
                             basis: str = "", actor: Actor) -> Decimal:
    """The admin form's save: the amount typed in, else 50% of the prior-year urban annual figure per
    month, with a basis that says so when none is given."""
    amount, annual = (amount or "").strip(), (urban_annual or "").strip()
    value: Any = amount or (threshold_from_urban_income(annual=annual) if annual else "")
    if not basis and annual:
        basis = f"{int(year) - 1} 年城镇居民人均可支配收入 {annual} 元 × 50% ÷ 12"
    return set_threshold(engine, city, int(year), value, actor=actor, basis=basis)


def set_threshold(engine: Engine, city: str, year: int, threshold: Any, *, actor: Actor, basis: str = "") -> Decimal:
    """Set (or with threshold=None remove) the threshold of (city, year); admins only; audited."""
    require_admin(actor)
    city, y = _check_city_year(city, year)
    amount = None
    if threshold is not None:
        amount = _money(threshold)
        if amount is None or amount <= 0 or amount >= Decimal("1000000"):
            raise EngineError("eligibility.bad_threshold", value=str(threshold)[:20])
        amount = amount.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    with session_scope(engine) as session:
        row = session.get(Setting, THRESHOLD_KEY)
        value = {c: dict(v) for c, v in (row.value or {}).items()} if row is not None and isinstance(
            row.value, Mapping) else {}
        years = value.setdefault(city, {})
        old = years.get(str(y), {}).get("threshold") if isinstance(years.get(str(y)), Mapping) else None
        if amount is None:
            years.pop(str(y), None)
            if not years:
                value.pop(city, None)
        else:
            years[str(y)] = {"threshold": str(amount), "basis": str(basis or "")[:200], "by": actor.username,
                             "at": utcnow().isoformat(timespec="seconds")}
        write_setting(session, THRESHOLD_KEY, value or None, actor, detail={
            "city": city, "year": y, "threshold": [old, None if amount is None else str(amount)]})
    return amount if amount is not None else Decimal(0)


# =====================================================================================================
# Records: screen, decide
# =====================================================================================================
def load_intake(session: Session, sub_id: int) -> tuple[Submission, str]:
    row = session.execute(select(Submission, Form.slug).join(Form, Form.id == Submission.form_id)
                          .where(Submission.id == int(sub_id))).first()
    if row is None or row[0].deleted_at is not None:
        raise NotFound("record.not_found", id=sub_id)
    sub, slug = row
    if slug != INTAKE:
        raise EngineError("eligibility.not_intake", id=sub_id)
    return sub, slug


def application_year(sub: Submission) -> int:
    raw = (sub.data or {}).get("application_date")
    if isinstance(raw, str) and len(raw) >= 4 and raw[:4].isdigit():
        return int(raw[:4])
    created = sub.created_at or utcnow()
    return created.astimezone(LOCAL_TZ).year


def screen_submission(engine: Engine, sub: Submission, *, today: date | None = None,
                      spec: FormSpec | None = None) -> Screening:
    """Screen a stored intake record with the threshold configured for the office's city and the year."""
    city = office(engine)["city"]
    threshold = get_threshold(engine, city, application_year(sub))
    return screen(sub.data or {}, threshold=threshold, today=today, spec=spec)


def screen_record(engine: Engine, sub_id: int, *, today: date | None = None) -> Screening:
    from engine.forms import get_spec

    with session_scope(engine, write=False) as session:
        sub, slug = load_intake(session, sub_id)
    return screen_submission(engine, sub, today=today, spec=get_spec(engine, slug, sub.form_version))


def record_decision(engine: Engine, sub_id: int, decision: str, reason: str | None, actor: Actor, *,
                    today: date | None = None) -> Decision:
    """Record the staff's eligibility decision; against the proposal it needs a reason. Audited."""
    from engine.forms import get_spec

    if decision not in (GRANT, REFUSE):
        raise EngineError("eligibility.bad_decision")
    with session_scope(engine, write=False) as session:
        sub, slug = load_intake(session, sub_id)
    if not form_allows(actor, get_spec(engine, slug), "edit"):
        raise PermissionDenied("eligibility.forbidden")
    screening = screen_submission(engine, sub, today=today, spec=get_spec(engine, slug, sub.form_version))
    why = (reason or "").strip()
    against = decision != screening.proposal
    if against and not why:
        raise EngineError("eligibility.reason_required",
                          decision=ltext(PROPOSAL_LABELS[decision], actor.language),
                          proposal=ltext(PROPOSAL_LABELS[screening.proposal], actor.language))
    row = Decision(submission_id=int(sub.id or 0), kind="eligibility", subject="eligibility", outcome=decision,
                   reason=why[:4000], username=actor.username, at=utcnow(),
                   data={**screening.summary(), "against_proposal": against})
    with session_scope(engine) as session:
        session.add(row)
        session.flush()
        audit.record(session, actor, "eligibility_decision", "submission", sub.id, form_slug=slug, detail={
            "decision": decision, "proposal": screening.proposal, "against_proposal": against, "reason": why[:500],
            "decision_id": row.id,
        })
        stamps.bump(session, stamps.data_scope(slug))
    return row


def decisions(engine: Engine, sub_id: int, kind: str = "eligibility") -> list[Decision]:
    """Decisions of one kind on a record, newest first."""
    with session_scope(engine, write=False) as session:
        stmt = (select(Decision).where(Decision.submission_id == int(sub_id), Decision.kind == kind)
                .order_by(col(Decision.id).desc()))
        return list(session.execute(stmt).scalars().all())


def latest_decision(engine: Engine, sub_id: int) -> Decision | None:
    found = decisions(engine, sub_id, "eligibility")
    return found[0] if found else None


__all__ = [
    "CRITERIA", "GRANT", "INTAKE", "NA", "FAIL", "PASS", "REFUSE", "Criterion", "Screening", "ThresholdRow",
    "applicant_age", "decisions", "load_intake", "get_threshold", "latest_decision", "list_thresholds", "office",
    "read_setting", "record_decision", "screen", "screen_record", "screen_submission", "set_office", "set_threshold",
    "threshold_from_urban_income", "write_setting",
]
