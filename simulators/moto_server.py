"""moto's server with what a fault test needs EC2 to do as AWS does.

AWS makes RunInstances idempotent on ``ClientToken``: a retried request with the token of a
launch that already happened returns that launch's reservation instead of starting more instances
(the EC2 API reference, "Ensuring idempotency"). moto 5 records the token but launches again, so a
lost answer followed by a retry would show orphans no real cloud makes. This module restores the
documented behaviour, then runs moto's own server (same arguments as ``moto_server``).
"""

from __future__ import annotations

import sys

MOTO_DEFAULT_TOKEN = "ABCDE"  # what moto's response layer passes when the request had no ClientToken


def make_run_instances_idempotent() -> None:
    from moto.ec2.models.instances import InstanceBackend

    original = InstanceBackend.run_instances
    if getattr(original, "_hybrid_idempotent", False):
        return

    def run_instances(self, image_id, count, user_data, security_group_names, **kwargs):
        token = kwargs.get("client_token")
        if token and token != MOTO_DEFAULT_TOKEN:
            for reservation in self.reservations.values():
                if any(getattr(i, "client_token", None) == token for i in reservation.instances):
                    return reservation
        return original(self, image_id, count, user_data, security_group_names, **kwargs)

    run_instances._hybrid_idempotent = True
    InstanceBackend.run_instances = run_instances


def main(argv: list[str] | None = None) -> None:
    make_run_instances_idempotent()
    from moto.server import main as moto_main

    moto_main(argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    main()
