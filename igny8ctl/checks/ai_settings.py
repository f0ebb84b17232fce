from __future__ import annotations

import sqlalchemy as sa

from igny8ctl.checks.base import Check, CheckContext, Outcome, Severity
from igny8ctl.db import Igny8Schema


def usable_openai_rows(schema: Igny8Schema,
                       account_id: sa.ColumnElement[int]) -> sa.ColumnElement[bool]:
    """Active ``openai`` settings of ``account_id`` that carry a non-empty api_key.

    The one rule for "this account has OpenAI settings": the check, cluster and doctor
    all use it.
    """
    settings = schema.settings
    api_key = schema.dialect.json_text(settings.config, "api_key")
    return sa.and_(
        settings.account_id == account_id,
        settings.integration_type == "openai",
        settings.is_active == sa.true(),
        sa.func.coalesce(api_key, "") != "",
    )


def usable_openai_settings(schema: Igny8Schema, account_id: sa.ColumnElement[int]) -> sa.Exists:
    return sa.exists().where(usable_openai_rows(schema, account_id))


class AiSettings(Check):
    """Accounts for which auto-cluster cannot resolve OpenAI settings.

    Why: auto-cluster uses the account's own active openai settings, else those of the
    system account (aws-admin). When neither has an api_key the job fails for that tenant.
    The fallback is sanctioned but must be visible: accounts relying on it are reported
    as info. Two accounts with the system slug (its unique index dropped) make the
    fallback ambiguous: an error, and cluster refuses to guess.
    Fix: add active openai settings for the account, or for the system account; make the
    system slug unique
    """

    id = "ai.settings"
    title = "OpenAI settings resolvable"
    severity = Severity.ERROR

    def run(self, context: CheckContext) -> Outcome:
        schema = context.schema
        account = schema.account
        system = context.settings.system_account
        system_ids = tuple(int(i) for i in context.connection.scalars(
            sa.select(account.id).where(account.slug == system).order_by(account.id)))
        ambiguous = self.finding(
            "system-account-ambiguous", len(system_ids) if len(system_ids) > 1 else 0,
            system_ids if len(system_ids) > 1 else (),
            f"accounts sharing the system slug {system}")
        system_id = system_ids[0] if len(system_ids) == 1 else None
        fallback_ok = system_id is not None and bool(context.connection.scalar(
            sa.select(usable_openai_settings(schema, sa.literal(system_id)))
        ))
        without_own = context.restrict(sa.select(account.id).where(
            ~usable_openai_settings(schema, account.id), account.slug != system
        ), account.id)
        if fallback_ok:
            count, sample = context.count_and_sample(without_own)
            return Outcome(
                [
                    self.finding("unresolvable", 0, (), "every account resolves settings"),
                    self.finding("fallback", count, sample,
                                 f"relying on the {system} fallback", Severity.INFO),
                    ambiguous,
                ],
                detail=f"{count} account(s) use the {system} fallback",
            )
        reason = (f"system account {system} does not exist" if not system_ids
                  else f"system account {system} is ambiguous" if len(system_ids) > 1
                  else f"system account {system} has no active openai api_key")
        count, sample = context.count_and_sample(context.restrict(
            sa.select(account.id).where(~usable_openai_settings(schema, account.id)),
            account.id))
        return Outcome([self.finding("unresolvable", count, sample,
                                     f"no usable settings ({reason})"), ambiguous])
