"""The role layout as a specification: "a role is a folder", the registry names groups once, adding a role is local.

Each test is named for the rule it checks (see roles/README.md and roles/registry.py). The rules read the roles
through the registry, so a new role is checked by the same tests without editing them.
"""

from __future__ import annotations

import ast
import enum
import importlib
import pathlib
import re
import subprocess
import sys
import types

import pytest
import yaml

from roles import registry
from test_rendering_golden import LAB_SECRETS, _lab_inventory
from tsdeploy import ROOT, checks, manifest, pyinfra_inventory, validation
from tsdeploy import inventory as inventory_module
from tsdeploy.context import build_context
from tsdeploy.rolespec import ManagedFile, ManagedPath, RoleSpec, Variable

ROLES_DIR = ROOT / "roles"
TEMPLATES_DIR = ROOT / "templates"
TSDEPLOY_DIR = ROOT / "tsdeploy"
ROLE_NAMES = [entry.name for entry in registry.ROLES]
#: The files every role folder has (roles/README.md).
ROLE_FILES = ("__init__.py", "variables.py", "context.py", "manifest.py", "tasks.py", "README.md")
#: The declaration modules of a role; every other .py of its folder holds its operations.
DECLARATIONS = {"__init__.py", "variables.py", "context.py", "manifest.py"}
#: The base role (first in the registry, on every host) describes the host: its variables carry no prefix.
BASE = registry.ROLES[0].name
#: Python modules that must import without pyinfra: the control tooling reads role specs without operations.
CONTROL_MODULES = ("tsdeploy.context", "tsdeploy.validation", "tsdeploy.manifest", "tsdeploy.generate.vm",
                   "tsdeploy.generate.render")
NO_PYINFRA = ('import sys; assert not any(m == "pyinfra" or m.startswith("pyinfra.") for m in sys.modules), '
              'sorted(m for m in sys.modules if m.split(".")[0] == "pyinfra")[:5]')


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)


def _tree(path: pathlib.Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _operation_modules(name: str) -> list[pathlib.Path]:
    return sorted(path for path in (ROLES_DIR / name).glob("*.py") if path.name not in DECLARATIONS)


def _string_constants(path: pathlib.Path) -> list[tuple[int, str]]:
    return [(node.lineno, node.value) for node in ast.walk(_tree(path))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)]


def _prefix(name: str) -> str:
    """A role's variables start with its name: app_*, redis_*, nginx_*, postgresql_* (PostgreSQL's own spelling)."""
    return name


def _defined_in() -> dict[str, list[str]]:
    """Variable name -> the roles whose variables.py constructs it (`Variable("name", ...)`)."""
    found: dict[str, list[str]] = {}
    for name in ROLE_NAMES:
        for node in ast.walk(_tree(ROLES_DIR / name / "variables.py")):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Variable"
                    and node.args and isinstance(node.args[0], ast.Constant)):
                found.setdefault(node.args[0].value, []).append(name)
    return found


# 1. A role is a folder ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ROLE_NAMES)
def test_every_registry_role_is_a_folder_with_its_spec_variables_context_manifest_tasks_and_readme(name) -> None:
    folder = ROLES_DIR / name
    missing = [file for file in ROLE_FILES if not (folder / file).is_file()]
    assert not missing, f"roles/{name}/ lacks {missing}"
    spec = importlib.import_module(f"roles.{name}").ROLE
    assert isinstance(spec, RoleSpec), f"roles/{name}/__init__.py ROLE is not a RoleSpec"
    assert registry.role(name).spec is spec
    assert importlib.import_module(f"roles.{name}.variables").VARIABLES == spec.variables
    assert callable(importlib.import_module(f"roles.{name}.context").derive)
    assert importlib.import_module(f"roles.{name}.manifest").FILES == spec.files
    assert callable(registry.role(name).tasks()), f"roles/{name}/tasks.py tasks is not callable"


@pytest.mark.parametrize("name", ROLE_NAMES)
def test_a_role_spec_imports_without_pyinfra(name) -> None:
    result = _python(f"import roles.{name}; {NO_PYINFRA}")
    assert result.returncode == 0, f"import roles.{name} imports pyinfra:\n{result.stderr}"


@pytest.mark.parametrize("module", CONTROL_MODULES)
def test_the_control_modules_import_without_pyinfra(module) -> None:
    result = _python(f"import {module}; {NO_PYINFRA}")
    assert result.returncode == 0, f"import {module} imports pyinfra:\n{result.stderr}"


# 2. The registry --------------------------------------------------------------------------------------------------


def test_role_names_are_unique() -> None:
    assert len(ROLE_NAMES) == len(set(ROLE_NAMES)), ROLE_NAMES


def test_each_group_is_used_by_exactly_one_role() -> None:
    used = [entry.group for entry in registry.ROLES if entry.group is not None]
    assert sorted(used) == sorted(registry.Group), f"groups of ROLES {used} vs Group {list(registry.Group)}"


def test_groups_are_the_groups_of_roles_in_deploy_order() -> None:
    assert registry.GROUPS == tuple(entry.group for entry in registry.ROLES if entry.group is not None)


def test_the_first_role_runs_on_every_host_and_describes_it() -> None:
    first = registry.ROLES[0]
    assert first.group is None and first.spec.describes_host is not None
    assert all(entry.spec.describes_host is None for entry in registry.ROLES[1:])


# 3. Variables -----------------------------------------------------------------------------------------------------


def test_every_variable_is_defined_once_in_the_variables_of_one_role() -> None:
    defined = _defined_in()
    listed = {variable.name for entry in registry.ROLES for variable in entry.spec.variables}
    assert {name: roles for name, roles in defined.items() if len(roles) > 1} == {}
    assert sorted(listed - set(defined)) == [], "listed but not constructed by Variable(...) in a variables.py"


def test_a_variable_carries_its_defining_roles_prefix_or_is_imported_from_that_role() -> None:
    defined = _defined_in()
    wrong = []
    for entry in registry.ROLES:
        for variable in entry.spec.variables:
            owner = defined[variable.name][0]
            if owner != BASE and not variable.name.startswith(_prefix(owner)):
                wrong.append(f"{variable.name} (defined by {owner}) lacks the prefix {_prefix(owner)!r}")
            if owner != entry.name:
                # Listed by another role: it must be the very object the defining role declares, imported.
                declared = [value for value in vars(importlib.import_module(f"roles.{owner}.variables")).values()
                            if isinstance(value, Variable) and value.name == variable.name]
                if not any(value is variable for value in declared):
                    wrong.append(f"{entry.name} lists {variable.name} without importing {owner}'s Variable")
    assert wrong == []


def test_a_variable_listed_by_two_roles_is_the_same_object() -> None:
    seen: dict[str, Variable] = {}
    copies = []
    for entry in registry.ROLES:
        for variable in entry.spec.variables:
            if seen.setdefault(variable.name, variable) is not variable:
                copies.append(f"{entry.name}: {variable.name}")
    assert copies == [], "defined twice instead of imported"


def test_every_variable_has_a_one_line_doc() -> None:
    bad = [name for name, (_, variable) in registry.variables().items()
           if not variable.doc.strip() or "\n" in variable.doc]
    assert bad == []


def test_every_default_passes_its_own_check() -> None:
    bad = {name: (variable.default, variable.check(variable.default))
           for name, (_, variable) in registry.variables().items()
           if not variable.required and variable.check is not None and variable.check(variable.default) is not None}
    assert bad == {}, "a default the role's own validation refuses"


def _variable_reads(path: pathlib.Path) -> set[str]:
    """Best effort: string keys read from a host's variables (`v[...]`, `v.get(...)`, `.vars[...]`,
    `vars_of(...)[...]`, and names bound to `vars_of(...)` results, e.g. `app["app_port"]`)."""
    tree = _tree(path)
    dicts = {"v", "merged"}
    for node in ast.walk(tree):
        value = getattr(node, "value", None) if isinstance(node, ast.Assign) else None
        if value is not None and any(isinstance(sub, ast.Call) and getattr(sub.func, "attr", None) == "vars_of"
                                     for sub in ast.walk(value)):
            dicts |= {target.id for target in node.targets if isinstance(target, ast.Name)}
    for node in ast.walk(tree):
        if isinstance(node, ast.comprehension) and isinstance(node.iter, ast.Name) and node.iter.id in dicts:
            if isinstance(node.target, ast.Name):
                dicts.add(node.target.id)

    def is_vars(node: ast.AST) -> bool:
        return ((isinstance(node, ast.Name) and node.id in dicts)
                or (isinstance(node, ast.Attribute) and node.attr == "vars")
                or (isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "vars_of"))

    keys = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and is_vars(node.value) and isinstance(node.slice, ast.Constant):
            keys.add(node.slice.value)
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
                and is_vars(node.func.value) and node.args and isinstance(node.args[0], ast.Constant)):
            keys.add(node.args[0].value)
    return keys


@pytest.mark.parametrize("name", ROLE_NAMES)
def test_every_variable_a_roles_context_reads_is_a_variable_of_some_role(name) -> None:
    reads = set().union(*(_variable_reads(path) for path in (ROLES_DIR / name).glob("*.py")))
    assert reads, f"found no variable reads in roles/{name}/: the best-effort scan is broken"
    assert sorted(reads - set(registry.variables())) == [], f"roles/{name} reads undeclared variables"


# 4. README ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ROLE_NAMES)
def test_a_roles_readme_lists_each_of_its_variables_and_no_stale_one(name) -> None:
    text = (ROLES_DIR / name / "README.md").read_text()
    backticked = set(re.findall(r"`([^`\n]+)`", text))
    known = registry.variables()
    own = [variable for variable, (owner, _) in known.items() if owner.name == name]
    assert [variable for variable in own if variable not in backticked] == [], f"roles/{name}/README.md lacks"
    if name != BASE:
        stale = sorted(word for word in backticked
                       if re.fullmatch(rf"{_prefix(name)}[a-z0-9]*_[a-z0-9_]+", word) and word not in known)
        assert stale == [], f"roles/{name}/README.md names variables that do not exist"


# 5. Managed files and paths -----------------------------------------------------------------------------------------


def test_every_managed_file_key_starts_with_its_roles_name_and_its_template_exists() -> None:
    wrong = []
    for entry in registry.ROLES:
        for item in entry.spec.files:
            if item.key.split("/", 1)[0] != entry.name:
                wrong.append(f"{entry.name}: key {item.key}")
            if item.template is not None and not (TEMPLATES_DIR / item.template).is_file():
                wrong.append(f"{entry.name}: templates/{item.template} missing")
            if item.template is None and item.source is None:
                wrong.append(f"{entry.name}: {item.key} has neither template nor source")
    assert wrong == []


def test_every_template_is_a_managed_file_of_the_role_of_its_folder() -> None:
    managed = {(entry.name, item.template) for entry in registry.ROLES for item in entry.spec.files}
    orphans = [str(path.relative_to(TEMPLATES_DIR)) for path in sorted(TEMPLATES_DIR.rglob("*.j2"))
               if (path.relative_to(TEMPLATES_DIR).parts[0], str(path.relative_to(TEMPLATES_DIR))) not in managed]
    assert orphans == []


def _manifest_references(name: str) -> set[str]:
    """`manifest.NAME` attributes the role's operation modules read."""
    found = set()
    for path in _operation_modules(name):
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "manifest":
                found.add(node.attr)
    return found


def _referenced_objects(name: str) -> list[object]:
    module = importlib.import_module(f"roles.{name}.manifest")
    objects = []
    for attribute in _manifest_references(name):
        value = getattr(module, attribute, None)
        objects.extend(value if isinstance(value, tuple) else [value])
    return objects


@pytest.mark.parametrize("name", ROLE_NAMES)
def test_a_roles_operations_put_each_of_its_managed_files_and_paths(name) -> None:
    module = importlib.import_module(f"roles.{name}.manifest")
    referenced = _referenced_objects(name)
    unput_files = [item.key for item in module.FILES if not any(item is obj for obj in referenced)]
    unput_paths = [item.why or repr(item.path) for item in module.PATHS if not any(item is obj for obj in referenced)]
    assert unput_files == [], f"roles/{name}: FILES no operation module references"
    assert unput_paths == [], f"roles/{name}: PATHS no operation module references"


def test_config_files_are_written_only_through_put_managed() -> None:
    allowed = {ROLES_DIR / "common" / "files.py", ROLES_DIR / "app" / "install.py"}
    offenders = []
    for path in sorted(ROLES_DIR.rglob("*.py")):
        if path in allowed:
            continue
        for node in ast.walk(_tree(path)):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("put", "template") and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == "files"):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} files.{node.func.attr}")
    assert offenders == []


# 6. Packages ------------------------------------------------------------------------------------------------------


def test_every_package_install_passes_the_roles_manifest_packages() -> None:
    calls, wrong = 0, []
    for path in sorted(ROLES_DIR.rglob("*.py")):
        for node in ast.walk(_tree(path)):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "install"
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "packages"):
                continue
            calls += 1
            given = {keyword.arg: ast.unparse(keyword.value) for keyword in node.keywords}
            if given.get("packages") != "manifest.packages(ctx)":
                wrong.append(f"{path.relative_to(ROOT)}:{node.lineno} packages={given.get('packages')}")
    assert calls >= 1, "no packages.install call found: the scan is broken"
    assert wrong == []


# 7. Group names are defined once --------------------------------------------------------------------------------


def test_group_names_are_spelled_only_in_the_registry() -> None:
    checked = {str(group) for group in registry.GROUPS} - set(ROLE_NAMES)  # "app" is also a role's name
    assert checked, "nothing to check"
    sources = [*TSDEPLOY_DIR.rglob("*.py"), *(path for path in ROLES_DIR.rglob("*.py")
                                              if path != ROLES_DIR / "registry.py"),
               ROOT / "deploy.py", ROOT / "inventories" / "ansible.py"]
    offenders = [f"{path.relative_to(ROOT)}:{line} {value!r}" for path in sorted(sources)
                 for line, value in _string_constants(path) if value in checked]
    assert offenders == [], "use roles.registry.Group instead"


# 8. No import cycles in tsdeploy --------------------------------------------------------------------------------


def _module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(test: ast.expr) -> bool:
    return ast.unparse(test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")


def _module_imports(module: str, path: pathlib.Path, modules: set[str]) -> set[str]:
    """The tsdeploy modules `module` imports at module level (not in functions, not under TYPE_CHECKING)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    targets: set[str] = set()

    def visit(statements: list[ast.stmt]) -> None:
        for node in statements:
            if isinstance(node, ast.If):
                if not _is_type_checking(node.test):
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                for block in (node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)):
                    visit(block)
            elif isinstance(node, (ast.With, ast.For, ast.While)):
                visit(node.body)
            elif isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                    base = ".".join([*anchor, *([base] if base else [])])
                # `from pkg import submodule` needs only the submodule (a package's __init__ may import its
                # submodules that do this); `from module import name` needs the module itself.
                for alias in node.names:
                    targets.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)

    visit(_tree(path).body)
    return {target for target in targets if target in modules and target != module}


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_tsdeploy_modules_import_each_other_without_cycles() -> None:
    paths = {_module_name(path): path for path in TSDEPLOY_DIR.rglob("*.py")}
    graph = {module: _module_imports(module, path, set(paths)) for module, path in paths.items()}
    assert sum(map(len, graph.values())) > 10, "the import graph is suspiciously small: the scan is broken"
    cycle = _find_cycle(graph)
    assert cycle is None, f"import cycle: {' -> '.join(cycle)}"


# 9. The central context knows no role -----------------------------------------------------------------------------


@pytest.mark.parametrize("module", ["context.py", "topology.py"])
def test_the_central_context_names_no_roles_setting_or_section(module) -> None:
    forbidden = set(registry.variables()) | set(ROLE_NAMES)
    found = [f"tsdeploy/{module}:{line} {value!r}" for line, value in _string_constants(TSDEPLOY_DIR / module)
             if value in forbidden]
    assert found == []


# 10. A host's context holds only its roles' sections ------------------------------------------------------------


@pytest.fixture(scope="module")
def lab_split(tmp_path_factory: pytest.TempPathFactory) -> inventory_module.Inventory:
    return inventory_module.load(_lab_inventory(tmp_path_factory.mktemp("roles-split"), "split"))


PG, PG_OWNER, REDIS_APP, REDIS_ADMIN, APP_SECRET, BACKUP_CIPHER, REDIS_EXPORTER, POOLER = (
    LAB_SECRETS[f"vault_{name}"] for name in (
        "postgresql_app_password", "postgresql_owner_password", "redis_app_password", "redis_admin_password",
        "app_secret_key", "backup_repo_cipher_pass", "redis_exporter_password", "pgbouncer_auth_password"))
#: host -> (its context's sections beyond host and peers, the secrets its files need).
SPLIT_HOSTS = {
    # PgBouncer beside PostgreSQL: its auth_query user's password, no app password.
    "db1": ({"common", "postgres", "pgbouncer", "exporters"}, {PG, PG_OWNER, POOLER}),
    "backup1": ({"common", "backup", "exporters"}, {BACKUP_CIPHER}),
    # The exporter's password reaches its password file only; Redis's ACL file holds its hash.
    "cache1": ({"common", "redis", "exporters"}, {REDIS_APP, REDIS_ADMIN, REDIS_EXPORTER}),
    # The owner's password only in the root-only owner.env, for the deploy's migrations.
    "app1": ({"common", "app", "exporters"}, {PG, PG_OWNER, REDIS_APP, APP_SECRET}),
    "app2": ({"common", "app", "exporters"}, {PG, PG_OWNER, REDIS_APP, APP_SECRET}),
    "lb1": ({"common", "nginx", "exporters"}, set()),
    # The monitor host scrapes with no credential: it holds no secret.
    "monitor1": ({"common", "monitor", "exporters"}, set()),
}


def test_the_split_lab_has_the_hosts_this_spec_expects(lab_split) -> None:
    assert sorted(lab_split.hosts) == sorted(SPLIT_HOSTS)


@pytest.mark.parametrize("host", sorted(SPLIT_HOSTS))
def test_a_hosts_context_holds_only_its_own_roles_sections(lab_split, host) -> None:
    sections, _ = SPLIT_HOSTS[host]
    assert set(build_context(lab_split, host)) == {"host", "peers", *sections}


@pytest.mark.parametrize("host", sorted(SPLIT_HOSTS))
def test_a_hosts_context_holds_exactly_the_secrets_its_files_need(lab_split, host) -> None:
    _, needed = SPLIT_HOSTS[host]
    shown = repr(build_context(lab_split, host))
    assert {secret for secret in LAB_SECRETS.values() if secret in shown} == needed


# 11. Adding a role is local -----------------------------------------------------------------------------------------


class ArchiveGroup(enum.StrEnum):
    """The one line a new group adds to roles.registry.Group."""

    ARCHIVE = "archive"


@pytest.fixture
def archive_role(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> RoleSpec:
    """A "archive" role on a new group, registered at runtime: its spec module, and one registry line."""
    config = tmp_path / "archive.conf"
    config.write_text("retention\n")
    retention = Variable("archive_retention_days", 7, "days an archive is kept", checks.integer(1, 365))
    spec = RoleSpec(
        variables=(retention,),
        derive=lambda view: {"retention_days": int(view.vars["archive_retention_days"]), "config_src": str(config)},
        files=(ManagedFile("archive/archive.conf", "/etc/archive.conf", "root", "root", "640",
                           source=("archive", "config_src")),),
        paths=(ManagedPath("/var/archives/tsdeploy", "root", "root", "700", why="the archives"),),
    )
    monkeypatch.setitem(sys.modules, "roles.archive", types.SimpleNamespace(ROLE=spec))
    monkeypatch.setattr(registry, "ROLES", (*registry.ROLES, registry.Role("archive", ArchiveGroup.ARCHIVE)))
    monkeypatch.setattr(registry, "GROUPS", (*registry.GROUPS, ArchiveGroup.ARCHIVE))
    registry._spec.cache_clear()
    yield spec
    registry._spec.cache_clear()


def _with_archive_host(root: pathlib.Path, retention: dict[str, int]) -> inventory_module.Inventory:
    """The split lab plus archive1 in the archive group; `retention` sets archive_retention_days per host."""
    root.mkdir()
    directory = _lab_inventory(root, "split")
    document = yaml.safe_load((directory / "hosts.yml").read_text())
    hosts = document["all"]["hosts"]
    hosts["archive1"] = dict(hosts["lb1"], ansible_host="198.18.0.99", private_address="198.18.0.99")
    document["all"]["children"]["archive"] = {"hosts": {"archive1": {}}}
    for host, days in retention.items():
        hosts[host]["archive_retention_days"] = days
    (directory / "hosts.yml").write_text(yaml.safe_dump(document))
    return inventory_module.read(directory)


def test_a_new_roles_variable_is_checked_on_the_hosts_of_its_group_only(archive_role, tmp_path) -> None:
    valid = _with_archive_host(tmp_path / "valid", {})
    assert validation.validate(valid) == []
    bad = _with_archive_host(tmp_path / "bad", {"db1": 0, "archive1": 0})
    problems = validation.validate(bad)
    assert len(problems) == 1 and problems[0].startswith("archive1: archive_retention_days = 0"), problems


def test_a_new_roles_hosts_get_its_section_files_and_paths(archive_role, tmp_path) -> None:
    inventory = _with_archive_host(tmp_path / "inventory", {"archive1": 30})
    ctx = build_context(inventory, "archive1")
    assert set(ctx) == {"host", "peers", "common", "exporters", "archive"}
    assert ctx["archive"]["retention_days"] == 30
    assert ctx["peers"]["archive"] == [{"name": "archive1", "address": "198.18.0.99"}]
    files = manifest.files_for(ctx)
    assert archive_role.files[0] in files and files[0].role == BASE
    assert archive_role.files[0].content(ctx) == "retention\n"
    assert (("archive", archive_role.paths[0]) in manifest.paths_for(ctx))
    assert manifest.get("archive/archive.conf") is archive_role.files[0]
    other = build_context(inventory, "db1")
    assert "archive" not in other and archive_role.files[0] not in manifest.files_for(other)


def test_a_new_roles_group_is_a_pyinfra_group_and_a_lab_group(archive_role, tmp_path) -> None:
    inventory = _with_archive_host(tmp_path / "inventory", {})
    assert pyinfra_inventory.groups(inventory)["archive"] == ["archive1"]
    assert inventory.groups_of("archive1") == ["archive"]
    # The lab's topologies are computed from GROUPS when tsdeploy.lab.topology is imported: a registry line
    # edited before that import is what a real new role is, so the check runs in a fresh interpreter.
    result = _python(
        "import enum; from roles import registry\n"
        "archive = enum.StrEnum('ArchiveGroup', {'ARCHIVE': 'archive'}).ARCHIVE\n"
        "registry.ROLES = (*registry.ROLES, registry.Role('archive', archive)); registry.GROUPS = (*registry.GROUPS, archive)\n"
        "from tsdeploy.lab.topology import hosts_of\n"
        "assert ('archive1', ('archive',)) in hosts_of('split'), hosts_of('split')\n"
        "assert 'archive' in hosts_of('single')[0][1], hosts_of('single')\n")
    assert result.returncode == 0, result.stderr


def test_generate_vms_templates_leave_role_specific_steps_to_the_roles() -> None:
    # install.sh and README.md take each role's steps from roles/<role>/vm.j2: no branch on a group name.
    for template in (ROOT / "tsdeploy" / "generate" / "vm_templates").glob("*.j2"):
        text = template.read_text()
        for group in registry.GROUPS:
            assert f'"{group}" in groups' not in text, f"{template.name} branches on the group {group}"
