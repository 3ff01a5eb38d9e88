"""app hosts: the TalentSphere service, its systemd hardening, its secrets file and its Gunicorn workers."""

from __future__ import annotations

import pytest

from verifyhosts import Target

UNIT = "talentsphere.service"

# `systemctl show` property -> the value control ts-app-03 requires: systemd.exec(5) sandboxing, the directives
# `systemd-analyze security` scores (ts-app-02), so the unit keeps only what a WSGI server needs.
HARDENING = [
    ("NoNewPrivileges", "yes"),
    ("PrivateTmp", "yes"),
    ("PrivateDevices", "yes"),
    ("ProtectSystem", "strict"),
    ("ProtectHome", "yes"),
    ("CapabilityBoundingSet", ""),
    ("ProtectKernelTunables", "yes"),
    ("ProtectKernelModules", "yes"),
    ("ProtectKernelLogs", "yes"),
    ("ProtectControlGroups", "yes"),
    ("ProtectClock", "yes"),
    ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"),
    ("UMask", "0077"),
]


def _show(app: Target, *properties: str) -> dict[str, str]:
    out = app.sudo_check("systemctl show %s " + " ".join(f"-p {p}" for p in properties), UNIT)
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


@pytest.mark.control("ts-app-01")
def test_app_service_is_enabled_and_running(app: Target) -> None:
    assert (problem := app.service_problem(UNIT)) is None, problem


@pytest.mark.control("ts-app-02")
def test_systemd_analyze_security_passes_threshold_30(app: Target) -> None:
    result = app.sudo("systemd-analyze security --no-pager --threshold=30 %s", UNIT)
    overall = [line for line in result.stdout.splitlines() if "Overall exposure level" in line]
    assert result.rc == 0, f"{app}: {UNIT} is over the threshold: {overall or result.stderr.strip()}"


@pytest.mark.control("ts-app-03")
def test_app_runs_as_a_non_root_user(app: Target) -> None:
    user = _show(app, "User")["User"]
    assert user and user != "root", f"{app}: {UNIT} User={user!r}"


@pytest.mark.control("ts-app-03")
@pytest.mark.parametrize(("prop", "expected"), HARDENING, ids=[name for name, _ in HARDENING])
def test_unit_sets_hardening_property(app: Target, prop: str, expected: str) -> None:
    value = _show(app, prop).get(prop, "")
    if prop == "RestrictAddressFamilies":
        assert set(value.split()) == set(expected.split()), f"{app}: {prop}={value!r}"
    else:
        assert value == expected, f"{app}: {prop}={value!r}, baseline wants {expected!r}"


@pytest.mark.control("ts-app-03")
def test_unit_filters_system_calls_to_the_service_set(app: Target) -> None:
    unit = app.sudo_check("systemctl cat %s", UNIT)
    assert "SystemCallFilter=@system-service" in unit, f"{app}: {UNIT} has no SystemCallFilter=@system-service"


def _env_file(app: Target) -> str:
    files = _show(app, "EnvironmentFiles")["EnvironmentFiles"].split()
    assert files, f"{app}: {UNIT} has no EnvironmentFile="
    return files[0]


@pytest.mark.control("ts-app-04")
def test_environment_file_is_the_deploys(app: Target) -> None:
    assert _env_file(app) == app.ctx["app"]["env_file"]


@pytest.mark.control("ts-app-04")
def test_environment_file_is_root_owned_and_not_world_readable(app: Target) -> None:
    path = _env_file(app)
    owner, group, mode = app.sudo_check("stat -c '%%U %%G %%a' %s", path).split()
    assert owner == "root" and int(mode[-1]) == 0, f"{app}: {path} is {owner}:{group} {mode}"


@pytest.mark.control("ts-redis-07")
def test_the_app_reaches_redis_over_tls_verified_with_the_inventorys_ca(app: Target) -> None:
    redis = app.service("redis")
    # Only the count is printed: the URL holds the app user's password.
    # systemd's EnvironmentFile= syntax: the deploy double-quotes every value.
    pattern = f'^REDIS_URL="rediss://.*@{redis["address"]}:{redis["port"]}/0[?]ssl_ca_certs={redis["tls_ca"]}"$'
    count = app.sudo("grep -c %s %s", pattern, _env_file(app)).stdout.strip()
    assert count == "1", f"{app}: the app's REDIS_URL is not rediss://...@{redis['address']}:{redis['port']} " \
                         f"with ssl_ca_certs={redis['tls_ca']}"
    problem = app.tls_problem(redis["address"], redis["port"], redis["tls_ca"])
    assert problem is None, problem


@pytest.mark.control("ts-pg-owner-role")
def test_the_owner_roles_url_is_root_only_and_not_in_the_services_environment(app: Target) -> None:
    path = app.ctx["app"]["owner_env_file"]
    owner, group, mode = app.sudo_check("stat -c '%%U %%G %%a' %s", path).split()
    assert (owner, group, mode) == ("root", "root", "600"), f"{app}: {path} is {owner}:{group} {mode}"
    files = _show(app, "EnvironmentFiles")["EnvironmentFiles"]
    assert path not in files, f"{app}: {UNIT} reads the owner role's URL ({path}): the app would run as the owner"


@pytest.mark.control("ts-app-04")
def test_unit_passes_no_secret_inline(app: Target) -> None:
    environment = _show(app, "Environment")["Environment"]
    words = [word.split("=", 1)[0] for word in environment.split()]
    leaked = [name for name in words if any(s in name for s in ("PASSWORD", "SECRET", "DATABASE_URL", "REDIS_URL"))]
    assert leaked == [], f"{app}: {UNIT} sets {leaked} inline (Environment=), not through the EnvironmentFile"


@pytest.mark.control("ts-app-05")
def test_gunicorn_runs_the_configured_number_of_workers(app: Target) -> None:
    main_pid = _show(app, "MainPID")["MainPID"]
    assert main_pid != "0", f"{app}: {UNIT} has no main process"
    workers = len(app.sudo_check("pgrep -P %s", main_pid).split())
    assert workers == app.ctx["app"]["workers"], (
        f"{app}: Gunicorn runs {workers} workers, its config asks for {app.ctx['app']['workers']}")


@pytest.mark.control("ts-app-06")
def test_the_live_release_was_installed_from_hash_pinned_requirements(app: Target) -> None:
    current = app.ctx["app"]["current_dir"]
    pins = [line for line in app.sudo_check("cat %s", f"{current}/requirements.txt").splitlines() if line.strip()]
    assert pins, f"{app}: {current}/requirements.txt lists no dependency"
    unhashed = [line.split()[0] for line in pins if "==" not in line.split()[0] or "--hash=sha256:" not in line]
    assert not unhashed, f"{app}: the live release installed {unhashed} without an exact pin and sha256"
    check = app.host.run("PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 %s/bin/python -m pip check", current)
    assert check.rc == 0, f"{app}: pip check in the live release: {check.stdout.strip()} {check.stderr.strip()}"
