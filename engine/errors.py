"""Coded errors. Every error names what it is about (form, field, row) and renders in zh or en.

Messages live in `engine.messages.MESSAGES` keyed by code; `params` fill the placeholders.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Problem:
    """One coded problem (a spec error, a validation error, an import row error)."""

    code: str
    params: dict[str, Any] = field(default_factory=dict)
    form: str | None = None
    field: str | None = None
    row: int | None = None  # 1-based row / line in the source (sheet row, YAML line, CSV line)
    sheet: str | None = None

    def message(self, lang: str = "zh") -> str:
        from engine.messages import render

        return render(self.code, lang, **self.params)

    def where(self, lang: str = "zh") -> str:
        from engine.messages import render

        parts = []
        if self.form:
            parts.append(render("where.form", lang, form=self.form))
        if self.sheet:
            parts.append(render("where.sheet", lang, sheet=self.sheet))
        if self.row is not None:
            parts.append(render("where.row", lang, row=self.row))
        if self.field:
            parts.append(render("where.field", lang, field=self.field))
        return ", ".join(parts)

    def describe(self, lang: str = "zh") -> str:
        where = self.where(lang)
        return f"[{self.code}] {where}: {self.message(lang)}" if where else f"[{self.code}] {self.message(lang)}"


class EngineError(Exception):
    """An error meant for the user: carries one or more coded problems."""

    def __init__(self, code: str, *, problems: list[Problem] | None = None, **params: Any) -> None:
        self.code = code
        self.params = params
        self.problems = problems or []
        super().__init__(self.describe("en"))

    def message(self, lang: str = "zh") -> str:
        from engine.messages import render

        return render(self.code, lang, **self.params)

    def describe(self, lang: str = "zh") -> str:
        head = f"[{self.code}] {self.message(lang)}"
        if not self.problems:
            return head
        return head + "\n" + "\n".join("  - " + p.describe(lang) for p in self.problems)


class SpecError(EngineError):
    """A form spec does not parse or check; `problems` lists every problem at once."""


class ValidationFailed(EngineError):
    """Submitted values failed validation; `errors` maps field key -> Problem."""

    def __init__(self, form: str, errors: dict[str, Problem]) -> None:
        self.errors = errors
        super().__init__("record.invalid", problems=list(errors.values()), form=form, count=len(errors))


class ConflictError(EngineError):
    """Optimistic-locking conflict: someone else saved the record first."""


class PermissionDenied(EngineError):
    """The user's role may not do this."""


class NotFound(EngineError):
    """The form, record or user does not exist (or is hidden from this user)."""
