"""``igny8ctl doctor``: each step failing alone, the lookup, hostile text, real databases."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from igny8ctl.doctor.base import Status
from igny8ctl.doctor.steps import TENANT_STEPS, USER_STEPS
from tests.conftest import Result
from tests.seed import Seeder

PASS, WARN, FAIL, INFO = Status.PASS, Status.WARN, Status.FAIL, Status.INFO
Cli = Callable[..., Result]
Ids = dict[str, int]
API_KEY = "sk-test-key-123456"

#: A healthy user: every step passes; the only warning is the schema's (Django's DDL still
#: allows account_id to be NULL).
HEALTHY = {step.id: PASS for step in USER_STEPS} | {"tenant.integrity": WARN}
#: What a user without a usable account cannot be evaluated on.
#: What the repair of an orphaned or dangling user makes pass.
REPAIRED = ("user.account-set", "user.account-exists", "tenant.access")
NO_ACCOUNT = {"account.usable": INFO, "tenant.access": FAIL, "ai.settings": INFO,
              "tenant.data": INFO}


def set_owner(seed: Seeder, account: int, user: int) -> None:
    seed.execute("UPDATE igny8_core_auth_account SET owner_id = :u WHERE id = :a",
                 u=user, a=account)


@pytest.fixture
def world(seed: Seeder) -> Ids:
    """The system account with the fallback, tenant acme (ready to auto-cluster) and other."""
    system = seed.account("aws-admin")
    set_owner(seed, system, seed.user("system.bot", system, role="system_bot"))
    seed.openai_settings(system)
    acme = seed.account("acme")
    maya = seed.user("maya", acme, role="owner")
    set_owner(seed, acme, maya)
    seed.user("liam", acme)
    site = seed.site(acme, "Blog")
    cluster = seed.cluster(acme, site, "SEO", keywords_count=1, volume=100)
    seed.keyword(acme, site, "seo tools", cluster=cluster, status="clustered")
    pending = [seed.keyword(acme, site, f"keyword {i}") for i in range(5)]
    seed.openai_settings(acme)
    other = seed.account("other")
    set_owner(seed, other, seed.user("olga", other, role="owner"))
    other_site = seed.site(other, "Other")
    other_cluster = seed.cluster(other, other_site, "Theirs")
    return {"system": system, "acme": acme, "maya": maya, "site": site, "cluster": cluster,
            "pending": pending[0], "other": other, "other_cluster": other_cluster}


def doctor(cli: Cli, seed: Seeder, *args: str) -> tuple[Result, dict[str, Any]]:
    result = cli("doctor", *args, "--database-url", seed.url, "--format", "json")
    return result, json.loads(result.stdout)


def statuses(document: dict[str, Any]) -> dict[str, Status]:
    return {step["id"]: Status(step["status"]) for step in document["steps"]}


# -- each step failing alone ---------------------------------------------------------------


def orphan(seed: Seeder, ids: Ids) -> str:
    return str(seed.user("orphan"))


def dangling(seed: Seeder, ids: Ids) -> str:
    return str(seed.dangling_user("ghost", account_id=999_999))


def inactive(seed: Seeder, ids: Ids) -> str:
    seed.execute("UPDATE igny8_core_auth_user SET is_active = :f WHERE id = :u",
                 f=False, u=ids["maya"])
    return "maya"


def suspended(seed: Seeder, ids: Ids) -> str:
    seed.execute("UPDATE igny8_core_auth_account SET status = 'suspended' WHERE id = :a",
                 a=ids["acme"])
    return "maya"


def missing_plan(seed: Seeder, ids: Ids) -> str:
    if seed.dialect == "postgresql":
        seed.execute("ALTER TABLE igny8_core_auth_account DROP CONSTRAINT "
                     "igny8_core_auth_acco_plan_id_9365d4e5_fk_igny8_cor")
    seed.execute("UPDATE igny8_core_auth_account SET plan_id = 9999 WHERE id = :a",
                 a=ids["acme"])
    return "maya"


def no_settings(seed: Seeder, ids: Ids) -> str:
    seed.execute("DELETE FROM system_integrationsettings")
    return "maya"


def fallback_only(seed: Seeder, ids: Ids) -> str:
    seed.execute("DELETE FROM system_integrationsettings WHERE account_id = :a", a=ids["acme"])
    return "maya"


def four_pending(seed: Seeder, ids: Ids) -> str:
    seed.execute("DELETE FROM planner_keywords WHERE id = :k", k=ids["pending"])
    return "maya"


def cross_tenant_keyword(seed: Seeder, ids: Ids) -> str:
    seed.keyword(ids["acme"], ids["site"], "leaky keyword", cluster=ids["other_cluster"],
                 status="clustered")
    seed.execute("UPDATE planner_clusters SET keywords_count = 1, volume = 100 WHERE id = :c",
                 c=ids["other_cluster"])
    return "maya"


@dataclass(frozen=True)
class Case:
    arrange: Callable[[Seeder, Ids], str]
    changed: dict[str, Status] = field(default_factory=dict)
    verdict: str | None = None
    repairs: bool = False


CASES = {
    "healthy": Case(lambda seed, ids: "maya"),
    "orphaned": Case(orphan, {"user.account-set": FAIL, "user.account-exists": INFO}
                     | NO_ACCOUNT, "user.account-set", repairs=True),
    "dangling": Case(dangling, {"user.account-exists": FAIL} | NO_ACCOUNT,
                     "user.account-exists", repairs=True),
    "inactive user": Case(inactive, {"user.active": FAIL}, "user.active"),
    "suspended account": Case(suspended, {"account.usable": FAIL}, "account.usable"),
    "missing plan": Case(missing_plan, {"account.usable": FAIL}, "account.usable"),
    "no settings and no fallback": Case(no_settings, {"ai.settings": FAIL}, "ai.settings"),
    "fallback only": Case(fallback_only, {"ai.settings": WARN}),
    "fewer than 5 pending keywords": Case(four_pending, {"tenant.data": FAIL}, "tenant.data"),
    "a cross-tenant keyword": Case(cross_tenant_keyword, {"tenant.integrity": FAIL},
                                   "tenant.integrity"),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_each_step_fails_alone(cli: Cli, seed: Seeder, world: Ids, case: Case) -> None:
    who = case.arrange(seed, world)
    result, document = doctor(cli, seed, "user", who)
    assert statuses(document) == HEALTHY | case.changed, result.stdout
    assert document["kind"] == "doctor.user" and document["schema_version"] == 2
    assert document["verdict"]["step"] == case.verdict
    assert document["verdict"]["usable"] is (case.verdict is None)
    assert result.code == (0 if case.verdict is None else 1), result.stderr
    assert API_KEY not in result.stdout + result.stderr
    if case.verdict:
        first = next(s for s in document["steps"] if s["status"] == "fail")
        assert first["id"] == case.verdict
        assert document["verdict"]["message"].startswith(
            f"BLOCKED at step {first['number']} ({first['title']})")
    if case.repairs:
        # The repair the doctor names is a real command, and it repairs exactly that.
        fix = next(s["fix"] for s in document["steps"] if s["id"] == case.verdict)
        assert fix.endswith(f"--user-id {who}")
        repaired = cli(*fix.split()[1:], "--apply", "--yes", "--database-url", seed.url)
        assert repaired.code == 0, repaired.stderr
        _, after = doctor(cli, seed, "user", who)
        assert [statuses(after)[step] for step in REPAIRED] == [PASS] * len(REPAIRED)


def test_the_fallback_is_shown_as_the_fallback(cli: Cli, seed: Seeder, world: Ids) -> None:
    fallback_only(seed, world)
    result, document = doctor(cli, seed, "user", "maya")
    step = next(s for s in document["steps"] if s["id"] == "ai.settings")
    assert step["message"] == ("fallback in use: system account aws-admin's openai settings "
                               "(fallback: tenant acme has none)")
    assert any("of account aws-admin" in line for line in step["evidence"])
    assert "api_key = set (never shown)" in step["evidence"]
    assert result.code == 0


def test_no_settings_says_why(cli: Cli, seed: Seeder, world: Ids) -> None:
    no_settings(seed, world)
    _, document = doctor(cli, seed, "user", "maya")
    step = next(s for s in document["steps"] if s["id"] == "ai.settings")
    assert "no usable OpenAI API key for tenant acme" in step["message"]
    assert step["evidence"] == ["own active openai settings with an api_key: none",
                                "system account aws-admin: found"]


def test_pending_keywords_are_counted_per_site(cli: Cli, seed: Seeder, world: Ids) -> None:
    four_pending(seed, world)
    second = seed.site(world["acme"], "Shop")
    for i in range(3):
        seed.keyword(world["acme"], second, f"shop keyword {i}")
    seed.keyword(world["acme"], seed.site(world["other"], "Elsewhere"), "misplaced")
    _, document = doctor(cli, seed, "user", "maya")
    step = next(s for s in document["steps"] if s["id"] == "tenant.data")
    assert step["status"] == "fail", "4 + 3 pending keywords on two sites do not make 5"
    assert step["evidence"][:2] == [
        f"site {world['site']}: 4 pending of 5 keywords, 1 cluster(s)",
        f"site {second}: 3 pending of 3 keywords, 0 cluster(s)"]
    assert "1 keyword(s) on site(s) of another account" in step["evidence"][2]


def test_cross_tenant_evidence_and_repair(cli: Cli, seed: Seeder, world: Ids) -> None:
    cross_tenant_keyword(seed, world)
    _, document = doctor(cli, seed, "user", "maya")
    step = next(s for s in document["steps"] if s["id"] == "tenant.integrity")
    leaky = seed.scalar("SELECT id FROM planner_keywords WHERE keyword = 'leaky keyword'")
    assert (f"tenancy.cross-tenant: planner_keywords.cluster_id in another tenant: 1 "
            f"(ids {leaky})") in step["evidence"]
    assert step["fix"] == "igny8ctl fix cross-tenant && igny8ctl migrate apply"


# -- doctor tenant --------------------------------------------------------------------------

TENANT_HEALTHY = {step.id: PASS for step in TENANT_STEPS} | {"tenant.integrity": WARN}


def stolen_owner(seed: Seeder, ids: Ids) -> None:
    set_owner(seed, ids["acme"], seed.scalar("SELECT id FROM igny8_core_auth_user "
                                             "WHERE username = 'olga'"))


def all_inactive(seed: Seeder, ids: Ids) -> None:
    seed.execute("UPDATE igny8_core_auth_user SET is_active = :f WHERE account_id = :a",
                 f=False, a=ids["acme"])


TENANT_CASES: dict[str, tuple[Callable[[Seeder, Ids], object], dict[str, Status]]] = {
    "healthy": (lambda seed, ids: None, {}),
    "owner in another account": (stolen_owner, {"account.owner": FAIL}),
    "every user inactive": (all_inactive, {"account.users": WARN, "account.owner": WARN}),
    "suspended": (suspended, {"account.usable": FAIL}),
    "fallback only": (fallback_only, {"ai.settings": WARN}),
    "cross-tenant keyword": (cross_tenant_keyword, {"tenant.integrity": FAIL}),
}


@pytest.mark.parametrize("arrange, changed", TENANT_CASES.values(), ids=TENANT_CASES.keys())
def test_doctor_tenant(cli: Cli, seed: Seeder, world: Ids,
                       arrange: Callable[[Seeder, Ids], object],
                       changed: dict[str, Status]) -> None:
    arrange(seed, world)
    for who in ("acme", str(world["acme"])):
        result, document = doctor(cli, seed, "tenant", who)
        assert statuses(document) == TENANT_HEALTHY | changed, result.stdout
        assert document["subject"]["account"]["slug"] == "acme"
        assert result.code == (1 if FAIL in changed.values() else 0)


def test_doctor_tenant_counts_users_by_role(cli: Cli, seed: Seeder, world: Ids) -> None:
    seed.user("gone", world["acme"], is_active=False)
    _, document = doctor(cli, seed, "tenant", "acme")
    step = next(s for s in document["steps"] if s["id"] == "account.users")
    assert step["message"] == "3 user(s), 1 inactive"
    assert step["evidence"] == ["editor: 2 (1 inactive)", "owner: 1 (0 inactive)"]


def test_unknown_tenant(cli: Cli, seed: Seeder, world: Ids) -> None:
    result = cli("doctor", "tenant", "nope", "--database-url", seed.url)
    assert result.code == 2 and "no tenant 'nope'" in result.stderr


# -- lookup ---------------------------------------------------------------------------------


def sam_and_sam(seed: Seeder, ids: Ids) -> tuple[str, int]:
    seed.user("Sam", ids["acme"])
    return "sam", seed.user("sam", ids["acme"])


def digits_username(seed: Seeder, ids: Ids) -> tuple[str, int]:
    seed.user(str(ids["maya"]), ids["acme"])
    return str(ids["maya"]), ids["maya"]


LOOKUPS: dict[str, tuple[Callable[[Seeder, Ids], tuple[str, int]], str]] = {
    "id": (lambda seed, ids: (str(ids["maya"]), ids["maya"]), "id"),
    "exact username": (lambda seed, ids: ("maya", ids["maya"]), "username"),
    "username, other case": (lambda seed, ids: ("MAYA", ids["maya"]),
                             "username, case-insensitively"),
    "email, other case": (lambda seed, ids: ("Maya@EXAMPLE.com", ids["maya"]),
                          "email, case-insensitively"),
    "exact username beats other cases": (sam_and_sam, "username"),
    "id beats a username of digits": (digits_username,
                                      "id ('{q}' is also the username of user {other})"),
}


@pytest.mark.parametrize("arrange, matched_by", LOOKUPS.values(), ids=LOOKUPS.keys())
def test_lookup(cli: Cli, seed: Seeder, world: Ids,
                arrange: Callable[[Seeder, Ids], tuple[str, int]], matched_by: str) -> None:
    query, expected = arrange(seed, world)
    _, document = doctor(cli, seed, "user", query)
    assert document["subject"]["user"]["id"] == expected
    other = seed.scalar("SELECT max(id) FROM igny8_core_auth_user")
    assert document["subject"]["matched_by"] == matched_by.format(q=query, other=other)


def two_sams(seed: Seeder, ids: Ids) -> tuple[str, list[int]]:
    return "SAM", [seed.user("Sam", ids["acme"]), seed.user("sam", ids["other"])]


def shared_email(seed: Seeder, ids: Ids) -> tuple[str, list[int]]:
    return "Shared@Example.com", [seed.user(f"u{i}", ids["acme"], email="shared@example.com")
                                  for i in range(2)]


AMBIGUOUS: dict[str, Callable[[Seeder, Ids], tuple[str, list[int]]]] = {
    "usernames differing in case": two_sams,
    "one email, two users": shared_email,
    "no match": lambda seed, ids: ("nobody@example.com", []),
    "empty": lambda seed, ids: ("", []),
}


@pytest.mark.parametrize("arrange", AMBIGUOUS.values(), ids=AMBIGUOUS.keys())
def test_no_match_or_several_is_a_usage_error(cli: Cli, seed: Seeder, world: Ids,
                                              arrange: Callable[[Seeder, Ids],
                                                                tuple[str, list[int]]]) -> None:
    query, candidates = arrange(seed, world)
    result = cli("doctor", "user", query, "--database-url", seed.url)
    assert result.code == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("igny8ctl: error: ")
    for user_id in candidates:
        assert f"{user_id} (" in result.stderr
    as_json = cli("doctor", "user", query, "--database-url", seed.url, "--format", "json")
    error = json.loads(as_json.stdout)["error"]
    assert as_json.code == 2 and error["exit_code"] == 2
    assert [c["id"] for c in error.get("candidates", [])] == candidates


def test_database_unreachable_is_exit_3(cli: Cli) -> None:
    result = cli("doctor", "user", "maya", "--database-url",
                 "postgresql://postgres@127.0.0.1:1/nowhere")
    assert result.code == 3 and result.stderr.startswith("igny8ctl: error: cannot connect")


def test_doctor_never_writes(cli: Cli, seed: Seeder, world: Ids) -> None:
    before = seed.dump()
    for args in (("user", "maya"), ("tenant", "acme"), ("user", "MAYA@example.com")):
        assert cli("doctor", *args, "--database-url", seed.url).code in (0, 1)
    assert seed.dump() == before


# -- hostile text ---------------------------------------------------------------------------

HOSTILE = "[bold red]boss[/]\x1b[2J\x1b]8;;http://evil.example\x07link\x1b]8;;\x07\nforged <b>|`*_"


def test_hostile_names_are_printed_safely_in_every_format(cli: Cli, seed: Seeder,
                                                          world: Ids) -> None:
    account = seed.account("evil-\x1b[31m|tenant", name=HOSTILE)
    user = seed.user(HOSTILE, account, role="owner", email=HOSTILE)
    set_owner(seed, account, user)
    outputs = {}
    for args in (("user", str(user)), ("tenant", str(account))):
        for output_format in ("table", "json", "markdown"):
            result = cli("doctor", *args, "--database-url", seed.url, "--format",
                         output_format)
            assert result.code == 1, result.stderr
            outputs[(args[0], output_format)] = result
    for (_, output_format), result in outputs.items():
        for text in (result.stdout, result.stderr):
            assert "\x1b" not in text and "\x07" not in text
        assert "\\nforged" in result.stdout, "the newline is shown escaped"
        if output_format == "table":
            assert "[bold red]boss[/]" in result.stdout, "markup is shown, not applied"
            assert "\\x1b[2J" in result.stdout
        else:
            assert not any(line.strip().startswith("forged")
                           for line in result.stdout.splitlines())
        if output_format == "markdown":
            assert "<b>" not in result.stdout
            rows = [line for line in result.stdout.splitlines() if line.startswith("| ")]
            assert {line.replace("\\|", "").count("|") for line in rows} == {7}
    document = json.loads(outputs[("user", "json")].stdout)
    assert document["subject"]["user"]["username"] == HOSTILE
    assert json.loads(outputs[("tenant", "json")].stdout)["subject"]["account"]["name"] == HOSTILE


def test_hostile_candidates_are_printed_safely(cli: Cli, seed: Seeder, world: Ids) -> None:
    for name in (HOSTILE, HOSTILE.upper()):
        seed.user(name, world["acme"])
    result = cli("doctor", "user", HOSTILE.lower(), "--database-url", seed.url)
    assert result.code == 2
    assert "\x1b" not in result.stderr and result.stderr.count("\n") == 1


def test_doctor_with_a_machine_format_loads_no_heavy_module(seed: Seeder, world: Ids) -> None:
    script = ("import sys\nfrom igny8ctl.cli.main import main\n"
              f"code = main(['doctor', 'user', 'maya', '--database-url', {seed.url!r}, "
              "'--format', 'json'])\n"
              "print(sorted(m for m in ('openai', 'alembic', 'rich') if m in sys.modules), "
              "code, file=sys.stderr)")
    probe = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           timeout=60)
    assert probe.stderr.strip().splitlines()[-1] == "[] 0", probe.stderr
