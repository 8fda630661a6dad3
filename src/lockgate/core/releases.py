"""Materialized revisions ("releases"): a revision's files laid out as a directory.

A release lives at ``.lockgate/releases/<revision>/`` and is immutable once it exists: it
is built in a temporary directory beside it and renamed into place, so a release
directory is always complete. Validators read releases, and the builtin directory target
deploys them, so a revision is materialized once whatever uses it.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lockgate.core.project import Project

__all__ = ["RELEASES_DIRNAME", "ensure_release", "release_path", "remove_tree"]

RELEASES_DIRNAME = "releases"


def release_path(project: Project, revision: str) -> Path:
    """Where the release of ``revision`` lives (whether or not it exists yet)."""
    return project.state_dir / RELEASES_DIRNAME / revision


def ensure_release(project: Project, revision: str) -> Path:
    """The release directory of ``revision``, materialized from the content store if needed."""
    final = release_path(project, revision)
    if final.is_dir():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".tmp-{revision[:16]}-{uuid.uuid4().hex[:8]}"
    content = project.content()
    try:
        content.materialize(content.get_manifest(revision), tmp, project.config.staging.link)
        try:
            tmp.rename(final)
        except OSError:
            if not final.is_dir():  # not a concurrent builder that won the race
                raise
    finally:
        if tmp.exists():
            remove_tree(tmp)
    return final


def remove_tree(path: Path) -> None:
    """Remove a release (its files are read-only, but its directories are not)."""
    shutil.rmtree(path)
