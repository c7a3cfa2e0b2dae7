"""Data shapes: SQLModel tables (`models.tables`) and form-spec shapes (`models.spec`)."""

from models.decisions import Decision as Decision  # staff decisions (engine.eligibility, engine.conflicts)
from models.spec import (
    LANGS,
    ROLES,
    AccessSpec,
    ChecklistItem,
    Choice,
    Condition,
    FieldSpec,
    FormSpec,
    LText,
    SectionSpec,
    StateSpec,
    TransitionSpec,
    WorkflowSpec,
    as_ltext,
    ltext,
)
from models.tables import (
    AuditEvent,
    ChangeStamp,
    ChoiceItem,
    ChoiceList,
    Form,
    FormVersion,
    Sequence,
    Setting,
    Submission,
    TallyEvent,
    User,
    utcnow,
)

__all__ = [
    "LANGS", "ROLES", "AccessSpec", "AuditEvent", "ChangeStamp", "ChecklistItem", "Choice", "ChoiceItem",
    "ChoiceList", "Condition", "FieldSpec", "Form", "FormSpec", "FormVersion", "LText", "SectionSpec",
    "Sequence", "Setting", "StateSpec", "Submission", "TallyEvent", "TransitionSpec", "User", "WorkflowSpec",
    "as_ltext", "ltext", "utcnow",
]
