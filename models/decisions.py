"""Staff decisions on an intake record (eligibility and conflict checks).

One row per decision, append-only: the newest row for a (submission, kind, subject) is the one in
force. `data` keeps what the decision was about (the proposal and criteria of an eligibility screen;
the match and the parties' fingerprint of a conflict decision), so a decision can be shown later
exactly as it was taken, and a conflict clearing stops applying when the parties change.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Index, Text
from sqlmodel import Field, SQLModel

from models.tables import json_col, utcnow


class Decision(SQLModel, table=True):
    __tablename__ = "decisions"
    __table_args__ = (Index("ix_decision_sub_kind", "submission_id", "kind", "id"),)
    id: int | None = Field(default=None, primary_key=True)
    submission_id: int = Field(foreign_key="submissions.id")
    kind: str = Field(max_length=16)  # "eligibility" | "conflict"
    subject: str = Field(default="", max_length=128)  # "eligibility", or the key of a conflict match
    outcome: str = Field(max_length=16)  # grant / refuse; confirmed / cleared
    reason: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    username: str = Field(default="", max_length=64)
    at: datetime = Field(default_factory=utcnow)
    data: dict | None = json_col(nullable=True)
