"""Workflow rules of a form: which steps a user may take, and the time limits.

Pure functions over `WorkflowSpec` and a `Submission`; `engine.storage.transition` checks
the rules with `check_transition` and writes what `apply` returns.

Time limits: a transition with `due_days` sets the record's `due_at` to the moment it enters
the new state plus that many calendar days; leaving the state clears it (or sets the next
step's limit). A transition with `keep_due=True` leaves the running `due_at` as it is (None
stays None): a limit that runs across several states, such as the decision within 7 days of
acceptance that also covers the review, is set once by the step that starts it and kept by the
steps in between (`keep_due` with `due_days` on one step is a spec error). A transition with
`pause=True` ("waiting for materials") stops the clock: `paused_at` is set and `due_at` is
frozen (`keep_due` on a pausing step changes nothing; `due_days` on it is a spec error, since it
could never apply). The next transition out of the paused
state resumes it: the frozen `due_at` is extended by the paused duration, whatever that step's
`due_days` or `keep_due` say (a step's own limit applies only when no limit was running).
Entering a terminal state clears both.

Order of the rules in `apply`: terminal, pause, resume, keep_due, due_days.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from engine.access import Actor
from engine.errors import EngineError, NotFound, PermissionDenied
from engine.messages import register
from models.spec import FormSpec, StateSpec, TransitionSpec, WorkflowSpec, ltext
from models.tables import Submission, utcnow

register({
    "workflow.none": {"zh": "表单「{form}」没有流程。", "en": "Form '{form}' has no workflow."},
    "workflow.unknown_transition": {
        "zh": "表单「{form}」的流程中没有「{transition}」这一步。",
        "en": "The workflow of form '{form}' has no step '{transition}'.",
    },
    "workflow.not_allowed_from": {
        "zh": "记录当前处于「{state}」，不能执行「{transition}」。",
        "en": "The record is in state '{state}'; '{transition}' is not possible from there.",
    },
    "workflow.forbidden": {
        "zh": "您的角色（{role}）不能执行「{transition}」，仅限：{roles}。",
        "en": "Your role ({role}) may not do '{transition}'; allowed: {roles}.",
    },
    "workflow.reason_required": {
        "zh": "执行「{transition}」需要填写理由。",
        "en": "'{transition}' needs a reason.",
    },
    "workflow.field_required": {
        "zh": "执行「{transition}」前须先填写「{field}」。",
        "en": "'{field}' must be filled in before '{transition}'.",
    },
})


@dataclass(frozen=True)
class StepResult:
    """Column values a transition writes on the submission."""

    state: str
    state_since: datetime
    due_at: datetime | None
    paused_at: datetime | None

    def as_values(self) -> dict[str, Any]:
        return {"state": self.state, "state_since": self.state_since, "due_at": self.due_at,
                "paused_at": self.paused_at}


def state_spec(wf: WorkflowSpec, key: str | None) -> StateSpec | None:
    return next((s for s in wf.states if s.key == key), None)


def state_label(spec: FormSpec, key: str | None, lang: str = "zh") -> str:
    if spec.workflow is None or key is None:
        return key or ""
    st = state_spec(spec.workflow, key)
    return (ltext(st.label, lang) or key) if st else key


def transition_label(t: TransitionSpec, lang: str = "zh") -> str:
    return ltext(t.label, lang) or t.key


def find_transition(spec: FormSpec, key: str) -> TransitionSpec | None:
    if spec.workflow is None:
        return None
    return next((t for t in spec.workflow.transitions if t.key == key), None)


def initial_values(spec: FormSpec, now: datetime | None = None) -> dict[str, Any]:
    """state / state_since for a new record of `spec` (empty when the form has no workflow)."""
    if spec.workflow is None:
        return {}
    return {"state": spec.workflow.initial, "state_since": now or utcnow(), "due_at": None, "paused_at": None}


def from_state_ok(t: TransitionSpec, state: str | None) -> bool:
    return state is not None and (state in t.from_ or "*" in t.from_)


def available(spec: FormSpec, sub: Submission, actor: Actor) -> list[TransitionSpec]:
    """Transitions the actor may take from the record's current state."""
    if spec.workflow is None or sub.deleted_at is not None:
        return []
    return [t for t in spec.workflow.transitions if from_state_ok(t, sub.state) and actor.role in t.roles]


def check_transition(spec: FormSpec, sub: Submission, key: str, actor: Actor) -> TransitionSpec:
    """The transition `key`, or a coded refusal naming the state / the roles."""
    lang = actor.language
    if spec.workflow is None:
        raise NotFound("workflow.none", form=ltext(spec.title, lang) or spec.slug)
    t = find_transition(spec, key)
    if t is None:
        raise NotFound("workflow.unknown_transition", form=ltext(spec.title, lang) or spec.slug, transition=key)
    if not from_state_ok(t, sub.state):
        raise PermissionDenied("workflow.not_allowed_from", state=state_label(spec, sub.state, lang),
                               transition=transition_label(t, lang))
    if actor.role not in t.roles:
        raise PermissionDenied("workflow.forbidden", role=actor.role, transition=transition_label(t, lang),
                               roles=", ".join(t.roles))
    return t


def require_reason(t: TransitionSpec, reason: str | None, lang: str = "zh") -> str | None:
    text = (reason or "").strip()
    if t.needs_reason and not text:
        raise EngineError("workflow.reason_required", transition=transition_label(t, lang))
    return text or None


def apply(spec: FormSpec, sub: Submission, t: TransitionSpec, now: datetime | None = None) -> StepResult:
    """What taking transition `t` writes: new state, when it was entered, the time limit, the pause."""
    now = now or utcnow()
    target = state_spec(spec.workflow, t.to) if spec.workflow else None
    if target is not None and target.terminal:
        return StepResult(t.to, now, None, None)
    if t.pause:
        # The clock stops: keep the running limit as it is (keep_due adds nothing), remember when the
        # pause began.
        return StepResult(t.to, now, sub.due_at, sub.paused_at or now)
    if sub.paused_at is not None and sub.due_at is not None:
        # Resuming wins over keep_due and due_days: the frozen limit moves by the paused duration.
        return StepResult(t.to, now, sub.due_at + (now - sub.paused_at), None)
    if t.keep_due:
        # The running limit (or its absence) stays as it is; a pause, if any, ends.
        return StepResult(t.to, now, sub.due_at, None)
    return StepResult(t.to, now, due_date(now, t.due_days), None)


def due_date(entered_at: datetime, due_days: int | None) -> datetime | None:
    """The limit of a step entered at `entered_at`: that many calendar days later (None: no limit)."""
    if due_days is None:
        return None
    return entered_at + timedelta(days=due_days)


def is_paused(sub: Submission) -> bool:
    return sub.paused_at is not None


def is_overdue(sub: Submission, now: datetime | None = None) -> bool:
    """Past its limit and not paused (a paused clock does not run)."""
    if sub.due_at is None or sub.paused_at is not None or sub.deleted_at is not None:
        return False
    return (now or utcnow()) > sub.due_at


def due_soon(sub: Submission, now: datetime | None = None, days: int = 2) -> bool:
    """Not yet overdue, but the limit falls within the next `days` days."""
    if sub.due_at is None or sub.paused_at is not None or sub.deleted_at is not None:
        return False
    now = now or utcnow()
    return now <= sub.due_at <= now + timedelta(days=days)


def remaining(sub: Submission, now: datetime | None = None) -> timedelta | None:
    """Time left until the limit (negative when overdue; frozen while paused)."""
    if sub.due_at is None:
        return None
    ref = sub.paused_at or now or utcnow()
    return sub.due_at - ref
