"""Drift: every file the deploy manages equals what the deploy renders for that host from the inventory.

A difference fails with the file name and a unified diff in which secret values read `***`. Without the
vault, a file whose rendering depends on a secret (it renders differently from two different placeholder
sets) cannot be compared and is reported as not run.
"""

from __future__ import annotations

import os

import pytest

from managed import ManagedFile
from tsdeploy.templating import render
from tsdeploy.verify import redacted_diff
from verifyhosts import Target


def _expected(target: Target, item: ManagedFile) -> str:
    if item.template is not None:
        rendered = render(item.template, target.ctx)
        if target.probe_ctx is not None and render(item.template, target.probe_ctx) != rendered:
            pytest.skip(f"needs secrets: {item.template} holds values from the vault")
        return rendered
    section, key = item.local_key
    source = target.ctx[section][key]
    if not source or not os.access(source, os.R_OK):
        pytest.skip(f"needs the control node's {section} {key} ({source}) to compare with")
    with open(source, encoding="utf-8") as handle:
        return handle.read()


@pytest.mark.control("ts-drift-01")
def test_managed_file_equals_what_the_deploy_renders(any_host: Target, managed_file: ManagedFile) -> None:
    dest = managed_file.dest(any_host.ctx)
    expected = _expected(any_host, managed_file)
    result = any_host.sudo("cat %s", dest)
    assert result.rc == 0, f"{any_host}: {dest} is missing ({result.stderr.strip()})"
    actual = result.stdout
    secrets = list(any_host.loaded.secrets.values())
    # Compared first so that pytest's assertion introspection never prints the (secret-bearing) contents.
    identical = actual == expected
    assert identical, (f"{any_host}: {dest} differs from {managed_file.label} as rendered by the deploy:\n"
                                f"{redacted_diff(dest, expected, actual, secrets)}")
