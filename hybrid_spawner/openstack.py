"""Old import path of the OpenStack spawner (``hybrid_spawner.openstack.OpenStackSpawner``)."""

from hybrid_spawner.backends.openstack.spawner import OpenStackSpawner  # noqa: F401
