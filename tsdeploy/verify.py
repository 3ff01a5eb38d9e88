"""`tsdeploy verify`: run the read-only testinfra suite (tests/infra) against an inventory's hosts.

Writes three reports into `--report DIR`: `junit.xml`, `report.html` (pytest-html, self-contained) and
`summary.md` (one row per control of tests/infra/controls.yml: pass / fail / deviation / not run). The exit
status is non-zero when any check fails.

Auditors may have the inventory and SSH access but not the vault password. Then the suite loads the
inventory without the vault (`tsdeploy.inventory.load(..., secrets=False)`: placeholders in place of
secrets), and each check that needs a secret is reported as "not run (needs secret ...)", never as passed.
No secret reaches a report: the suite never prints one, and `redact_reports` replaces any that slipped into
the files as a last line of defence.

The suite reaches the hosts with the inventory's pinned known_hosts file and strict checking, like the
deploy: a host whose key is not pinned is refused before the suite starts (`--trust-new-hosts` records the
keys of new hosts first, tsdeploy.host_keys).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import pathlib
import re
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping

import click

from roles import registry
from tsdeploy import ROOT, controls, host_keys
from tsdeploy import inventory as inventory_module

SUITE_DIR = ROOT / "tests" / "infra"
REPORT_FILES = ("junit.xml", "report.html", "summary.md")
#: The only pytest plugins the suite needs. Autoloading is off (PLUGIN_ENV) because every xdist worker would
#: otherwise import each plugin of the virtualenv (schemathesis, locust, ...): measured 56 s vs 24 s.
PLUGINS = ("-p", "xdist.plugin", "-p", "pytest_metadata.plugin", "-p", "pytest_html.plugin")
PLUGIN_ENV = {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
MASK = "***"
#: Secret-shaped text in config files: KEY=value assignments, URL credentials, Redis ACL and SCRAM verifiers.
_SECRET_PATTERNS = (
    (re.compile(r"(?i)\b([A-Z0-9_]*(PASSWORD|SECRET|TOKEN)[A-Z0-9_]*\s*[=:]\s*)\S+"), rf"\g<1>{MASK}"),
    (re.compile(r"(://[^:/@\s]+:)[^@\s]+@"), rf"\g<1>{MASK}@"),
    (re.compile(r"(^|\s)>\S+"), rf"\g<1>>{MASK}"),
    (re.compile(r"#[0-9a-f]{64}\b"), f"#{MASK}"),
    (re.compile(r"SCRAM-SHA-256\$\S+"), f"SCRAM-SHA-256${MASK}"),
)


@dataclasses.dataclass(frozen=True)
class VerifyInventory:
    """The inventory as the suite sees it: with the vault's secrets, or with placeholders in their place.

    `secrets` maps each secret setting to its value (empty without the vault password).
    """

    inventory: inventory_module.Inventory
    secrets: dict[str, str]
    has_secrets: bool


def secret_values(inventory: inventory_module.Inventory) -> dict[str, str]:
    """Every secret setting of every host (the roles' secret variables), by name."""
    return {name: value for variables in inventory.hostvars.values() for name, value in variables.items()
            if name in registry.secret_variables() and isinstance(value, str) and value}


def load_for_verify(path: str | os.PathLike, *, with_secrets: bool = True) -> VerifyInventory:
    """Load the inventory with its secrets when the vault password is readable, else without them.

    Not validated: verify reports what the hosts are, even for an inventory the deploy would refuse.
    """
    directory = inventory_module.hosts_file(pathlib.Path(path)).parent
    vault_file = inventory_module.find_vault_password_file(directory)
    if with_secrets and vault_file is not None and os.access(vault_file, os.R_OK):
        loaded = inventory_module.load(directory, validate=False)
        return VerifyInventory(loaded, secret_values(loaded), True)
    return VerifyInventory(inventory_module.load(directory, validate=False, secrets=False), {}, False)


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every known secret value, and anything shaped like a credential, with ***."""
    for value in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(value, MASK)
    return "\n".join(_redact_line(line) for line in text.split("\n"))


def _redact_line(line: str) -> str:
    for pattern, replacement in _SECRET_PATTERNS:
        line = pattern.sub(replacement, line)
    return line


def redacted_diff(path: str, expected: str, actual: str, secrets: Iterable[str]) -> str:
    """A unified diff from the rendered file to the file on the host, with secrets shown as ***."""
    diff = difflib.unified_diff(expected.splitlines(keepends=True), actual.splitlines(keepends=True),
                                fromfile=f"{path} (rendered by the deploy)", tofile=f"{path} (on the host)")
    return redact("".join(diff), secrets)


def redact_reports(report_dir: pathlib.Path, secrets: Mapping[str, str]) -> list[str]:
    """Mask any secret value found in the report files; return the names of the secrets that were found."""
    found: set[str] = set()
    for name in REPORT_FILES:
        path = report_dir / name
        if not path.is_file():
            continue
        text = path.read_text()
        for secret_name, value in secrets.items():
            if value and value in text:
                found.add(secret_name)
                text = text.replace(value, MASK)
        path.write_text(text)
    return sorted(found)


def pytest_command(inventory: pathlib.Path, report_dir: pathlib.Path, *, limit: str | None, workers: int,
                   no_secrets: bool) -> list[str]:
    """The pytest invocation behind `verify` (parallel over hosts with pytest-xdist)."""
    command = [sys.executable, "-m", "pytest", *PLUGINS, str(SUITE_DIR), f"--inventory={inventory}",
               f"--junitxml={report_dir / 'junit.xml'}", f"--html={report_dir / 'report.html'}",
               "--self-contained-html", "-p", "no:cacheprovider", "-q", "-rfs", "--color=no",
               f"--rootdir={ROOT}", "-o", "junit_family=xunit1", "-o", "junit_logging=no"]
    if workers > 1:
        command += ["-n", str(workers), "--dist", "loadgroup"]
    if limit:
        command.append(f"--limit={limit}")
    if no_secrets:
        command.append("--no-secrets")
    return command


@click.command()
@click.argument("inventory", type=click.Path(exists=True, file_okay=True, path_type=pathlib.Path))
@click.option("--limit", metavar="GROUP", help="Only check hosts of this group (db, cache, app, lb).")
@click.option("--report", "report_dir", required=True, metavar="DIR",
              type=click.Path(file_okay=False, path_type=pathlib.Path),
              help="Directory for junit.xml, report.html and summary.md (created if missing).")
@click.option("--workers", default=4, show_default=True, metavar="N", envvar="TSDEPLOY_VERIFY_WORKERS",
              help="Parallel pytest-xdist workers (checks are I/O bound: SSH round trips).")
@click.option("--no-secrets", is_flag=True,
              help="Verify as an auditor without the vault password: checks needing a secret are not run.")
@click.option(host_keys.TRUST_FLAG, "trust_new", is_flag=True,
              help="Record the SSH keys of hosts the inventory's known_hosts file does not know yet (ssh-keyscan; "
                   "prints each fingerprint). A changed key is still refused.")
def verify(inventory: pathlib.Path, limit: str | None, report_dir: pathlib.Path, workers: int,
           no_secrets: bool, trust_new: bool) -> None:
    """Verify INVENTORY's hosts read-only against the security baseline and write auditor reports."""
    started = time.monotonic()
    try:
        loaded = load_for_verify(inventory, with_secrets=not no_secrets)
    except inventory_module.InventoryError as error:
        raise click.ClickException(f"cannot read the inventory {inventory}:\n{error}") from None
    if limit and not loaded.inventory.hosts_in(limit):
        groups = ", ".join(sorted(loaded.inventory.groups))
        raise click.BadParameter(f"group {limit!r} has no hosts in {inventory}; use one of: {groups}",
                                 param_hint="--limit")
    report_dir.mkdir(parents=True, exist_ok=True)
    junit = report_dir / "junit.xml"
    junit.unlink(missing_ok=True)
    # Checks are grouped per host (one xdist group each), so more workers than hosts only cost start-up time.
    hosts = loaded.inventory.hosts_in(limit) if limit else loaded.inventory.hosts
    command_line = f"tsdeploy verify {inventory} --report {report_dir}" + (f" --limit {limit}" if limit else "")
    host_keys.require_for_command(loaded.inventory, command_line, hosts,
                                  trust_new=trust_new)
    command = pytest_command(inventory.resolve(), report_dir.resolve(), limit=limit,
                             workers=min(workers, len(hosts)), no_secrets=not loaded.has_secrets)
    click.echo(f">> verifying {inventory} ({'with' if loaded.has_secrets else 'without'} the deploy's secrets)",
               err=True)
    # pytest's progress is a log: it goes to stderr; stdout carries only the report paths.
    completed = subprocess.run(command, cwd=ROOT, check=False, stdout=sys.stderr, env=os.environ | PLUGIN_ENV)
    if not junit.is_file():
        raise click.ClickException(f"the suite stopped before writing {junit} (pytest exit {completed.returncode});"
                                   " its messages are above")
    rows = controls.build_rows(controls.load_catalogue(), controls.read_junit(junit))
    title = f"Verify report: {inventory}" + (f" (--limit {limit})" if limit else "")
    summary = controls.render_summary(rows, title=title, duration_s=time.monotonic() - started)
    (report_dir / "summary.md").write_text(summary)
    leaked = redact_reports(report_dir, loaded.secrets)
    if leaked:
        click.echo(f"!! masked secret values of {', '.join(leaked)} found in the reports", err=True)
    failed = controls.failed_controls(rows)
    click.echo(controls.count_line(rows), err=True)
    for path in REPORT_FILES:
        click.echo(str(report_dir / path))
    if failed or completed.returncode not in (0, 5):
        if failed:
            click.echo(f"failed controls: {', '.join(failed)}", err=True)
        sys.exit(1)
