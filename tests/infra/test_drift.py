"""Drift: every file the deploy manages equals what the deploy writes for that host: content, owner, mode.

The list of managed files is the deploy's own (tsdeploy.manifest). A difference fails with the file name and
a unified diff in which secret values read `***`; a file holding a private key shows no diff at all.
Without the vault, a file that holds secrets cannot be compared and is reported as not run.
"""

from __future__ import annotations

import pytest

from tsdeploy.manifest import ManagedFile, ManifestError
from tsdeploy.verify import redacted_diff
from verifyhosts import Target


def _expected(target: Target, item: ManagedFile) -> str:
    if item.secret and not target.loaded.has_secrets:
        pytest.skip(f"needs secrets: {item.label} holds values from the vault")
    try:
        return item.content(target.ctx)
    except ManifestError as error:
        pytest.skip(f"needs the control node's copy to compare with: {error}")


def _difference(dest: str, item: ManagedFile, expected: str, actual: str, secrets: list[str]) -> str:
    if "PRIVATE KEY" in expected or "PRIVATE KEY" in actual:
        return "(diff hidden: the file holds a private key)"
    return redacted_diff(dest, expected, actual, secrets)


@pytest.mark.control("ts-drift-01")
def test_managed_file_equals_what_the_deploy_renders(any_host: Target, managed_file: ManagedFile) -> None:
    dest = managed_file.dest(any_host.ctx)
    expected = _expected(any_host, managed_file)
    result = any_host.sudo("cat %s", dest)
    assert result.rc == 0, f"{any_host}: {dest} is missing ({result.stderr.strip()})"
    # Compared first so that pytest's assertion introspection never prints the (secret-bearing) contents.
    identical = result.stdout == expected
    secrets = list(any_host.loaded.secrets.values())
    assert identical, (f"{any_host}: {dest} differs from {managed_file.label} as rendered by the deploy:\n"
                       f"{_difference(dest, managed_file, expected, result.stdout, secrets)}")


@pytest.mark.control("ts-drift-01")
def test_managed_file_has_the_owner_group_and_mode_the_deploy_sets(any_host: Target,
                                                                   managed_file: ManagedFile) -> None:
    placed = managed_file.placed(any_host.ctx)
    result = any_host.sudo("stat -c '%%U %%G %%a' %s", placed.dest)
    assert result.rc == 0, f"{any_host}: {placed.dest} is missing ({result.stderr.strip()})"
    actual = tuple(result.stdout.split())
    expected = (placed.user, placed.group, placed.mode.lstrip("0") or "0")
    assert actual == expected, f"{any_host}: {placed.dest} is {' '.join(actual)}, the deploy sets {' '.join(expected)}"
