"""A platform team's defaults for every project, and metrics about its workspaces.

Configured in ``lockgate.yaml`` under ``plugins.teamdefaults``::

    plugins:
      teamdefaults:
        team: data-platform
        project_name_prefix: dp-
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from lockgate.plugin import MetricsContext, hookimpl


@attrs.frozen
class Settings:
    """``plugins.teamdefaults:`` in lockgate.yaml."""

    team: str = "platform"
    project_name_prefix: str = ""


@hookimpl
def register_settings() -> type:
    return Settings


@hookimpl
def on_config_load(project_root: Path | None, settings: Settings) -> Mapping[str, Any]:
    # A default only: a project.name written in lockgate.yaml still wins.
    base = project_root.name if project_root is not None else "unnamed"
    return {"project": {"name": f"{settings.project_name_prefix}{base}"}}


@hookimpl
def on_metrics_collect(context: MetricsContext) -> Mapping[str, float]:
    workspaces = 0
    components = 0
    if context.project_root is not None:
        root = context.project_root / "workspaces"
        if root.is_dir():
            for ws in (p for p in root.iterdir() if p.is_dir()):
                workspaces += 1
                components += sum(
                    1
                    for kind in ws.iterdir()
                    if kind.is_dir()
                    for c in kind.iterdir()
                    if c.is_dir()
                )
    return {"workspaces": workspaces, "components": components}
