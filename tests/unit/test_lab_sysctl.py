"""Kernel settings: raised to the lab's minimums, the values found first are saved and restored exactly."""

import json

import pytest

from tsdeploy.lab import sysctl


@pytest.fixture
def fake_proc(tmp_path, monkeypatch):
    """A stand-in for /proc/sys so the test can check apply/restore without touching the machine."""
    values = {"net.ipv4.ip_forward": "0\n", "fs.inotify.max_user_instances": "128\n"}
    for key, value in values.items():
        path = tmp_path / "proc" / key.replace(".", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value)
    monkeypatch.setattr(sysctl, "_path", lambda key: tmp_path / "proc" / key.replace(".", "/"))
    return tmp_path


def test_apply_raises_settings_and_restore_puts_the_first_values_back(fake_proc):
    saved = fake_proc / "saved.json"
    sysctl.apply(saved)
    assert sysctl.read("net.ipv4.ip_forward") == 1
    assert sysctl.read("fs.inotify.max_user_instances") == 8192
    sysctl.apply(saved)  # a second lab must not record the raised values as the originals
    assert json.loads(saved.read_text()) == {"net.ipv4.ip_forward": 0, "fs.inotify.max_user_instances": 128}
    sysctl.restore(saved)
    assert sysctl.read("net.ipv4.ip_forward") == 0
    assert sysctl.read("fs.inotify.max_user_instances") == 128
    assert not saved.exists()


def test_higher_values_are_left_alone(fake_proc):
    (fake_proc / "proc/fs/inotify/max_user_instances").write_text("65536\n")
    sysctl.apply(fake_proc / "saved.json")
    assert sysctl.read("fs.inotify.max_user_instances") == 65536
