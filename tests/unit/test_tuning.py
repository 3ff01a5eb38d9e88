"""`tsdeploy.tuning` reproduces PGTune and derives max_connections from the app topology.

The reference outputs in `data/pgtune/*.conf` are written in PGTune's own output format and were derived by
hand from le0pard/pgtune `src/features/configuration/configurationSlice.js` (selectors named below; the PG 18
selectors `selectIoMethod`/`selectIoWorkers` as of commit 421728c2f26fae14285f9805d31198b98925d697, the
`selectDBSize` input in the newest version) and `src/common/components/configurationView/index.jsx`
(`formatValue`, output order, `.filter((item) => !!item[1])`). The derivation of each value is in the
comments of `REFERENCE_CASES`; all memory is in kB as PGTune computes it (total_kb = bytes / 1024).
"""

from __future__ import annotations

import pathlib

import pytest
from click.testing import CliRunner

from tsdeploy import tuning
from tsdeploy.tune_cli import tune as tune_command

GiB = 1024**3
DATA = pathlib.Path(__file__).parent / "data" / "pgtune"

REFERENCE_CASES = {
    # total_kb 16777216. selectMaxConnections web -> 200. selectSharedBuffers /4 -> 4194304 = 4GB.
    # selectEffectiveCacheSize *3/4 -> 12GB. selectMaintenanceWorkMem /16 -> 1GB (under the 8GB cap).
    # selectWalBuffers 3% of 4194304 = 125829 -> capped 16MB. selectParallelSettings 4 CPUs -> 4, ceil(4/2)=2,
    # 4, 2. selectWorkMem (16777216 - 4194304) / ((200 + 4) * 3) = 20560.3 -> 20560kB.
    # selectHugePages 4GB >= 2GB -> try. selectJit web, PG >= 12 -> off. selectWalCompression 15 -> lz4.
    # selectAutovacuumMaxWorkers 4 CPUs -> null; selectAutovacuumWorkMem 1GB < 2GB -> null (both omitted).
    "web-16GB-4cpu-ssd-pg15.conf": dict(memory=16 * GiB, cpus=4, storage="ssd", profile="web", pg_version=15),
    # total_kb 67108864. connections 500. shared_buffers 16GB, effective_cache_size 48GB,
    # maintenance_work_mem 64GB/16 = 4GB. san: random_page_cost 1.1, effective_io_concurrency 300.
    # parallel 16 CPUs: per gather ceil(16/2)=8 capped at 4 (not dw), maintenance min(8, 4)=4.
    # work_mem (67108864 - 16777216) / ((500 + 16) * 3) = 32513.98 -> 32513kB.
    # autovacuum_max_workers 16 CPUs -> 4; autovacuum_work_mem 4GB >= 2GB -> 2GB. oltp WAL 2GB / 8GB.
    "oltp-64GB-16cpu-san-pg17-500conn.conf": dict(memory=64 * GiB, cpus=16, storage="san", profile="oltp",
                                                  pg_version=17, connections=500),
    # total_kb 268435456. dw -> 40 connections. shared_buffers 64GB, effective_cache_size 192GB,
    # maintenance_work_mem 256GB/8 = 32GB capped at 8GB. default_statistics_target 500. hdd: random_page_cost 4,
    # effective_io_concurrency 2. parallel 32 CPUs: per gather 16 (dw is not capped), maintenance 4.
    # work_mem (268435456 - 67108864) / ((40 + 32) * 3) = 932067.55, dw halves: floor(466033.77) = 466033kB.
    # jit: null for dw (omitted). autovacuum_max_workers 32 CPUs -> 5, autovacuum_work_mem 2GB. WAL 4GB / 16GB.
    "dw-256GB-32cpu-hdd-pg17.conf": dict(memory=256 * GiB, cpus=32, storage="hdd", profile="dw", pg_version=17),
    # total_kb 2097152. desktop -> 20 connections. shared_buffers /16 = 131072 = 128MB, effective_cache_size
    # /4 = 512MB, maintenance_work_mem /16 = 128MB. wal_buffers 3% of 131072 = 3932kB. 2 CPUs: no parallel
    # settings, so work_mem uses DEFAULT_DB_SETTINGS max_worker_processes 8:
    # (2097152 - 131072) / ((20 + 8) * 3) = 23405.7, desktop /6 -> 3900 -> raised to the 4MB floor.
    # huge_pages off (128MB). jit null for desktop. selectWalLevel: wal_level minimal, max_wal_senders 0.
    "desktop-2GB-2cpu-hdd-pg15.conf": dict(memory=2 * GiB, cpus=2, storage="hdd", profile="desktop",
                                           pg_version=15),
    # total_kb 8388608. connections 60. shared_buffers 2GB (huge_pages: 2GB >= 2GB -> try), cache 6GB,
    # maintenance 512MB (autovacuum_work_mem null). parallel 16 CPUs: 16, 4, 16, 4.
    # work_mem (8388608 - 2097152) / ((60 + 16) * 3) = 27594.1, mixed halves: floor(13797.05) = 13797kB.
    # PG 18: selectIoMethod linux -> io_uring; selectIoWorkers min(32, max(3, floor(16/4))) = 4 > 3 -> 4.
    "mixed-8GB-16cpu-ssd-pg18-60conn.conf": dict(memory=8 * GiB, cpus=16, storage="ssd", profile="mixed",
                                                 pg_version=18, connections=60),
    # total_kb 1048576. shared_buffers 256MB, cache 768MB, maintenance 64MB. wal_buffers 3% of 262144 = 7864kB.
    # 2 CPUs: workers 8 for work_mem: (1048576 - 262144) / ((100 + 8) * 3) = 2427.3 -> 4MB floor. huge_pages off.
    "web-1GB-2cpu-ssd-pg15-100conn.conf": dict(memory=1 * GiB, cpus=2, storage="ssd", profile="web",
                                               pg_version=15, connections=100),
}


def read_reference(name: str) -> list[tuple[str, str]]:
    """The `name = value` lines of a PGTune output file, in order (comments and blank lines skipped)."""
    lines = (DATA / name).read_text().splitlines()
    return [tuple(part.strip() for part in line.split("=", 1)) for line in lines if line and not line.startswith("#")]


@pytest.mark.parametrize("reference", sorted(REFERENCE_CASES))
def test_tune_reproduces_pgtune_reference_output(reference: str) -> None:
    result = tuning.tune(**REFERENCE_CASES[reference])
    assert [(name, setting.value) for name, setting in result.settings.items()] == read_reference(reference)


def test_every_reference_file_is_pinned_by_a_case() -> None:
    assert sorted(path.name for path in DATA.glob("*.conf")) == sorted(REFERENCE_CASES)


def test_every_setting_carries_a_reason() -> None:
    result = tuning.tune(memory=16 * GiB, cpus=4, storage="ssd", profile="web", pg_version=15)
    assert all(setting.reason.strip() for setting in result.settings.values())


def test_as_conf_writes_each_setting_after_its_reason_comment() -> None:
    result = tuning.tune(memory=16 * GiB, cpus=4, storage="ssd", profile="web", pg_version=15)
    lines = result.as_conf().splitlines()
    assert lines[0] == f"# {result.settings['max_connections'].reason}"
    assert lines[1] == "max_connections = 200"
    assert len(lines) == 2 * len(result.settings)


def test_work_mem_floors_at_4mb_with_extreme_connections_as_pgtune_test_pins() -> None:
    # le0pard/pgtune configurationSlice.test.js: 4GB, web, PG 15, 9999 connections, 4 CPUs -> 4096 kB.
    result = tuning.tune(memory=4 * GiB, cpus=4, storage="ssd", profile="web", pg_version=15, connections=9999)
    assert result.work_mem_kb == 4096


def test_windows_up_to_pg17_caps_work_mem_below_2gb_as_pgtune_test_pins() -> None:
    # configurationSlice.test.js: 256GB, web, windows, PG 17, 20 connections, 4 CPUs -> 2096128 kB (2GB - 1MB),
    # and on PG 18 the uncapped 2796202 kB.
    capped = tuning.tune(memory=256 * GiB, cpus=4, storage="ssd", profile="web", pg_version=17,
                         connections=20, os_type="windows")
    uncapped = tuning.tune(memory=256 * GiB, cpus=4, storage="ssd", profile="web", pg_version=18,
                           connections=20, os_type="windows")
    assert (capped.work_mem_kb, uncapped.work_mem_kb) == (2096128, 2796202)
    assert capped.settings["maintenance_work_mem"].value == "2047MB"
    assert "effective_io_concurrency" not in capped.settings  # selectEffectiveIoConcurrency: Linux only


def test_data_warehouse_on_ssd_keeps_default_page_cost_and_warns() -> None:
    # selectRandomPageCost: dw on non-HDD storage larger than RAM -> 4; selectWarningInfoMessages explains it.
    result = tuning.tune(memory=64 * GiB, cpus=8, storage="ssd", profile="dw", pg_version=17)
    assert result.settings["random_page_cost"].value == "4"
    assert any("Data Warehouses on SSDs" in warning for warning in result.warnings)


def test_data_that_fits_in_ram_raises_work_mem_by_30_percent() -> None:
    mid = tuning.tune(memory=16 * GiB, cpus=4, storage="hdd", profile="web", pg_version=15)
    small = tuning.tune(memory=16 * GiB, cpus=4, storage="hdd", profile="web", pg_version=15, db_size="less_ram")
    assert small.work_mem_kb == int(mid.work_mem_kb * 1.3)
    assert small.settings["random_page_cost"].value == "1.1"


def test_pgtune_warns_about_very_high_memory() -> None:
    result = tuning.tune(memory=256 * GiB, cpus=32, storage="hdd", profile="dw", pg_version=17)
    assert any("very high memory" in warning for warning in result.warnings)


@pytest.mark.parametrize("field, bad", [
    ("storage", {"storage": "floppy"}), ("profile", {"profile": "batch"}), ("cpus", {"cpus": 0}),
    ("pg_version", {"pg_version": 9}), ("connections", {"connections": 0}), ("memory", {"memory": 0}),
])
def test_bad_input_is_rejected_naming_the_field(field: str, bad: dict) -> None:
    inputs = dict(memory=4 * GiB, cpus=2, storage="ssd", profile="web", pg_version=15) | bad
    with pytest.raises(ValueError, match=f"^{field} "):
        tuning.tune(**inputs)


def test_topology_connections_multiplies_hosts_workers_and_pool() -> None:
    connections, reason = tuning.topology_connections(app_hosts=2, workers=9, pool_size=5, max_overflow=10,
                                                      headroom=10)
    assert connections == 2 * 9 * (5 + 10) + 10 == 280
    assert "2 app hosts x 9 workers" in reason


def test_topology_derived_max_connections_feeds_work_mem() -> None:
    connections, _ = tuning.topology_connections(app_hosts=2, workers=9, pool_size=5, max_overflow=10, headroom=10)
    result = tuning.tune(memory=16 * GiB, cpus=4, storage="ssd", profile="web", pg_version=15,
                         connections=connections)
    # selectWorkMem: (16777216 - 4194304) / ((280 + 4) * 3) = 14768.7 -> 14768kB (200 connections gave 20560kB).
    assert result.settings["max_connections"].value == "280"
    assert result.settings["work_mem"].value == "14768kB"


def test_demand_that_does_not_fit_memory_warns_with_a_concrete_fix() -> None:
    topology = tuning.Topology(app_hosts=4, workers=9, pool_size=5, max_overflow=10, headroom=10)
    result = tuning.tune(memory=1 * GiB, cpus=2, storage="ssd", profile="web", pg_version=15,
                         connections=topology.max_connections)
    warnings = tuning.demand_warnings(tuning=result, memory=1 * GiB, topology=topology)
    # 4MB x 550 = 2.1GiB > 768MiB; 768MiB / 4MB = 192 connections fit, 182 after headroom:
    # 182 // (4 hosts x 15) = 3 workers per host, or 182 // (4 x 9) = 5 connections per worker.
    assert len(warnings) == 1
    assert "at most 192 connections fit" in warnings[0]
    assert "at most 3 Gunicorn workers per app host" in warnings[0]
    assert "pool to at most 5" in warnings[0]
    assert "PgBouncer" in warnings[0]


def test_demand_that_fits_memory_and_limit_gives_no_warning() -> None:
    topology = tuning.Topology(app_hosts=1, workers=3, pool_size=5, max_overflow=5, headroom=10)
    result = tuning.tune(memory=4 * GiB, cpus=2, storage="ssd", profile="web", pg_version=15,
                         connections=topology.max_connections)
    assert tuning.demand_warnings(tuning=result, memory=4 * GiB, topology=topology, limit=100) == []


def test_demand_over_a_connection_limit_warns() -> None:
    topology = tuning.Topology(app_hosts=2, workers=9, pool_size=5, max_overflow=10, headroom=10)
    result = tuning.tune(memory=16 * GiB, cpus=4, storage="ssd", profile="web", pg_version=15, connections=100)
    (warning,) = tuning.demand_warnings(tuning=result, memory=16 * GiB, topology=topology, limit=100)
    assert "needs 280 connections" in warning and "limit is 100" in warning


def run_tune(*args: str):
    return CliRunner().invoke(tune_command, list(args))


def test_tune_command_prints_each_setting_after_its_reason() -> None:
    result = run_tune("--memory", "16GB", "--cpus", "4")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    index = lines.index("work_mem = 20560kB")
    assert lines[index - 1].startswith("# (RAM - shared_buffers)")
    assert [line for line in lines if not line.startswith("#")] == [
        f"{name} = {value}" for name, value in read_reference("web-16GB-4cpu-ssd-pg15.conf")]


def test_tune_command_puts_warnings_on_stderr() -> None:
    result = run_tune("--memory", "16GB", "--cpus", "4")
    assert "warning: wal_compression = lz4" in result.stderr
    assert "warning" not in result.stdout


def test_tune_command_derives_max_connections_from_the_topology() -> None:
    result = run_tune("--memory", "16GB", "--cpus", "4", "--app-hosts", "2", "--workers", "9", "--pool", "5",
                      "--overflow", "10")
    assert result.exit_code == 0, result.output
    assert "max_connections = 280" in result.stdout
    assert "work_mem = 14768kB" in result.stdout


def test_tune_command_caps_the_topology_at_connections_and_warns() -> None:
    result = run_tune("--memory", "16GB", "--cpus", "4", "--connections", "100", "--app-hosts", "2",
                      "--workers", "9", "--pool", "5", "--overflow", "10")
    assert "max_connections = 100" in result.stdout
    assert "needs 280 connections" in result.stderr


@pytest.mark.parametrize("args, option", [
    (["--memory", "16XB", "--cpus", "4"], "--memory"),
    (["--memory", "16GB", "--cpus", "0"], "--cpus"),
    (["--memory", "16GB", "--cpus", "4", "--pg-version", "9"], "--pg-version"),
    (["--memory", "16GB", "--cpus", "4", "--workers", "3"], "--app-hosts"),
])
def test_tune_command_bad_input_is_a_one_line_error_naming_the_option(args: list[str], option: str) -> None:
    result = run_tune(*args)
    assert result.exit_code != 0
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1
    assert option in result.stderr


def test_tune_command_warns_when_connections_do_not_fit_memory_without_a_topology() -> None:
    result = run_tune("--memory", "1GB", "--cpus", "2", "--connections", "1000")
    assert "work_mem 4MB x 1000 connections" in result.stderr
    assert "PgBouncer" in result.stderr
