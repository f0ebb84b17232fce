from __future__ import annotations

from igny8ctl.checks.base import Check, CheckContext, Outcome, Severity


class SchemaUserAccountNullable(Check):
    """The user table still allows account_id to be NULL.

    Why: "every user has an account" is only a promise until the database enforces it; while
    the column is nullable, any code path can create an orphan again.
    Fix: repair the data (igny8ctl fix orphaned-users), then igny8ctl migrate apply
    """

    id = "schema.user-account-nullable"
    title = "user.account_id allows NULL"
    severity = Severity.WARNING
    fix = "igny8ctl migrate apply"
    tenant_scoped = False

    def run(self, context: CheckContext) -> Outcome:
        user = context.schema.user
        column = f"{user.table.name}.{user.account_id.name}"
        state = context.account_column
        if state.not_null:
            return Outcome([self.finding("nullable", 0, (), f"{column} is NOT NULL")],
                           detail="enforced by the column's NOT NULL constraint")
        if state.validated_check:
            return Outcome([self.finding("nullable", 0, (), f"{column} is guarded")],
                           detail=f"enforced by validated CHECK {state.validated_check.name}")
        message = f"{column} allows NULL"
        if state.not_null_checks:
            message += f"; CHECK {state.not_null_checks[0].name} exists but is NOT VALID"
        return Outcome([self.finding("nullable", 1, (), message)])
