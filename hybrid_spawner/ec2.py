"""Old import path of the EC2 spawner (``hybrid_spawner.ec2.EC2Spawner`` in existing configs)."""

from hybrid_spawner.backends.ec2.spawner import EC2Spawner  # noqa: F401
