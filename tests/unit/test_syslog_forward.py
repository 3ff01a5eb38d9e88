"""Forwarding the journal to a remote syslog endpoint: off by default, validated from the inventory, and really sent.

The forwarding tests run the real rsyslogd of this machine (Debian's rsyslog: `make system-deps`) in a private
configuration: its own pid file, work directory and input socket in the test's temp dir, the rendered drop-in
included exactly as the deploy writes it, and `logger` writing to that socket. A TCP listener of the test
stands for the remote endpoint on a free loopback port. Nothing of the machine's own logging is touched.
"""

from __future__ import annotations

import datetime
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid

import pytest

from roles.common import manifest
from roles.common.syslog import rsyslog_check
from tsdeploy.context import build_context
from tsdeploy.inventory import load
from tsdeploy.manifest import files_for
from tsdeploy.templating import MANAGED_MARKER, render

from test_checked_files import land, no_candidates_left, sha
from test_inventory import problems_of, write_inventory as write_validated_inventory
from test_templates_app import write_inventory

SBIN = "/usr/sbin:/usr/bin:/sbin:/bin"
needs_rsyslogd = pytest.mark.skipif(
    not shutil.which("rsyslogd", path=SBIN) or not shutil.which("logger", path=SBIN) or os.geteuid() != 0,
    reason="needs root, rsyslogd and logger (apt-get install rsyslog: make system-deps)")
#: An RFC 5424 message as RSYSLOG_SyslogProtocol23Format writes it (the template ends it with a newline).
RFC5424 = re.compile(r"^<(?P<pri>\d{1,3})>1 (?P<timestamp>\S+) (?P<hostname>\S+) (?P<app>\S+) (?P<procid>\S+) "
                     r"(?P<msgid>\S+) (?P<sd>-|\[.*?\]) (?P<msg>.*)\n$", re.DOTALL)
#: logger's default priority: facility user (1), severity notice (5).
USER_NOTICE = 1 * 8 + 5


def context(tmp_path: pathlib.Path, host: str = "db1", **settings) -> dict:
    tmp_path.mkdir(parents=True, exist_ok=True)
    return build_context(load(write_inventory(tmp_path, {"app1": "198.18.9.20"}, settings)), host)


def drop_in(tmp_path: pathlib.Path, **settings) -> str:
    return render(manifest.RSYSLOG_FORWARD.template, context(tmp_path, **settings))


def certificate(directory: pathlib.Path, name: str = "syslog-ca.pem") -> pathlib.Path:
    """A self-signed CA certificate valid for a day (the inventory's CA file must be a current certificate)."""
    path = directory / name
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(directory / "ca.key"),
                    "-out", str(path), "-days", "1", "-subj", "/CN=test syslog CA"], check=True, capture_output=True)
    return path


# Off by default ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["db1", "cache1", "app1", "lb1"])
def test_without_a_target_no_host_gets_rsyslog_or_a_forwarding_file(tmp_path, host) -> None:
    ctx = context(tmp_path, host)
    assert ctx["common"]["syslog_forward"]["enabled"] is False
    assert not {"rsyslog", "rsyslog-gnutls"} & set(manifest.packages(ctx))
    managed = {item.key for item in files_for(ctx)}
    assert manifest.RSYSLOG_FORWARD.key not in managed and manifest.SYSLOG_CA.key not in managed


def test_a_target_installs_rsyslog_on_every_host_and_tls_adds_its_gnutls_driver(tmp_path) -> None:
    plain = context(tmp_path / "plain", "lb1", syslog_forward_target="logs.example.com:514")
    assert "rsyslog" in manifest.packages(plain) and "rsyslog-gnutls" not in manifest.packages(plain)
    assert manifest.RSYSLOG_FORWARD.applies_to(plain) and not manifest.SYSLOG_CA.applies_to(plain)
    (tmp_path / "tls").mkdir()
    tls = context(tmp_path / "tls", "lb1", syslog_forward_target="logs.example.com:6514",
                  syslog_forward_tls_ca_file=str(certificate(tmp_path / "tls")))
    assert {"rsyslog", "rsyslog-gnutls"} <= set(manifest.packages(tls))
    assert manifest.SYSLOG_CA.applies_to(tls) and manifest.SYSLOG_CA.dest(tls) == "/etc/ssl/tsdeploy/syslog-ca.pem"


# Validation: a bad value is refused before any host is touched, naming the variable, the value and the fix ------


@pytest.mark.parametrize(("variable", "value", "problem"), [
    ("syslog_forward_target", "logs.example.com", "is not host:port with a port from 1 to 65535; fix: write the "
                                                  "endpoint as \"host:port\", such as \"logs.example.com:6514\""),
    ("syslog_forward_target", "logs.example.com:0", "is not host:port"),
    ("syslog_forward_target", "logs.example.com:65536", "is not host:port"),
    ("syslog_forward_target", ":514", "is not host:port"),
    ("syslog_forward_target", "logs example.com:514", "is not host:port"),
    ("syslog_forward_target", "2001:db8::5:514", "is not host:port"),  # IPv6 needs its brackets
    ("syslog_forward_target", "[10.0.0.5]:514", "is not host:port"),
    ("syslog_forward_target", "tcp://logs.example.com:514", "is not host:port"),
    ("syslog_forward_target", 514, "is not a \"host:port\" string"),
    ("syslog_forward_protocol", "relp", "is not supported; fix: use one of: tcp, udp"),
    ("syslog_forward_protocol", "TCP", "is not supported"),
    ("syslog_forward_tls_ca_file", "/nonexistent/ca.pem", "is not a readable file on the control node"),
    ("syslog_forward_queue_max_disk", "lots", "is not a size; fix: write a positive whole number of bytes"),
    ("syslog_forward_queue_max_disk", 0, "is not a size"),
])
def test_a_forwarding_setting_rsyslog_could_not_use_is_refused_naming_the_variable(tmp_path, variable, value,
                                                                                   problem) -> None:
    problems = problems_of(write_validated_inventory(tmp_path, main_overrides={variable: value}))
    mine = [text for text in problems if f"{variable} = {value!r}" in text]
    assert mine and problem in mine[0], problems


@pytest.mark.parametrize("target", ["logs.example.com:6514", "10.0.0.5:514", "[2001:db8::5]:6514", "syslog:601"])
def test_a_target_is_a_dns_name_or_address_and_a_port(tmp_path, target) -> None:
    forward = context(tmp_path, syslog_forward_target=target)["common"]["syslog_forward"]
    assert f"{forward['host']}:{forward['port']}" == target.replace("[", "").replace("]", "")


def test_tls_without_a_target_is_refused(tmp_path) -> None:
    ca = certificate(tmp_path)
    problems = problems_of(write_validated_inventory(tmp_path, main_overrides={"syslog_forward_tls_ca_file": str(ca)}))
    assert any(f"syslog_forward_tls_ca_file = {str(ca)!r}" in text and "forwards nothing" in text
               and "fix: set syslog_forward_target" in text for text in problems), problems


def test_tls_over_udp_is_refused(tmp_path) -> None:
    ca = certificate(tmp_path)
    problems = problems_of(write_validated_inventory(tmp_path, main_overrides={
        "syslog_forward_target": "logs.example.com:6514", "syslog_forward_protocol": "udp",
        "syslog_forward_tls_ca_file": str(ca)}))
    assert any("syslog_forward_protocol = 'udp'" in text and "TLS, which needs TCP" in text
               and "fix: set syslog_forward_protocol to tcp" in text for text in problems), problems


def test_tls_to_an_ip_address_is_refused_because_the_certificate_is_checked_by_name(tmp_path) -> None:
    ca = certificate(tmp_path)
    problems = problems_of(write_validated_inventory(tmp_path, main_overrides={
        "syslog_forward_target": "10.0.0.5:6514", "syslog_forward_tls_ca_file": str(ca)}))
    assert any("syslog_forward_target = '10.0.0.5:6514'" in text and "by its DNS name" in text
               for text in problems), problems


# The rendered drop-in ------------------------------------------------------------------------------------------


def action_parameters(text: str) -> dict[str, str]:
    """The omfwd action's parameters as rsyslog reads them (name="value" pairs of the action() statement)."""
    action = re.search(r'^action\((type="omfwd".*?)\)$', text, re.MULTILINE | re.DOTALL)
    assert action, text
    return dict(re.findall(r'([\w.]+)="([^"]*)"', action.group(1)))


def test_tcp_forwarding_sends_rfc5424_octet_counted_through_a_bounded_disk_assisted_queue(tmp_path) -> None:
    text = drop_in(tmp_path, syslog_forward_target="logs.example.com:6514", syslog_forward_queue_max_disk="2GB")
    assert MANAGED_MARKER in text.splitlines()[0]
    assert action_parameters(text) == {
        "type": "omfwd", "name": "tsdeploy-forward", "target": "logs.example.com", "port": "6514",
        "protocol": "tcp", "template": "RSYSLOG_SyslogProtocol23Format", "TCP_Framing": "octet-counted",
        # Disk-assisted: a LinkedList queue with a file name spills to disk; bounded in bytes; never waited for.
        "queue.type": "LinkedList", "queue.filename": "tsdeploy-forward", "queue.size": "10000",
        "queue.maxDiskSpace": str(2 * 1024**3), "queue.saveOnShutdown": "on", "queue.timeoutEnqueue": "0",
        "action.resumeRetryCount": "-1", "action.resumeInterval": "10"}
    # The leading space of a traditional "tag: text" message is removed before the forward (RFC 5424's MSG).
    assert text.index('action(type="mmrm1stspace")') < text.index('action(type="omfwd"')
    # Forwarding is all rsyslog does: Debian's rules after the include (a second local copy) never run.
    assert text.rstrip().splitlines()[-1] == "stop"


def test_udp_forwarding_has_no_tcp_framing(tmp_path) -> None:
    parameters = action_parameters(drop_in(tmp_path, syslog_forward_target="10.0.0.5:514",
                                           syslog_forward_protocol="udp"))
    assert parameters["protocol"] == "udp" and parameters["target"] == "10.0.0.5"
    assert "TCP_Framing" not in parameters and "StreamDriver" not in parameters


def test_tls_uses_gtls_with_the_ca_and_verifies_the_endpoints_name(tmp_path) -> None:
    ca = certificate(tmp_path)
    parameters = action_parameters(drop_in(tmp_path, syslog_forward_target="logs.example.com:6514",
                                           syslog_forward_tls_ca_file=str(ca)))
    assert {key: parameters[key] for key in parameters if key.startswith("StreamDriver")} == {
        "StreamDriver": "gtls", "StreamDriverMode": "1", "StreamDriver.CAFile": "/etc/ssl/tsdeploy/syslog-ca.pem",
        "StreamDriverAuthMode": "x509/name", "StreamDriverPermittedPeers": "logs.example.com"}


def test_an_ipv6_endpoint_is_written_without_brackets(tmp_path) -> None:
    parameters = action_parameters(drop_in(tmp_path, syslog_forward_target="[2001:db8::5]:6514"))
    assert (parameters["target"], parameters["port"]) == ("2001:db8::5", "6514")


# rsyslogd -N1 checks the candidate before it lands ---------------------------------------------------------------


@pytest.fixture
def rsyslog_tree(tmp_path: pathlib.Path) -> pathlib.Path:
    """A stand-in /etc: Debian's rsyslog.conf whose $IncludeConfig names the stand-in rsyslog.d."""
    root = tmp_path / "etc"
    (root / "rsyslog.d").mkdir(parents=True)
    main = root / "rsyslog.conf"
    main.write_text(pathlib.Path("/etc/rsyslog.conf").read_text().replace("/etc/rsyslog.d/", f"{root}/rsyslog.d/"))
    assert f"$IncludeConfig {root}/rsyslog.d/*.conf" in main.read_text()
    return root


def check_for(tree: pathlib.Path, **kwargs):
    return rsyslog_check(main=str(tree / "rsyslog.conf"), drop_in_dir=str(tree / "rsyslog.d"), **kwargs)


@needs_rsyslogd
@pytest.mark.parametrize("settings", [{"syslog_forward_target": "logs.example.com:6514"},
                                      {"syslog_forward_target": "10.0.0.5:514", "syslog_forward_protocol": "udp"}],
                         ids=["tcp", "udp"])
def test_the_rendered_drop_in_passes_rsyslogd_n1_and_lands(tmp_path, rsyslog_tree, settings) -> None:
    live = rsyslog_tree / "rsyslog.d" / "10-tsdeploy-forward.conf"
    wanted = drop_in(tmp_path, **settings)
    result = land({live: wanted}, check_for(rsyslog_tree))
    assert result.returncode == 0, result.stderr
    assert live.read_text() == wanted and no_candidates_left(rsyslog_tree)


@needs_rsyslogd
def test_the_tls_drop_in_passes_rsyslogd_n1_only_once_its_ca_file_is_there(tmp_path, rsyslog_tree) -> None:
    live = rsyslog_tree / "rsyslog.d" / "10-tsdeploy-forward.conf"
    wanted = drop_in(tmp_path, syslog_forward_target="logs.example.com:6514",
                     syslog_forward_tls_ca_file=str(certificate(tmp_path)))
    ca = rsyslog_tree / "syslog-ca.pem"
    wanted = wanted.replace("/etc/ssl/tsdeploy/syslog-ca.pem", str(ca))
    missing = land({live: wanted}, check_for(rsyslog_tree, needs=[str(ca)]))
    assert missing.returncode != 0 and f"{ca} does not exist" in missing.stderr
    assert not live.exists() and no_candidates_left(rsyslog_tree)
    shutil.copy(tmp_path / "syslog-ca.pem", ca)
    result = land({live: wanted}, check_for(rsyslog_tree, needs=[str(ca)]))
    assert result.returncode == 0, result.stderr


@needs_rsyslogd
def test_a_drop_in_rsyslogd_rejects_never_lands_and_the_error_names_the_live_path(tmp_path, rsyslog_tree) -> None:
    live = rsyslog_tree / "rsyslog.d" / "10-tsdeploy-forward.conf"
    live.write_text(drop_in(tmp_path, syslog_forward_target="logs.example.com:6514"))
    before = sha(live)
    broken = live.read_text().replace('protocol="tcp"', 'protocol="tcp" retries="3"')
    result = land({live: broken}, check_for(rsyslog_tree))
    assert result.returncode != 0
    assert sha(live) == before and no_candidates_left(rsyslog_tree)
    assert "rsyslogd -N1 rejects the new" in result.stderr and "parameter 'retries' not known" in result.stderr
    assert f"{live}, on or before line" in result.stderr  # the scratch copy is shown under the live name
    assert "fix: correct templates/common/rsyslog-forward.conf.j2" in result.stderr


# The real thing: rsyslogd forwards a logged message to a TCP endpoint --------------------------------------------


class Endpoint:
    """A TCP syslog receiver on loopback: collects the octet-counted frames (RFC 6587) it is sent."""

    def __init__(self, port: int = 0) -> None:
        self.server = socket.create_server(("127.0.0.1", port), reuse_port=False)
        self.port = self.server.getsockname()[1]
        self.frames: list[bytes] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._read, args=(connection,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _read(self, connection: socket.socket) -> None:
        buffer = b""
        with connection:
            connection.settimeout(0.2)
            while not getattr(self, "closed", False):
                try:
                    data = connection.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not data:
                    return
                buffer += data
                while b" " in buffer:
                    length, _, rest = buffer.partition(b" ")
                    if not length.isdigit():
                        self.errors.append(f"not an octet count: {buffer[:40]!r}")
                        return
                    if len(rest) < int(length):
                        break
                    with self._lock:
                        self.frames.append(rest[:int(length)])
                    buffer = rest[int(length):]

    def wait_for(self, marker: str, timeout: float) -> list[str]:
        """The frames holding `marker`, once there is one (or none after `timeout` seconds)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                found = [frame.decode() for frame in self.frames if marker.encode() in frame]
            if found:
                return found
            time.sleep(0.1)
        return []

    def close(self) -> None:
        self.closed = True
        self.server.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivateRsyslogd:
    """rsyslogd with its own configuration, pid file, work directory and input socket, in `directory`.

    The configuration stands for Debian's: the input, then the deploy's drop-in included as it is, then a rule
    that writes everything to `after.log`, where Debian's rules (/var/log/syslog, ...) come.
    """

    def __init__(self, directory: pathlib.Path, drop_in_text: str) -> None:
        self.directory = directory
        self.socket = directory / "log.sock"
        self.work = directory / "work"
        self.after = directory / "after.log"
        self.work.mkdir(parents=True, exist_ok=True)
        (directory / "rsyslog.d").mkdir(exist_ok=True)
        (directory / "rsyslog.d" / "10-tsdeploy-forward.conf").write_text(drop_in_text)
        (directory / "rsyslog.conf").write_text(
            f'global(workDirectory="{self.work}")\n'
            'module(load="imuxsock" SysSock.Use="off")\n'
            f'input(type="imuxsock" Socket="{self.socket}")\n'
            f'$IncludeConfig {directory}/rsyslog.d/*.conf\n'
            f'action(type="omfile" file="{self.after}")\n')
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.socket.unlink(missing_ok=True)
        self.process = subprocess.Popen(
            ["rsyslogd", "-n", "-f", str(self.directory / "rsyslog.conf"), "-i", str(self.directory / "rsyslogd.pid")],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={"PATH": SBIN})
        deadline = time.monotonic() + 10
        while not self.socket.exists():
            assert self.process.poll() is None, f"rsyslogd exited: {self.process.stdout.read().decode()}"
            assert time.monotonic() < deadline, "rsyslogd did not open its input socket within 10 s"
            time.sleep(0.05)

    def log(self, message: str, tag: str = "tsdeploy-test") -> None:
        subprocess.run(["logger", "--socket", str(self.socket), "--socket-errors=on", "-t", tag, message],
                       check=True, env={"PATH": SBIN})

    def stop(self) -> str:
        """SIGTERM, as systemd stops it; returns what rsyslogd printed."""
        if self.process is None:
            return ""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            output, _ = self.process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            output, _ = self.process.communicate()
        self.process = None
        return output.decode(errors="replace")


@pytest.fixture
def cleanup():
    """Stops every rsyslogd and endpoint a test started, whatever happened."""
    started: list = []
    yield started
    for thing in reversed(started):
        thing.stop() if isinstance(thing, PrivateRsyslogd) else thing.close()


@needs_rsyslogd
def test_rsyslogd_forwards_a_logged_message_to_the_endpoint_in_rfc5424(tmp_path, cleanup) -> None:
    endpoint = Endpoint()
    cleanup.append(endpoint)
    rsyslogd = PrivateRsyslogd(tmp_path / "rsyslog",
                               drop_in(tmp_path, syslog_forward_target=f"127.0.0.1:{endpoint.port}"))
    cleanup.append(rsyslogd)
    rsyslogd.start()
    marker = f"forward me {uuid.uuid4()}"
    rsyslogd.log(marker)

    frames = endpoint.wait_for(marker, timeout=20)
    assert len(frames) == 1 and not endpoint.errors, (frames, endpoint.errors)
    message = RFC5424.match(frames[0])
    assert message, f"not RFC 5424: {frames[0]!r}"
    assert int(message["pri"]) == USER_NOTICE and message["app"] == "tsdeploy-test"
    assert message["msg"] == marker
    timestamp = datetime.datetime.fromisoformat(message["timestamp"])
    assert timestamp.tzinfo is not None  # RFC 3339 with its offset, as RFC 5424 requires
    assert abs(datetime.datetime.now(datetime.timezone.utc) - timestamp) < datetime.timedelta(minutes=1)
    # The drop-in's `stop`: the rules after it (Debian's local files) never see the message.
    time.sleep(0.5)
    assert not rsyslogd.after.exists() or marker not in rsyslogd.after.read_text()


@needs_rsyslogd
def test_messages_logged_while_the_endpoint_is_down_survive_a_restart_on_disk_and_arrive_later(tmp_path,
                                                                                             cleanup) -> None:
    port = free_port()  # nothing listens there yet: the endpoint is down
    rsyslogd = PrivateRsyslogd(tmp_path / "rsyslog", drop_in(tmp_path, syslog_forward_target=f"127.0.0.1:{port}"))
    cleanup.append(rsyslogd)
    rsyslogd.start()
    markers = [f"during the outage {index} {uuid.uuid4()}" for index in range(5)]
    for marker in markers:
        rsyslogd.log(marker)
    time.sleep(1)  # the action tries, fails and suspends: the messages wait in its queue
    rsyslogd.stop()
    # queue.saveOnShutdown: what the endpoint did not take went to the queue's files in the work directory.
    assert list(rsyslogd.work.glob("tsdeploy-forward*")), sorted(path.name for path in rsyslogd.work.iterdir())

    endpoint = Endpoint(port)
    cleanup.append(endpoint)
    rsyslogd.start()
    arrived = {marker: endpoint.wait_for(marker, timeout=40) for marker in markers}
    assert all(arrived.values()), {marker: bool(frames) for marker, frames in arrived.items()}
    assert all(RFC5424.match(frames[0]) for frames in arrived.values())


# `tsdeploy generate vm`: the same forward, validated and restarted by install.sh ---------------------------------


def test_a_vm_bundle_with_forwarding_installs_rsyslog_checks_it_with_n1_and_restarts_it_on_change(tmp_path) -> None:
    from tsdeploy.generate.vm import write_bundle

    (tmp_path / "inventory").mkdir()
    inventory = load(write_inventory(tmp_path / "inventory", {"app1": "198.18.9.20"},
                                     {"syslog_forward_target": "logs.example.com:6514"}))
    write_bundle(inventory, "cache1", tmp_path / "bundle")
    script = (tmp_path / "bundle" / "install.sh").read_text()
    assert "rsyslog" in script.split("2/5")[0]  # among the packages
    assert "put_file /etc/rsyslog.d/10-tsdeploy-forward.conf root root 644 rsyslog" in script
    assert 'rsyslogd -N1 || restore rsyslog' in script and "systemctl restart rsyslog" in script
    assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0
    assert "`rsyslogd -N1`" in (tmp_path / "bundle" / "README.md").read_text()


def test_a_vm_bundle_without_forwarding_takes_an_earlier_drop_in_away(tmp_path) -> None:
    from tsdeploy.generate.vm import write_bundle

    (tmp_path / "inventory").mkdir()
    write_bundle(load(write_inventory(tmp_path / "inventory", {"app1": "198.18.9.20"})), "cache1",
                 tmp_path / "bundle")
    script = (tmp_path / "bundle" / "install.sh").read_text()
    assert "rm -f /etc/rsyslog.d/10-tsdeploy-forward.conf /etc/ssl/tsdeploy/syslog-ca.pem" in script
    assert "put_file /etc/rsyslog.d/" not in script and "rsyslogd -N1" not in script
