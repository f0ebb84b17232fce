"""``igny8ctl cluster``: auto-cluster a tenant's keywords, as the app's job does."""

from __future__ import annotations

import math
import os
from contextlib import AbstractContextManager, nullcontext
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from igny8ctl.cli.options import (
    Apply,
    ConfigPath,
    DatabaseUrl,
    FormatOption,
    Profile,
    Yes,
    confirm,
    load,
    output_format_of,
    require_confirmable,
)
from igny8ctl.errors import ConfigError
from igny8ctl.render import OutputFormat

if TYPE_CHECKING:
    from igny8ctl.cluster.base import Progress
    from igny8ctl.cluster.types import ClusterProposal
    from igny8ctl.config import Settings

app = typer.Typer(help="Group a tenant's keywords into clusters (OpenAI or offline).",
                  no_args_is_help=True)


class EngineName(StrEnum):
    OPENAI = "openai"
    LOCAL = "local"


BIGINT = 2**63 - 1
MAX_BATCH_SIZE = 10_000
MAX_CONCURRENCY = 64
MAX_RETRIES = 20

#: What each command of this group can print; a test holds the renderer registry to it.
FORMATS = {
    "cluster.proposal": (OutputFormat.TABLE, OutputFormat.JSON),
    "cluster.result": (OutputFormat.TABLE, OutputFormat.JSON),
}

Wait = Annotated[float, typer.Option(
    "--wait", min=0, help="Seconds to wait for another run on the same tenant to finish.")]


@app.command("run")
def run(
    tenant: Annotated[str, typer.Option("--tenant", "-t", help="Account slug or id.",
                                        show_default=False)],
    site: Annotated[int | None, typer.Option(
        "--site", min=1, max=BIGINT, help="Only this site of the tenant.",
        show_default=False)] = None,
    keyword_ids: Annotated[list[int] | None, typer.Option(
        "--keyword-id", min=1, max=BIGINT,
        help="Cluster these keywords (repeatable; all must be the tenant's).",
        show_default=False)] = None,
    all_keywords: Annotated[bool, typer.Option(
        "--all", help="Re-cluster every non-archived keyword, not only pending ones.")]
    = False,
    engine: Annotated[EngineName, typer.Option(
        "--engine", help="openai: the app's job; local: offline lexical clustering.")]
    = EngineName.OPENAI,
    model: Annotated[str | None, typer.Option(
        "--model", help="Model name [default: from the settings].", show_default=False)]
    = None,
    base_url: Annotated[str | None, typer.Option(
        "--base-url", help="Any OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1 "
        "[default: config.base_url, else api.openai.com].", show_default=False)] = None,
    api_key: Annotated[str | None, typer.Option(
        "--api-key", help="Override the settings' key (or IGNY8CTL_OPENAI_API_KEY); "
        "OPENAI_API_KEY is never read.", show_default=False)] = None,
    no_fallback: Annotated[bool, typer.Option(
        "--no-fallback", help="Never use the system account's settings.")] = False,
    allow_insecure_base_url: Annotated[bool, typer.Option(
        "--allow-insecure-base-url",
        help="Allow plain http:// to a host other than loopback (the key travels in clear).")]
    = False,
    batch_size: Annotated[int | None, typer.Option(
        "--batch-size", min=1, max=MAX_BATCH_SIZE, help="Keywords per request [default: 150, "
        "fewer when max_tokens is small].", show_default=False)] = None,
    concurrency: Annotated[int, typer.Option(
        "--concurrency", min=1, max=MAX_CONCURRENCY, help="Requests in flight at once.")] = 4,
    timeout: Annotated[float, typer.Option(
        "--timeout", min=0.1, help="Seconds to wait for one answer.")] = 120.0,
    max_retries: Annotated[int, typer.Option(
        "--max-retries", min=0, max=MAX_RETRIES, help="Retries on 429, 5xx and timeouts.")] = 3,
    save_plan: Annotated[Path | None, typer.Option(
        "--save-plan", help="Save the proposal to FILE for igny8ctl cluster apply.",
        dir_okay=False, show_default=False)] = None,
    apply: Apply = False,
    yes: Yes = False,
    wait: Wait = 0.0,
    output_format: FormatOption = OutputFormat.TABLE,
    database_url: DatabaseUrl = None,
    config: ConfigPath = None,
    profile: Profile = None,
) -> None:
    """Propose clusters for a tenant's keywords; write them with --apply.

    Exit 0 done, 1 refused (keywords changed), 2 usage or no usable API key, 3 database
    or model failure (nothing written), 4 another run holds the tenant's lock.
    """
    output_format = _checked(output_format, wait=wait, timeout=timeout)
    if engine is EngineName.OPENAI:
        from igny8ctl.cluster import prefetch

        prefetch.start()
    from igny8ctl import api
    from igny8ctl.cluster.settings import Overrides
    from igny8ctl.cluster.types import ClusterRequest

    settings = load(database_url, config, profile)
    if apply:
        require_confirmable(yes)  # before the model is paid for
    request = ClusterRequest(
        tenant=tenant, site_id=site, keyword_ids=tuple(keyword_ids or ()),
        all_keywords=all_keywords, engine=engine.value,
        overrides=Overrides(model=model, base_url=base_url, api_key=api_key,
                            no_fallback=no_fallback,
                            allow_insecure_base_url=allow_insecure_base_url),
        batch_size=batch_size, concurrency=concurrency, timeout_s=timeout,
        max_retries=max_retries,
    )
    label = "requests" if engine is EngineName.OPENAI else "sites"
    with _progress(label) as progress:
        proposal = api.propose_clusters(settings, request, progress, os.environ)
    if save_plan is not None:
        from igny8ctl.outputs import write_output

        write_output(save_plan, api.cluster_plan_text(proposal), "--save-plan")
    _emit(proposal, settings, apply, yes, wait, output_format,
          str(save_plan) if save_plan else None)


@app.command("apply")
def apply_plan(
    plan: Annotated[Path, typer.Argument(help="A plan saved by cluster run --save-plan.",
                                         dir_okay=False, show_default=False)],
    yes: Yes = False,
    wait: Wait = 0.0,
    output_format: FormatOption = OutputFormat.TABLE,
    database_url: DatabaseUrl = None,
    config: ConfigPath = None,
    profile: Profile = None,
) -> None:
    """Write a saved plan without asking the model again; refuse if its keywords changed.

    Exit 0 written, 1 refused (keywords changed), 2 usage, 3 database, 4 lock busy.
    """
    from igny8ctl import api

    output_format = _checked(output_format, wait=wait)
    settings = load(database_url, config, profile)
    _emit(api.load_cluster_plan(settings, plan), settings, True, yes, wait, output_format,
          str(plan))


def _progress(label: str) -> AbstractContextManager[Progress | None]:
    from igny8ctl.render.console import stderr

    console = stderr()
    if not console.is_terminal:
        return nullcontext()
    from igny8ctl.render.cluster import ProgressBar

    return ProgressBar(console, f"Clustering ({label})")


def _checked(output_format: OutputFormat, **seconds: float) -> OutputFormat:
    """The format, if this group prints it; every duration finite (``nan`` passes ``min``)."""
    from igny8ctl.render import renderer

    for name, value in seconds.items():
        if not math.isfinite(value):
            raise ConfigError(f"--{name} must be a finite number of seconds", key=f"--{name}")
    renderer("cluster.result", output_format_of(output_format))
    return output_format


def _emit(proposal: ClusterProposal, settings: Settings, apply: bool, yes: bool, wait: float,
          output_format: OutputFormat, plan: str | None) -> None:
    from igny8ctl import api
    from igny8ctl.cluster.types import ClusterResult
    from igny8ctl.render import emit
    from igny8ctl.render.console import stderr

    if output_format is OutputFormat.TABLE:
        emit(proposal, output_format)
    if not apply:
        if output_format is OutputFormat.JSON:
            emit(proposal, output_format)
            return
        hint = "Preview only: nothing was written. Write it with --apply"
        hint += f", or later with: igny8ctl cluster apply {plan}" if plan else \
            ", or save it with --save-plan FILE"
        stderr().print(hint, highlight=False, markup=False, soft_wrap=True)
        return
    clusters = sum(len(site.clusters) for site in proposal.sites)
    confirm(f"Write {clusters} clusters ({proposal.assigned} keywords) for tenant "
            f"{proposal.tenant.slug}?", yes)
    emit(ClusterResult(proposal, api.apply_clusters(settings, proposal, wait, plan)),
         output_format)
