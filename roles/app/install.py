"""Install: Debian's python3-venv, the app's system user, its directories and the release from the wheelhouse."""

from __future__ import annotations

from pyinfra.operations import files, server

from roles.app import manifest
from roles.app.release import install_release
from roles.common import packages
from roles.common.files import put_path
from tsdeploy import artifacts
from tsdeploy.rolespec import Context


def apply(ctx: Context) -> tuple[str, str]:
    """Install the release this deploy ships; its id and the sha256 of its pinned requirements."""
    app = ctx["app"]
    packages.install(name="Install python3-venv from Debian (release venvs)", packages=manifest.packages(ctx))
    for user in manifest.USERS:
        account = user.resolve(ctx)
        server.group(name=f"Create the {account['name']} system group", group=account["name"], system=True)
        server.user(name=f"Create the {account['name']} system user (no login shell, no home)",
                    user=account["name"], group=account["name"], system=True, shell=account["shell"],
                    home=account["home"], create_home=False, ensure_home=False)
    for path in (manifest.BASE, manifest.RELEASES, manifest.ARTIFACTS):
        put_path(ctx, path)

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
    return artifact.release_id, artifacts.requirements_digest(artifact)
