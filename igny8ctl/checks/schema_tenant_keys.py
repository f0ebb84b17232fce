from __future__ import annotations

from igny8ctl.catalog import tenant_key_states, tenant_links
from igny8ctl.checks.base import Check, CheckContext, Finding, Outcome, Severity


class SchemaTenantKeys(Check):
    """Links between tenant tables that no composite (id, account_id) key enforces.

    Why: Django's keys only say the parent exists; nothing in the database stops a keyword
    joining another tenant's cluster or site, or an account taking another account's user as
    owner. A key on (fk, account_id) referencing the parent's (id, account_id) makes the
    database refuse such a row (row-level security would not: referential checks bypass it).
    Every link tenancy.cross-tenant derives, and account.owner, less tenant_keys_exclude.
    Fix: repair the data (igny8ctl fix cross-tenant, igny8ctl fix account-owners), then
    igny8ctl migrate apply
    """

    id = "schema.tenant-keys"
    title = "Tenant links without a composite key"
    severity = Severity.WARNING
    fix = "igny8ctl migrate apply"
    tenant_scoped = False

    def run(self, context: CheckContext) -> Outcome:
        states = tenant_key_states(context.connection, context.schema,
                                   tenant_links(context.schema))
        findings: list[Finding] = []
        for state in states:
            link, key = state.link, state.foreign_key
            if state.enforced:
                message = f"{link.label} enforced"
            elif key is not None:
                message = f"{link.label}: tenant key {key.name} is NOT VALID"
            elif state.unique_key is None:
                message = (f"{link.label}: no tenant key, and {link.parent} has no UNIQUE "
                           f"({', '.join(link.parent_columns)})")
            else:
                message = f"{link.label}: no tenant key"
            findings.append(self.finding(link.label, 0 if state.enforced else 1, (), message))
        enforced = sum(1 for state in states if state.enforced)
        detail = (f"{enforced} of {len(states)} links enforced"
                  + context.dialect.foreign_key_note) if enforced == len(states) else None
        return Outcome(findings, detail=detail)
