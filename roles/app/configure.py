"""Stage the app's configuration: changed files are uploaded as candidates next to the live ones.

The env file (secrets), gunicorn.conf.py and the systemd units are rendered from templates/app. A file whose
live content already matches keeps it (only its owner and mode are enforced); a changed one is uploaded to `<path>.tsdeploy-candidate`
(owner and mode set before the content, contents hidden) and lands only during the host's activation
(roles/app/roll.py), when the host is out of the lb's rotation and its release is checked with it.
"""

from __future__ import annotations

from typing import Any

from pyinfra.api import HiddenValue
from pyinfra.operations import files

from roles.app import manifest
from roles.app.roll import CANDIDATE
from roles.common.files import private_temp_dir, put_path, secret_file
from tsdeploy.rolespec import Context


def wanted(ctx: Context) -> dict[str, str]:
    """Each managed app file's live path -> its wanted content."""
    return {item.dest(ctx): item.content(ctx) for item in manifest.FILES}


def stage(ctx: Context, changed: tuple[str, ...]) -> None:
    """Upload the changed files as candidates; remove candidates left for files that no longer change."""
    put_path(ctx, manifest.CONFIG)
    for item in manifest.FILES:
        placed = item.placed(ctx)
        candidate = placed.dest + CANDIDATE
        if placed.dest not in changed:
            # Same content: only its owner and mode may have drifted, and fixing them disturbs nothing.
            files.file(name=f"Keep {placed.dest} {placed.user}:{placed.group} {placed.mode}", path=placed.dest,
                       user=placed.user, group=placed.group, mode=placed.mode)
            files.file(name=f"No staged copy of {placed.dest} (it is up to date)", path=candidate, present=False)
            continue
        secret_file(name=f"Stage {placed.dest} as {candidate} (contents hidden; lands at activation)",
                    dest=candidate, content=HiddenValue(item.content(ctx)), user=placed.user, group=placed.group,
                    mode=placed.mode, temp_dir=private_temp_dir(ctx["host"]["deploy_user"]))


def describe(ctx: Context) -> dict[str, Any]:
    """The paths of the managed files, for the live-state fact."""
    return {"files": [item.dest(ctx) for item in manifest.FILES]}
