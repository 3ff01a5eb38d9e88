"""`tsdeploy generate vm`: every file the deploy writes on one host, as a bundle an operator installs by hand.

The bundle (DIR) holds:

    root/...        each file of tsdeploy.manifest for the host, at its path on the host, with its mode
    manifest.json   path, owner, group, mode, sha256, role and secrecy of every file
    SHA256SUMS      the same hashes in `sha256sum -c` form (run it from root/)
    install.sh      idempotent installer: packages, directories, files (install -o -g -m), validation,
                    reload or restart of only what changed
    README.md       the same steps for a reader, plus what the deploy does that is not a file (database role
                    and extensions, the app release from a wheelhouse, migrations)

Content comes from `tsdeploy.context.build_context` + `tsdeploy.manifest` (which renders through
`tsdeploy.templating.render`): the one rendering path, so each file is byte-identical to the deployed one.
Without --with-secrets the vault is never read: secrets read `__SECRET_<vault variable>__`, a digest of a
secret `__SECRET_SHA256_OF_<vault variable>__`, and TLS private keys are left out as `__SECRET_<variable>__`.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import pathlib
import shutil
from typing import Any

import click
import jinja2

import roles
from roles import registry
from roles.registry import Group
from tsdeploy import artifacts, manifest
from tsdeploy import inventory as inventory_module
from tsdeploy.context import build_context

TEMPLATES_DIR = pathlib.Path(__file__).parent / "vm_templates"
class BundleError(click.ClickException):
    """The bundle cannot be generated; the message names the input and the fix."""


@dataclasses.dataclass(frozen=True)
class BundleFile:
    """One file of the bundle: where it goes on the host and what it holds."""

    role: str
    path: str
    user: str
    group: str
    mode: str
    secret: bool
    source: str
    trigger: str
    content: str
    #: The control-node file (a certificate) was not there when the bundle was generated: the operator puts it in.
    supplied: bool = False

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content.encode()).hexdigest()

    @property
    def relative(self) -> str:
        """The path under the bundle's root/ directory."""
        return f"root{self.path}"

    def record(self) -> dict[str, Any]:
        """The manifest.json entry."""
        record = {"path": self.path, "owner": self.user, "group": self.group, "mode": self.mode,
                  "sha256": self.sha256, "role": self.role, "secret": self.secret, "source": self.source}
        return record | ({"supplied_by_operator": True} if self.supplied else {})


def trigger_of(item: manifest.ManagedFile) -> str:
    """What a change of this file sets off in install.sh (validation and reload): its own, or its role's."""
    return item.trigger or item.role


def _placeholders(inventory: inventory_module.Inventory, hostname: str) -> dict[str, str]:
    """Placeholder -> its name, for the secret settings of a host loaded without the vault."""
    variables = inventory.hostvars[hostname]
    return {value: value.strip("_").removeprefix("SECRET_") for name, value in variables.items()
            if name in registry.secret_variables() and isinstance(value, str)}


def _mask_digests(text: str, placeholders: dict[str, str]) -> str:
    """Replace the sha256 of each placeholder (Redis ACL passwords) with a placeholder naming the secret."""
    for value, name in placeholders.items():
        text = text.replace(hashlib.sha256(value.encode()).hexdigest(), f"__SECRET_SHA256_OF_{name}__")
    return text


def _local_placeholder(item: manifest.ManagedFile) -> str:
    return f"__SECRET_{item.variable or item.label}__\n"


def bundle_files(inventory: inventory_module.Inventory, hostname: str, with_secrets: bool,
                 ) -> tuple[dict[str, Any], list[BundleFile]]:
    """The host's context and every file the deploy writes on it, with the content it writes."""
    ctx = build_context(inventory, hostname)
    placeholders = {} if with_secrets else _placeholders(inventory, hostname)
    files = []
    for item in manifest.files_for(ctx):
        supplied = False
        if item.secret and item.template is None and not with_secrets:
            content = _local_placeholder(item)
        elif item.template is None and not with_secrets and not pathlib.Path(item.source_path_unchecked(ctx)).is_file():
            # A preview bundle (no secrets) may be generated where the certificates are not: a named placeholder.
            content, supplied = f"__FILE_{item.variable or item.label}__\n", True
        else:
            try:
                content = _mask_digests(item.content(ctx), placeholders)
            except manifest.ManifestError as error:
                raise BundleError(str(error)) from None
        placed = item.placed(ctx)
        files.append(BundleFile(role=item.role, path=placed.dest, user=placed.user,
                                group=placed.group, mode=placed.mode, secret=item.secret, source=item.label,
                                trigger=trigger_of(item), content=content, supplied=supplied))
    return ctx, files


#: The parts of install.sh and README.md a role may add (macros of `roles/<role>/vm.j2`), in the order used.
ROLE_HOOKS = ("before_packages", "install_files", "activate", "readme", "validates")


@functools.cache
def _environment() -> jinja2.Environment:
    """Jinja2 for install.sh and README.md and the roles' parts of them (host files are rendered only by
    tsdeploy.templating)."""
    loader = jinja2.FileSystemLoader([str(TEMPLATES_DIR), str(pathlib.Path(roles.__file__).parent)])
    return jinja2.Environment(loader=loader, undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                              trim_blocks=True, lstrip_blocks=True, autoescape=False)


def _role_hooks(ctx: dict[str, Any], script: dict[str, Any]) -> list[dict[str, Any]]:
    """Per role of the host, in deploy order: its install.sh and README.md parts (None where it has none)."""
    hooks = []
    for entry in registry.roles_for(ctx["host"]["groups"]):
        try:
            module = _environment().get_template(f"{entry.name}/vm.j2").make_module(script)
        except jinja2.TemplateNotFound:
            continue
        hooks.append({name: getattr(module, name, None) for name in ROLE_HOOKS})
    return hooks


def _sysctl_lines(settings: dict[str, int]) -> list[str]:
    # The format pyinfra's server.sysctl(persist=True) writes, so the drop-in matches a deployed host.
    return [f"{key} = {value}" for key, value in settings.items()]


def _copy_release(ctx: dict[str, Any], out: pathlib.Path) -> dict[str, str]:
    """Build (or take from the cache) the app's release wheelhouse and copy it into out/release/."""
    artifact = artifacts.build(ctx["host"]["debian_release"])
    name = f"{artifact.release_id}-py{artifact.python_version}.tar"
    (out / "release").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(artifact.tarball, out / "release" / name)
    return {"id": artifact.release_id, "tarball": name, "wheel": artifact.wheel_name,
            "python": artifact.python_version}


def _script_context(ctx: dict[str, Any], files: list[BundleFile], with_secrets: bool,
                    release: dict[str, str] | None) -> dict[str, Any]:
    groups = ctx["host"]["groups"]
    paths = [dataclasses.asdict(item.placed(ctx)) | {"directory": item.directory, "role": role}
             for role, item in manifest.paths_for(ctx)]
    return {
        "ctx": ctx,
        "groups": groups,
        "files": files,
        "paths": paths,
        "packages": manifest.packages_for(ctx),
        "users": manifest.users_for(ctx),
        "triggers": sorted({item.trigger for item in files}),
        "network_sysctls": _sysctl_lines(ctx["common"]["network_sysctls"]),
        "kernel_sysctls": _sysctl_lines(ctx["common"]["kernel_sysctls"]),
        "with_secrets": with_secrets,
        "secret_files": [item for item in files if item.secret],
        "supplied_files": [item for item in files if item.supplied],
        "release": release,
    }


def _write_file(path: pathlib.Path, content: str, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Created private, then given its recorded mode: a secret is never briefly world-readable.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8", newline="") as handle:
        handle.write(content)
    os.chmod(path, mode)


def write_bundle(inventory: inventory_module.Inventory, hostname: str, out: pathlib.Path,
                 with_secrets: bool = False, with_release: bool = False) -> list[BundleFile]:
    """Write the bundle for `hostname` into `out` (its root/ is replaced); return the files written."""
    if hostname not in inventory.hosts:
        raise BundleError(f"--host {hostname!r} is not in the inventory {inventory.path}; "
                          f"its hosts are: {', '.join(inventory.hosts)}")
    ctx, files = bundle_files(inventory, hostname, with_secrets)
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out / "root", ignore_errors=True)
    for item in files:
        _write_file(out / item.relative, item.content, int(item.mode, 8))
    records = {"host": hostname, "with_secrets": with_secrets, "files": [item.record() for item in files]}
    _write_file(out / "manifest.json", json.dumps(records, indent=2) + "\n", 0o600 if with_secrets else 0o644)
    _write_file(out / "SHA256SUMS", "".join(f"{item.sha256}  .{item.path}\n" for item in files), 0o644)
    release = _copy_release(ctx, out) if with_release and Group.APP in ctx["host"]["groups"] else None
    script = _script_context(ctx, files, with_secrets, release)
    script["role_hooks"] = _role_hooks(ctx, script)
    script["roles"] = [entry.name for entry in registry.roles_for(ctx["host"]["groups"])]
    _write_file(out / "install.sh", _environment().get_template("install.sh.j2").render(script), 0o755)
    _write_file(out / "README.md", _environment().get_template("README.md.j2").render(script), 0o644)
    if with_secrets:
        out.chmod(0o700)
    return files


@click.command("vm")
@click.option("--inventory", "inventory_path", required=True, metavar="DIR",
              type=click.Path(exists=True, file_okay=True, path_type=pathlib.Path),
              help="Inventory directory (hosts.yml + group_vars/).")
@click.option("--host", "hostname", required=True, metavar="HOST", help="The inventory host to generate for.")
@click.option("--out", required=True, metavar="DIR", type=click.Path(file_okay=False, path_type=pathlib.Path),
              help="Bundle directory (created; its root/ is replaced).")
@click.option("--with-secrets", is_flag=True,
              help="Read the vault and write real secrets and TLS keys (the bundle becomes 0700); "
                   "without it, secrets are __SECRET_...__ placeholders and no vault password is needed.")
@click.option("--with-release", is_flag=True,
              help="On an app host, add the app's release wheelhouse (built on this machine, needs PyPI "
                   "unless cached) under release/ for the offline install README.md describes.")
def vm_command(inventory_path: pathlib.Path, hostname: str, out: pathlib.Path, with_secrets: bool,
               with_release: bool) -> None:
    """Write every file the deploy puts on HOST, an install.sh and a README.md, for hosts without pyinfra."""
    try:
        inventory = inventory_module.load(inventory_path, secrets=with_secrets, files=with_secrets)
    except inventory_module.InventoryError as error:
        raise BundleError(f"inventory {inventory_path} cannot be used:\n{error}") from None
    files = write_bundle(inventory, hostname, out, with_secrets, with_release)
    secrets_note = "with secrets" if with_secrets else "secrets as __SECRET_...__ placeholders"
    click.echo(f"wrote {len(files)} files for {hostname} into {out} ({secrets_note}); next: {out}/README.md")
