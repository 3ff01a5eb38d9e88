"""The verify suite's plumbing: which hosts to check, how to reach them, what they should look like.

Run through `tsdeploy verify INVENTORY --report DIR`, or directly:
    pytest tests/infra --inventory inventories/lab [--limit db] [--no-secrets]

- Hosts and expected values come from the inventory (tsdeploy.inventory.load) and the deploy's own context
  builder (tsdeploy.context.build_context): the suite never hard-codes what the deploy decides.
- Each test takes one host fixture: one per group of the roles' registry (`db`, `cache`, `app`, `lb`, ...) or
  `any_host`; it is parametrized with the hosts of that group, so every check runs once per host and its id
  names the host.
- Each test names its controls with `@pytest.mark.control(...)`; they are recorded as JUnit properties for
  summary.md.
- The suite is read-only: it runs queries and inspections over SSH, never a command that changes a host.
"""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator

import pytest

from roles.registry import GROUPS
from tsdeploy import host_keys
from tsdeploy.manifest import files_for
from tsdeploy.topology import Topology
from tsdeploy.verify import load_for_verify
from verifyhosts import Target, write_ssh_config

SUITE_DIR = pathlib.Path(__file__).resolve().parent
#: Fixture name -> the group whose hosts it is parametrized with: one per registry group, and every host.
GROUP_FIXTURES: dict[str, str | None] = {str(group): str(group) for group in GROUPS} | {"any_host": None}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("tsdeploy verify")
    group.addoption("--inventory", metavar="DIR", help="Inventory directory whose hosts are checked.")
    group.addoption("--limit", metavar="GROUP", help="Only check the hosts of this group (db, cache, app, lb).")
    group.addoption("--no-secrets", action="store_true",
                    help="Do not read the vault: checks that need a secret are reported as not run.")


def pytest_ignore_collect(collection_path: pathlib.Path, config: pytest.Config) -> bool | None:
    # Without an inventory there is nothing to verify: `pytest tests` (unit/app runs) leaves the suite out.
    if config.getoption("inventory") is None and collection_path.name.startswith("test_"):
        return True
    return None


def pytest_configure(config: pytest.Config) -> None:
    # The suite connects only to hosts whose SSH key the inventory pins (as the deploy does), so it never sends
    # a secret to a machine that merely answers at a host's address: refuse before any host is touched.
    if config.getoption("inventory") is None:
        return
    inventory = _loaded(config).inventory
    try:
        host_keys.require_pinned(inventory, _hosts_for(config, None),
                                 command=f"tsdeploy verify {config.getoption('inventory')} --report DIR")
    except host_keys.HostKeyError as error:
        raise pytest.UsageError(str(error)) from None


@pytest.fixture(scope="session")
def verify_inventory(pytestconfig: pytest.Config):
    """The inventory (with secrets, or placeholders when the vault is not readable)."""
    return _loaded(pytestconfig)


_CACHE: dict[str, object] = {}


def _loaded(config: pytest.Config):
    key = f"{config.getoption('inventory')}:{config.getoption('no_secrets')}"
    if key not in _CACHE:
        _CACHE[key] = load_for_verify(config.getoption("inventory"), with_secrets=not config.getoption("no_secrets"))
    return _CACHE[key]


@pytest.fixture(scope="session")
def ssh_config(verify_inventory) -> Iterator[pathlib.Path]:
    """An ssh_config for every host of the inventory (User, IdentityFile, known hosts, shared connections)."""
    directory = pathlib.Path(tempfile.mkdtemp(prefix="tsdeploy-verify-ssh-"))
    path = write_ssh_config(verify_inventory.inventory, directory)
    yield path
    # The shared master connections would otherwise outlive the run (ControlPersist) and hold its pipes open.
    for name in verify_inventory.inventory.hosts:
        subprocess.run(["ssh", "-F", str(path), "-O", "exit", name], capture_output=True, check=False, timeout=10)
    shutil.rmtree(directory, ignore_errors=True)


def _hosts_for(config: pytest.Config, group: str | None) -> list[str]:
    inventory = _loaded(config).inventory
    names = inventory.hosts if group is None else inventory.hosts_in(group)
    limit = config.getoption("limit")
    if limit:
        names = [name for name in names if name in inventory.hosts_in(limit)]
    return names


def _pg_setting_names(config: pytest.Config) -> list[str]:
    """The PostgreSQL settings the deploy's context computes (tuning, TLS, logging) for the db host."""
    loaded = _loaded(config)
    db_hosts = loaded.inventory.hosts_in("db")
    if not db_hosts:
        return []
    return [item["name"] for item in Topology(loaded.inventory).service("postgres")["settings"]]


def _managed_pairs(config: pytest.Config) -> list:
    """(host, managed file) for every host and every file its role groups manage; ids read host:path."""
    topology = Topology(_loaded(config).inventory)
    pairs = []
    for name in _hosts_for(config, None):
        ctx = topology.host_context(name)
        pairs += [pytest.param(name, item, id=f"{name}:{item.dest(ctx)}") for item in files_for(ctx)]
    return pairs


def _certificate_pairs(config: pytest.Config) -> list:
    """(host, managed file) for every certificate the deploy installs (the CA's and the host's own)."""
    return [pair for pair in _managed_pairs(config)
            if pair.values[1].variable in ("tls_cert_file", "tls_ca_cert_file")]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "managed_file" in metafunc.fixturenames:
        metafunc.parametrize(("any_host", "managed_file"), _managed_pairs(metafunc.config), indirect=["any_host"])
        return
    if "certificate" in metafunc.fixturenames:
        metafunc.parametrize(("any_host", "certificate"), _certificate_pairs(metafunc.config), indirect=["any_host"])
        return
    for fixture, group in GROUP_FIXTURES.items():
        if fixture in metafunc.fixturenames:
            metafunc.parametrize(fixture, _hosts_for(metafunc.config, group), indirect=True)
    if "pg_setting" in metafunc.fixturenames:
        metafunc.parametrize("pg_setting", _pg_setting_names(metafunc.config))


@pytest.fixture(scope="session")
def topology(verify_inventory) -> Topology:
    """The deploy's view of the inventory: each host's context, derived once per session."""
    return Topology(verify_inventory.inventory)


def _target(request: pytest.FixtureRequest) -> Target:
    loaded = request.getfixturevalue("verify_inventory")
    return Target.connect(request.param, loaded, request.getfixturevalue("ssh_config"),
                          request.getfixturevalue("topology"))


def _host_fixture(name: str):
    def fixture(request: pytest.FixtureRequest) -> Target:
        return _target(request)

    fixture.__doc__ = (f"A host of the {name} group, one test per host." if name != "any_host"
                       else "Every host of the inventory, one test per host.")
    return pytest.fixture(name=name)(fixture)


# One fixture per registry group (db, cache, app, lb, ...) and `any_host`: a new role's checks take its group's.
for _name in GROUP_FIXTURES:
    globals()[f"_fixture_{_name}"] = _host_fixture(_name)


def _has_no_hosts(item: pytest.Item) -> bool:
    """A check whose host group is empty (or outside --limit): pytest marks it 'got empty parameter set'."""
    return any(str(marker.kwargs.get("reason", "")).startswith("got empty parameter set")
               for marker in item.iter_markers("skip"))


def _in_suite(item: pytest.Item) -> bool:
    # pytest calls this hook with every collected item of the session (`pytest tests` collects unit, app
    # and e2e tests too): only the checks of this suite are its business.
    return SUITE_DIR in item.path.parents


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Checks without a host to run on are deselected: summary.md lists their controls as "no check collected".
    deselected = [item for item in items if _in_suite(item) and _has_no_hosts(item)]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if item not in deselected]
    for item in filter(_in_suite, items):
        if not any(True for _ in item.iter_markers("control")):
            raise pytest.UsageError(f"{item.nodeid} names no control: add @pytest.mark.control(...)")
        # One xdist group per host: a worker keeps its SSH master connection to the hosts it checks.
        host = getattr(item, "callspec", None) and next(
            (value for name, value in item.callspec.params.items() if name in GROUP_FIXTURES), None)
        if host:
            item.add_marker(pytest.mark.xdist_group(str(host)))


@pytest.fixture(autouse=True)
def _record_controls(request: pytest.FixtureRequest, record_property) -> None:
    for marker in request.node.iter_markers("control"):
        for control_id in marker.args:
            record_property("control", control_id)
