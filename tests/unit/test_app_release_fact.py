"""The app hosts' release fact: installed releases, when each last went live, and the live one."""

from __future__ import annotations

from roles.app.release import AppReleases


def test_the_fact_reports_install_and_went_live_times_of_complete_releases_only() -> None:
    output = ["release 100 a", "release 200 b", "live 150 a", "live 300 half-built", "current /opt/r/releases/a"]
    assert AppReleases().process(output) == {
        "releases": {"a": 100, "b": 200}, "went_live": {"a": 150}, "current": "/opt/r/releases/a"}


def test_a_host_without_releases_has_no_live_release() -> None:
    assert AppReleases().process(["current "]) == {"releases": {}, "went_live": {}, "current": None}
