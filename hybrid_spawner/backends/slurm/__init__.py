"""Slurm backend: :mod:`.spawner` (batch jobs through batchspawner), :mod:`.status` (one squeue
per refresh), :mod:`.batchspawner_guard` (closes batchspawner's setattr endpoint)."""
