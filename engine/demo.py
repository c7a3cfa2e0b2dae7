"""Realistic synthetic demo data at the scale of the office's own work report (seed/).

`seed_demo(engine)` fills a database with three years of a district legal-aid office's work:

- ~720 intake cases a year; exactly 2158 reached "accepted" or a later state (the report's "近三年
  共受理各类法律援助案件2158件"), plus a handful of fresh applications not yet accepted. Applicants
  have Chinese names and valid GB 11643 resident ID numbers (check character computed) that agree
  with their sex and birth date; categories (criminal incl. notified defence, civil, labour,
  administrative), channels, special groups, causes, hardship routes and workflow states follow
  realistic shares, and cases move further along the workflow the older they are;
- walk-in / hotline / online consultations;
- one campaign year of 13 outreach events ("法援惠民生 扶贫奔小康": 2 for the elderly, 1 for migrant
  workers) with sign-ups and tablet tallies summing to 3200 brochures and 675 consultations;
- 29 court-hearing observations with 34 observer person-times;
- monthly integrity self-checks per staff member, study records, archive checklists for archived
  cases and return visits to aided persons.

Everything goes through `engine.storage.bulk_create` with validation on (tally events are inserted
directly: they are taps, not records). The same seed on the same day gives the same data.
`submissions=N` adds N more intake-like records in large validated batches (bulk loads, benchmarks).
"""

from __future__ import annotations

import bisect
import functools
import itertools
import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from engine.access import SYSTEM, Actor
from engine.db import session_scope
from engine.errors import EngineError
from engine.idnumber import make_id
from engine.messages import register, render
from models.tables import Form, Setting, Submission, TallyEvent, utcnow

CST = timezone(timedelta(hours=8))
MARKER = "demo_data"
ACCEPTED_TOTAL = 2158  # 近三年共受理各类法律援助案件2158件
HEARINGS, HEARING_PERSON_TIMES = 29, 34  # 参加庭审旁听29场，34人次
EVENTS, ELDERLY_EVENTS, MIGRANT_EVENTS = 13, 2, 1  # 13期，老年人专场2场，农民工专场1场
BROCHURES, EVENT_CONSULTATIONS = 3200, 675  # 宣传册3200余份，解答法律咨询675多人次
EXTRA_BATCH = 20_000

register(
    {
        "demo.already": {
            "zh": "数据库中已有演示数据（{at} 生成）。如确需再次生成，请加 --force。",
            "en": "This database already has demo data (made {at}). Add --force to seed again.",
        },
        "demo.bad_count": {
            "zh": "记录条数必须是 0 或正整数，而不是 {value}。",
            "en": "The number of records must be 0 or a positive whole number, not {value}.",
        },
        "demo.missing_form": {
            "zh": "缺少内置表单「{form}」，无法生成演示数据。",
            "en": "The built-in form '{form}' is missing; cannot seed demo data.",
        },
    }
)

# --------------------------------------------------------------------------------------------
# name and place pools

SURNAMES = (
    "陈" * 14
    + "李" * 8
    + "黄" * 8
    + "张" * 6
    + "梁" * 6
    + "林" * 6
    + "刘" * 5
    + "吴" * 5
    + "杨" * 4
    + "王" * 4
    + "郑" * 3
    + "谢" * 3
    + "何" * 3
    + "许" * 3
    + "罗" * 3
    + "钟" * 3
    + "邓" * 3
    + "冯" * 2
    + "庞" * 2
    + "莫" * 2
    + "周蔡麦苏潘赖全揭窦符詹骆邱孙朱胡郭曾彭卢余"
)
MALE_GIVEN = [
    "伟",
    "强",
    "军",
    "勇",
    "杰",
    "涛",
    "斌",
    "波",
    "辉",
    "明",
    "华",
    "平",
    "刚",
    "建",
    "国",
    "海",
    "锋",
    "亮",
    "文",
    "浩",
    "俊",
    "宇",
    "志强",
    "志明",
    "建华",
    "国强",
    "海生",
    "永康",
    "家豪",
    "子轩",
    "俊杰",
    "伟东",
    "文彬",
    "振华",
    "德明",
    "春生",
    "金水",
    "亚福",
    "亚东",
    "土生",
    "石保",
]
FEMALE_GIVEN = [
    "芳",
    "娟",
    "敏",
    "静",
    "丽",
    "艳",
    "霞",
    "燕",
    "玲",
    "萍",
    "红",
    "梅",
    "琳",
    "婷",
    "慧",
    "洁",
    "秀英",
    "桂英",
    "玉兰",
    "秀兰",
    "丽华",
    "美玲",
    "晓燕",
    "雪梅",
    "嘉欣",
    "思琪",
    "欣怡",
    "雨婷",
    "亚妹",
    "亚娣",
    "金凤",
    "月娥",
    "少玲",
    "海燕",
    "春花",
]

# 6-digit region codes: Zhanjiang districts/counties (local) and migrant workers' home provinces.
LOCAL_REGIONS = [("440803", "广东省湛江市霞山区")] * 6 + [
    ("440802", "广东省湛江市赤坎区"),
    ("440804", "广东省湛江市坡头区"),
    ("440811", "广东省湛江市麻章区"),
    ("440823", "广东省遂溪县"),
    ("440825", "广东省徐闻县"),
    ("440881", "广东省廉江市"),
    ("440882", "广东省雷州市"),
    ("440883", "广东省吴川市"),
]
MIGRANT_REGIONS = [
    ("450881", "广西壮族自治区桂平市"),
    ("450921", "广西壮族自治区容县"),
    ("452402", "广西壮族自治区贺州市"),
    ("430524", "湖南省隆回县"),
    ("431081", "湖南省资兴市"),
    ("511321", "四川省南部县"),
    ("522425", "贵州省织金县"),
    ("360732", "江西省兴国县"),
    ("441723", "广东省阳东县"),
    ("440923", "广东省电白县"),
]
ROADS = [
    "人民大道",
    "解放西路",
    "海滨大道",
    "民有路",
    "东堤路",
    "建设路",
    "友谊路",
    "椹川大道",
    "绿塘路",
    "海头路",
    "工农路",
    "新兴路",
]
OCCUPATIONS = {
    "labour": ["建筑工人", "工厂普工", "搬运工", "保洁员", "保安", "餐饮服务员", "快递员", "装修工"],
    "criminal": ["无业", "务工人员", "个体户", "无业", "司机", "学生", "农民"],
    "civil": ["农民", "个体户", "退休", "无业", "务工人员", "家庭主妇", "环卫工人", "渔民"],
}
STAFF = ["chenli", "wangfang", "liqiang", "huangwei", "linxia", "zhangmin"]  # office staff (usernames)
HEAD = "zhangmin"  # office head: reviews self-checks
ARCHIVIST = "linxia"
OUTREACH_STAFF = ["wangfang", "huangwei", "liqiang"]
DEMO_LAWYERS = [
    ("lw001", "李志强", "广东湛泓律师事务所", 12),
    ("lw002", "陈秀梅", "广东港城律师事务所", 8),
    ("lw003", "黄俊杰", "广东粤西律师事务所", 5),
    ("lw004", "梁丽华", "广东海滨律师事务所", 15),
    ("lw005", "林国强", "广东湛泓律师事务所", 3),
    ("lw006", "吴晓燕", "广东南方海岸律师事务所", 6),
    ("lw007", "郑伟东", "广东港城律师事务所", 10),
    ("lw008", "何美玲", "广东粤西律师事务所", 2),
    ("lw009", "许文彬", "广东海滨律师事务所", 7),
    ("lw010", "邓春生", "广东南方海岸律师事务所", 20),
]

FACTS = {
    "marriage_family": [
        "申请人与配偶因感情不和长期分居，现欲起诉离婚并要求分割共同财产、取得子女抚养权。",
        "申请人遭受配偶家庭暴力，要求离婚并请求损害赔偿。",
    ],
    "support_maintenance": [
        "申请人年逾六旬，子女长期不支付赡养费，生活困难，要求子女按月支付赡养费。",
        "申请人离婚后独自抚养子女，对方拒不支付抚养费，要求依法追索。",
    ],
    "work_injury": [
        "申请人在工地作业时受伤，经认定为工伤，用人单位拒绝支付工伤保险待遇。",
        "申请人在厂内操作机器时手部受伤，单位未缴纳工伤保险，要求赔偿。",
    ],
    "labour_remuneration": [
        "申请人在某建筑工地务工，包工头拖欠工资数月，多次追讨未果。",
        "申请人离职后用人单位拒不结清工资及加班费，要求支付。",
    ],
    "labour_relation": ["申请人在某公司工作两年，公司未签订劳动合同，现要求确认劳动关系并支付双倍工资。"],
    "traffic_accident": ["申请人骑电动车被小汽车撞伤住院，肇事方及保险公司未足额赔偿医疗费、误工费。"],
    "medical_damage": ["申请人家属在医院治疗期间死亡，家属认为医院存在过错，要求医疗损害赔偿。"],
    "state_compensation": ["申请人被羁押后经再审改判无罪，依法申请国家赔偿。"],
    "social_insurance": ["申请人所在单位未依法缴纳社会保险，申请人要求补缴并赔偿损失。"],
    "pension_benefits": ["申请人系因公牺牲人员家属，相关部门未按规定发放抚恤金，要求依法发放。"],
    "environmental_damage": ["申请人承包的鱼塘因附近工厂排污导致鱼类大量死亡，要求赔偿损失。"],
    "other": [
        "申请人因房屋租赁合同纠纷与对方发生争议，对方拒不退还押金。",
        "申请人借款给他人后对方到期拒不归还，要求依法追讨。",
    ],
    "theft": ["犯罪嫌疑人涉嫌在商场多次盗窃财物，已被公安机关刑事拘留。"],
    "fraud": ["被告人涉嫌以网络兼职为名骗取他人钱财，案件已移送审查起诉。"],
    "intentional_injury": ["被告人与他人发生口角后持械将对方打伤，经鉴定为轻伤二级。"],
    "dangerous_driving": ["犯罪嫌疑人醉酒后驾驶机动车被交警查获，血液酒精含量超标。"],
    "drug_crime": ["被告人涉嫌贩卖毒品被公安机关抓获，案件已起诉至法院。"],
    "other_criminal": ["犯罪嫌疑人涉嫌寻衅滋事，现处于侦查阶段，其家属申请法律援助。"],
}
CIVIL_CAUSES = {
    "civil": [
        ("marriage_family", 28),
        ("support_maintenance", 18),
        ("traffic_accident", 20),
        ("medical_damage", 4),
        ("other", 26),
        ("environmental_damage", 1),
    ],
    "labour": [
        ("labour_remuneration", 55),
        ("work_injury", 25),
        ("labour_relation", 12),
        ("social_insurance", 8),
    ],
    "administrative": [
        ("state_compensation", 25),
        ("social_insurance", 35),
        ("pension_benefits", 20),
        ("other", 20),
    ],
}
CRIMINAL_CAUSES = [
    ("theft", 30),
    ("fraud", 20),
    ("intentional_injury", 18),
    ("dangerous_driving", 12),
    ("drug_crime", 12),
    ("other_criminal", 8),
]
OUTCOMES_CIVIL = [
    ("fully_supported", 35),
    ("partly_supported", 30),
    ("mediated", 25),
    ("not_supported", 5),
    ("withdrawn", 5),
]
OUTCOMES_CRIMINAL = [("defence_adopted", 35), ("defence_partly_adopted", 50), ("defence_not_adopted", 15)]

# States by the age of a case (days since application): (max_age, [(state, weight), ...]).
STATE_BY_AGE = [
    (7, [("accepted", 35), ("reviewing", 40), ("waiting_materials", 10), ("granted", 15)]),
    (
        30,
        [
            ("reviewing", 8),
            ("granted", 12),
            ("assigned", 25),
            ("handling", 47),
            ("refused", 5),
            ("terminated", 3),
        ],
    ),
    (180, [("handling", 60), ("closed", 22), ("archived", 6), ("refused", 7), ("terminated", 5)]),
    (365, [("handling", 22), ("closed", 20), ("archived", 46), ("refused", 7), ("terminated", 5)]),
    (10**6, [("handling", 1), ("closed", 3), ("archived", 83), ("refused", 7), ("terminated", 6)]),
]
LAWYER_STATES = {"assigned", "handling", "closed", "archived"}
DONE_STATES = {"closed", "archived"}
# the running limit per state, from the record's day: the decision is due 7 days after acceptance,
# in review too (the intake review step keeps that limit: keep_due); a lawyer within 3 days of the
# grant; the archive within 30 days of closing
DUE_DAYS = {"accepted": 7, "reviewing": 7, "granted": 3, "closed": 30}


@dataclass
class DemoSummary:
    counts: dict[str, int] = field(default_factory=dict)
    accepted: int = 0
    extra: int = 0
    tallies: dict[str, int] = field(default_factory=dict)
    hearings: int = 0
    person_times: int = 0
    seconds: float = 0.0
    extra_seconds: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def describe(self, lang: str = "zh") -> str:
        lines = [render("demo.done", lang, total=self.total)]
        lines += [f"  {slug}: {n}" for slug, n in self.counts.items()]
        if self.accepted:
            lines.append(
                render(
                    "demo.figures",
                    lang,
                    accepted=self.accepted,
                    hearings=self.hearings,
                    person_times=self.person_times,
                    brochures=self.tallies.get("brochures", 0),
                    consultations=self.tallies.get("consultations", 0),
                )
            )
        if self.extra:
            rate = self.extra / self.extra_seconds if self.extra_seconds else 0
            lines.append(render("demo.extra", lang, count=self.extra, rate=f"{rate:,.0f}"))
        return "\n".join(lines)


register(
    {
        "demo.done": {"zh": "已生成演示数据 {total} 条：", "en": "Demo data: {total} records:"},
        "demo.figures": {
            "zh": "受理案件 {accepted} 件；庭审旁听 {hearings} 场、{person_times} 人次；宣传活动发放资料 {brochures} 份、"
            "解答咨询 {consultations} 人次",
            "en": "{accepted} cases accepted; {hearings} hearings attended ({person_times} person-times); "
            "outreach: {brochures} brochures, {consultations} consultations",
        },
        "demo.extra": {
            "zh": "另批量生成申请记录 {count} 条（{rate} 条/秒）",
            "en": "plus {count} bulk intake records ({rate} rows/s)",
        },
    }
)


# --------------------------------------------------------------------------------------------
# small helpers


@functools.lru_cache(maxsize=256)
def _weights(weighted: tuple[tuple[str, int], ...]) -> tuple[list[str], list[int]]:
    values = [v for v, _ in weighted]
    cum = list(itertools.accumulate(w for _, w in weighted))
    return values, cum


def _pick(rng: random.Random, weighted: list[tuple[str, int]]) -> str:
    values, cum = _weights(tuple(weighted))
    return values[bisect.bisect_right(cum, rng.random() * cum[-1])]


def _at(day: date, rng: random.Random, start: float = 8.5, end: float = 17.5) -> datetime:
    """An aware UTC datetime during office hours (China time) on `day`."""
    seconds = int(rng.uniform(start, end) * 3600)
    local = datetime.combine(day, time(0, 0), CST) + timedelta(seconds=seconds)
    return local.astimezone(UTC)


def _workday(day: date) -> date:
    while day.weekday() >= 5:
        day -= timedelta(days=1)
    return day


def _partition(rng: random.Random, total: int, parts: int, minimum: int) -> list[int]:
    """`parts` random positive integers >= minimum summing exactly to `total`."""
    rest = total - minimum * parts
    cuts = sorted(rng.randint(0, rest) for _ in range(parts - 1))
    bounds = [0, *cuts, rest]
    return [minimum + bounds[i + 1] - bounds[i] for i in range(parts)]


class People:
    """Names, ID numbers and phones; fast enough for millions of rows."""

    def __init__(self, rng: random.Random, today: date) -> None:
        self.rng = rng
        self.today = today
        self.seq = 0

    def name(self, sex: str) -> str:
        rng = self.rng
        given = rng.choice(MALE_GIVEN if sex == "male" else FEMALE_GIVEN)
        return rng.choice(SURNAMES) + given

    def birth(self, age_low: int, age_high: int) -> date:
        days = self.rng.randint(age_low * 365 + 1, age_high * 365 + 360)
        return self.today - timedelta(days=days)

    def id_number(self, region: str, birth: date, sex: str) -> str:
        self.seq += 1
        seq = (self.seq * 7) % 499 * 2 + (1 if sex == "male" else 0)  # odd = male, even = female
        return make_id(region, birth, seq % 1000)

    def phone(self) -> str:
        rng = self.rng
        return (
            rng.choice(("13", "15", "18", "17", "19", "13", "15"))
            + str(rng.randint(0, 9))
            + f"{rng.randint(0, 10**8 - 1):08d}"
        )

    def residence(self, street: str) -> str:
        rng = self.rng
        return f"湛江市霞山区{street}{rng.choice(ROADS)}{rng.randint(1, 300)}号"


# --------------------------------------------------------------------------------------------
# intake


@dataclass
class Lists:
    lawyers: list[tuple[str, str, str]]  # (value, name, law firm)
    liaison_points: list[str]
    streets: list[tuple[str, str]]  # (value, zh label)
    courts: list[str]
    causes: set[str]


class IntakeMaker:
    def __init__(self, rng: random.Random, people: People, lists: Lists, today: date) -> None:
        self.rng = rng
        self.people = people
        self.lists = lists
        self.today = today
        self.numbers: dict[int, int] = {}

    def _number(self, year: int) -> str:
        n = self.numbers.get(year, 0) + 1
        self.numbers[year] = n
        return f"霞援申字〔{year}〕第{n:04d}号"

    def _state(self, age: int) -> str:
        for max_age, weights in STATE_BY_AGE:
            if age < max_age:
                return _pick(self.rng, weights)
        return "archived"  # pragma: no cover

    def _cause(self, category: str) -> str:
        weights = CRIMINAL_CAUSES if category == "criminal" else CIVIL_CAUSES[category]
        cause = _pick(self.rng, weights)
        return cause if cause in self.lists.causes else "other"

    def row(self, day: date, *, accepted: bool = True) -> dict[str, Any]:
        rng = self.rng
        people = self.people
        age_days = (self.today - day).days
        state = self._state(age_days) if accepted else "applied"
        category = _pick(rng, [("criminal", 45), ("civil", 35), ("labour", 17), ("administrative", 3)])
        notified = category == "criminal" and rng.random() < 0.72
        cause = self._cause(category)
        sex = "male" if rng.random() < (0.85 if category == "criminal" else 0.55) else "female"
        minor = category == "criminal" and rng.random() < 0.07
        if minor:
            birth = people.birth(14, 17)
        elif (cause == "support_maintenance" and rng.random() < 0.6) or rng.random() < 0.08:
            birth = people.birth(60, 85)
        else:
            birth = people.birth(19, 58)
        age = (self.today - birth).days // 365
        migrant = (category == "labour" and rng.random() < 0.75) or (
            category == "criminal" and rng.random() < 0.25
        )
        region, hukou = rng.choice(MIGRANT_REGIONS if migrant else LOCAL_REGIONS)
        street_value, street_label = rng.choice(self.lists.streets)
        health = _pick(rng, [("healthy", 85), ("disabled", 8), ("serious_illness", 7)])
        data: dict[str, Any] = {
            "application_no": self._number(day.year),
            "application_date": day.isoformat(),
            "name": people.name(sex),
            "sex": sex,
            "id_doc_type": "resident_id",
            "id_number": people.id_number(region, birth, sex),
            "birth_date": birth.isoformat(),
            "ethnicity": _pick(rng, [("汉族", 96), ("壮族", 2), ("黎族", 1), ("瑶族", 1)]),
            "household_registration": hukou,
            "residence": people.residence(street_label),
            "occupation": "学生"
            if minor
            else rng.choice(
                OCCUPATIONS[
                    "labour" if category == "labour" else "criminal" if category == "criminal" else "civil"
                ]
            ),
            "education": _pick(
                rng,
                [
                    ("primary", 20),
                    ("junior_secondary", 40),
                    ("senior_secondary", 25),
                    ("college", 8),
                    ("bachelor", 5),
                    ("none", 2),
                ],
            ),
            "health": health,
            "case_category": category,
            "case_cause": cause,
            "facts": rng.choice(FACTS.get(cause, FACTS["other"])),
            "urgent_first": rng.random() < 0.02,
            "receipt_issued": True,
        }
        if not (notified and rng.random() < 0.7):
            data["phone"] = people.phone()
        groups = []
        if age >= 60:
            groups.append("elderly")
        if minor:
            groups.append("minor")
        if sex == "female" and not minor:
            groups.append("women")
        if health == "disabled":
            groups.append("disabled")
        if migrant:
            groups.append("migrant_worker")
        if rng.random() < 0.08:
            groups.append("low_income")
        if rng.random() < 0.01:
            groups.append("servicemen")
        if groups:
            data["special_groups"] = groups
        # channel
        if notified:
            data["intake_channel"] = "notified"
        else:
            channel = _pick(
                rng,
                [
                    ("window", 55),
                    ("liaison_point", 12),
                    ("duty_lawyer", 10),
                    ("hotline_12348", 8),
                    ("online", 15),
                ],
            )
            data["intake_channel"] = channel
            if channel == "liaison_point" and self.lists.liaison_points:
                data["liaison_point"] = rng.choice(self.lists.liaison_points)
            elif channel == "liaison_point":
                data["intake_channel"] = "window"
        # agent: minors always have a statutory agent
        if minor or rng.random() < 0.05:
            agent_sex = rng.choice(("male", "female"))
            agent_birth = people.birth(38, 55)
            data.update(
                {
                    "has_agent": True,
                    "agent_name": people.name(agent_sex),
                    "agent_id_number": people.id_number(region, agent_birth, agent_sex),
                    "agent_kind": "statutory" if minor else "entrusted",
                    "agent_relationship": ("父亲" if agent_sex == "male" else "母亲")
                    if minor
                    else rng.choice(("配偶", "子女", "兄弟姐妹")),
                }
            )
        # case details
        if category == "criminal":
            data["criminal_route"] = "notified" if notified else "applied"
            victim = not notified and rng.random() < 0.15
            if notified:
                ground = (
                    "minor"
                    if minor
                    else "blind_deaf_mute"
                    if health == "disabled" and rng.random() < 0.5
                    else "life_or_death_sentence"
                    if rng.random() < 0.04
                    else "other_notified"
                )
            else:
                ground = _pick(
                    rng,
                    [
                        ("hardship", 80),
                        ("co_defendants_have_counsel", 10),
                        ("major_social_impact", 3),
                        ("other_applied", 7),
                    ],
                )
            data["criminal_grounds"] = ground
            data["legal_position_criminal"] = (
                "victim" if victim else _pick(rng, [("suspect", 35), ("defendant", 65)])
            )
            data["service_type"] = "victim_representation" if victim else "criminal_defence"
            data["stage"] = _pick(
                rng,
                [
                    ("investigation", 15),
                    ("prosecution_review", 30),
                    ("first_instance", 50),
                    ("second_instance", 5),
                ],
            )
        else:
            data["legal_position"] = _pick(rng, [("plaintiff", 80), ("defendant", 17), ("third_party", 3)])
            if category == "labour":
                data["service_type"] = _pick(
                    rng, [("arbitration_agency", 70), ("litigation_agency", 25), ("mediation", 5)]
                )
                data["stage"] = (
                    "arbitration" if data["service_type"] == "arbitration_agency" else "first_instance"
                )
                data["opposing_parties"] = rng.choice(
                    (
                        "湛江市某建筑工程有限公司",
                        "某劳务分包队（包工头）",
                        "湛江某水产加工厂",
                        "某物业管理有限公司",
                    )
                )
            else:
                data["service_type"] = _pick(
                    rng, [("litigation_agency", 85), ("mediation", 10), ("document_drafting", 5)]
                )
                data["stage"] = _pick(
                    rng,
                    [
                        ("first_instance", 70),
                        ("pre_litigation", 15),
                        ("second_instance", 10),
                        ("admin_reconsideration" if category == "administrative" else "retrial", 5),
                    ],
                )
                data["opposing_parties"] = people.name(rng.choice(("male", "female")))
            data["request"] = "请求指派律师代理，依法维护申请人的合法权益。"
        if not notified:
            self._hardship(data, groups, category, cause)
        self._progress(data, state, category)
        return {
            "_state": state,
            "_created_at": _at(day, rng),
            "_created_by": rng.choice(STAFF[:5]),
            **data,
            **self._due(state, day),
        }

    def _hardship(self, data: dict[str, Any], groups: list[str], category: str, cause: str) -> None:
        rng = self.rng
        route = _pick(rng, [("certificate", 30), ("commitment", 45), ("exempt", 20), ("not_required", 5)])
        data["hardship_route"] = route
        if route in ("certificate", "commitment"):
            size = rng.randint(1, 6)
            data["household_size"] = size
            data["monthly_income_total"] = f"{size * rng.randint(40_000, 145_000) / 100:.2f}"
            data["income_threshold"] = "1512.50"
            data["high_value_assets"] = False
            if route == "commitment":
                data["commitment_documents"] = {
                    k: {"answer": "yes", "note": ""}
                    for k in ("commitment_letter", "economic_statement", "verification_authorisation")
                }
        elif route == "exempt":
            if "migrant_worker" in groups and category == "labour":
                ground = "migrant_worker_wages_injury"
            elif "elderly" in groups:
                ground = "no_income_elderly"
            elif "minor" in groups:
                ground = "no_income_minor"
            elif "disabled" in groups:
                ground = "no_income_disabled"
            else:
                ground = "social_assistance"
            data["exemption_ground"] = ground
        else:
            data["not_required_ground"] = (
                "state_compensation_acquittal"
                if cause == "state_compensation"
                else rng.choice(("abuse_victim", "good_samaritan", "other_rule"))
            )
        materials = {
            k: {"answer": "yes", "note": ""} for k in ("application_form", "identity_proof", "case_documents")
        }
        materials["hardship_proof"] = {
            "answer": "yes" if route in ("certificate", "commitment") else "na",
            "note": "",
        }
        data["materials"] = materials

    def _progress(self, data: dict[str, Any], state: str, category: str) -> None:
        rng = self.rng
        if state in LAWYER_STATES and self.lists.lawyers:
            value, _name, firm = rng.choice(self.lists.lawyers)
            data["lawyer"] = value
            data["law_firm"] = firm
        if state in DONE_STATES:
            data["outcome"] = _pick(rng, OUTCOMES_CRIMINAL if category == "criminal" else OUTCOMES_CIVIL)
        elif state == "refused":
            data["refusal_reason"] = _pick(
                rng,
                [("not_eligible_economic", 60), ("not_in_scope", 30), ("false_information", 3), ("other", 7)],
            )
        elif state == "terminated":
            data["termination_reason"] = _pick(
                rng,
                [
                    ("own_lawyer", 40),
                    ("withdrew", 35),
                    ("hardship_ended", 10),
                    ("proceedings_ended", 10),
                    ("other", 5),
                ],
            )
        elif state == "waiting_materials":
            data["missing_materials"] = "请补充提交户口簿复印件及近六个月收入证明。"

    def _due(self, state: str, day: date) -> dict[str, Any]:
        days = DUE_DAYS.get(state)
        if days is None:
            return {}
        start = day if state != "closed" else max(day, self.today - timedelta(days=self.rng.randint(0, 40)))
        return {"_due_at": datetime.combine(start + timedelta(days=days), time(17, 30), CST).astimezone(UTC)}


# --------------------------------------------------------------------------------------------
# the seeding run


class Seeder:
    def __init__(
        self,
        engine: Engine,
        *,
        years: int,
        seed: int,
        scale: float,
        today: date,
        actor: Actor,
        progress: Callable[[int, int], None] | None,
    ) -> None:
        self.engine = engine
        self.rng = random.Random(seed)
        self.years = max(1, int(years))
        self.scale = max(0.0, float(scale))
        self.today = today
        self.start = today - timedelta(days=365 * self.years - 1)
        self.actor = actor
        self.progress = progress
        self.people = People(self.rng, today)
        self.summary = DemoSummary()
        self.done = 0
        self.total = 0
        self.lists = self._lists()
        self.intake = IntakeMaker(self.rng, self.people, self.lists, today)

    # --- plumbing -----------------------------------------------------------------------------
    def _lists(self) -> Lists:
        from engine.forms import choice_lists, get_choice_list, save_choice_list

        lists = choice_lists(self.engine)
        lawyers_info = None
        if not [c for c in lists.get("lawyers", []) if c.active]:
            items = [
                {"value": v, "label": {"zh": name}, "extra": {"law_firm": firm, "criminal_years": years}}
                for v, name, firm, years in DEMO_LAWYERS
            ]
            lawyers_info = save_choice_list(
                self.engine, "lawyers", {"zh": "承办律师", "en": "Assigned lawyers"}, items, actor=self.actor
            )
        else:
            lawyers_info = get_choice_list(self.engine, "lawyers")
        lawyers = [
            (i.value, (i.label or {}).get("zh", i.value), (i.extra or {}).get("law_firm", "某律师事务所"))
            for i in lawyers_info.items
            if i.active
        ]
        lists = choice_lists(self.engine)

        def values(name: str) -> list[str]:
            return [c.value for c in lists.get(name, []) if c.active]

        streets = [
            (c.value, (c.label or {}).get("zh", c.value)) for c in lists.get("streets", []) if c.active
        ]
        return Lists(
            lawyers=lawyers,
            liaison_points=values("liaison_points"),
            streets=streets or [("", "")],
            courts=values("courts"),
            causes=set(values("case_causes")),
        )

    def tick(self, n: int) -> None:
        self.done += n
        if self.progress:
            self.progress(self.done, max(self.total, self.done))

    def store(self, slug: str, rows: list[dict[str, Any]]) -> int:
        from engine.storage import bulk_create

        if not rows:
            return 0
        n = bulk_create(self.engine, slug, rows, actor=self.actor, validate=True)
        self.summary.counts[slug] = self.summary.counts.get(slug, 0) + n
        self.tick(n)
        return n

    def ids(self, slug: str, after: int) -> list[tuple[int, dict[str, Any], str | None]]:
        with self.engine.connect() as conn:
            form_id = conn.execute(select(Form.id).where(Form.slug == slug)).scalar_one()
            rows = conn.execute(
                select(Submission.id, Submission.data, Submission.state)
                .where(Submission.form_id == form_id, Submission.id > after)
                .order_by(Submission.id)
            ).all()
        return [(r.id, r.data, r.state) for r in rows]

    def max_id(self) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.execute(select(Submission.id).order_by(Submission.id.desc()).limit(1)).scalar() or 0
            )

    def n(self, count: int) -> int:
        return max(0, round(count * self.scale))

    def days(self) -> Iterator[date]:
        d = self.start
        while d <= self.today:
            yield d
            d += timedelta(days=1)

    # --- the data -------------------------------------------------------------------------------
    def run(self, extra: int) -> DemoSummary:
        accepted = self.n(ACCEPTED_TOTAL)
        self.total = (
            accepted * 3 + self.n(1200) + self.n(300) + (EVENTS + HEARINGS if self.scale else 0) + extra
        )
        if accepted:
            cases = self.seed_intake(accepted)
            self.seed_consultations()
            self.seed_outreach()
            self.seed_hearings(cases)
            self.seed_integrity()
            self.seed_training()
            self.seed_archive(cases)
            self.seed_return_visits(cases)
        if extra:
            self.seed_extra(extra)
        self.summary.counts = {k: v for k, v in self.summary.counts.items() if v}
        return self.summary

    def _case_days(self, count: int) -> list[date]:
        """`count` application days spread evenly over the years (working days), oldest first."""
        span = (self.today - self.start).days + 1
        return sorted(
            _workday(self.start + timedelta(days=int(self.rng.random() * span))) for _ in range(count)
        )

    def seed_intake(self, accepted: int) -> list[tuple[int, dict[str, Any], str | None]]:
        before = self.max_id()
        days = [max(d, self.start) for d in self._case_days(accepted)]
        rows = [self.intake.row(d) for d in days]
        fresh = max(1, round(6 * self.scale))  # applications of the last days, not yet accepted
        rows += [
            self.intake.row(_workday(self.today - timedelta(days=self.rng.randint(0, 3))), accepted=False)
            for _ in range(fresh)
        ]
        rows.sort(key=lambda r: r["_created_at"])
        self.store("intake", rows)
        self.summary.accepted = sum(1 for r in rows if r["_state"] != "applied")
        return self.ids("intake", before)

    def seed_consultations(self) -> None:
        rng = self.rng
        people = self.people
        rows = []
        for day in self._case_days(self.n(1200)):
            channel = _pick(
                rng,
                [
                    ("walk_in", 45),
                    ("hotline_12348", 25),
                    ("online", 12),
                    ("liaison_point", 10),
                    ("duty_lawyer", 8),
                ],
            )
            sex = rng.choice(("male", "female"))
            row: dict[str, Any] = {
                "consultation_date": day.isoformat(),
                "channel": channel,
                "handled_by": rng.choice(STAFF),
                "topic": _pick(
                    rng,
                    [
                        ("marriage_family", 22),
                        ("support", 10),
                        ("inheritance", 10),
                        ("labour", 20),
                        ("injury", 6),
                        ("traffic", 8),
                        ("contract", 10),
                        ("criminal", 6),
                        ("other", 8),
                    ],
                ),
                "summary": rng.choice(
                    (
                        "咨询离婚财产分割问题",
                        "咨询被拖欠工资如何维权",
                        "咨询老人赡养费标准",
                        "咨询交通事故赔偿项目",
                        "咨询房屋继承手续",
                        "咨询申请法律援助的条件和材料",
                        "咨询劳动合同解除的经济补偿",
                        "咨询借款纠纷起诉程序",
                    )
                ),
                "answer": "已告知相关法律规定及维权途径。",
                "referred_to_application": rng.random() < 0.15,
                "_created_at": _at(day, rng),
                "_created_by": rng.choice(STAFF),
            }
            if channel == "liaison_point":
                if self.lists.liaison_points:
                    row["liaison_point"] = rng.choice(self.lists.liaison_points)
                else:
                    row["channel"] = "walk_in"
            if rng.random() < 0.7:
                row["name"] = people.name(sex)
            if rng.random() < 0.5:
                row["phone"] = people.phone()
            if rng.random() < 0.2:
                row["special_groups"] = [rng.choice(("elderly", "women", "migrant_worker", "disabled"))]
            rows.append(row)
        self.store("consultation", rows)

    def seed_outreach(self) -> None:
        """13 events of one campaign year, their sign-ups and tablet tallies."""
        if not self.scale:
            return
        rng = self.rng
        year = self.today.year - 1 if self.today.year - 1 >= self.start.year else self.today.year
        places = [("village", "新建村", date(year, 7, 13)), ("village", "北月村", date(year, 7, 26))]
        fixed_days = {p[2] for p in places}
        others = EVENTS - len(places)
        kinds = ["elderly"] * ELDERLY_EVENTS + ["migrant_workers"] * MIGRANT_EVENTS
        kinds += ["general"] * (others - len(kinds))
        rng.shuffle(kinds)
        candidates = [
            d
            for d in (date(year, 3, 1) + timedelta(days=i) for i in range(290))
            if d.weekday() < 6 and d not in fixed_days
        ]
        chosen = sorted(rng.sample(candidates, others))
        plan = sorted(
            [(d, k) for d, k in zip(chosen, kinds, strict=True)] + [(p[2], "general") for p in places]
        )
        events = []
        for i, (day, target) in enumerate(plan):
            fixed = next((p for p in places if p[2] == day), None)
            if fixed:
                place_type, place = fixed[0], fixed[1]
            elif target == "migrant_workers":
                place_type, place = "enterprise", rng.choice(("湛江某建筑工地", "霞山某水产加工厂"))
            elif target == "elderly":
                place_type, place = "community", rng.choice(("海滨社区老年活动中心", "工农社区长者饭堂"))
            else:
                place_type = rng.choice(("community", "village", "enterprise", "market"))
                place = {
                    "community": "解放社区服务中心",
                    "village": "东风村委会",
                    "enterprise": "霞山某工业园",
                    "market": "霞山文化广场",
                }[place_type]
            street = rng.choice(self.lists.streets)[0]
            row: dict[str, Any] = {
                "title": f"法援惠民生 扶贫奔小康——走进{place}（第{i + 1}期）",
                "campaign": "法援惠民生 扶贫奔小康",
                "event_date": day.isoformat(),
                "place_type": place_type,
                "place_name": place,
                "target_group": target,
                "formats": ["advice_desk", "onsite_application"]
                + (["door_to_door"] if place_type == "village" else ["talk"]),
                "partners": "所在街道司法所\n村（居）委会",
                "staff_present": "\n".join(OUTREACH_STAFF),
                "lawyers_present": rng.randint(1, 4),
                "summary": "现场发放《湛江市法律援助指南》等宣传资料，律师面对面解答婚姻家庭、赡养、继承等法律问题，"
                "现场受理法律援助申请。",
                "_created_at": _at(day, rng, 8.0, 9.0),
                "_created_by": "wangfang",
            }
            if street:
                row["street"] = street
            if self.lists.liaison_points:
                row["liaison_point"] = rng.choice(self.lists.liaison_points)
            events.append(row)
        before = self.max_id()
        self.store("outreach_event", events)
        stored = self.ids("outreach_event", before)
        self.seed_tallies(stored)
        self.seed_signups(stored)

    def seed_tallies(self, events: list[tuple[int, dict[str, Any], str | None]]) -> None:
        rng = self.rng
        n = len(events)
        plan = {
            "brochures": _partition(rng, BROCHURES, n, 120),
            "consultations": _partition(rng, EVENT_CONSULTATIONS, n, 25),
            "onsite_applications": [rng.randint(1, 6) for _ in range(n)],
        }
        plan["people_reached"] = [b + rng.randint(20, 120) for b in plan["brochures"]]
        totals = {k: 0 for k in plan}
        with session_scope(self.engine) as s:
            for i, (event_id, data, _state) in enumerate(events):
                day = date.fromisoformat(data["event_date"])
                for counter, amounts in plan.items():
                    target = amounts[i]
                    steps = [10, 5, 1] if counter in ("brochures", "people_reached") else [1]
                    left = target
                    while left > 0:
                        step = next(x for x in steps if x <= left and (x == 1 or rng.random() < 0.8))
                        device = f"tablet-{rng.randint(1, 3)}"
                        user = rng.choice(OUTREACH_STAFF)
                        at = _at(day, rng, 9.0, 11.5)
                        tap = TallyEvent(
                            submission_id=event_id,
                            counter=counter,
                            delta=step,
                            username=user,
                            device=device,
                            tap_id=uuid.UUID(int=rng.getrandbits(128)).hex,
                            at=at,
                        )
                        s.add(tap)
                        if rng.random() < 0.01:  # a slip: tapped, then undone from the same tablet
                            s.flush()
                            s.add(
                                TallyEvent(
                                    submission_id=event_id,
                                    counter=counter,
                                    delta=-step,
                                    username=user,
                                    device=device,
                                    undoes=tap.id,
                                    tap_id=uuid.UUID(int=rng.getrandbits(128)).hex,
                                    at=at + timedelta(seconds=5),
                                )
                            )
                            continue  # the slip is undone: this amount is still to be tapped
                        left -= step
                    totals[counter] += target
        self.summary.tallies = totals

    def seed_signups(self, events: list[tuple[int, dict[str, Any], str | None]]) -> None:
        rng = self.rng
        people = self.people
        group_for = {"elderly": "elderly", "migrant_workers": "migrant_worker", "general": "general"}
        rows = []
        for event_id, data, _state in events:
            day = date.fromisoformat(data["event_date"])
            for _ in range(rng.randint(8, 25)):
                sex = rng.choice(("male", "female"))
                group = group_for.get(data["target_group"], "general")
                if group == "general" and rng.random() < 0.3:
                    group = rng.choice(("elderly", "women", "migrant_worker"))
                row: dict[str, Any] = {
                    "name": people.name(sex),
                    "group": group,
                    "topic": _pick(
                        rng,
                        [
                            ("marriage_family", 30),
                            ("support", 25),
                            ("inheritance", 20),
                            ("labour", 15),
                            ("other", 10),
                        ],
                    ),
                    "referred_to_application": rng.random() < 0.1,
                    "_parent_id": event_id,
                    "_created_at": _at(day, rng, 9.0, 11.5),
                    "_created_by": rng.choice(OUTREACH_STAFF),
                }
                if rng.random() < 0.8:
                    row["phone"] = people.phone()
                if self.lists.liaison_points:
                    row["village_community"] = rng.choice(self.lists.liaison_points)
                rows.append(row)
        self.store("event_signup", rows)

    def seed_hearings(self, cases: list[tuple[int, dict[str, Any], str | None]]) -> None:
        if not self.scale:
            return
        rng = self.rng
        heard = [
            c
            for c in cases
            if c[2] in ("handling", "closed", "archived")
            and c[1].get("lawyer")
            and c[1].get("stage") in ("first_instance", "second_instance")
        ]
        if not heard:
            return
        picks = rng.sample(heard, min(HEARINGS, len(heard)))
        doubles = set(rng.sample(range(len(picks)), min(HEARING_PERSON_TIMES - HEARINGS, len(picks))))
        court = "xiashan_court" if "xiashan_court" in self.lists.courts else (self.lists.courts or [""])[0]
        rows = []
        for i, (case_id, data, _state) in enumerate(picks):
            applied = date.fromisoformat(data["application_date"])
            day = _workday(min(self.today, applied + timedelta(days=rng.randint(30, 120))))
            kind = "刑初" if data["case_category"] == "criminal" else "民初"
            observers = rng.sample(STAFF, 2 if i in doubles else 1)
            scores = {
                k: rng.choice((3, 4, 4, 4, 5, 5))
                for k in (
                    "appearance_conduct",
                    "preparation",
                    "facts",
                    "evidence",
                    "law_application",
                    "argument",
                    "attitude",
                    "overall",
                )
            }
            rows.append(
                {
                    "hearing_date": day.isoformat(),
                    "case_ref": case_id,
                    "case_number": f"（{day.year}）粤0803{kind}{rng.randint(100, 2999)}号",
                    "case_cause": data["case_cause"],
                    "aided_person": data["name"],
                    "lawyer": data["lawyer"],
                    "law_firm": data.get("law_firm", ""),
                    "court": court,
                    "judge": self.people.name("male"),
                    "instance": "second" if data.get("stage") == "second_instance" else "first",
                    "observers": "\n".join(observers),
                    "observer_count": len(observers),
                    **scores,
                    "total_score": sum(scores.values()),
                    "comments": rng.choice(
                        (
                            "庭前准备充分，质证意见有针对性。",
                            "辩护意见条理清晰，但对量刑证据的分析可加强。",
                            "出庭准时，举止得体，发言有理有据。",
                        )
                    ),
                    "feedback_given": True,
                    "_created_at": _at(day, rng, 15.0, 17.5),
                    "_created_by": observers[0],
                }
            )
        self.store("hearing_observation", rows)
        self.summary.hearings = len(rows)
        self.summary.person_times = sum(r["observer_count"] for r in rows)

    def _months(self) -> list[tuple[int, int]]:
        out = []
        y, m = self.start.year, self.start.month
        while (y, m) < (self.today.year, self.today.month):
            out.append((y, m))
            y, m = (y + 1, 1) if m == 12 else (y, m + 1)
        return out

    def seed_integrity(self) -> None:
        rng = self.rng
        items = [
            "no_gifts",
            "no_fees",
            "no_refusal_delay",
            "no_private_paid_work",
            "no_steering",
            "confidentiality",
            "conflicts_declared",
            "recusal",
            "no_improper_contact",
            "honest_allowance_claims",
            "no_misuse_of_funds",
        ]
        rows = []
        months = self._months()
        staff = STAFF if self.scale >= 1 else STAFF[: max(1, round(len(STAFF) * self.scale))]
        for y, m in months:
            last = date(y + (m == 12), m % 12 + 1, 1) - timedelta(days=1)
            for person in staff:
                answers = {k: {"answer": "yes", "note": ""} for k in items}
                if rng.random() < 0.3:
                    answers["recusal"] = {"answer": "na", "note": "本月无需回避的案件"}
                rows.append(
                    {
                        "month": f"{y}-{m:02d}",
                        "staff": person,
                        "items": answers,
                        "reviewer": HEAD if person != HEAD else "chenli",
                        "reviewed_on": min(self.today, last + timedelta(days=rng.randint(1, 6))).isoformat(),
                        "remarks": "自查情况属实。",
                        "_created_at": _at(_workday(last), rng),
                        "_created_by": person,
                    }
                )
        self.store("integrity_check", rows)

    def seed_training(self) -> None:
        rng = self.rng
        topics = [
            ("学习习近平法治思想", "political_theory"),
            ("学习《中华人民共和国民法典》婚姻家庭编", "legal_knowledge"),
            ("学习《广东省法律援助条例》", "legal_knowledge"),
            ("学习《中华人民共和国法律援助法》", "legal_knowledge"),
            ("法律援助案件归档材料规范专题学习", "case_practice"),
            ("刑事案件律师辩护全覆盖工作培训", "external_training"),
            ("告知承诺制经济困难审查实务", "case_practice"),
            ("党的二十大精神专题学习", "political_theory"),
        ]
        rows = []
        for y, m in self._months():
            for _ in range(2 if self.scale >= 1 else (1 if rng.random() < self.scale else 0)):
                topic, kind = rng.choice(topics)
                day = _workday(date(y, m, rng.randint(5, 26)))
                rows.append(
                    {
                        "training_date": day.isoformat(),
                        "topic": topic,
                        "kind": kind,
                        "organiser": "市法律援助处" if kind == "external_training" else "区法律援助处",
                        "hours": rng.choice(("1.5", "2", "3", "3.5")),
                        "participants": "\n".join(STAFF),
                        "participant_count": len(STAFF),
                        "_created_at": _at(day, rng, 15.0, 17.5),
                        "_created_by": HEAD,
                    }
                )
        self.store("training_record", rows)

    def seed_archive(self, cases: list[tuple[int, dict[str, Any], str | None]]) -> None:
        rng = self.rng
        civil = [
            "closing_approval",
            "cover_index",
            "application_form",
            "id_copy",
            "hardship_proof",
            "approval_form",
            "grant_decision",
            "assignment_notice",
            "aid_agreement",
            "power_of_attorney",
            "pleadings",
            "evidence",
            "hearing_records",
            "judgment",
            "closing_report",
            "opinion_forms",
        ]
        criminal = [
            "closing_approval",
            "cover_index",
            "assignment_notice",
            "indictment",
            "agreement_poa",
            "meeting_records",
            "file_review_notes",
            "written_opinions",
            "defence_statement",
            "hearing_notice",
            "judgment",
            "closing_report",
            "opinion_forms",
        ]
        rows = []
        for case_id, data, state in cases:
            if state != "archived":
                continue
            kind = "criminal" if data["case_category"] == "criminal" else "civil"
            keys = criminal if kind == "criminal" else civil
            answers = {k: {"answer": "yes", "note": ""} for k in keys}
            if kind == "civil" and data.get("hardship_route") not in ("certificate", "commitment"):
                answers["hardship_proof"] = {"answer": "na", "note": "免予核查"}
            if kind == "criminal" and data.get("stage") == "investigation":
                answers["indictment"] = {"answer": "na", "note": "侦查阶段结案"}
                answers["hearing_notice"] = {"answer": "na", "note": ""}
            missing = rng.random() < 0.06
            if missing:
                answers[rng.choice(keys[4:])] = {"answer": "no", "note": "承办律师未提交"}
            applied = date.fromisoformat(data["application_date"])
            day = _workday(min(self.today, applied + timedelta(days=rng.randint(90, 330))))
            rows.append(
                {
                    "case_ref": case_id,
                    "case_number": data["application_no"],
                    "case_kind": kind,
                    f"{kind}_items": answers,
                    "pages": rng.randint(25, 260),
                    "archivist": ARCHIVIST,
                    "archived_on": day.isoformat(),
                    "complete": "incomplete" if missing else "complete",
                    "grade": "pass"
                    if missing
                    else _pick(rng, [("excellent", 30), ("good", 55), ("pass", 15)]),
                    "_created_at": _at(day, rng),
                    "_created_by": ARCHIVIST,
                    **({"remarks": "已通知承办律师补交缺失材料。"} if missing else {}),
                }
            )
        self.store("archive_checklist", rows)

    def seed_return_visits(self, cases: list[tuple[int, dict[str, Any], str | None]]) -> None:
        rng = self.rng
        rows = []
        for case_id, data, state in cases:
            if state not in ("handling", "closed", "archived") or rng.random() > 0.4 or not data.get("phone"):
                continue
            applied = date.fromisoformat(data["application_date"])
            day = _workday(min(self.today, applied + timedelta(days=rng.randint(20, 200))))
            reached = _pick(rng, [("connected", 85), ("no_answer", 10), ("wrong_number", 5)])
            row: dict[str, Any] = {
                "visit_date": day.isoformat(),
                "case_ref": case_id,
                "case_number": data["application_no"],
                "aided_person": data["name"],
                "visited_by": rng.choice(STAFF),
                "method": _pick(rng, [("phone", 85), ("home_visit", 8), ("sms", 5), ("letter", 2)]),
                "timing": "during" if state == "handling" else "after",
                "reached": reached,
                "_created_at": _at(day, rng),
                "_created_by": rng.choice(STAFF),
            }
            if data.get("lawyer"):
                row["lawyer"] = data["lawyer"]
            if reached == "connected":
                row.update(
                    {
                        "fee_or_gift_asked": rng.random() < 0.005,
                        "lawyer_met_and_attended": rng.random() < 0.96,
                        "informed_of_progress": rng.random() < 0.93,
                        "opinions_heard": rng.random() < 0.94,
                        "attitude": rng.choice((4, 5, 5, 5)),
                        "satisfaction": _pick(rng, [("satisfied", 85), ("basic", 13), ("dissatisfied", 2)]),
                    }
                )
            rows.append(row)
        self.store("return_visit", rows)

    def seed_extra(self, count: int) -> None:
        """`count` more intake records, spread over the years, in validated batches."""
        import time as _time

        span = (self.today - self.start).days + 1
        started = _time.perf_counter()
        made = 0
        while made < count:
            n = min(EXTRA_BATCH, count - made)
            rows = (
                self.intake.row(_workday(self.start + timedelta(days=int(self.rng.random() * span))))
                for _ in range(n)
            )
            self.store("intake", rows)  # type: ignore[arg-type]
            made += n
        self.summary.extra = made
        self.summary.extra_seconds = _time.perf_counter() - started


# --------------------------------------------------------------------------------------------
# entry point


def demo_marker(engine: Engine) -> dict[str, Any] | None:
    with engine.connect() as conn:
        value = conn.execute(select(Setting.value).where(Setting.key == MARKER)).scalar()
    return value


def _set_marker(engine: Engine, detail: dict[str, Any]) -> None:
    with session_scope(engine) as s:
        row = s.get(Setting, MARKER)
        if row is None:
            s.add(Setting(key=MARKER, value=detail, updated_at=utcnow()))
        else:
            row.value = {**detail, "previous": row.value}
            row.updated_at = utcnow()
            s.add(row)


def seed_demo(
    engine: Engine,
    *,
    submissions: int | None = None,
    years: int = 3,
    seed: int = 42,
    progress: Callable[[int, int], None] | None = None,
    force: bool = False,
    scale: float = 1.0,
    today: date | None = None,
    actor: Actor = SYSTEM,
) -> DemoSummary:
    """Fill `engine` with demo data (see the module doc). Refuses a second run unless `force`."""
    import time as _time

    from engine.forms import list_forms

    extra = int(submissions or 0)
    if extra < 0:
        raise EngineError("demo.bad_count", value=submissions)
    marker = demo_marker(engine)
    if marker and not force:
        raise EngineError("demo.already", at=str(marker.get("at", "?"))[:19])
    have = {f.slug for f in list_forms(engine, include_archived=True)}
    needed = (
        ["intake"]
        if not scale
        else [
            "intake",
            "consultation",
            "outreach_event",
            "event_signup",
            "hearing_observation",
            "integrity_check",
            "archive_checklist",
            "return_visit",
            "training_record",
        ]
    )
    for slug in needed:
        if slug not in have:
            raise EngineError("demo.missing_form", form=slug)
    started = _time.perf_counter()
    seeder = Seeder(
        engine,
        years=years,
        seed=seed,
        scale=scale,
        today=today or date.today(),
        actor=actor,
        progress=progress,
    )
    summary = seeder.run(extra)
    summary.seconds = _time.perf_counter() - started
    if progress:
        progress(seeder.done, seeder.done)
    _set_marker(
        engine,
        {
            "at": utcnow().isoformat(timespec="seconds"),
            "seed": seed,
            "years": years,
            "scale": scale,
            "extra": extra,
            "counts": summary.counts,
        },
    )
    return summary
