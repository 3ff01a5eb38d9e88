"""Checked files: a candidate is validated by the real tool before it replaces its live file.

These tests run the check scripts the deploy runs (roles/common/files.py `land_script` with the checks of
users.py, firewall.py, sshd.py and nginx/configure.py) FOR REAL with visudo, nft, sshd and nginx on this
machine, against files in temp dirs: the live files stand in tmp_path and the checks get their roots as
parameters. They are skipped when a tool is missing (install: apt-get install nginx-light sudo nftables
openssh-server).
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import re
import shutil
import subprocess

import pytest

from roles.common.files import CANDIDATE_SUFFIX, candidate_path, land_script
from roles.common.firewall import NFT
from roles.common.sshd import sshd_check
from roles.common.users import VISUDO
from roles.nginx.configure import nginx_check
from tsdeploy.context import build_context
from tsdeploy.inventory import load
from tsdeploy.templating import render

from test_templates_app import write_inventory

HOST = "lb1"


def needs(*tools: str):
    missing = [tool for tool in tools if not shutil.which(tool, path="/usr/sbin:/usr/bin:/sbin:/bin")]
    return pytest.mark.skipif(bool(missing) or os.geteuid() != 0,
                              reason=f"needs root and {', '.join(tools)} (missing: {', '.join(missing) or 'root'})")


@pytest.fixture
def ctx(tmp_path: pathlib.Path) -> dict:
    inventory_dir = tmp_path / "inventory"
    inventory_dir.mkdir()
    return build_context(load(write_inventory(inventory_dir, {"app1": "198.18.9.20"})), HOST)


def sha(path: pathlib.Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def land(files: dict[pathlib.Path, str], check,
         unchanged: tuple[pathlib.Path, ...] = ()) -> subprocess.CompletedProcess:
    """Put `files` ({live path: new content}) up as candidates, as the operation does, and run its land script.

    `unchanged` are files of the same set that keep their live content (the check reads them in place)."""
    paths = {str(path): str(path) for path in unchanged}
    for live, content in files.items():
        pathlib.Path(candidate_path(str(live))).write_text(content)
        paths[str(live)] = candidate_path(str(live))
    env = {**os.environ, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    return subprocess.run(["sh", "-c", land_script(HOST, paths, check)], capture_output=True, text=True, env=env)


def no_candidates_left(*dirs: pathlib.Path) -> bool:
    return not [path for directory in dirs for path in directory.rglob(f"*{CANDIDATE_SUFFIX}")]


# sudoers: visudo -c -f on the candidate ------------------------------------------------------------------------


@needs("visudo")
def test_a_valid_sudoers_candidate_replaces_the_live_drop_in(tmp_path, ctx) -> None:
    live = tmp_path / "tsdeploy-deploy"
    live.write_text("# old\n")
    wanted = render("common/sudoers.j2", ctx)
    result = land({live: wanted}, VISUDO)
    assert result.returncode == 0, result.stderr
    assert live.read_text() == wanted and no_candidates_left(tmp_path)


@needs("visudo")
def test_a_sudoers_candidate_with_garbage_never_lands_and_the_error_names_host_file_and_visudo_message(
        tmp_path) -> None:
    live = tmp_path / "tsdeploy-deploy"
    live.write_text("deploy ALL=(ALL:ALL) NOPASSWD: ALL\n")
    before = sha(live)
    result = land({live: "deploy ALL=(ALL:ALL NOPASSWD ALL garbage\n"}, VISUDO)
    assert result.returncode != 0
    assert sha(live) == before and no_candidates_left(tmp_path)
    assert f"host {HOST}: visudo -c rejects the new {live}" in result.stderr
    assert f"{live}:1" in result.stderr and "syntax error" in result.stderr  # visudo's words, live name
    assert CANDIDATE_SUFFIX not in result.stderr and "fix: " in result.stderr


# nftables: nft -c -f on the candidate --------------------------------------------------------------------------


@needs("nft")
def test_the_rendered_nftables_ruleset_passes_nft_c_and_lands(tmp_path, ctx) -> None:
    live = tmp_path / "nftables.conf"
    live.write_text("# old\n")
    wanted = render("common/nftables.conf.j2", ctx)
    result = land({live: wanted}, NFT)
    assert result.returncode == 0, result.stderr
    assert live.read_text() == wanted and no_candidates_left(tmp_path)


@needs("nft")
def test_an_nftables_candidate_with_an_error_never_lands_and_nft_says_where(tmp_path, ctx) -> None:
    live = tmp_path / "nftables.conf"
    live.write_text(render("common/nftables.conf.j2", ctx))
    before = sha(live)
    broken = render("common/nftables.conf.j2", ctx).replace("policy drop;", "policy dorp;")
    result = land({live: broken}, NFT)
    assert result.returncode != 0
    assert sha(live) == before and no_candidates_left(tmp_path)
    assert f"nft -c rejects the new {live}" in result.stderr and "Error:" in result.stderr
    assert "dorp" in result.stderr


# sshd: sshd -t -f on a scratch main config whose Include reads the candidate -----------------------------------


@pytest.fixture
def sshd_tree(tmp_path: pathlib.Path):
    """A stand-in /etc/ssh: Debian's sshd_config whose Include names the stand-in drop-in dir."""
    # sshd -t insists on its privilege separation dir (systemd creates it for the service). It stays: tests in
    # other workers may be running sshd -t at the same time, and an empty dir in /run changes nothing else.
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    root = tmp_path / "ssh"
    (root / "sshd_config.d").mkdir(parents=True)
    main = root / "sshd_config"
    main.write_text(pathlib.Path("/etc/ssh/sshd_config").read_text()
                    .replace("/etc/ssh/sshd_config.d/", f"{root}/sshd_config.d/"))
    assert f"Include {root}/sshd_config.d/*.conf" in main.read_text()
    return root


@needs("sshd")
def test_the_hardening_drop_in_passes_sshd_t_and_lands(sshd_tree) -> None:
    live = sshd_tree / "sshd_config.d" / "10-tsdeploy.conf"
    wanted = render("common/sshd_hardening.conf.j2", {})
    check = sshd_check(main=str(sshd_tree / "sshd_config"), drop_in_dir=str(live.parent))
    result = land({live: wanted}, check)
    assert result.returncode == 0, result.stderr
    assert live.read_text() == wanted and no_candidates_left(sshd_tree)


@needs("sshd")
def test_a_drop_in_with_an_unknown_keyword_never_lands_and_sshd_names_the_live_path(sshd_tree) -> None:
    live = sshd_tree / "sshd_config.d" / "10-tsdeploy.conf"
    live.write_text(render("common/sshd_hardening.conf.j2", {}))
    before = sha(live)
    check = sshd_check(main=str(sshd_tree / "sshd_config"), drop_in_dir=str(live.parent))
    result = land({live: live.read_text() + "NoSuchKeyword yes\n"}, check)
    assert result.returncode != 0
    assert sha(live) == before and no_candidates_left(sshd_tree)
    assert "Bad configuration option: NoSuchKeyword" in result.stderr
    assert f"{live}: line" in result.stderr  # the scratch copy is shown under the live name


@needs("sshd")
def test_the_sshd_check_reads_the_candidate_not_the_live_drop_in(sshd_tree) -> None:
    # The live drop-in is broken; the candidate fixes it: only a check of the candidate passes.
    live = sshd_tree / "sshd_config.d" / "10-tsdeploy.conf"
    live.write_text("NoSuchKeyword yes\n")
    check = sshd_check(main=str(sshd_tree / "sshd_config"), drop_in_dir=str(live.parent))
    result = land({live: render("common/sshd_hardening.conf.j2", {})}, check)
    assert result.returncode == 0, result.stderr


@needs("sshd")
def test_a_drop_in_never_lands_when_the_deploy_user_would_have_no_authorized_key(sshd_tree) -> None:
    live = sshd_tree / "sshd_config.d" / "10-tsdeploy.conf"
    live.write_text("# old\n")
    user = "nobody"  # home /nonexistent: no authorized_keys
    check = sshd_check(main=str(sshd_tree / "sshd_config"), drop_in_dir=str(live.parent), keeps_key_for=user)
    result = land({live: render("common/sshd_hardening.conf.j2", {})}, check)
    assert result.returncode != 0
    assert live.read_text() == "# old\n" and no_candidates_left(sshd_tree)
    assert f"{user} has no authorized key" in result.stderr


# nginx: nginx -t on a scratch copy of the tree with the candidates in place ------------------------------------


def make_tls_pair(directory: pathlib.Path, name: str) -> tuple[str, str]:
    """A self-signed certificate and its key (PEM texts)."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-days", "2", "-subj", "/CN=jobs.example.test", "-keyout", str(directory / f"{name}.key"),
                    "-out", str(directory / f"{name}.crt")], check=True, capture_output=True)
    return (directory / f"{name}.crt").read_text(), (directory / f"{name}.key").read_text()


class NginxTree:
    """A stand-in /etc/nginx: Debian's tree with the role's nginx.conf, default site removed, no site yet."""

    def __init__(self, tmp_path: pathlib.Path, ctx: dict, tls_dir: pathlib.Path | None = None) -> None:
        self.root = tmp_path / "nginx"
        shutil.copytree("/etc/nginx", self.root, symlinks=True)
        (self.root / "sites-enabled" / "default").unlink(missing_ok=True)
        self.tls_dir = tls_dir or self.root / "tls"
        self.tls_dir.mkdir(mode=0o700, exist_ok=True)
        self.ctx = ctx
        self.conf = self.root / "nginx.conf"
        self.conf.write_text(self.render("nginx/nginx.conf.j2"))
        self.site = self.root / "sites-available" / "talentsphere.conf"
        self.cert = self.tls_dir / "talentsphere.crt"
        self.key = self.tls_dir / "talentsphere.key"
        self.pem = tmp_path / "pem"
        self.pem.mkdir()
        self.check = nginx_check(root=str(self.root),
                                 links={str(self.root / "sites-enabled" / "talentsphere.conf"): str(self.site)})

    def render(self, template: str) -> str:
        # The templates name /etc/nginx; the stand-in tree lives elsewhere.
        text = render(template, self.ctx).replace("/etc/nginx/tls/", f"{self.tls_dir}/")
        return text.replace("/etc/nginx/", f"{self.root}/")

    def snapshot(self) -> dict[str, str]:
        return {str(path): sha(path) for directory in {self.root, self.tls_dir} for path in directory.rglob("*")
                if path.is_file() and not path.is_symlink()}


@pytest.fixture
def nginx_tree(tmp_path, ctx) -> NginxTree:
    return NginxTree(tmp_path, ctx)


@needs("nginx", "openssl")
def test_the_role_s_site_and_tls_pair_pass_nginx_t_together_on_a_first_deploy_and_land(nginx_tree) -> None:
    tree = nginx_tree
    cert, key = make_tls_pair(tree.pem, "a")
    result = land({tree.site: tree.render("nginx/talentsphere.conf.j2"), tree.cert: cert, tree.key: key},
                  tree.check, unchanged=(tree.conf,))
    assert result.returncode == 0, result.stderr
    assert tree.site.read_text() == tree.render("nginx/talentsphere.conf.j2")
    assert (tree.cert.read_text(), tree.key.read_text()) == (cert, key)
    assert no_candidates_left(tree.root)
    # The link is the role's next operation, not the check's: the check only pretends it exists.
    assert not (tree.root / "sites-enabled" / "talentsphere.conf").exists()


@needs("nginx", "openssl")
def test_a_site_with_a_syntax_error_never_lands_and_nginx_names_the_file_and_line(nginx_tree) -> None:
    tree = nginx_tree
    cert, key = make_tls_pair(tree.pem, "a")
    assert land({tree.site: tree.render("nginx/talentsphere.conf.j2"), tree.cert: cert, tree.key: key},
                tree.check, unchanged=(tree.conf,)).returncode == 0
    before = tree.snapshot()
    broken = tree.render("nginx/talentsphere.conf.j2").replace("keepalive 16;", "keepalive 16")
    result = land({tree.site: broken}, tree.check, unchanged=(tree.conf, tree.cert, tree.key))
    assert result.returncode != 0
    assert tree.snapshot() == before and no_candidates_left(tree.root)
    assert f"host {HOST}: nginx -t rejects the new {tree.site}" in result.stderr
    # nginx's own message, with the path it reads the site through (the enabled link), under the live tree.
    assert re.search(rf"invalid number of arguments .* in {tree.root}/sites-(enabled|available)/talentsphere"
                     r"\.conf:\d+", result.stderr), result.stderr
    assert "/tmp/tmp." not in result.stderr and CANDIDATE_SUFFIX not in result.stderr


@needs("nginx", "openssl")
def test_a_site_is_checked_even_before_it_is_enabled(nginx_tree) -> None:
    # First deploy: no sites-enabled link yet, so a plain `nginx -t` would not even read the site.
    tree = nginx_tree
    cert, key = make_tls_pair(tree.pem, "a")
    broken = tree.render("nginx/talentsphere.conf.j2").replace("limit_req_status 429;", "limit_req_status 429")
    result = land({tree.site: broken, tree.cert: cert, tree.key: key}, tree.check, unchanged=(tree.conf,))
    assert result.returncode != 0
    assert not tree.site.exists() and not tree.cert.exists() and not tree.key.exists()


@needs("nginx", "openssl")
def test_a_key_that_does_not_match_the_certificate_never_lands(nginx_tree) -> None:
    tree = nginx_tree
    cert, key = make_tls_pair(tree.pem, "a")
    assert land({tree.site: tree.render("nginx/talentsphere.conf.j2"), tree.cert: cert, tree.key: key},
                tree.check, unchanged=(tree.conf,)).returncode == 0
    before = tree.snapshot()
    _, other_key = make_tls_pair(tree.pem, "b")
    result = land({tree.key: other_key}, tree.check, unchanged=(tree.conf, tree.site, tree.cert))
    assert result.returncode != 0
    assert tree.snapshot() == before and no_candidates_left(tree.root)
    assert f"nginx -t rejects the new {tree.key}" in result.stderr and "key values mismatch" in result.stderr
    assert "PRIVATE KEY-----" not in result.stderr  # the key's content never shows


@needs("nginx", "openssl")
def test_a_new_certificate_and_its_new_key_pass_together_although_neither_passes_alone(nginx_tree) -> None:
    tree = nginx_tree
    cert, key = make_tls_pair(tree.pem, "a")
    assert land({tree.site: tree.render("nginx/talentsphere.conf.j2"), tree.cert: cert, tree.key: key},
                tree.check, unchanged=(tree.conf,)).returncode == 0
    new_cert, new_key = make_tls_pair(tree.pem, "b")
    assert land({tree.cert: new_cert}, tree.check, unchanged=(tree.conf, tree.site, tree.key)).returncode != 0
    result = land({tree.cert: new_cert, tree.key: new_key}, tree.check, unchanged=(tree.conf, tree.site))
    assert result.returncode == 0, result.stderr
    assert (tree.cert.read_text(), tree.key.read_text()) == (new_cert, new_key)


@needs("nginx", "openssl")
def test_a_broken_certificate_outside_the_nginx_tree_is_checked_as_a_candidate_too(tmp_path, ctx) -> None:
    tls_dir = tmp_path / "ssl-elsewhere"
    tls_dir.mkdir()
    tree = NginxTree(tmp_path, ctx, tls_dir=tls_dir)
    cert, key = make_tls_pair(tree.pem, "a")
    assert land({tree.site: tree.render("nginx/talentsphere.conf.j2"), tree.cert: cert, tree.key: key},
                tree.check, unchanged=(tree.conf,)).returncode == 0
    before = tree.snapshot()
    result = land({tree.cert: "-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n"}, tree.check,
                  unchanged=(tree.conf, tree.site, tree.key))
    assert result.returncode != 0
    assert tree.snapshot() == before and no_candidates_left(tls_dir)
    assert f"nginx -t rejects the new {tree.cert}" in result.stderr


@needs("nginx", "openssl")
def test_the_nginx_check_leaves_no_scratch_copy_behind(nginx_tree, tmp_path, monkeypatch) -> None:
    tree = nginx_tree
    cert, key = make_tls_pair(tree.pem, "a")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))  # mktemp -d creates the copy here
    assert land({tree.site: "garbage", tree.cert: cert, tree.key: key}, tree.check,
                unchanged=(tree.conf,)).returncode != 0
    assert land({tree.site: tree.render("nginx/talentsphere.conf.j2"), tree.cert: cert, tree.key: key},
                tree.check, unchanged=(tree.conf,)).returncode == 0
    assert list(scratch.iterdir()) == []
