"""The backup role's context and rendered files in the lab's two topologies: split (db1 and backup1, pgBackRest
over mutual TLS) and single (ts1 is both: one local configuration), through the real inventory loader,
context builder and templates. The drill script itself runs against real PostgreSQL in test_backup_drill.py.
"""

from __future__ import annotations

import configparser
import os
import pathlib
import re
import shutil
import subprocess
import tempfile

import pytest

from roles.backup import context as backup_context
from roles.backup import manifest as backup_manifest
from roles.backup import stanza as backup_stanza
from roles.backup.configure import repository_check
from roles.common.files import candidate_path, land_script
from test_rendering_golden import LAB_SECRETS, _lab_inventory
from tsdeploy import ROOT, manifest, validation
from tsdeploy import inventory as inventory_module
from tsdeploy.context import build_context
from tsdeploy.generate.vm import write_bundle
from tsdeploy.templating import MANAGED_MARKER, render
from local_postgres import has_postgres_account

APP_INDEXES = ROOT / "app" / "src" / "talentsphere" / "indexes.py"
UNITS = ("pgbackrest-backup@.service", "pgbackrest-backup-full.timer", "pgbackrest-backup-diff.timer",
         "pgbackrest-drill.service", "pgbackrest-drill.timer")
S3 = {"backup_s3_bucket": "ts-backups", "backup_s3_endpoint": "s3.eu-west-1.amazonaws.com",
      "backup_s3_region": "eu-west-1", "backup_s3_key": "AKIAQ3VZ7RTL2M5XK8PD",
      "backup_s3_key_secret": "Zq8vR2mK7xL4tW9pC3nB6yH1jF5dG0sAeU7iO2qN",
      "backup_s3_cipher_pass": "s3-cipher-pass-7Kq2Vx9Lm4Tz8Rw3Np6Hb1Jd5Fg0SyQ"}


def _with_main(path: pathlib.Path, values: dict[str, object]) -> pathlib.Path:
    """The inventory at `path` with `values` appended to group_vars/all/main.yml."""
    main = path / "group_vars" / "all" / "main.yml"
    main.write_text(main.read_text() + "".join(f"{name}: {value!r}\n" for name, value in values.items()))
    return path


@pytest.fixture(scope="module")
def inventories(tmp_path_factory: pytest.TempPathFactory) -> dict[str, inventory_module.Inventory]:
    return {
        "split": inventory_module.load(_lab_inventory(tmp_path_factory.mktemp("split"), "split")),
        "single": inventory_module.load(_lab_inventory(tmp_path_factory.mktemp("single"), "single")),
        "s3": inventory_module.load(_with_main(_lab_inventory(tmp_path_factory.mktemp("s3"), "split"), S3)),
    }


@pytest.fixture(scope="module")
def contexts(inventories) -> dict[str, dict]:
    return {"split": build_context(inventories["split"], "backup1"),
            "split-db": build_context(inventories["split"], "db1"),
            "single": build_context(inventories["single"], "ts1"),
            "s3": build_context(inventories["s3"], "backup1")}


def _conf(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # pgBackRest's option names are case-sensitive
    parser.read_string(text)
    return parser


# The context ----------------------------------------------------------------------------------------------------


def test_the_context_has_every_key_the_other_tooling_reads(contexts) -> None:
    required = {"stanza", "local", "repo_path", "conf_path", "drill_result", "backup_unit", "drill_unit", "timers",
                "db_host", "db_address", "pg_path", "pg_port", "pg_version", "pg_bin", "pg_service", "db_name", "s3"}
    for name in ("split", "single"):
        assert required <= set(contexts[name]["backup"]), name


def test_split_reads_the_cluster_of_the_db_host_and_single_is_local(contexts) -> None:
    split, single = contexts["split"]["backup"], contexts["single"]["backup"]
    assert (split["local"], split["db_host"], split["db_address"]) == (False, "db1", "198.18.0.10")
    assert (single["local"], single["db_host"]) == (True, "ts1")
    for backup in (split, single):
        assert (backup["pg_path"], backup["pg_port"], backup["pg_version"]) == ("/var/lib/postgresql/15/main", 5432, 15)
        assert (backup["pg_bin"], backup["pg_service"]) == ("/usr/lib/postgresql/15/bin", "postgresql@15-main")
        assert backup["drill_result"] == "/var/lib/tsdeploy/drill/last.json"
        assert backup["backup_unit"].format(type="full") == "pgbackrest-backup@full.service"
        assert backup["timers"] == ["pgbackrest-backup-full.timer", "pgbackrest-backup-diff.timer",
                                    "pgbackrest-drill.timer"]


def test_only_backup_hosts_get_the_backup_context(contexts) -> None:
    assert "backup" not in contexts["split-db"]
    assert "postgres" not in contexts["split"]


def test_the_expected_indexes_are_the_apps_list_read_without_importing_the_app(contexts) -> None:
    names = re.findall(r'IndexSpec\("([a-z0-9_]+)"', APP_INDEXES.read_text())
    assert len(names) == 38
    assert contexts["split"]["backup"]["expected_indexes"] == names
    assert contexts["split"]["backup"]["warnings"] == []


def test_an_app_tree_without_the_index_list_is_a_warning_not_an_error(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("TSDEPLOY_APP_DIR", str(tmp_path))
    names, warnings = backup_context.expected_indexes()
    assert names == [] and "cannot check the app's indexes" in warnings[0]


def test_the_tls_port_is_open_to_the_db_host_only_in_split(contexts) -> None:
    rules = {rule["port"]: rule["sources"] for rule in contexts["split"]["common"]["firewall_rules"]}
    assert rules[8432] == ["198.18.0.10"]
    single = {rule["port"] for rule in contexts["single"]["common"]["firewall_rules"]}
    assert 8432 not in single


# pgbackrest.conf ------------------------------------------------------------------------------------------------


def test_the_split_repository_conf_reads_the_cluster_over_mutual_tls(contexts) -> None:
    text = render("backup/pgbackrest.conf.j2", contexts["split"])
    assert MANAGED_MARKER in text.splitlines()[0]
    conf = _conf(text)
    assert conf.sections() == ["global", "talentsphere"]
    assert dict(conf["global"]) == {
        "repo1-path": "/var/lib/pgbackrest", "repo1-cipher-type": "aes-256-cbc",
        "repo1-cipher-pass": LAB_SECRETS["vault_backup_repo_cipher_pass"], "repo1-retention-full": "4",
        "repo1-retention-diff": "6", "repo1-bundle": "y", "compress-type": "zst", "process-max": "2",
        "start-fast": "y", "log-path": "/var/log/pgbackrest", "log-level-file": "detail",
        "tls-server-address": "198.18.0.11", "tls-server-port": "8432",
        "tls-server-ca-file": "/etc/pgbackrest/tls/ca.crt", "tls-server-cert-file": "/etc/pgbackrest/tls/host.crt",
        "tls-server-key-file": "/etc/pgbackrest/tls/host.key", "tls-server-auth": "db1=talentsphere"}
    assert dict(conf["talentsphere"]) == {
        "pg1-host": "db1", "pg1-host-type": "tls", "pg1-host-port": "8432",
        "pg1-host-ca-file": "/etc/pgbackrest/tls/ca.crt", "pg1-host-cert-file": "/etc/pgbackrest/tls/host.crt",
        "pg1-host-key-file": "/etc/pgbackrest/tls/host.key", "pg1-path": "/var/lib/postgresql/15/main",
        "pg1-port": "5432"}


def test_the_single_conf_is_local_and_archives_asynchronously(contexts) -> None:
    conf = _conf(render("backup/pgbackrest.conf.j2", contexts["single"]))
    assert not any(key.startswith("tls-") for key in conf["global"])
    assert (conf["global"]["archive-async"], conf["global"]["spool-path"]) == ("y", "/var/spool/pgbackrest")
    assert conf["global"]["archive-push-queue-max"] == "2GB"
    assert dict(conf["talentsphere"]) == {"pg1-path": "/var/lib/postgresql/15/main", "pg1-port": "5432",
                                          "pg1-socket-path": "/var/run/postgresql"}


def test_the_console_log_level_stays_at_warnings_because_postgresql_logs_archive_push(contexts) -> None:
    for name in ("split", "single"):
        conf = _conf(render("backup/pgbackrest.conf.j2", contexts[name]))
        assert "log-level-console" not in conf["global"]


def test_an_s3_repository_is_repo2_with_its_own_passphrase_and_a_second_backup_per_run(contexts) -> None:
    conf = _conf(render("backup/pgbackrest.conf.j2", contexts["s3"]))["global"]
    assert (conf["repo2-type"], conf["repo2-s3-bucket"], conf["repo2-path"]) == ("s3", "ts-backups", "/talentsphere")
    assert conf["repo2-cipher-pass"] == S3["backup_s3_cipher_pass"] != conf["repo1-cipher-pass"]
    assert conf["repo2-retention-full"] == "8"
    starts = [line for line in render("backup/pgbackrest-backup@.service.j2", contexts["s3"]).splitlines()
              if line.startswith("ExecStart=")]
    assert [re.search(r"--repo=(\d)", line).group(1) for line in starts] == ["1", "2"]


def test_half_an_s3_configuration_is_refused_naming_what_is_missing(tmp_path) -> None:
    path = _with_main(_lab_inventory(tmp_path, "split"), {"backup_s3_bucket": "ts-backups"})
    with pytest.raises(inventory_module.InventoryError) as raised:
        inventory_module.load(path)
    problems = [problem for problem in raised.value.problems if "S3 repository" in problem]
    assert len(problems) == 1
    assert problems[0].startswith("backup1: the S3 repository is half configured: backup_s3_bucket (")
    assert "backup_s3_endpoint, backup_s3_region, backup_s3_key, backup_s3_key_secret, backup_s3_cipher_pass" \
        in problems[0]


def test_a_full_s3_configuration_passes_validation(inventories) -> None:
    assert validation.validate(inventories["s3"]) == []


# Units, timers, the drill script ------------------------------------------------------------------------------


def test_the_units_run_pgbackrest_as_postgres_on_the_inventorys_calendars(contexts) -> None:
    ctx = contexts["split"]
    service = render("backup/pgbackrest-backup@.service.j2", ctx)
    assert "User=postgres\n" in service and "Type=oneshot\n" in service
    assert ("ExecStart=/usr/bin/pgbackrest --stanza=talentsphere --repo=1 --type=%i --log-level-console=info "
            "backup\n") in service
    # The lock in /tmp/pgbackrest must be shared with a backup started by hand.
    assert not any(line.startswith("PrivateTmp") for line in service.splitlines())
    full = render("backup/pgbackrest-backup-full.timer.j2", ctx)
    assert "OnCalendar=Sun *-*-* 01:30:00\n" in full and "Unit=pgbackrest-backup@full.service\n" in full
    assert "Persistent=true\n" in full
    diff = render("backup/pgbackrest-backup-diff.timer.j2", ctx)
    assert "OnCalendar=Mon..Sat *-*-* 01:30:00\n" in diff and "Unit=pgbackrest-backup@diff.service\n" in diff
    drill = render("backup/pgbackrest-drill.service.j2", ctx)
    assert "ExecStart=/usr/local/lib/tsdeploy/backup-drill\n" in drill and "User=postgres\n" in drill
    assert "Unit=pgbackrest-drill.service\n" in render("backup/pgbackrest-drill.timer.j2", ctx)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_accepts_the_units(contexts, tmp_path) -> None:
    ctx = contexts["s3"]
    names = []
    for unit in UNITS:
        text = render(f"backup/{unit}.j2", ctx)
        # The drill script is not installed here: any executable stands in for it.
        text = text.replace(ctx["backup"]["drill_script"], "/bin/true")
        for name in ([unit.replace("@.", "@full."), unit.replace("@.", "@diff.")] if "@." in unit else [unit]):
            (tmp_path / name).write_text(text)
            names.append(f"./{name}")
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", *names], cwd=tmp_path, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_reads_the_default_calendars(contexts) -> None:
    backup = contexts["split"]["backup"]
    for calendar in (backup["full_calendar"], backup["diff_calendar"], backup["drill_calendar"]):
        result = subprocess.run(["systemd-analyze", "calendar", calendar], capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr


def test_the_drill_script_is_bash_with_the_apps_indexes(contexts, tmp_path) -> None:
    text = render("backup/backup-drill.sh.j2", contexts["split"])
    assert text.startswith("#!/bin/bash\n") and MANAGED_MARKER in text.splitlines()[1]
    script = tmp_path / "drill"
    script.write_text(text)
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True).returncode == 0
    block = re.search(r"EXPECTED_INDEXES=\(\n(.*?)\n\)", text, re.S).group(1)
    assert block.split() == contexts["split"]["backup"]["expected_indexes"]
    assert "PGBACKREST=(/usr/bin/pgbackrest --config=\"$CONF\" --stanza=\"$STANZA\" --repo=1)" in text
    assert "CONF='/etc/pgbackrest/pgbackrest.conf'" in text and "PORT=5499" in text


# The manifest -----------------------------------------------------------------------------------------------------


def _placed(ctx: dict, role: str = "backup") -> dict[str, tuple[str, str, str, bool]]:
    return {item.dest(ctx): (*(lambda p: (f"{p.user}:{p.group}", p.mode))(item.placed(ctx)), item.secret)
            for item in manifest.files_for(ctx) if item.role == role}


def test_split_writes_the_tls_files_and_the_createcluster_drop_in(contexts) -> None:
    files = _placed(contexts["split"])
    assert files["/etc/pgbackrest/pgbackrest.conf"] == ("root:postgres", "640", True)
    assert files["/etc/pgbackrest/tls/ca.crt"] == ("postgres:postgres", "644", False)
    assert files["/etc/pgbackrest/tls/host.crt"] == ("postgres:postgres", "644", False)
    assert files["/etc/pgbackrest/tls/host.key"] == ("postgres:postgres", "600", True)
    assert files["/usr/local/lib/tsdeploy/backup-drill"] == ("root:root", "755", False)
    assert files[backup_context.CREATECLUSTER_DROP_IN] == ("root:root", "644", False)
    assert "create_main_cluster = false" in render("backup/createcluster.conf.j2", contexts["split"])
    assert all(f"/etc/systemd/system/{unit}" in files for unit in UNITS)
    assert backup_manifest.packages(contexts["split"]) == ["pgbackrest", "postgresql-15"]


def test_single_writes_no_tls_files_and_leaves_postgresql_to_the_postgres_role(contexts) -> None:
    files = _placed(contexts["single"])
    assert not any(path.startswith("/etc/pgbackrest/tls/") for path in files)
    assert backup_context.CREATECLUSTER_DROP_IN not in files
    assert backup_manifest.packages(contexts["single"]) == ["pgbackrest"]


def test_the_repository_and_the_drill_directories_are_postgres_only(contexts) -> None:
    paths = {placed.dest: (placed.user, placed.group, placed.mode)
             for placed in (item.placed(contexts["split"]) for item in backup_manifest.PATHS)}
    assert paths["/var/lib/pgbackrest"] == ("postgres", "postgres", "750")
    assert paths["/etc/pgbackrest"] == ("root", "postgres", "750")
    assert paths["/var/lib/tsdeploy/drill"] == ("postgres", "postgres", "750")
    assert paths["/var/lib/pgbackrest-drill"] == ("postgres", "postgres", "700")
    # The drop-in's directory exists before the packages are installed.
    assert backup_manifest.PATHS[0].path == backup_context.CREATECLUSTER_DIR


def test_the_archive_queue_size_is_spelled_as_pgbackrest_reads_it() -> None:
    assert backup_context.pgbackrest_size("2GiB") == "2GB"
    assert backup_context.pgbackrest_size("1536MB") == "1536MB"
    assert backup_context.pgbackrest_size(1000) == "1000"


# generate vm ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("topology, host", [("split", "backup1"), ("single", "ts1")])
def test_the_vm_bundle_enables_the_timers_and_explains_the_stanza(inventories, topology, host, tmp_path) -> None:
    write_bundle(inventories[topology], host, tmp_path, with_secrets=True)
    install = (tmp_path / "install.sh").read_text()
    assert subprocess.run(["bash", "-n", str(tmp_path / "install.sh")]).returncode == 0
    for timer in ("pgbackrest-backup-full.timer", "pgbackrest-backup-diff.timer", "pgbackrest-drill.timer"):
        assert f"run_at_boot {timer} || true" in install
    assert ("run_at_boot pgbackrest.service" in install) is (topology == "split")
    readme = (tmp_path / "README.md").read_text()
    assert "pgbackrest --stanza=talentsphere stanza-create" in readme
    # On a backup-only host the createcluster drop-in lands before the packages: no "main" cluster is created.
    packages_step = install.split('say "2/5')[0]
    assert ("put_file /etc/postgresql-common/createcluster.d/" in packages_step) is (topology == "split")
    assert packages_step.index("createcluster.d/") < packages_step.index("apt-get install") \
        if topology == "split" else True


# pgBackRest's answers, as the deploy's facts read them --------------------------------------------------------------


def test_the_stanza_fact_lists_the_repositories_that_lack_the_stanza() -> None:
    missing = ('[{"archive":[],"backup":[],"cipher":"aes-256-cbc","db":[],"name":"talentsphere","repo":[{"cipher":'
               '"aes-256-cbc","key":1,"status":{"code":1,"message":"missing stanza path"}}],"status":{"code":1,'
               '"lock":{"backup":{"held":false}},"message":"missing stanza path"}}]')
    assert backup_stanza.StanzaInfo().process([missing, "tsdeploy-rc=0"])["missing"] == [1]
    present = missing.replace('"code":1', '"code":2').replace("missing stanza path", "no valid backups")
    assert backup_stanza.StanzaInfo().process([present, "tsdeploy-rc=0"]) == {
        "ok": True, "missing": [], "status": "no valid backups", "backups": 0, "running": False, "error": ""}
    running = present.replace('"held":false', '"held":true')
    assert backup_stanza.StanzaInfo().process([running, "tsdeploy-rc=0"])["running"] is True
    broken = backup_stanza.StanzaInfo().process(["ERROR: [041]: unable to open file", "tsdeploy-rc=41"])
    assert not broken["ok"] and "unable to open" in broken["error"]


def test_the_check_fact_tells_a_pending_restart_from_another_cluster() -> None:
    pending = backup_stanza.ArchiveCheck().process(["ERROR: [087]: archive_mode must be enabled", "tsdeploy-rc=87"])
    assert (pending["passed"], pending["code"]) == (False, backup_stanza.ARCHIVE_DISABLED)
    other = backup_stanza.ArchiveCheck().process(
        ["ERROR: [028]: backup and archive info files exist but do not match the database",
         "       HINT: is this the correct stanza?", "tsdeploy-rc=28"])
    message = backup_stanza.check_failure("talentsphere", other, "db1")
    assert "do not match the database" in message and "tsdeploy restore INVENTORY --latest --yes" in message
    assert backup_stanza.ArchiveCheck().process(["tsdeploy-rc=0"])["passed"]


# pgbackrest.conf and the TLS files are checked as candidates, for real ---------------------------------------------

live_check = pytest.mark.skipif(
    os.geteuid() != 0 or not has_postgres_account() or not shutil.which("pgbackrest") or not shutil.which("openssl")
    or not shutil.which("runuser", path="/usr/sbin:/usr/bin:/sbin:/bin"),
    reason="needs root, the postgres account, pgbackrest (apt-get install pgbackrest) and openssl")


class Candidates:
    """A stand-in /etc/pgbackrest the postgres user can read, a CA, and the land script of the role's check."""

    def __init__(self) -> None:
        self.dir = pathlib.Path(tempfile.mkdtemp(prefix="tsdeploy-backup-conf-", dir="/tmp"))
        shutil.chown(self.dir, "postgres", "postgres")
        self.dir.chmod(0o750)
        self.live = {name: str(self.dir / name) for name in ("pgbackrest.conf", "ca.crt", "host.crt", "host.key")}
        self.pki = self.dir / "pki"
        self.pki.mkdir()
        self._openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
                      "-subj", "/CN=test CA", "-keyout", "ca.key", "-out", "ca.crt")

    def _openssl(self, *args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=self.pki)

    def issue(self, cn: str, usage: str = "serverAuth,clientAuth") -> None:
        (self.pki / "host.ext").write_text(f"subjectAltName=DNS:{cn}\nextendedKeyUsage={usage}\n")
        self._openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", f"/CN={cn}",
                      "-keyout", "host.key", "-out", "host.csr")
        self._openssl("x509", "-req", "-in", "host.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                      "-days", "2", "-extfile", "host.ext", "-out", "host.crt")

    def land(self, conf: str, tls: bool) -> subprocess.CompletedProcess:
        wanted = {"pgbackrest.conf": (conf, "root", 0o640)}
        if tls:
            wanted |= {"ca.crt": ((self.pki / "ca.crt").read_text(), "postgres", 0o644),
                       "host.crt": ((self.pki / "host.crt").read_text(), "postgres", 0o644),
                       "host.key": ((self.pki / "host.key").read_text(), "postgres", 0o600)}
        paths = {}
        for name, (content, user, mode) in wanted.items():
            candidate = pathlib.Path(candidate_path(self.live[name]))
            candidate.write_text(content)
            shutil.chown(candidate, user, "postgres")
            candidate.chmod(mode)
            paths[self.live[name]] = str(candidate)
        check = repository_check(host_name="backup1", stanza="talentsphere", conf=self.live["pgbackrest.conf"],
                                 tls={"ca": self.live["ca.crt"], "cert": self.live["host.crt"],
                                      "key": self.live["host.key"]} if tls else None)
        env = {**os.environ, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        return subprocess.run(["sh", "-c", land_script("backup1", paths, check)], capture_output=True, text=True,
                              env=env)

    def landed(self, *names: str) -> bool:
        return all(pathlib.Path(self.live[name]).exists() for name in names)


@pytest.fixture
def candidates():
    made = Candidates()
    yield made
    shutil.rmtree(made.dir)


@live_check
def test_the_split_set_passes_pgbackrest_and_openssl_and_lands(candidates, contexts) -> None:
    candidates.issue("backup1")
    result = candidates.land(render("backup/pgbackrest.conf.j2", contexts["split"]), tls=True)
    assert result.returncode == 0, result.stderr
    assert candidates.landed("pgbackrest.conf", "ca.crt", "host.crt", "host.key")


@live_check
def test_the_single_conf_passes_pgbackrest_as_the_archive_command_reads_it(candidates, contexts) -> None:
    for name in ("single", "s3"):
        result = candidates.land(render("backup/pgbackrest.conf.j2", contexts[name]), tls=False)
        assert result.returncode == 0, result.stderr


@live_check
@pytest.mark.parametrize(("change", "said"), [
    (("repo1-retention-full=4", "repo1-retention-full=four"), "'four' is not valid for 'repo1-retention-full'"),
    (("repo1-bundle=y", "repo1-bundle=y\nrepo1-bundel=y"), "invalid option 'repo1-bundel'"),
])
def test_a_conf_pgbackrest_refuses_never_lands(candidates, contexts, change, said) -> None:
    candidates.issue("backup1")
    result = candidates.land(render("backup/pgbackrest.conf.j2", contexts["split"]).replace(*change), tls=True)
    assert result.returncode == 1 and said in result.stderr, result.stderr
    assert "nothing landed" in result.stderr and not candidates.landed("pgbackrest.conf")


@live_check
@pytest.mark.parametrize(("cn", "usage", "said"), [
    ("db1", "serverAuth,clientAuth", "its CN is 'db1', not this host's inventory name 'backup1'"),
    ("backup1", "serverAuth", "lacks TLS Web Client Authentication"),
])
def test_a_certificate_the_db_host_would_refuse_never_lands(candidates, contexts, cn, usage, said) -> None:
    candidates.issue(cn, usage)
    result = candidates.land(render("backup/pgbackrest.conf.j2", contexts["split"]), tls=True)
    assert result.returncode == 1 and said in result.stderr, result.stderr
    assert not candidates.landed("pgbackrest.conf")
