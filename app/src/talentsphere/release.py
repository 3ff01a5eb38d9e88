"""Which release this process serves: read once at app creation and reported by /health and /health/ready.

A deploy installs each release into its own virtualenv (``/opt/talentsphere/releases/<id>/``) and points the
``/opt/talentsphere/current`` symlink at the live one; Gunicorn runs ``current/bin/gunicorn``, so
``Path(sys.prefix).resolve()`` is the release directory whose code this process imported, and the deploy
writes the release id into its ``RELEASE`` file. On Render the commit is in ``RENDER_GIT_COMMIT``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

RELEASE_FILE = "RELEASE"
RENDER_COMMIT_VARIABLE = "RENDER_GIT_COMMIT"


def release_id(prefix: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None) -> str | None:
    """The release id: the first line of ``RELEASE`` in the resolved ``sys.prefix``, else
    ``RENDER_GIT_COMMIT``, else None (a development checkout)."""
    directory = Path(sys.prefix if prefix is None else prefix).resolve()
    try:
        lines = (directory / RELEASE_FILE).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:  # absent (or unreadable): not a deployed release directory
        lines = []
    if lines and lines[0].strip():
        return lines[0].strip()
    commit = (os.environ if environ is None else environ).get(RENDER_COMMIT_VARIABLE, "").strip()
    return commit or None
