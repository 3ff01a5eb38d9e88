"""What the deploy manages on a host, collected from the roles that run there: files, paths, users, packages.

Each role declares its own in `roles/<role>/manifest.py` (the list its operations put, `tsdeploy generate
vm` bundles and the verify drift check compares); this module only walks the registry. A file's content is
a template under templates/ rendered with the host's context, or a control-node file the inventory points
at (TLS certificates and keys), copied as is.

Files the deploy edits line by line (the sysctl drop-in, via pyinfra's server.sysctl) are not here: their
content depends on the host (kernel-wide sysctls are skipped in containers).
"""

from __future__ import annotations

from roles import registry
from tsdeploy.rolespec import Context, ManagedFile, ManagedPath, ManifestError

__all__ = ["ManagedFile", "ManagedPath", "ManifestError", "files_for", "get", "packages_for", "paths_for",
           "users_for"]


def _roles(ctx: Context) -> list[registry.Role]:
    return registry.roles_for(ctx["host"]["groups"])


def every_file() -> list[ManagedFile]:
    """Every role's files, in deploy order."""
    return [item for entry in registry.ROLES for item in entry.spec.files]


def get(key: str) -> ManagedFile:
    """The managed file `key`; an unknown key is an error listing the known ones."""
    known = {item.key: item for item in every_file()}
    try:
        return known[key]
    except KeyError:
        raise ManifestError(f"{key!r} is not a managed file of any role; known keys: {', '.join(known)}; "
                            "fix: add it to the FILES of roles/<role>/manifest.py") from None


def files_for(ctx: Context) -> list[ManagedFile]:
    """The files the deploy writes on the host of `ctx`, in the order the roles write them."""
    return [item for entry in _roles(ctx) for item in entry.spec.files if item.applies_to(ctx)]


def paths_for(ctx: Context) -> list[tuple[str, ManagedPath]]:
    """(role, path) for the directories and existing files whose owner and mode the deploy sets on the host."""
    return [(entry.name, item) for entry in _roles(ctx) for item in entry.spec.paths if item.applies(ctx)]


def users_for(ctx: Context) -> list[dict[str, str]]:
    """The system users the deploy creates on the host of `ctx`."""
    return [user.resolve(ctx) for entry in _roles(ctx) for user in entry.spec.users]


def packages_for(ctx: Context) -> list[str]:
    """The Debian packages the roles install on the host of `ctx`."""
    return [name for entry in _roles(ctx) for name in entry.spec.packages(ctx)]
