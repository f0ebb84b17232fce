"""Cluster proposals and runs for people (Rich on a terminal, plain columns when piped) and
for machines (enveloped JSON: ``cluster.proposal``, ``cluster.result``), plus the progress
bar the CLI hands to the core. Names and keywords come from the database or the model:
they are printed through ``safe``, escaped. Rich is imported only by the table renderers."""

from __future__ import annotations

import json
from itertools import islice
from types import TracebackType
from typing import TYPE_CHECKING, Any

from igny8ctl.cluster.plan import plan_body
from igny8ctl.cluster.types import ClusterApplied, ClusterProposal, ClusterResult, SiteProposal
from igny8ctl.render import dumps
from igny8ctl.render.text import SHOWN, listing

if TYPE_CHECKING:
    from rich.console import Console


def render_proposal(proposal: ClusterProposal, console: Console) -> None:
    from igny8ctl.render.human import safe

    tenant = proposal.tenant
    console.print(safe(f"Tenant {tenant.slug} (id {tenant.id}), engine {proposal.engine}"),
                  highlight=False)
    if proposal.settings_source:
        console.print(f"OpenAI settings: {safe(proposal.settings_source)}", highlight=False)
    for site in proposal.sites:
        _render_site(site, console)
    for skipped in proposal.skipped:
        console.print(f"[yellow]Skipped site {skipped.site_id}[/] ({skipped.keywords} "
                      f"keywords): {safe(skipped.reason)}", highlight=False)
    console.print(safe(summary(proposal)), highlight=False)


def _render_site(site: SiteProposal, console: Console) -> None:
    from rich import box
    from rich.table import Table

    from igny8ctl.render.human import safe

    reused = sum(1 for c in site.clusters if c.existing_id is not None)
    console.print(
        f"\n[bold]Site {site.site_id}[/]: {site.selected} keywords, "
        f"{len(site.clusters)} clusters ({reused} existing), {site.assigned} assigned, "
        f"{len(site.unclustered_ids)} left unclustered", highlight=False)
    table = Table(box=box.SIMPLE_HEAD if console.is_terminal else None, show_edge=False,
                  pad_edge=False)
    table.add_column("cluster")
    table.add_column("keywords", justify="right")
    table.add_column("volume", justify="right")
    table.add_column("sample keywords")
    for cluster in site.clusters:
        marker = " (existing)" if cluster.existing_id is not None else ""
        table.add_row(safe(cluster.name) + marker, str(len(cluster.keyword_ids)),
                      f"{cluster.volume:,}", safe(", ".join(cluster.sample)))
    console.print(table)
    if site.unclustered_ids:
        console.print(f"  unclustered (left pending): keyword ids "
                      f"{listing(islice(site.unclustered_ids, SHOWN), len(site.unclustered_ids))}",
                      highlight=False)
    if site.invented:
        console.print("  [yellow]invented by the model (dropped)[/]: "
                      + safe(listing((json.dumps(t) for t in site.invented[:SHOWN]),
                                     site.invented_count)), highlight=False)
    if site.duplicates:
        console.print(f"  [yellow]{site.duplicates} keyword(s) the model put in a second "
                      "cluster (kept in the first)[/]", highlight=False)


def summary(proposal: ClusterProposal) -> str:
    clusters = [c for site in proposal.sites for c in site.clusters]
    reused = sum(1 for c in clusters if c.existing_id is not None)
    invented = sum(site.invented_count for site in proposal.sites)
    usage = proposal.usage
    parts = [
        f"{len(clusters)} clusters ({len(clusters) - reused} new, {reused} existing)",
        f"{proposal.assigned} keywords assigned",
        f"{proposal.unclustered} left unclustered",
    ]
    if invented:
        parts.append(f"{invented} invented dropped")
    if proposal.engine == "openai":
        retries = f" ({usage.retries} retries)" if usage.retries else ""
        parts.append(f"{usage.requests} requests{retries}, {usage.prompt_tokens:,} tokens in, "
                     f"{usage.completion_tokens:,} out")
    return "Proposal: " + "; ".join(parts) + f"; {proposal.elapsed_s:.2f}s"


def render_result(result: ClusterResult, console: Console) -> None:
    """The run only: the proposal was printed before the confirmation."""
    applied = result.applied
    console.print(
        f"[bold green]Applied[/] run {applied.run_id}: {applied.created} clusters created, "
        f"{applied.reused} reused, {applied.assigned} keywords assigned in "
        f"{len(applied.sites)} site transaction(s), {applied.elapsed_s:.2f}s", highlight=False)
    console.print(f"Undo with: igny8ctl fix undo {applied.run_id}", highlight=False,
                  markup=False)


def proposal_json(proposal: ClusterProposal) -> str:
    return dumps(ClusterProposal.KIND, plan_body(proposal))


def result_json(result: ClusterResult) -> str:
    return dumps(ClusterResult.KIND, {"proposal": plan_body(result.proposal),
                                      "applied": _applied(result.applied)})


def _applied(applied: ClusterApplied) -> dict[str, Any]:
    return {
        "run_id": applied.run_id, "clusters_created": applied.created,
        "clusters_reused": applied.reused, "keywords_assigned": applied.assigned,
        "elapsed_s": round(applied.elapsed_s, 3),
        "sites": [s.__dict__ for s in applied.sites],
    }


class ProgressBar:
    """A Rich progress bar over the model requests (or sites, for the local engine)."""

    def __init__(self, console: Console, description: str) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as RichProgress

        self._bar = RichProgress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), console=console, transient=True)
        self._task = self._bar.add_task(description, total=0)

    def __enter__(self) -> ProgressBar:
        self._bar.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._bar.stop()

    def planned(self, steps: int) -> None:
        total = self._bar.tasks[0].total or 0
        self._bar.update(self._task, total=total + steps)

    def done(self, steps: int = 1) -> None:
        self._bar.advance(self._task, steps)
