"""Install: Debian's python3-venv, the app's system user, its directories and the release from the wheelhouse."""

from __future__ import annotations

from typing import Any

from pyinfra.operations import files, server

from roles.app.release import install_release
from roles.common import packages
from tsdeploy import artifacts


def apply(ctx: dict[str, Any]) -> str:
    """Install the release this deploy ships and return its release id."""
    app = ctx["app"]
    packages.install(name="Install python3-venv from Debian (release venvs)", packages=["python3-venv"])
    server.group(name="Create the talentsphere system group", group=app["user"], system=True)
    server.user(name="Create the talentsphere system user (no login shell, no home)", user=app["user"],
                group=app["user"], system=True, shell="/usr/sbin/nologin", home="/nonexistent",
                create_home=False, ensure_home=False)
    for path, mode in ((app["base_dir"], "755"), (app["releases_dir"], "755"), (app["artifacts_dir"], "700")):
        files.directory(name=f"Create {path} (root-owned: the app cannot change its own code)", path=path,
                        user="root", group="root", mode=mode)

    # Built on the control node (hosts never reach PyPI): pinned by `tsdeploy deploy` before pyinfra started,
    # so every app host gets the same release even if app/ is edited meanwhile; else built now.
    artifact = artifacts.for_deploy(ctx["host"]["debian_release"])
    tarball = f"{app['artifacts_dir']}/{artifact.release_id}-py{artifact.python_version}.tar"
    files.put(name=f"Upload the wheelhouse of release {artifact.release_id}", src=str(artifact.tarball),
              dest=tarball, user="root", group="root", mode="600")
    install_release(
        name=f"Install release {artifact.release_id} offline into its own venv",
        releases_dir=app["releases_dir"], current=app["current_dir"], release_id=artifact.release_id,
        tarball=tarball, wheel_name=artifact.wheel_name,
    )
    return artifact.release_id
