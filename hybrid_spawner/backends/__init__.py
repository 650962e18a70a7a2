"""The backend registry: backend name -> spawner class.

Everything that needs the list of backends reads it here: ``HybridSpawner.backend_classes``
(its default), profile validation (a profile's ``backend`` must be a key of the hub's
``backend_classes``), the contract test in ``tests/contract`` and ``docs/architecture.md``
(a unit test checks the docs name every backend). Adding a backend means a folder beside
``ec2/``, one line here and an entry point in ``pyproject.toml``.

Values are import strings so that importing the registry imports no SDK (boto3, openstacksdk,
batchspawner): a hub that uses only Slurm never needs boto3 at import time.
"""

from __future__ import annotations

from traitlets.utils.importstring import import_item

BACKENDS: dict[str, str] = {
    "ec2": "hybrid_spawner.backends.ec2.spawner.EC2Spawner",
    "openstack": "hybrid_spawner.backends.openstack.spawner.OpenStackSpawner",
    "slurm": "hybrid_spawner.backends.slurm.spawner.SlurmSpawner",
}


def spawner_class(name: str, classes: dict[str, str] | None = None) -> type:
    """The spawner class of backend ``name`` (from ``classes``, default :data:`BACKENDS`)."""
    return import_item((classes or BACKENDS)[name])
