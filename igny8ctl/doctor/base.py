"""What a diagnosis is made of: steps as data, each observing one thing igny8 does."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from igny8ctl.doctor.probe import Probe


class Status(StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    INFO = "info"


@dataclass(frozen=True)
class Observed:
    """What a step saw: its status, one sentence, the facts behind it, and the repair.

    ``fix`` is the igny8ctl command that repairs a failure or a warning, when one exists;
    otherwise the message says what a human must do.
    """

    status: Status
    message: str
    evidence: tuple[str, ...] = ()
    fix: str | None = None


@dataclass(frozen=True)
class Step:
    """One thing igny8 does for a request, as data: ``observe`` reads, never writes.

    ``covers`` names the checks this step already answers; the integrity step runs the
    tenant-scoped checks no other step covers.
    """

    id: str
    title: str
    observe: Callable[[Probe], Observed]
    covers: tuple[str, ...] = ()


@dataclass(frozen=True)
class StepResult:
    number: int
    id: str
    title: str
    status: Status
    message: str
    evidence: tuple[str, ...]
    fix: str | None


@dataclass(frozen=True)
class UserFacts:
    id: int
    username: str
    email: str
    is_active: bool
    role: str
    account_id: int | None


@dataclass(frozen=True)
class AccountFacts:
    id: int
    slug: str
    name: str
    status: str
    owner_id: int | None
    plan_id: int
    plan_slug: str | None
    """None when ``plan_id`` names no plan."""


@dataclass(frozen=True, kw_only=True)
class Diagnosis:
    KIND: ClassVar[str]

    query: str
    steps: tuple[StepResult, ...]
    database: str
    started_at: datetime
    duration_s: float

    @property
    def blocking(self) -> StepResult | None:
        """The first failed step: the verdict."""
        return next((step for step in self.steps if step.status is Status.FAIL), None)

    @property
    def usable(self) -> bool:
        return self.blocking is None

    @property
    def warnings(self) -> tuple[StepResult, ...]:
        return tuple(step for step in self.steps if step.status is Status.WARN)


@dataclass(frozen=True, kw_only=True)
class UserDiagnosis(Diagnosis):
    KIND: ClassVar[str] = "doctor.user"

    matched_by: str
    user: UserFacts
    account: AccountFacts | None


@dataclass(frozen=True, kw_only=True)
class TenantDiagnosis(Diagnosis):
    KIND: ClassVar[str] = "doctor.tenant"

    account: AccountFacts
