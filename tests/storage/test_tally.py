"""Tallies: concurrent taps from many tablets sum exactly, on SQLite files and PostgreSQL."""

from __future__ import annotations

import random
import threading

import pytest

from engine import tally
from engine.access import Actor
from engine.errors import EngineError, NotFound, PermissionDenied
from engine.forms import publish
from engine.storage import create

OUTREACH = Actor("tablet_user", "outreach")
VIEWER = Actor("viewer1", "viewer")
ADMIN = Actor("admin1", "admin")

EVENT_SPEC = {
    "slug": "mini_event",
    "title": {"zh": "宣传活动", "en": "Outreach event"},
    "access": {"submit": ["admin", "outreach"], "view": ["admin", "outreach"]},
    "fields": [
        {"key": "title", "type": "text", "label": {"zh": "活动名称", "en": "Title"}, "required": True},
        {"key": "brochures", "type": "counter", "label": {"zh": "宣传册", "en": "Brochures"}, "steps": [1, 5, 10]},
        {"key": "consultations", "type": "counter", "label": {"zh": "咨询人次", "en": "Consultations"}, "steps": [1]},
    ],
}


@pytest.fixture
def event_id(engine) -> int:
    publish(engine, EVENT_SPEC, actor=ADMIN)
    return create(engine, "mini_event", {"title": "新建村普法"}, actor=ADMIN).id


def test_taps_sum_and_retry_counts_once(engine, event_id):
    first = tally.tap(engine, event_id, "brochures", 5, actor=OUTREACH, device="tab-1", tap_id="t-1")
    again = tally.tap(engine, event_id, "brochures", 5, actor=OUTREACH, device="tab-1", tap_id="t-1")
    tally.tap(engine, event_id, "brochures", 10, actor=OUTREACH, device="tab-2")
    assert first.counted and first.total == 5
    assert not again.counted and again.total == 5
    assert tally.totals(engine, event_id) == {"brochures": 15}
    assert tally.totals(engine, event_id, device="tab-1") == {"brochures": 5}


def test_undo_compensates_this_devices_last_tap_only(engine, event_id):
    tally.tap(engine, event_id, "consultations", 1, actor=OUTREACH, device="tab-1")
    tally.tap(engine, event_id, "consultations", 1, actor=OUTREACH, device="tab-2")
    res = tally.undo_last(engine, event_id, "consultations", actor=OUTREACH, device="tab-1")
    assert res.counted and res.total == 1
    with pytest.raises(EngineError) as err:
        tally.undo_last(engine, event_id, "consultations", actor=OUTREACH, device="tab-1")
    assert err.value.code == "tally.nothing_to_undo"
    rows = tally.timeline(engine, event_id)
    assert [r.delta for r in rows] == [-1, 1, 1]  # nothing rewritten: the undo is its own row


def test_refusals(engine, event_id):
    with pytest.raises(PermissionDenied):
        tally.tap(engine, event_id, "brochures", 1, actor=VIEWER, device="x")
    for bad in (0, -3, 1001, True):
        with pytest.raises(EngineError) as err:
            tally.tap(engine, event_id, "brochures", bad, actor=OUTREACH, device="x")
        assert err.value.code == "tally.bad_delta"
    with pytest.raises(EngineError) as err:
        tally.tap(engine, event_id, "nope", 1, actor=OUTREACH, device="x")
    assert err.value.code == "tally.no_counter" and "nope" in err.value.message("en")
    with pytest.raises(NotFound):
        tally.tap(engine, 999_999, "brochures", 1, actor=OUTREACH, device="x")
    assert tally.totals(engine, event_id) == {}


def test_eight_tablets_250_taps_each_with_undo_sum_exactly(engine, event_id):
    """8 threads x 250 taps, undos mixed in; the total equals what each thread saw counted."""
    expected: dict[str, int] = {}
    lock = threading.Lock()
    errors: list[BaseException] = []

    def tablet(n: int) -> None:
        rng = random.Random(n)
        device = f"tab-{n}"
        mine = {"brochures": 0, "consultations": 0}
        try:
            for _ in range(250):
                counter = rng.choice(["brochures", "consultations"])
                if rng.random() < 0.1 and mine[counter] > 0:
                    res = tally.undo_last(engine, event_id, counter, actor=OUTREACH, device=device)
                    if res.counted:
                        # the undone amount is the last positive tap of this device on the counter
                        last = [r for r in tally.timeline(engine, event_id) if r.device == device and r.counter == counter]
                        mine[counter] += last[0].delta
                    continue
                step = rng.choice([1, 5, 10]) if counter == "brochures" else 1
                res = tally.tap(engine, event_id, counter, step, actor=OUTREACH, device=device)
                assert res.counted
                mine[counter] += step
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        with lock:
            for key, value in mine.items():
                expected[key] = expected.get(key, 0) + value

    threads = [threading.Thread(target=tablet, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    assert tally.totals(engine, event_id) == expected
    for n in range(8):
        per_device = tally.totals(engine, event_id, device=f"tab-{n}")
        assert all(v >= 0 for v in per_device.values())
