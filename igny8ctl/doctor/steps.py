"""What igny8 does for a request, step by step, in the order it does it.

The rules are the incident's (``../shared/context/multi-tenancy-fixes-dec-2025.txt``):
Django authenticates only active users; the simplified ``HasTenantAccess`` allows a request
exactly when ``request.user.account`` is an account; auto-cluster takes the tenant's own
OpenAI settings, else the system account's (the sanctioned fallback), and needs at least
``MIN_KEYWORDS`` selected keywords of one site. Each step reads through the indexes on
primary keys and ``account_id`` only.
"""

from __future__ import annotations

import fnmatch

import sqlalchemy as sa

from igny8ctl.checks import REGISTRY, CheckResult, Severity
from igny8ctl.cluster.base import MIN_KEYWORDS
from igny8ctl.cluster.selection import pending
from igny8ctl.cluster.settings import (
    Overrides,
    Resolution,
    openai_settings,
    resolve_settings_row,
)
from igny8ctl.doctor.base import Observed, Status, Step, UserFacts
from igny8ctl.doctor.lookup import user_by_id
from igny8ctl.doctor.probe import Probe
from igny8ctl.errors import ConfigError
from igny8ctl.redact import mask_url
from igny8ctl.render.text import SHOWN, listing, sample_text
from igny8ctl.tenants import Tenant

NO_ACCOUNT = Observed(Status.INFO, "not evaluated: the user has no account")
#: Account statuses the app serves; ``trial`` too, but it is worth a look.
ACTIVE, TRIAL = "active", "trial"
#: The checks of the whole database that still speak about every tenant.
SCHEMA_CHECKS = "schema.*"


def _user(probe: Probe) -> UserFacts:
    assert probe.user is not None, "a user step needs a user"
    return probe.user


def _repair_user(user: UserFacts) -> str:
    fix = "orphaned-users" if user.account_id is None else "dangling-accounts"
    return f"igny8ctl fix {fix} --strategy create-account --user-id {user.id}"


def user_active(probe: Probe) -> Observed:
    user = _user(probe)
    facts = (f"is_active = {str(user.is_active).lower()}", f"role = {user.role}")
    if user.is_active:
        return Observed(Status.PASS, f"user {user.id} ({user.username}) is active", facts)
    return Observed(Status.FAIL, f"user {user.id} ({user.username}) is inactive: Django "
                    "refuses its login, so no request reaches igny8 (reactivate it in the "
                    "Django admin if that was a mistake)", facts)


def account_set(probe: Probe) -> Observed:
    user = _user(probe)
    if user.account_id is not None:
        return Observed(Status.PASS, f"account_id = {user.account_id}")
    return Observed(Status.FAIL, "account_id is NULL: the user is orphaned, request.account is "
                    "None and igny8 answers \"Account is required\"", ("account_id = NULL",),
                    _repair_user(user))


def account_exists(probe: Probe) -> Observed:
    user, account = _user(probe), probe.account
    if user.account_id is None:
        return Observed(Status.INFO, "not evaluated: account_id is NULL")
    if account is None:
        return Observed(Status.FAIL, f"account_id {user.account_id} names no account "
                        "(dangling): request.user.account raises DoesNotExist",
                        (f"no row with id {user.account_id} in "
                         f"{probe.schema.account.table.name}",), _repair_user(user))
    return Observed(Status.PASS, f"account {account.id} ({account.slug}) exists",
                    (f"slug = {account.slug}", f"name = {account.name}"))


def account_usable(probe: Probe) -> Observed:
    account = probe.account
    if account is None:
        return NO_ACCOUNT
    plan = (f"plan = {account.plan_slug} (id {account.plan_id})"
            if account.plan_slug is not None else f"plan_id = {account.plan_id}: no such plan")
    facts = (f"status = {account.status}", plan)
    problems = []
    if account.status not in (ACTIVE, TRIAL):
        problems.append(f"its status is {account.status}, not {ACTIVE}")
    if account.plan_slug is None:
        problems.append(f"its plan {account.plan_id} does not exist")
    if problems:
        return Observed(Status.FAIL, f"account {account.slug} cannot be served: "
                        + " and ".join(problems) + " (an account decision: change it in the "
                        "Django admin)", facts)
    if account.status == TRIAL:
        return Observed(Status.WARN, f"account {account.slug} is on trial: served while the "
                        "trial lasts", facts)
    return Observed(Status.PASS, f"account {account.slug} is active, on plan "
                    f"{account.plan_slug}", facts)


def tenant_access(probe: Probe) -> Observed:
    """``HasTenantAccess`` as simplified: allowed exactly when ``request.user.account`` is set."""
    user, account = _user(probe), probe.account
    if user.account_id is None:
        return Observed(Status.FAIL, "HasTenantAccess denies: request.user.account is None",
                        fix=_repair_user(user))
    if account is None:
        return Observed(Status.FAIL, "HasTenantAccess denies: reading request.user.account "
                        "raises DoesNotExist, which it turns into a denial",
                        fix=_repair_user(user))
    return Observed(Status.PASS, f"HasTenantAccess allows: request.user.account is account "
                    f"{account.slug}", (f"request.account = account {account.id}",))


def ai_settings(probe: Probe) -> Observed:
    """The settings auto-cluster would run with, by cluster's own resolution and validation."""
    account = probe.account
    if account is None:
        return NO_ACCOUNT
    system = probe.settings.system_account
    resolution: Resolution | None = None
    try:
        resolution = resolve_settings_row(probe.connection, probe.schema,
                                          Tenant(account.id, account.slug), system)
        # The app's view: no operator key or flag of this shell may stand in for the row's.
        resolved = openai_settings(resolution, Overrides(), env={})
    except ConfigError as error:
        facts: tuple[str, ...] = ()
        if resolution is not None:
            systems = resolution.system_accounts
            facts = ("own active openai settings with an api_key: none",
                     f"system account {system}: " + ("missing" if systems == 0 else
                                                     "found" if systems == 1 else
                                                     f"ambiguous ({systems} accounts)"))
        return Observed(Status.FAIL, f"auto-cluster has no usable OpenAI settings: "
                        f"{error.message}", facts)
    assert resolution.row is not None
    facts = (f"settings {resolution.row.settings_id} of account {resolution.row.account.slug}",
             f"model = {resolved.model}", f"server = {mask_url(resolved.base_url)}",
             "api_key = set (never shown)")
    if resolved.fallback:
        return Observed(Status.WARN, f"fallback in use: {resolved.source}", facts)
    return Observed(Status.PASS, resolved.source, facts)


def tenant_data(probe: Probe) -> Observed:
    """Sites, and per site the keywords auto-cluster would take (pending, in no cluster)."""
    account = probe.account
    if account is None:
        return NO_ACCOUNT
    connection, site, keyword, cluster = (probe.connection, probe.schema.site,
                                          probe.schema.keyword, probe.schema.cluster)
    sites = [int(i) for i in connection.scalars(
        sa.select(site.id).where(site.account_id == account.id).order_by(site.id))]
    waiting = pending(keyword)
    keywords = {int(site_id): (int(total), int(waiting)) for site_id, total, waiting in
                connection.execute(sa.select(keyword.site_id, sa.func.count(),
                                             sa.func.count().filter(waiting))
                                   .where(keyword.account_id == account.id)
                                   .group_by(keyword.site_id))}
    clusters = {int(site_id): int(count) for site_id, count in connection.execute(
        sa.select(cluster.site_id, sa.func.count()).where(cluster.account_id == account.id)
        .group_by(cluster.site_id))}
    facts = [f"site {s}: {keywords.get(s, (0, 0))[1]} pending of {keywords.get(s, (0, 0))[0]} "
             f"keywords, {clusters.get(s, 0)} cluster(s)" for s in sites[:SHOWN]]
    if len(sites) > SHOWN:
        facts.append(f"(+{len(sites) - SHOWN} more sites)")
    foreign = sorted(set(keywords) - set(sites))
    if foreign:
        facts.append(f"{sum(keywords[s][0] for s in foreign)} keyword(s) on site(s) of another "
                     f"account, which auto-cluster skips: {listing(foreign)}")
    ready = [s for s in sites if keywords.get(s, (0, 0))[1] >= MIN_KEYWORDS]
    if not sites:
        return Observed(Status.FAIL, f"tenant {account.slug} has no sites: auto-cluster "
                        "clusters one site's keywords", tuple(facts))
    if not ready:
        return Observed(Status.FAIL, f"no site has {MIN_KEYWORDS} pending keywords: "
                        f"auto-cluster needs at least {MIN_KEYWORDS} selected",
                        tuple(facts))
    return Observed(Status.PASS, f"{len(ready)} of {len(sites)} site(s) have at least "
                    f"{MIN_KEYWORDS} pending keywords", tuple(facts))


def tenant_integrity(probe: Probe) -> Observed:
    """The tenant-scoped checks no other step covers, restricted to the tenant, and the
    checks of the schema (does the database enforce "every user has an account"?)."""
    tenant_checks = [c for c in REGISTRY if c.tenant_scoped and c.id not in probe.covered] \
        if probe.account else []
    schema_checks = [c for c in REGISTRY
                     if not c.tenant_scoped and fnmatch.fnmatchcase(c.id, SCHEMA_CHECKS)]
    results = [probe.check(c.id) for c in (*tenant_checks, *schema_checks)]
    facts = tuple(line for result in results for line in _result_lines(result))
    bad = [f for r in results for f in r.findings if f.count and f.severity is not Severity.INFO]
    scope = "" if probe.account else " (tenant checks not evaluated: the user has no account)"
    if not bad:
        return Observed(Status.PASS, f"no findings in {len(results)} checks{scope}", facts)
    status = Status.FAIL if any(f.severity is Severity.ERROR for f in bad) else Status.WARN
    fixes = dict.fromkeys(r.info.fix for r in results if r.info.fix and any(
        f.count and f.severity is not Severity.INFO for f in r.findings))
    return Observed(status, "; ".join(f"{f.message}: {f.count}" for f in bad) + scope,
                    facts, " && ".join(fix for fix in fixes if fix) or None)


def _result_lines(result: CheckResult) -> list[str]:
    shown = [f for f in result.findings if f.count]
    if not shown:
        return [f"{result.info.id}: ok" + (f" ({result.detail})" if result.detail else "")]
    return [f"{result.info.id}: {f.message}: {f.count}"
            + (f" (ids {sample_text(f.sample, f.count)})" if f.sample else "")
            for f in shown]


def account_owner(probe: Probe) -> Observed:
    """The owner row, and what ``accounts.owner`` finds for this account."""
    account = probe.account
    assert account is not None, "a tenant step needs an account"
    result = probe.check("accounts.owner")
    if account.owner_id is None:
        facts = ["owner_id = NULL"]
        owner = None
    else:
        owner = user_by_id(probe.connection, probe.schema, account.owner_id)
        facts = [f"owner_id = {account.owner_id}: no such user" if owner is None else
                 f"owner = user {owner.id} ({owner.username}), role {owner.role}, account_id "
                 f"{'NULL' if owner.account_id is None else owner.account_id}, "
                 f"{'active' if owner.is_active else 'inactive'}"]
    found = [f for f in result.findings if f.count]
    if found:
        status = Status.FAIL if any(f.severity is Severity.ERROR for f in found) else Status.WARN
        only_empty = all(f.code == "no-users" for f in found)
        return Observed(status, "; ".join(f.message for f in found), tuple(facts),
                        None if only_empty else result.info.fix)
    if owner is not None and not owner.is_active:
        return Observed(Status.WARN, f"the owner {owner.username} is inactive", tuple(facts))
    return Observed(Status.PASS, "the owner is a member of the account", tuple(facts))


def account_users(probe: Probe) -> Observed:
    account = probe.account
    assert account is not None, "a tenant step needs an account"
    user = probe.schema.user
    rows = probe.connection.execute(
        sa.select(user.role, sa.func.count(), sa.func.count().filter(user.is_active == sa.false()))
        .where(user.account_id == account.id).group_by(user.role).order_by(user.role)).all()
    total, inactive = sum(int(r[1]) for r in rows), sum(int(r[2]) for r in rows)
    facts = tuple(f"{role}: {count} ({off} inactive)" for role, count, off in rows)
    if not total:
        return Observed(Status.WARN, "no users: nobody can sign in to this tenant", facts)
    if inactive == total:
        return Observed(Status.WARN, f"all {total} users are inactive: nobody can sign in",
                        facts)
    return Observed(Status.PASS, f"{total} user(s), {inactive} inactive", facts)


ACCOUNT_USABLE = Step("account.usable", "Account is active, with a plan", account_usable)
AI_SETTINGS = Step("ai.settings", "OpenAI settings for auto-cluster", ai_settings,
                   covers=("ai.settings",))
TENANT_DATA = Step("tenant.data", "Sites and keywords to cluster", tenant_data)
TENANT_INTEGRITY = Step("tenant.integrity", "What the database says about the tenant",
                        tenant_integrity)

USER_STEPS = (
    Step("user.active", "User exists and is active", user_active),
    Step("user.account-set", "User has an account (account_id)", account_set),
    Step("user.account-exists", "The account exists", account_exists,
         covers=("users.dangling-account",)),
    ACCOUNT_USABLE,
    Step("tenant.access", "Tenant access (HasTenantAccess)", tenant_access),
    AI_SETTINGS,
    TENANT_DATA,
    TENANT_INTEGRITY,
)

TENANT_STEPS = (
    ACCOUNT_USABLE,
    Step("account.owner", "Owner", account_owner, covers=("accounts.owner",)),
    Step("account.users", "Users by role", account_users),
    AI_SETTINGS,
    TENANT_DATA,
    TENANT_INTEGRITY,
)
