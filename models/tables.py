"""SQLModel tables: the core schema (DESIGN §4). Migrations live in migrations/.

Every timestamp is an aware UTC datetime (`utcnow()`): sqlmodel 0.0.50 maps `datetime` to
UTCDateTime, which refuses naive values. The UI converts to local time for display.
JSON columns are JSONB on PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

JSONType = JSON().with_variant(JSONB(), "postgresql")


def utcnow() -> datetime:
    return datetime.now(UTC)


def json_col(nullable: bool = False) -> Any:
    return Field(default=None, sa_column=Column(JSONType, nullable=nullable))


class User(SQLModel, table=True):
    __tablename__ = "users"
    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(index=True, unique=True, max_length=64)
    display_name: str = Field(default="", max_length=128)
    email: str = Field(default="", max_length=256)
    password_hash: str = Field(max_length=128)
    role: str = Field(default="staff", max_length=16)
    form_editor: bool = False  # may use the form designer without being admin
    active: bool = True
    failed_logins: int = 0
    locked_until: datetime | None = None
    language: str = Field(default="zh", max_length=8)
    password_changed_at: datetime = Field(default_factory=utcnow)
    last_logout_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)


class Form(SQLModel, table=True):
    __tablename__ = "forms"
    id: int | None = Field(default=None, primary_key=True)
    slug: str = Field(index=True, unique=True, max_length=64)
    title: dict = json_col()
    category: str = Field(default="general", max_length=64)
    current_version: int = 0
    builtin: bool = False
    archived: bool = False
    draft_spec: dict | None = json_col(nullable=True)
    draft_updated_by: str | None = None
    draft_updated_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)


class FormVersion(SQLModel, table=True):
    __tablename__ = "form_versions"
    __table_args__ = (UniqueConstraint("form_id", "version", name="uq_form_version"),)
    id: int | None = Field(default=None, primary_key=True)
    form_id: int = Field(foreign_key="forms.id", index=True)
    version: int
    spec: dict = json_col()
    published_by: str = Field(default="system", max_length=64)
    published_at: datetime = Field(default_factory=utcnow)
    note: str = ""


class Submission(SQLModel, table=True):
    __tablename__ = "submissions"
    __table_args__ = (
        Index("ix_sub_form_list", "form_id", "deleted_at", "id"),
        Index("ix_sub_form_created", "form_id", "created_at"),
        Index("ix_sub_form_state", "form_id", "state"),
        Index("ix_sub_parent", "parent_id"),
    )
    id: int | None = Field(default=None, primary_key=True)
    form_id: int = Field(foreign_key="forms.id")
    form_version: int
    data: dict = json_col()
    number: str | None = Field(default=None, max_length=64, unique=True)  # application number
    state: str | None = Field(default=None, max_length=32)
    state_since: datetime | None = None
    due_at: datetime | None = None  # deadline of the current workflow step (None: no limit)
    paused_at: datetime | None = None  # workflow clock paused (waiting for materials)
    parent_id: int | None = Field(default=None, foreign_key="submissions.id")
    created_by: str = Field(default="", max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
    updated_by: str = Field(default="", max_length=64)
    updated_at: datetime = Field(default_factory=utcnow)
    revision: int = 1
    deleted_at: datetime | None = None
    deleted_by: str | None = None


class TallyEvent(SQLModel, table=True):
    """One tap on a counter. Append-only: a total is SUM(delta); undo is a compensating row."""

    __tablename__ = "tally_events"
    __table_args__ = (Index("ix_tally_sub_counter", "submission_id", "counter"),)
    id: int | None = Field(default=None, primary_key=True)
    submission_id: int = Field(foreign_key="submissions.id")
    counter: str = Field(max_length=64)
    delta: int
    username: str = Field(default="", max_length=64)
    device: str = Field(default="", max_length=64)
    tap_id: str = Field(max_length=64, unique=True)  # client-made id: a retried tap counts once
    undoes: int | None = Field(default=None, unique=True)  # the tally event this one compensates (once)
    at: datetime = Field(default_factory=utcnow)


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_entity", "entity", "entity_id"),)
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, index=True)
    username: str = Field(default="", max_length=64)
    action: str = Field(max_length=32)
    entity: str = Field(default="", max_length=32)  # submission / form / user / choice_list / system
    entity_id: str = Field(default="", max_length=64)
    form_slug: str | None = Field(default=None, max_length=64)
    detail: dict | None = json_col(nullable=True)


class ChoiceList(SQLModel, table=True):
    __tablename__ = "choice_lists"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(index=True, unique=True, max_length=64)
    title: dict = json_col()
    builtin: bool = False


class ChoiceItem(SQLModel, table=True):
    __tablename__ = "choice_items"
    __table_args__ = (UniqueConstraint("list_id", "value", name="uq_choice_item"),)
    id: int | None = Field(default=None, primary_key=True)
    list_id: int = Field(foreign_key="choice_lists.id", index=True)
    value: str = Field(max_length=128)
    label: dict = json_col()
    active: bool = True
    position: int = 0
    extra: dict | None = json_col(nullable=True)  # e.g. a liaison point's street / level


class Setting(SQLModel, table=True):
    __tablename__ = "settings"
    key: str = Field(primary_key=True, max_length=64)
    value: dict | None = json_col(nullable=True)
    updated_at: datetime = Field(default_factory=utcnow)


class Sequence(SQLModel, table=True):
    """Gap-free counters, e.g. application numbers per year. Incremented under a row lock."""

    __tablename__ = "sequences"
    name: str = Field(primary_key=True, max_length=64)
    scope: str = Field(primary_key=True, max_length=32)  # e.g. the year
    last: int = 0


class ChangeStamp(SQLModel, table=True):
    """A per-scope counter bumped on every write; caches key on it (forms, users, data:<slug>)."""

    __tablename__ = "change_stamps"
    scope: str = Field(primary_key=True, max_length=64)
    stamp: int = 0
