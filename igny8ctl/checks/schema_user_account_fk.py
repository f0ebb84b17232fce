from __future__ import annotations

from igny8ctl.checks.base import Check, CheckContext, Outcome, Severity


class SchemaUserAccountFk(Check):
    """No valid foreign key from user.account_id to account.id.

    Why: without it, deleting an account or writing a wrong id leaves users pointing at
    nothing (users.dangling-account); a NOT VALID key does not vouch for existing rows.
    Fix: repair dangling users (igny8ctl fix dangling-accounts), then igny8ctl migrate apply
    """

    id = "schema.user-account-fk"
    title = "user.account_id has no valid foreign key"
    severity = Severity.WARNING
    fix = "igny8ctl migrate apply"
    tenant_scoped = False

    def run(self, context: CheckContext) -> Outcome:
        state = context.account_column
        if state.valid_foreign_key:
            detail = f"foreign key {state.valid_foreign_key.name}"
            detail += context.dialect.foreign_key_note
            return Outcome([self.finding("missing", 0, (), "valid")], detail=detail)
        if state.foreign_keys:
            name = state.foreign_keys[0].name
            return Outcome([self.finding("not-valid", 1, (), f"foreign key {name} is NOT VALID")])
        return Outcome([self.finding("missing", 1, (), "no foreign key on user.account_id")])
