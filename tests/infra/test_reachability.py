"""The reachability matrix: TCP connections between hosts, tried from the source host itself.

From an lb host the app port of every app host is open, and PostgreSQL/Redis are closed; from an app host
PostgreSQL and Redis are open. A host that is in both groups (the single-host lab) reaches its own ports
over its private address; "closed" is then not checkable and the case is reported as not run.
"""

from __future__ import annotations

import pytest

from verifyhosts import Target


def _peers(source: Target, group: str) -> list[dict[str, str]]:
    return source.ctx["peers"][group]


def _other(source: Target, peer: dict[str, str]) -> bool:
    return peer["name"] != source.name and peer["address"] != source.address


@pytest.mark.control("ts-fw-04")
def test_lb_reaches_the_app_port_of_every_app_host(lb: Target) -> None:
    port = lb.service("app")["port"]
    closed = [peer["name"] for peer in _peers(lb, "app") if not lb.tcp_open(peer["address"], port)]
    assert _peers(lb, "app") and not closed, f"{lb}: app port {port} closed on {closed}"


@pytest.mark.control("ts-fw-02")
def test_lb_cannot_reach_postgresql(lb: Target) -> None:
    _assert_closed_from(lb, "db", lb.service("postgres")["port"])


@pytest.mark.control("ts-fw-03")
def test_lb_cannot_reach_redis(lb: Target) -> None:
    _assert_closed_from(lb, "cache", lb.service("redis")["port"])


def _assert_closed_from(source: Target, group: str, port: int) -> None:
    others = [peer for peer in _peers(source, group) if _other(source, peer)]
    if not others:
        pytest.skip(f"{source} is itself the {group} host: a closed port cannot be checked from it")
    opened = [peer["name"] for peer in others if source.tcp_open(peer["address"], port)]
    assert not opened, f"{source}: port {port} is open on {opened}; only app hosts may connect"


@pytest.mark.control("ts-fw-02")
def test_app_host_reaches_postgresql(app: Target) -> None:
    port = app.service("postgres")["port"]
    closed = [peer["name"] for peer in _peers(app, "db") if not app.tcp_open(peer["address"], port)]
    assert not closed, f"{app}: PostgreSQL port {port} closed on {closed}"


@pytest.mark.control("ts-fw-03")
def test_app_host_reaches_redis(app: Target) -> None:
    port = app.service("redis")["port"]
    closed = [peer["name"] for peer in _peers(app, "cache") if not app.tcp_open(peer["address"], port)]
    assert not closed, f"{app}: Redis port {port} closed on {closed}"
