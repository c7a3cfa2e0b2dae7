"""Who may do what. Roles (DESIGN §7) plus the per-form access lists of each spec."""

from __future__ import annotations

from dataclasses import dataclass

from models.spec import FormSpec

# Global abilities per role (pages and actions that are not about one form).
ROLE_ABILITIES: dict[str, frozenset[str]] = {
    "admin": frozenset({
        "users", "forms.design", "reference.edit", "settings", "backup", "audit.view", "records.delete",
        "records.restore", "reports", "dashboards", "records.all", "reveal", "workflow", "export", "import",
        "tally",
    }),
    "manager": frozenset({"reports", "dashboards", "records.all", "reveal", "workflow", "export", "import", "tally"}),
    "staff": frozenset({"dashboards", "workflow", "export", "tally"}),
    "outreach": frozenset({"tally"}),
    "viewer": frozenset({"reports", "dashboards"}),
}


@dataclass(frozen=True)
class Actor:
    """The user doing something: every engine write takes one."""

    username: str
    role: str
    form_editor: bool = False
    language: str = "zh"

    def can(self, ability: str) -> bool:
        if ability == "forms.design" and self.form_editor:
            return True
        return ability in ROLE_ABILITIES.get(self.role, frozenset())


SYSTEM = Actor(username="system", role="admin")


def form_allows(actor: Actor, spec: FormSpec, action: str) -> bool:
    """action: submit / view / edit / reveal — from the spec's access lists."""
    allowed = getattr(spec.access, action, [])
    return actor.role in allowed


def may_reveal(actor: Actor, spec: FormSpec) -> bool:
    return form_allows(actor, spec, "reveal") and actor.can("reveal")
