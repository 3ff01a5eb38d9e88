"""The common role's unattended-upgrades drop-ins, read by apt itself (`apt-config`), and their variables.

apt reads Debian's own `20auto-upgrades` and `50unattended-upgrades` first and the deploy's drop-ins after
them; these tests feed apt the origin list Debian ships, then the rendered drop-ins, in that order, and read
back what unattended-upgrades would use.
"""

from __future__ import annotations

import pathlib
import re
import shutil
import subprocess

import pytest

from roles.common import manifest
from tsdeploy.context import build_context
from tsdeploy.inventory import load
from tsdeploy.templating import MANAGED_MARKER, render

from test_inventory import problems_of, write_inventory as write_validated_inventory
from test_templates_app import write_inventory

#: What Debian 12's unattended-upgrades package installs as 20auto-upgrades and 50unattended-upgrades (the
#: parts apt reads; comments left out): point releases as well as security updates.
DEBIAN_SHIPS = """
APT::Periodic::Update-Package-Lists "1";
APT::Periodic::Unattended-Upgrade "1";
Unattended-Upgrade::Origins-Pattern {
        "origin=Debian,codename=${distro_codename},label=Debian";
        "origin=Debian,codename=${distro_codename},label=Debian-Security";
        "origin=Debian,codename=${distro_codename}-security,label=Debian-Security";
};
"""

needs_apt_config = pytest.mark.skipif(shutil.which("apt-config") is None, reason="apt-config is not installed")


def context(tmp_path: pathlib.Path, host: str = "db1", **settings) -> dict:
    return build_context(load(write_inventory(tmp_path, {"app1": "198.18.9.20"}, settings)), host)


def apt_reads(tmp_path: pathlib.Path, ctx: dict) -> dict[str, list[str]]:
    """apt's effective configuration after Debian's files and then the deploy's two drop-ins (key -> values)."""
    files = [tmp_path / "debian.conf", tmp_path / "auto-upgrades", tmp_path / "unattended-upgrades"]
    files[0].write_text(DEBIAN_SHIPS)
    files[1].write_text(render(manifest.AUTO_UPGRADES.template, ctx))
    files[2].write_text(render(manifest.UNATTENDED_UPGRADES.template, ctx))
    options = [argument for path in files for argument in ("-c", str(path))]
    result = subprocess.run(["apt-config", *options, "dump"], capture_output=True, text=True, check=False,
                            env={"APT_CONFIG": "/dev/null", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    values: dict[str, list[str]] = {}
    for line in result.stdout.splitlines():
        match = re.match(r'^(\S+) "(.*)";$', line)
        if match:
            values.setdefault(match.group(1), []).append(match.group(2))
    return values


@pytest.mark.parametrize("item", [manifest.AUTO_UPGRADES, manifest.UNATTENDED_UPGRADES])
def test_both_drop_ins_start_with_the_managed_header_and_are_read_after_debians_own(tmp_path, item) -> None:
    ctx = context(tmp_path)
    assert MANAGED_MARKER in render(item.template, ctx).splitlines()[0]
    name = pathlib.PurePosixPath(item.dest(ctx)).name
    debian = "20auto-upgrades" if item is manifest.AUTO_UPGRADES else "50unattended-upgrades"
    assert item.dest(ctx).startswith("/etc/apt/apt.conf.d/") and name > debian
    assert item.placed(ctx).mode == "644" and not item.secret


@pytest.mark.parametrize("release", ["bookworm", "trixie"])
@needs_apt_config
def test_unattended_upgrades_installs_only_security_updates_of_the_hosts_release(tmp_path, release) -> None:
    config = apt_reads(tmp_path, context(tmp_path, debian_release=release))
    assert config["Unattended-Upgrade::Origins-Pattern::"] == [
        f"origin=Debian,codename={release}-security,label=Debian-Security"]


@needs_apt_config
def test_by_default_apt_runs_it_daily_and_it_never_reboots_a_host(tmp_path) -> None:
    config = apt_reads(tmp_path, context(tmp_path))
    assert config["APT::Periodic::Update-Package-Lists"][-1] == "1"
    assert config["APT::Periodic::Unattended-Upgrade"][-1] == "1"
    assert config["Unattended-Upgrade::Automatic-Reboot"] == ["false"]
    assert config["Unattended-Upgrade::Automatic-Reboot-Time"] == ["03:30"]


@pytest.mark.parametrize("enabled", [True, False])
@needs_apt_config
def test_apt_waits_for_the_dpkg_lock_so_a_deploy_and_the_daily_run_never_fail_each_other(tmp_path,
                                                                                        enabled) -> None:
    config = apt_reads(tmp_path, context(tmp_path, unattended_upgrades_enabled=enabled))
    assert config["DPkg::Lock::Timeout"] == ["300"]


@needs_apt_config
def test_an_inventory_may_allow_reboots_at_its_own_time(tmp_path) -> None:
    config = apt_reads(tmp_path, context(tmp_path, unattended_upgrades_reboot=True,
                                         unattended_upgrades_reboot_time="04:15"))
    assert config["Unattended-Upgrade::Automatic-Reboot"] == ["true"]
    assert config["Unattended-Upgrade::Automatic-Reboot-Time"] == ["04:15"]


@needs_apt_config
def test_switched_off_it_is_not_installed_and_apt_no_longer_runs_it(tmp_path) -> None:
    ctx = context(tmp_path, unattended_upgrades_enabled=False)
    assert "unattended-upgrades" not in manifest.packages(ctx)
    config = apt_reads(tmp_path, ctx)
    # Debian's own 20auto-upgrades says 1 on a host where it ran before; the deploy's drop-in, read later, wins.
    assert config["APT::Periodic::Unattended-Upgrade"][-1] == "0"
    assert config["APT::Periodic::Update-Package-Lists"][-1] == "0"


@pytest.mark.parametrize("host", ["db1", "cache1", "app1", "lb1"])
def test_every_host_installs_unattended_upgrades_by_default(tmp_path, host) -> None:
    assert "unattended-upgrades" in manifest.packages(context(tmp_path, host))


@pytest.mark.parametrize("value", ["3:30", "24:00", "03:30am", 330, "now"])
def test_a_reboot_time_that_is_not_hh_mm_is_refused_naming_the_variable_and_the_fix(tmp_path, value) -> None:
    problems = problems_of(write_validated_inventory(
        tmp_path, main_overrides={"unattended_upgrades_reboot_time": value}))
    assert problems and all(problem.split(":", 1)[1].startswith(f" unattended_upgrades_reboot_time = {value!r}")
                            for problem in problems)
    assert "is not a time of day as HH:MM; fix: write a quoted 24-hour time" in problems[0]


@pytest.mark.parametrize("variable", ["unattended_upgrades_enabled", "unattended_upgrades_reboot"])
def test_the_switches_must_be_yaml_booleans(tmp_path, variable) -> None:
    problems = problems_of(write_validated_inventory(tmp_path, main_overrides={variable: "yes please"}))
    assert problems and f"{variable} = 'yes please'" in problems[0] and "is not true or false" in problems[0]
