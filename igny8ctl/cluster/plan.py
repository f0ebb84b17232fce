"""Cluster plan files: a proposal saved (``kind`` "cluster.plan", through
``igny8ctl.plans``), to be reviewed and written later without asking the model again.

A plan holds per site the selected keyword ids, their fingerprint and the proposed
clusters; never an API key (the settings are described, not copied). A plan read back is
untrusted: its body is validated strictly here (exact fields and types, ids within
bigint, bounded names, each site once, every keyword of a site exactly once, in a
cluster or unclustered); that the ids are the tenant's is checked against the database
by the writer before anything is written.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from igny8ctl.cluster.base import Usage
from igny8ctl.cluster.contract import printable_text
from igny8ctl.cluster.types import (
    INVENTED_KEPT,
    ClusterProposal,
    KeywordIds,
    ProposedCluster,
    SiteProposal,
    SkippedSite,
)
from igny8ctl.errors import ConfigError
from igny8ctl.plans import plan_text as framed
from igny8ctl.plans import read_plan
from igny8ctl.render.text import listing, printable
from igny8ctl.tenants import Tenant

KIND = "cluster.plan"
BIGINT = 2**63 - 1
NAME_LENGTH = 255

Id = Annotated[int, Field(ge=1, le=BIGINT)]
Count = Annotated[int, Field(ge=0, le=BIGINT)]
Name = Annotated[str, Field(min_length=1, max_length=NAME_LENGTH, pattern=r"\S")]
Text = Annotated[str, Field(max_length=10_000)]
Short = Annotated[str, Field(max_length=2048)]


def _written(text: str) -> str:
    """Text the writer will store: no control characters or lone surrogates."""
    if not printable_text(text):
        raise ValueError("control characters or lone surrogates in a cluster's text")
    return text


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class _Tenant(_Strict):
    id: Id
    slug: Name


class _Usage(_Strict):
    requests: Count
    retries: Count
    prompt_tokens: Count
    completion_tokens: Count


class _Skipped(_Strict):
    site_id: Id
    keywords: Count
    reason: Short


class _Cluster(_Strict):
    name: Annotated[Name, AfterValidator(_written)]
    description: Annotated[Text, AfterValidator(_written)]
    volume: int = Field(ge=-BIGINT, le=BIGINT)
    sample: list[Annotated[str, Field(max_length=NAME_LENGTH)]] = Field(max_length=10)
    existing_id: Id | None
    keyword_ids: list[Id] = Field(min_length=1)


class _Site(_Strict):
    site_id: Id
    fingerprint: str = Field(pattern=r"^[0-9a-f]{64}$")
    keyword_ids: list[Id]
    unclustered_ids: list[Id]
    invented: list[Text] = Field(max_length=INVENTED_KEPT)
    invented_count: Count
    duplicates: Count
    clusters: list[_Cluster]

    @model_validator(mode="after")
    def _every_keyword_once(self) -> _Site:
        selected = set(self.keyword_ids)
        placed = [i for c in self.clusters for i in c.keyword_ids] + self.unclustered_ids
        names = [c.name for c in self.clusters]
        if len(selected) != len(self.keyword_ids):
            raise ValueError(f"site {self.site_id} selects a keyword twice")
        strangers = sorted(set(placed) - selected)
        if strangers:
            raise ValueError(f"site {self.site_id} places keyword(s) {listing(strangers)} "
                             "that were not selected")
        if len(placed) != len(set(placed)) or len(placed) != len(selected):
            raise ValueError(f"site {self.site_id} must place each selected keyword exactly "
                             "once (in one cluster, or unclustered)")
        if len(names) != len(set(names)):
            raise ValueError(f"site {self.site_id} repeats a cluster name")
        return self


class _Plan(_Strict):
    """The body; the frame (schema_version, tool, kind) is ``igny8ctl.plans``'."""

    schema_version: int
    tool: dict[str, Any]
    kind: str
    created_at: datetime = Field(strict=False)
    database: Short
    tenant: _Tenant
    engine: Annotated[str, Field(pattern="^(openai|local)$")]
    model: Short | None
    settings: Short | None
    usage: _Usage
    elapsed_s: float = Field(ge=0, allow_inf_nan=False)
    skipped: list[_Skipped]
    sites: list[_Site] = Field(min_length=1)

    @model_validator(mode="after")
    def _each_site_once(self) -> _Plan:
        sites = [s.site_id for s in self.sites]
        if len(sites) != len(set(sites)):
            raise ValueError("a site appears twice")
        return self


def plan_text(proposal: ClusterProposal) -> str:
    return framed(KIND, plan_body(proposal))


def plan_body(proposal: ClusterProposal) -> dict[str, Any]:
    return {
        "created_at": proposal.created_at.isoformat(),
        "database": proposal.database,
        "tenant": {"id": proposal.tenant.id, "slug": proposal.tenant.slug},
        "engine": proposal.engine,
        "model": proposal.model,
        "settings": proposal.settings_source,
        "usage": {"requests": proposal.usage.requests, "retries": proposal.usage.retries,
                  "prompt_tokens": proposal.usage.prompt_tokens,
                  "completion_tokens": proposal.usage.completion_tokens},
        "elapsed_s": round(proposal.elapsed_s, 3),
        "skipped": [{"site_id": s.site_id, "keywords": s.keywords, "reason": s.reason}
                    for s in proposal.skipped],
        "sites": [{
            "site_id": site.site_id,
            "fingerprint": site.fingerprint,
            "keyword_ids": list(site.keyword_ids()),
            "unclustered_ids": list(site.unclustered_ids),
            "invented": list(site.invented),
            "invented_count": site.invented_count,
            "duplicates": site.duplicates,
            "clusters": [{
                "name": c.name, "description": c.description, "volume": c.volume,
                "sample": list(c.sample), "existing_id": c.existing_id,
                "keyword_ids": list(c.keyword_ids),
            } for c in site.clusters],
        } for site in proposal.sites],
    }


def load_plan(path: Path) -> ClusterProposal:
    """The proposal a plan file holds, once its shape is valid; a usage error otherwise."""
    document = read_plan(path, KIND)
    try:
        plan = _Plan.model_validate(document)
    except (ValidationError, ValueError) as error:
        raise ConfigError(f"{path} is not a valid cluster plan: {_first_problem(error)}",
                          key="PLAN") from None
    return ClusterProposal(
        tenant=Tenant(plan.tenant.id, plan.tenant.slug), engine=plan.engine, model=plan.model,
        settings_source=plan.settings,
        sites=tuple(_site(site) for site in plan.sites),
        skipped=tuple(SkippedSite(s.site_id, s.keywords, s.reason) for s in plan.skipped),
        usage=Usage(plan.usage.requests, plan.usage.retries, plan.usage.prompt_tokens,
                    plan.usage.completion_tokens),
        elapsed_s=plan.elapsed_s, created_at=plan.created_at, database=plan.database)


def _site(site: _Site) -> SiteProposal:
    return SiteProposal(
        site_id=site.site_id, fingerprint=site.fingerprint,
        clusters=tuple(ProposedCluster(
            name=c.name, description=c.description, keyword_ids=KeywordIds(sorted(c.keyword_ids)),
            volume=c.volume, sample=tuple(c.sample), existing_id=c.existing_id)
            for c in site.clusters),
        unclustered_ids=KeywordIds(sorted(site.unclustered_ids)), invented=tuple(site.invented),
        invented_count=site.invented_count,
        duplicates=site.duplicates)


def _first_problem(error: ValidationError | ValueError) -> str:
    """Where and what, in one line; never the offending value (a plan may hold anything)."""
    if isinstance(error, ValidationError):
        first = error.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "the plan"
        message = str(first["msg"]).removeprefix("Value error, ")
        return printable(f"{where}: {message}")[:300]
    return printable(str(error))[:300]
