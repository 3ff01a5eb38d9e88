"""The db side of backups: a db host archives its WAL with pgBackRest when the inventory has a backup host.

Contexts and files come from the lab's inventories (split: db1 and backup1 apart, pgBackRest's TLS between
them; single: ts1 is both, the backup role writes the one local file) and from the unit tests' split inventory
without a backup group (no archiving at all). The rendered db-side pgbackrest.conf is parsed by this machine's
pgBackRest when it is installed, and the deploy's own candidate check (roles/postgres/archiving.py
`pgbackrest_check` through roles/common/files.py `land_script`) runs for real with pgBackRest and openssl.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import tempfile
from typing import Any

import pytest
import yaml

from roles.common.files import land_script
from roles.postgres import manifest, sql
from roles.postgres.archiving import pgbackrest_check
from test_inventory import write_inventory
from test_rendering_golden import _lab_inventory
from tsdeploy import manifest as host_manifest
from tsdeploy import validation
from tsdeploy.context import build_context
from tsdeploy.generate import vm as vm_generator
from tsdeploy.inventory import InventoryError, load, read
from tsdeploy.templating import MANAGED_MARKER, render
from local_postgres import has_postgres_account

PGBACKREST = shutil.which("pgbackrest")
ARCHIVE_SETTINGS = ("wal_level", "archive_mode", "archive_command", "archive_timeout")


def lab(root: pathlib.Path, topology: str, host_vars: dict[str, dict[str, Any]] | None = None,
        group_vars: dict[str, Any] | None = None) -> pathlib.Path:
    """The lab's `topology` inventory, with host variables and group_vars/all values added."""
    root.mkdir(parents=True, exist_ok=True)
    directory = _lab_inventory(root, topology)
    if host_vars:
        document = yaml.safe_load((directory / "hosts.yml").read_text())
        for host, values in host_vars.items():
            document["all"]["hosts"][host].update(values)
        (directory / "hosts.yml").write_text(yaml.safe_dump(document))
    if group_vars:
        main = directory / "group_vars" / "all" / "main.yml"
        main.write_text(yaml.safe_dump(yaml.safe_load(main.read_text()) | group_vars))
    return directory


def settings_of(ctx: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {setting["name"]: setting for setting in ctx["postgres"]["settings"]}


def conf_lines(text: str) -> dict[str, dict[str, str]]:
    """The ini file as {section: {option: value}} (comments and blank lines dropped)."""
    sections: dict[str, dict[str, str]] = {}
    current = None
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        option, _, value = line.partition("=")
        assert option not in current, f"{option} twice"
        current[option] = value
    return sections


@pytest.fixture(scope="module")
def split(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    inventory = load(lab(tmp_path_factory.mktemp("split"), "split"))
    return {host: build_context(inventory, host) for host in inventory.hosts}


@pytest.fixture(scope="module")
def single(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return build_context(load(lab(tmp_path_factory.mktemp("single"), "single")), "ts1")


@pytest.fixture(scope="module")
def no_backup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return build_context(load(write_inventory(tmp_path_factory.mktemp("plain"))), "db1")


# The context ------------------------------------------------------------------------------------------------------


def test_without_a_backup_host_nothing_is_archived(no_backup) -> None:
    pg = no_backup["postgres"]
    assert pg["archiving"] is None
    assert not set(ARCHIVE_SETTINGS) & set(settings_of(no_backup))
    assert "pgbackrest" not in host_manifest.packages_for(no_backup)
    assert [item for item in host_manifest.files_for(no_backup) if "pgbackrest" in item.dest(no_backup)] == []
    assert [rule["port"] for rule in no_backup["common"]["firewall_rules"]] == [22, 5432]


def test_a_backup_host_makes_the_db_host_archive_to_it(split) -> None:
    archive = split["db1"]["postgres"]["archiving"]
    backup1 = split["backup1"]["host"]["private_address"]
    assert {key: archive[key] for key in ("stanza", "repo_host", "repo_address", "local", "archive_timeout",
                                          "conf_path")} == {
        "stanza": "talentsphere", "repo_host": "backup1", "repo_address": backup1, "local": False,
        "archive_timeout": 60, "conf_path": "/etc/pgbackrest/pgbackrest.conf"}
    assert archive["tls_server_auth"] == "backup1=talentsphere"
    assert archive["queue_max"] == "2GB"  # backup_archive_queue_max "2GiB" in pgBackRest's spelling
    assert archive["s3"] is None


def test_archiving_settings_with_their_reasons(split) -> None:
    settings = settings_of(split["db1"])
    assert {name: settings[name]["value"] for name in ARCHIVE_SETTINGS} == {
        "wal_level": "replica", "archive_mode": "on",
        "archive_command": "'pgbackrest --stanza=talentsphere archive-push %p'", "archive_timeout": "60s"}
    assert all(settings[name]["reason"] for name in ARCHIVE_SETTINGS)
    assert settings["archive_mode"]["reason"].startswith("backups on backup1: ")
    drop_in = render("postgres/tsdeploy.conf.j2", split["db1"])
    assert "\narchive_mode = on\n" in drop_in
    assert "\narchive_command = 'pgbackrest --stanza=talentsphere archive-push %p'\n" in drop_in


def test_a_pending_archive_mode_restart_says_why(split) -> None:
    reasons = {item["name"]: item["reason"] for item in split["db1"]["postgres"]["settings"]}
    [line] = sql.pending_lines([("archive_mode", "off", "on")], reasons)
    assert line == ("archive_mode: off -> on (needs a restart; backups on backup1: every completed WAL segment "
                    "goes to pgBackRest (read at server start))")


def test_the_stanza_port_and_archive_timeout_follow_the_inventory(tmp_path) -> None:
    path = lab(tmp_path, "split", host_vars={"backup1": {"backup_stanza": "jobs", "backup_tls_port": 9432}},
               group_vars={"backup_archive_timeout": 30})
    ctx = build_context(load(path), "db1")
    archive, settings = ctx["postgres"]["archiving"], settings_of(ctx)
    # The stanza and the port both sides use come from the backup host's variables.
    assert (archive["stanza"], archive["tls_port"], archive["tls_server_auth"]) == ("jobs", 9432, "backup1=jobs")
    assert settings["archive_command"]["value"] == "'pgbackrest --stanza=jobs archive-push %p'"
    assert settings["archive_timeout"]["value"] == "30s"
    assert any(rule["port"] == 9432 and rule["sources"] == [archive["repo_address"]]
               for rule in ctx["common"]["firewall_rules"])


def test_a_db_host_that_is_also_the_backup_host_archives_locally(single) -> None:
    archive = single["postgres"]["archiving"]
    assert (archive["local"], archive["repo_host"]) == (True, "ts1")
    assert settings_of(single)["archive_mode"]["value"] == "on"
    assert "pgbackrest" in host_manifest.packages_for(single)  # archive_command runs it
    # The backup role writes the host's one pgbackrest.conf; this role writes none and runs no TLS server.
    assert not any(item.role == "postgres" and "pgbackrest" in item.dest(single)
                   for item in host_manifest.files_for(single))
    assert not any(rule["why"].startswith("pgBackRest's TLS server from the backup host")
                   for rule in single["common"]["firewall_rules"])


# Files, packages, firewall -----------------------------------------------------------------------------------------


def test_the_db_host_gets_pgbackrest_its_config_and_tls_files(split) -> None:
    ctx = split["db1"]
    assert "pgbackrest" in host_manifest.packages_for(ctx)
    placed = {item.placed(ctx).dest: (item.placed(ctx).user, item.placed(ctx).group, item.mode, item.secret)
              for item in host_manifest.files_for(ctx) if item.role == "postgres"}
    assert {dest: value for dest, value in placed.items() if dest.startswith("/etc/pgbackrest")} == {
        "/etc/pgbackrest/pgbackrest.conf": ("root", "postgres", "640", True),
        "/etc/pgbackrest/tls/ca.crt": ("postgres", "postgres", "644", False),
        "/etc/pgbackrest/tls/host.crt": ("postgres", "postgres", "644", False),
        "/etc/pgbackrest/tls/host.key": ("postgres", "postgres", "600", True),
    }
    assert manifest.PGBACKREST_CA.source_path_unchecked(ctx) == ctx["postgres"]["tls_ca_src"]
    paths = {path.placed(ctx).dest: (path.placed(ctx).user, path.placed(ctx).group, path.mode)
             for path in manifest.PGBACKREST_PATHS}
    assert paths == {"/etc/pgbackrest": ("root", "postgres", "750"),
                     "/etc/pgbackrest/tls": ("postgres", "postgres", "750"),
                     "/var/spool/pgbackrest": ("postgres", "postgres", "750"),
                     "/var/log/pgbackrest": ("postgres", "postgres", "750")}


def test_only_the_backup_host_reaches_the_db_hosts_pgbackrest_server(split) -> None:
    rules = {rule["port"]: rule for rule in split["db1"]["common"]["firewall_rules"]}
    assert rules[8432]["sources"] == [split["backup1"]["host"]["private_address"]]
    nft = render("common/nftables.conf.j2", split["db1"])
    assert f"ip saddr {{ {split['backup1']['host']['private_address']} }} tcp dport 8432 accept" in nft


def test_the_db_side_pgbackrest_conf(split) -> None:
    ctx = split["db1"]
    text = render("postgres/pgbackrest.conf.j2", ctx)
    assert MANAGED_MARKER in text.splitlines()[0]
    db1, backup1 = ctx["host"]["private_address"], split["backup1"]["host"]["private_address"]
    tls = "/etc/pgbackrest/tls"
    assert conf_lines(text) == {
        "global": {
            # By name: pgBackRest checks it against the certificate's CN/DNS names, never an IP address SAN.
            "repo1-host": "backup1", "repo1-host-type": "tls", "repo1-host-port": "8432",
            "repo1-host-ca-file": f"{tls}/ca.crt", "repo1-host-cert-file": f"{tls}/host.crt",
            "repo1-host-key-file": f"{tls}/host.key",
            "archive-async": "y", "spool-path": "/var/spool/pgbackrest", "archive-push-queue-max": "2GB",
            "process-max": "2", "compress-type": "zst", "log-path": "/var/log/pgbackrest", "log-level-file": "detail",
            "tls-server-address": db1, "tls-server-port": "8432", "tls-server-ca-file": f"{tls}/ca.crt",
            "tls-server-cert-file": f"{tls}/host.crt", "tls-server-key-file": f"{tls}/host.key",
            "tls-server-auth": "backup1=talentsphere",
        },
        "talentsphere": {"pg1-path": "/var/lib/postgresql/15/main", "pg1-port": "5432",
                         "pg1-socket-path": "/var/run/postgresql"},
    }
    # The repository's passphrase stays on the backup host.
    assert "cipher" not in text


def test_an_s3_repository_is_pushed_to_from_the_db_host_too(tmp_path) -> None:
    s3 = {"backup_s3_bucket": "ts-backups", "backup_s3_endpoint": "s3.eu-west-1.amazonaws.com",
          "backup_s3_region": "eu-west-1", "backup_s3_key": "AKIAQ3VZ7RTL2M5XK8PD",
          "backup_s3_key_secret": "Zq8vR2mK7xL4tW9pC3nB6yH1jF5dG0sAeU7iO2qN",
          "backup_s3_cipher_pass": "s3-cipher-pass-7Kq2Vx9Lm4Tz8Rw3Np6Hb1Jd5Fg0SyQ"}
    ctx = build_context(load(lab(tmp_path, "split", group_vars=s3)), "db1")
    repo2 = {option: value for option, value in conf_lines(render("postgres/pgbackrest.conf.j2", ctx))["global"].items()
             if option.startswith("repo2-")}
    assert repo2 == {"repo2-type": "s3", "repo2-s3-bucket": "ts-backups",
                     "repo2-s3-endpoint": "s3.eu-west-1.amazonaws.com", "repo2-s3-region": "eu-west-1",
                     "repo2-s3-uri-style": "host", "repo2-s3-key": "AKIAQ3VZ7RTL2M5XK8PD",
                     "repo2-s3-key-secret": "Zq8vR2mK7xL4tW9pC3nB6yH1jF5dG0sAeU7iO2qN",
                     "repo2-path": "/talentsphere", "repo2-cipher-type": "aes-256-cbc",
                     "repo2-cipher-pass": "s3-cipher-pass-7Kq2Vx9Lm4Tz8Rw3Np6Hb1Jd5Fg0SyQ"}


@pytest.mark.skipif(PGBACKREST is None, reason="needs pgbackrest (apt-get install pgbackrest)")
def test_pgbackrest_parses_the_db_side_conf_without_a_warning(split, tmp_path) -> None:
    conf = tmp_path / "pgbackrest.conf"
    conf.write_text(render("postgres/pgbackrest.conf.j2", split["db1"]))
    for args in (["--stanza=talentsphere", "help", "archive-push"], ["help", "server"]):
        result = subprocess.run([PGBACKREST, f"--config={conf}", *args], capture_output=True, text=True)
        assert (result.returncode, result.stderr) == (0, ""), args
    shown = subprocess.run([PGBACKREST, f"--config={conf}", "--stanza=talentsphere", "help", "archive-push",
                            "archive-push-queue-max"], capture_output=True, text=True, check=True).stdout
    assert "current: 2GB" in shown


def test_generate_vms_install_sh_checks_pgbackrest_then_restarts_its_server_before_postgresql(tmp_path) -> None:
    inventory = load(lab(tmp_path / "inventory", "split"))
    vm_generator.write_bundle(inventory, "db1", tmp_path / "db1")
    script = (tmp_path / "db1" / "install.sh").read_text()
    assert subprocess.run(["bash", "-n", str(tmp_path / "db1" / "install.sh")]).returncode == 0
    for dest, owner in (("/etc/pgbackrest/pgbackrest.conf", "root postgres 640"),
                        ("/etc/pgbackrest/tls/host.key", "postgres postgres 600")):
        assert f"put_file {dest} {owner} pgbackrest\n" in script
    assert "ensure_path /etc/pgbackrest root postgres 750 dir\n" in script
    assert (script.index("pgbackrest_parses --stanza=talentsphere help archive-push")
            < script.index("systemctl restart pgbackrest.service")
            < script.index("systemctl reload postgresql@15-main"))
    readme = (tmp_path / "db1" / "README.md").read_text()
    assert "## PostgreSQL: WAL archiving with pgBackRest" in readme and "`pgbackrest help`" in readme


def test_generate_vm_on_the_single_host_leaves_pgbackrest_to_the_backup_role(tmp_path) -> None:
    inventory = load(lab(tmp_path / "inventory", "single"))
    vm_generator.write_bundle(inventory, "ts1", tmp_path / "ts1")
    script = (tmp_path / "ts1" / "install.sh").read_text()
    assert "pgbackrest_parses" not in script and "pgBackRest's TLS server for" not in script
    assert "archive_mode = on" in (tmp_path / "ts1" / "README.md").read_text()


# Validation -------------------------------------------------------------------------------------------------------


def problems(path: pathlib.Path) -> list[str]:
    with pytest.raises(InventoryError) as raised:
        load(path)
    return raised.value.problems


def test_the_desktop_profile_is_refused_when_backups_are_on(tmp_path) -> None:
    [problem] = problems(lab(tmp_path, "split", host_vars={"db1": {"postgresql_profile": "desktop"}}))
    assert problem.startswith("db1: postgresql_profile = 'desktop' (inventory/hosts.yml:")
    assert "wal_level = minimal" in problem and "group 'backup' has backup1" in problem
    assert problem.endswith("fix: set postgresql_profile to web, oltp, dw or mixed, or take backup1 out of the "
                            "'backup' group (no backups)")


def test_the_desktop_profile_without_a_backup_host_is_accepted(tmp_path) -> None:
    inventory = load(write_inventory(tmp_path, main_overrides={"postgresql_profile": "desktop"}))
    assert settings_of(build_context(inventory, "db1"))["wal_level"]["value"] == "minimal"


def test_db_and_backup_hosts_on_different_releases_are_refused(tmp_path) -> None:
    [problem] = problems(lab(tmp_path, "split", host_vars={"backup1": {"debian_release": "trixie"}}))
    assert problem.startswith("backup1: debian_release = 'trixie' (inventory/hosts.yml:")
    assert "differs from db host db1's debian_release = 'bookworm' (inventory/" in problem
    assert "(2.55.1 on trixie, 2.45 on bookworm)" in problem
    assert problem.endswith("fix: set debian_release to the same release on db1 and backup1 (group_vars/all sets "
                            "it for every host)")


def test_one_host_in_both_groups_has_one_release(tmp_path) -> None:
    assert validation.validate(read(lab(tmp_path, "single", group_vars={"debian_release": "trixie"}))) == []


# The deploy's candidate check, for real ----------------------------------------------------------------------------


live_check = pytest.mark.skipif(
    os.geteuid() != 0 or not has_postgres_account() or PGBACKREST is None or not shutil.which("openssl")
    or not shutil.which("runuser", path="/usr/sbin:/usr/bin:/sbin:/bin"),
    reason="needs root, the postgres account, pgbackrest (apt-get install pgbackrest) and openssl")


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


class Stand:
    """A stand-in /etc/pgbackrest in a temp dir the postgres user can read, with a CA and host certificates."""

    def __init__(self, ctx: dict[str, Any]) -> None:
        self.ctx = ctx
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="tsdeploy-pgbackrest-", dir="/tmp"))
        shutil.chown(self.dir, "postgres", "postgres")
        self.dir.chmod(0o750)
        self.live = {name: str(self.dir / name) for name in ("pgbackrest.conf", "ca.crt", "host.crt", "host.key")}
        self.pki = self.dir / "pki"
        self.pki.mkdir()
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
                 "-subj", "/CN=test CA", "-keyout", str(self.pki / "ca.key"), "-out", str(self.pki / "ca.crt"))

    def issue(self, name: str, cn: str, usage: str | None = "serverAuth,clientAuth", ca: str = "ca") -> None:
        """A certificate for `cn` signed by `ca`, with the extended key usage `usage` (None: no such extension)."""
        ext = self.pki / f"{name}.ext"
        ext.write_text(f"subjectAltName=DNS:{cn}\n" + (f"extendedKeyUsage={usage}\n" if usage else ""))
        _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", f"/CN={cn}",
                 "-keyout", str(self.pki / f"{name}.key"), "-out", str(self.pki / f"{name}.csr"))
        _openssl("x509", "-req", "-in", str(self.pki / f"{name}.csr"), "-CA", str(self.pki / f"{ca}.crt"),
                 "-CAkey", str(self.pki / f"{ca}.key"), "-CAcreateserial", "-days", "2", "-extfile", str(ext),
                 "-out", str(self.pki / f"{name}.crt"))

    def land(self, conf: str, cert: str = "host", key: str | None = None) -> subprocess.CompletedProcess:
        """Put the four files up as candidates (owner and mode as the manifest says) and run the land script."""
        wanted = {"pgbackrest.conf": (conf, "root", 0o640),
                  "ca.crt": ((self.pki / "ca.crt").read_text(), "postgres", 0o644),
                  "host.crt": ((self.pki / f"{cert}.crt").read_text(), "postgres", 0o644),
                  "host.key": ((self.pki / f"{key or cert}.key").read_text(), "postgres", 0o600)}
        paths = {}
        for name, (content, user, mode) in wanted.items():
            candidate = pathlib.Path(self.live[name] + ".tsdeploy-candidate")
            candidate.write_text(content)
            shutil.chown(candidate, user, "postgres")
            candidate.chmod(mode)
            paths[self.live[name]] = str(candidate)
        check = pgbackrest_check(host_name="db1", stanza="talentsphere", conf=self.live["pgbackrest.conf"],
                                 ca=self.live["ca.crt"], cert=self.live["host.crt"], key=self.live["host.key"])
        env = {**os.environ, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        return subprocess.run(["sh", "-c", land_script("db1", paths, check)], capture_output=True, text=True, env=env)

    def landed(self) -> bool:
        return all(pathlib.Path(path).exists() for path in self.live.values())


@pytest.fixture
def stand(split):
    made = Stand(split["db1"])
    yield made
    shutil.rmtree(made.dir)


@live_check
def test_the_check_lands_a_valid_set(stand) -> None:
    stand.issue("host", "db1")
    result = stand.land(render("postgres/pgbackrest.conf.j2", stand.ctx))
    assert result.returncode == 0, result.stderr
    assert stand.landed()
    assert not list(stand.dir.glob("*.tsdeploy-candidate"))


@live_check
@pytest.mark.parametrize(("change", "said"), [
    (("archive-push-queue-max=2GB", "archive-push-queue-max=2XB"), "'2XB' is not valid for 'archive-push-queue-max'"),
    (("log-level-file=detail", "log-level-file=detail\nrepo1-hots=10.0.0.1"), "invalid option 'repo1-hots'"),
    (("tls-server-port=8432", "tls-server-port=eighty"), "'eighty' is not valid for 'tls-server-port'"),
])
def test_the_check_refuses_a_conf_pgbackrest_refuses(stand, change, said) -> None:
    stand.issue("host", "db1")
    result = stand.land(render("postgres/pgbackrest.conf.j2", stand.ctx).replace(*change))
    assert result.returncode == 1
    assert "/pgbackrest.conf: " in result.stderr and said in result.stderr, result.stderr
    assert "nothing landed" in result.stderr and not stand.landed()
    assert not list(stand.dir.glob("*.tsdeploy-candidate"))


@live_check
@pytest.mark.parametrize(("issue", "key", "said"), [
    ({"cn": "db1", "usage": "serverAuth"}, None, "lacks TLS Web Client Authentication"),
    ({"cn": "backup1"}, None, "its CN is 'backup1', not this host's inventory name 'db1'"),
    ({"cn": "db1"}, "other", "is not the key of"),
])
def test_the_check_refuses_a_certificate_the_peer_would_refuse(stand, issue, key, said) -> None:
    stand.issue("host", **issue)
    if key:
        stand.issue(key, "db1")
    result = stand.land(render("postgres/pgbackrest.conf.j2", stand.ctx), key=key)
    assert result.returncode == 1 and said in result.stderr, result.stderr
    assert not stand.landed()


@live_check
def test_a_certificate_without_extended_key_usage_serves_any_purpose(stand) -> None:
    stand.issue("host", "db1", usage=None)
    assert stand.land(render("postgres/pgbackrest.conf.j2", stand.ctx)).returncode == 0


@live_check
def test_the_check_refuses_a_certificate_the_ca_did_not_sign(stand) -> None:
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
             "-subj", "/CN=db1", "-keyout", str(stand.pki / "self.key"), "-out", str(stand.pki / "self.crt"))
    result = stand.land(render("postgres/pgbackrest.conf.j2", stand.ctx), cert="self")
    assert result.returncode == 1 and "is not signed by" in result.stderr, result.stderr


@pytest.mark.parametrize("layout", ["split", "single"])
def test_a_timer_closes_the_wal_segment_every_archive_timeout_when_archiving(layout, split, single,
                                                                             tmp_path) -> None:
    # PostgreSQL 15 was seen not to switch segments on archive_timeout alone (writes stayed in the open
    # segment for minutes, and a lost db host took them with it): the timer enforces the bound.
    ctx = split["db1"] if layout == "split" else single
    files = {item.key: item for item in host_manifest.files_for(ctx)}
    service, timer = files["postgres/wal-switch.service.j2"], files["postgres/wal-switch.timer.j2"]
    assert timer.content(ctx).count("60s") == 2 and "Unit=tsdeploy-wal-switch.service" in timer.content(ctx)
    assert "pg_switch_wal() WHERE NOT pg_is_in_recovery()" in service.content(ctx)
    assert "User=postgres" in service.content(ctx)
    for item in (service, timer):
        (tmp_path / item.dest(ctx).rsplit("/", 1)[1]).write_text(item.content(ctx))
    if shutil.which("systemd-analyze"):
        checked = subprocess.run(["systemd-analyze", "verify", *(str(p) for p in tmp_path.iterdir())],
                                 capture_output=True, text=True, check=False)
        assert "tsdeploy-wal-switch" not in checked.stderr.replace("postgresql@15-main", ""), checked.stderr


def test_no_wal_switch_timer_without_a_backup_host(tmp_path) -> None:
    directory = _lab_inventory(tmp_path, "split")
    document = yaml.safe_load((directory / "hosts.yml").read_text())
    del document["all"]["children"]["backup"]
    (directory / "hosts.yml").write_text(yaml.safe_dump(document))
    ctx = build_context(load(directory), "db1")
    assert not [item for item in host_manifest.files_for(ctx) if "wal-switch" in item.key]
