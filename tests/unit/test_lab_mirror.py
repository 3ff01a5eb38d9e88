"""The lab builds its hosts from the Debian mirror the machine's own apt sources use."""

import pytest

from tsdeploy.lab import mirror
from tsdeploy.lab.system import LabError

DEB822 = """\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
"""


def test_deb822_sources_give_the_base_suite_mirror_not_security():
    assert mirror.pick_mirror(mirror.parse_deb822(DEB822)) == "http://deb.debian.org/debian"


def test_disabled_and_source_only_stanzas_are_ignored():
    text = (
        "Types: deb\nURIs: http://disabled.example/debian\nSuites: bookworm\nEnabled: no\n\n"
        "Types: deb-src\nURIs: http://src.example/debian\nSuites: bookworm\n\n"
        "Types: deb\nURIs: http://mirror.example/debian/\nSuites: trixie\n"
    )
    assert mirror.pick_mirror(mirror.parse_deb822(text)) == "http://mirror.example/debian"


def test_one_line_sources_with_options_are_parsed():
    text = (
        "# a comment\n"
        "deb-src http://src.example/debian bookworm main\n"
        "deb http://security.debian.org/debian-security bookworm-security main\n"
        "deb [arch=amd64 signed-by=/usr/share/keyrings/k.gpg] http://ftp.de.debian.org/debian bookworm main\n"
    )
    assert mirror.pick_mirror(mirror.parse_one_line(text)) == "http://ftp.de.debian.org/debian"


def test_machine_mirror_prefers_a_debian_archive_over_third_party_repositories(tmp_path):
    single, directory = tmp_path / "sources.list", tmp_path / "sources.list.d"
    directory.mkdir()
    (directory / "a-vendor.list").write_text("deb https://packages.vendor.example/apt stable main\n")
    (directory / "debian.sources").write_text(DEB822)
    assert mirror.machine_mirror((single, directory)) == "http://deb.debian.org/debian"


def test_no_mirror_is_an_error_that_names_the_files_and_the_fix(tmp_path):
    single, directory = tmp_path / "sources.list", tmp_path / "sources.list.d"
    single.write_text("deb http://security.debian.org/debian-security bookworm-security main\n")
    with pytest.raises(LabError, match=r"sources\.list.*add a `deb http://MIRROR/debian SUITE main` source"):
        mirror.machine_mirror((single, directory))
