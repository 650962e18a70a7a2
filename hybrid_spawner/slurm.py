"""Old import path of the Slurm spawner (``hybrid_spawner.slurm.SlurmSpawner`` in existing configs)."""

from hybrid_spawner.backends.slurm.spawner import SlurmSpawner  # noqa: F401
