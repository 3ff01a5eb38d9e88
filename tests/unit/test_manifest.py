"""tsdeploy.manifest is the one list of what the deploy writes: the roles' source agrees with it.

The roles are read as source (ast), not run: every file a role writes is a `put_managed(ctx, KEY, ...)` call
with a manifest key, every manifest entry is written by a role, and the packages and fixed directories in
the manifest (used by `generate vm`) are the ones the roles' packages.install / files.directory calls name.
"""

from __future__ import annotations

import ast
import importlib
import pathlib
import re
from collections.abc import Iterator

import pytest

from tsdeploy import ROOT, TEMPLATES_DIR, manifest

ROLES_DIR = ROOT / "roles"
#: The deploy user's upload dirs are pyinfra plumbing for secret uploads, not part of a hand-run host.
PLUMBING = {"/var/lib/tsdeploy-upload"}


def _calls(name: str) -> Iterator[tuple[pathlib.Path, ast.Call]]:
    """Every call of `name` (a function or `module.function`) in roles/, with its file."""
    for path in sorted(ROLES_DIR.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and ast.unparse(node.func) == name:
                yield path, node


def _pattern(node: ast.expr) -> re.Pattern[str]:
    """A string literal or f-string as a regex (each {...} matches anything)."""
    if isinstance(node, ast.Constant):
        return re.compile(re.escape(node.value))
    assert isinstance(node, ast.JoinedStr), ast.unparse(node)
    return re.compile("".join(re.escape(part.value) if isinstance(part, ast.Constant) else ".+"
                              for part in node.values))


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((keyword.value for keyword in call.keywords if keyword.arg == name), None)


def _role_of(path: pathlib.Path) -> str:
    return path.relative_to(ROLES_DIR).parts[0]


def _put_managed_keys() -> list[tuple[str, re.Pattern[str]]]:
    return [(_role_of(path), _pattern(call.args[1])) for path, call in _calls("put_managed")]


def test_every_key_a_role_puts_is_a_manifest_entry_of_that_role() -> None:
    keys = {item.key: item.role for item in manifest.MANAGED_FILES}
    for role, pattern in _put_managed_keys():
        matching = [key for key in keys if pattern.fullmatch(key)]
        assert matching, f"roles/{role} puts {pattern.pattern!r}, which is not in tsdeploy.manifest"
        assert {keys[key] for key in matching} == {role}, f"{pattern.pattern!r} belongs to another role"


def test_every_manifest_entry_is_put_by_its_role() -> None:
    puts = _put_managed_keys()
    for item in manifest.MANAGED_FILES:
        assert any(role == item.role and pattern.fullmatch(item.key) for role, pattern in puts), \
            f"no put_managed call in roles/{item.role} writes {item.key}"


@pytest.mark.parametrize("helper", ["files.put", "put_rendered", "put_secret_rendered", "put_secret_local",
                                    "files.template"])
def test_roles_write_config_files_only_through_put_managed(helper: str) -> None:
    # put_managed itself uploads with files.put; the one other upload is the app's release wheelhouse (an
    # artifact, not a configuration file).
    allowed = {ROLES_DIR / "common" / "files.py", ROLES_DIR / "app" / "install.py"}
    sites = [f"{path.relative_to(ROOT)}:{call.lineno}" for path, call in _calls(helper) if path not in allowed]
    assert sites == [], f"{helper} bypasses tsdeploy.manifest at {sites}"


def test_paths_the_roles_name_are_the_manifests(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT))
    firewall, sshd, nginx_configure = (importlib.import_module(f"roles.{name}")
                                       for name in ("common.firewall", "common.sshd", "nginx.configure"))
    assert firewall.CONF == manifest.get("common/nftables.conf.j2").path
    assert sshd.DROP_IN == manifest.get("common/sshd_hardening.conf.j2").path
    assert nginx_configure.SITE_AVAILABLE == manifest.get("nginx/talentsphere.conf.j2").path


@pytest.mark.parametrize("role", manifest.PACKAGES)
def test_manifest_packages_are_the_ones_the_role_installs(role: str) -> None:
    # Roles install with the common role's packages.install (or pyinfra's apt.packages: same `packages=`).
    calls = sorted([*_calls("packages.install"), *_calls("apt.packages")],
                   key=lambda found: (found[0], found[1].lineno))
    installed = [_pattern(element) for path, call in calls if _role_of(path) == role
                 for element in _keyword(call, "packages").elts]
    listed = [name.format(pg_version=15) for name in manifest.PACKAGES[role]]
    assert len(installed) == len(listed), f"roles/{role} installs {[p.pattern for p in installed]}"
    for pattern, name in zip(installed, listed):
        assert pattern.fullmatch(name), f"roles/{role} installs {pattern.pattern!r}, the manifest says {name!r}"


def _constant_path_calls() -> Iterator[tuple[str, tuple[str, ...]]]:
    """(role, (path, user, group, mode, kind)) of files.directory / files.file calls on a literal path."""
    for helper, directory in (("files.directory", True), ("files.file", False)):
        for path, call in _calls(helper):
            target = _keyword(call, "path")
            present = _keyword(call, "present")
            if not isinstance(target, ast.Constant) or (present is not None and not present.value):
                continue
            if target.value in PLUMBING:
                continue
            values = tuple(ast.literal_eval(_keyword(call, key)) for key in ("path", "user", "group", "mode"))
            yield _role_of(path), (*values, directory)


def test_fixed_directories_and_modes_the_roles_set_are_in_the_manifest() -> None:
    listed = {(item.role, (item.path, item.user, item.group, item.mode, item.directory))
              for item in manifest.MANAGED_PATHS if isinstance(item.path, str)}
    found = set(_constant_path_calls())
    assert found == listed


def test_every_template_is_a_manifest_entry() -> None:
    # A template outside the manifest would be written by no role, generated by no bundle, checked by no drift test.
    listed = {item.template for item in manifest.MANAGED_FILES if item.template}
    templates = {path.relative_to(TEMPLATES_DIR).as_posix() for path in TEMPLATES_DIR.rglob("*.j2")}
    assert templates == listed


def test_system_users_are_the_ones_the_roles_create() -> None:
    created = sorted((_role_of(path), *(ast.literal_eval(_keyword(call, key)) for key in ("home", "shell")))
                     for path, call in _calls("server.user") if _keyword(call, "system") is not None)
    listed = sorted((user.role, user.home, user.shell) for user in manifest.SYSTEM_USERS)
    assert created == listed
