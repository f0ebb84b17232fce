"""Plan files: a proposal saved as JSON, to be reviewed and written later without asking the
model again.

A plan holds keyword ids, the fingerprint of their text/site/cluster/status, and the
proposed clusters; never an API key (the settings are described, not copied). Loading
validates the shape strictly, so a hand-edited plan cannot assign a keyword that was not
selected (and fingerprinted) or assign one twice.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from igny8ctl.cluster.base import Usage
from igny8ctl.cluster.job import ClusterProposal, ProposedCluster, SiteProposal, SkippedSite
from igny8ctl.cluster.settings import Tenant
from igny8ctl.errors import ConfigError

FORMAT = "igny8ctl-cluster-plan"
VERSION = 1


def plan_text(proposal: ClusterProposal) -> str:
    return json.dumps(plan_document(proposal), indent=1, ensure_ascii=False) + "\n"


def plan_document(proposal: ClusterProposal) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": VERSION,
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
            "keyword_ids": list(site.keyword_ids),
            "unclustered_ids": list(site.unclustered_ids),
            "invented": list(site.invented),
            "duplicates": site.duplicates,
            "clusters": [{
                "name": c.name, "description": c.description, "volume": c.volume,
                "sample": list(c.sample), "existing_id": c.existing_id,
                "keyword_ids": list(c.keyword_ids),
            } for c in site.clusters],
        } for site in proposal.sites],
    }


def load_plan(path: Path) -> ClusterProposal:
    try:
        document = json.loads(path.read_text())
    except OSError as error:
        raise ConfigError(f"cannot read plan {path}: {error.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ConfigError(f"{path} is not a cluster plan: not JSON") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ConfigError(f"{path} is not a cluster plan (no \"format\": \"{FORMAT}\")")
    if document.get("version") != VERSION:
        raise ConfigError(f"{path}: plan version {document.get('version')!r} is not supported "
                          f"(this igny8ctl writes version {VERSION})")
    try:
        proposal = _proposal(document)
    except (KeyError, TypeError, ValueError) as error:
        raise ConfigError(f"{path} is not a valid cluster plan ({type(error).__name__}: "
                          f"{error})") from None
    for site in proposal.sites:
        selected = set(site.keyword_ids)
        assigned = [i for c in site.clusters for i in c.keyword_ids]
        names = [c.name for c in site.clusters]
        if len(assigned) != len(set(assigned)) or not selected.issuperset(assigned) \
                or len(names) != len(set(names)):
            raise ConfigError(f"{path}: site {site.site_id} assigns keywords that were not "
                              "selected, assigns one twice, or repeats a cluster name")
    if not proposal.sites:
        raise ConfigError(f"{path}: the plan has no sites")
    return proposal


def _proposal(document: dict[str, Any]) -> ClusterProposal:
    usage = document["usage"]
    return ClusterProposal(
        tenant=Tenant(int(document["tenant"]["id"]), str(document["tenant"]["slug"])),
        engine=str(document["engine"]),
        model=_optional(document.get("model")),
        settings_source=_optional(document.get("settings")),
        sites=tuple(_site(site) for site in document["sites"]),
        skipped=tuple(SkippedSite(int(s["site_id"]), int(s["keywords"]), str(s["reason"]))
                      for s in document["skipped"]),
        usage=Usage(int(usage["requests"]), int(usage["retries"]),
                    int(usage["prompt_tokens"]), int(usage["completion_tokens"])),
        elapsed_s=float(document["elapsed_s"]),
        created_at=datetime.fromisoformat(document["created_at"]),
        database=str(document["database"]),
    )


def _site(site: dict[str, Any]) -> SiteProposal:
    return SiteProposal(
        site_id=int(site["site_id"]),
        keyword_ids=tuple(int(i) for i in site["keyword_ids"]),
        fingerprint=str(site["fingerprint"]),
        clusters=tuple(ProposedCluster(
            name=_name(c["name"]), description=str(c["description"]),
            keyword_ids=tuple(int(i) for i in c["keyword_ids"]), volume=int(c["volume"]),
            sample=tuple(str(s) for s in c["sample"]),
            existing_id=None if c.get("existing_id") is None else int(c["existing_id"]),
        ) for c in site["clusters"]),
        unclustered_ids=tuple(int(i) for i in site["unclustered_ids"]),
        invented=tuple(str(s) for s in site["invented"]),
        duplicates=int(site["duplicates"]),
    )


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("a cluster without a name")
    return value


def _optional(value: Any) -> str | None:
    return None if value is None else str(value)
