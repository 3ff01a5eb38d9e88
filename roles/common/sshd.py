"""sshd hardening (ssh-baseline) in a drop-in, validated with `sshd -t` before reload; never locks us out."""

from __future__ import annotations

from typing import Any

from pyinfra.operations import files, server, systemd

from roles.common.files import put_managed
from tsdeploy import manifest

DROP_IN = manifest.get("common/sshd_hardening.conf.j2").path


def apply(ctx: dict[str, Any]) -> None:
    user = ctx["common"]["deploy_user"]
    drop_in = put_managed(ctx, "common/sshd_hardening.conf.j2",
                          name="Harden sshd: keys only, no root login, no forwarding (ssh-baseline)")
    files.file(name="Make sshd_config readable by root only (sshd-27)", path="/etc/ssh/sshd_config",
                      user="root", group="root", mode="600")
    # Reload only when the config is valid AND the deploy user still has a key to log in with: a bad
    # drop-in must fail the deploy, never lock the deploying user out.
    check = server.shell(
        name=f"Check the sshd config with sshd -t and that {user} keeps an authorized key",
        commands=[f"sshd -t && test -s \"$(getent passwd {user} | cut -d: -f6)/.ssh/authorized_keys\""],
        _if=drop_in.did_change,
    )
    systemd.service(name="Reload sshd to apply the hardening", service="ssh", reloaded=True,
                    _if=lambda: drop_in.did_change() and check.did_succeed())
