"""What the steps of a diagnosis read from: one read-only snapshot, one tenant."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from sqlalchemy.engine import Connection

from igny8ctl.checks import REGISTRY, CheckResult
from igny8ctl.checks.base import CheckContext, run_check
from igny8ctl.config import Settings
from igny8ctl.db import Igny8Schema
from igny8ctl.doctor.base import AccountFacts, UserFacts

#: Offending ids a step lists per finding.
SAMPLE = 10


@dataclass
class Probe:
    """The subject of a diagnosis and the connection to read it through.

    Checks run restricted to the account (``CheckContext.tenants``), each at most once.
    ``covered`` holds the checks a step of this diagnosis answers itself.
    """

    connection: Connection
    schema: Igny8Schema
    settings: Settings
    account: AccountFacts | None
    user: UserFacts | None = None
    covered: frozenset[str] = frozenset()
    _results: dict[str, CheckResult] = field(default_factory=dict)

    @cached_property
    def context(self) -> CheckContext:
        return CheckContext(self.connection, self.schema, self.settings, SAMPLE,
                            tenants=(self.account.id,) if self.account else ())

    def check(self, check_id: str) -> CheckResult:
        if check_id not in self._results:
            check = next(c for c in REGISTRY if c.id == check_id)
            self._results[check_id] = run_check(check, self.context)
        return self._results[check_id]
