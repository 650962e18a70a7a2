"""Incident response: isolate a compromised node without destroying it, and purge a user's data.

- :mod:`store`: the incident records (who is held, which node, what was done), kept in a file.
- :mod:`quarantine`: the backend-neutral steps and the spawn guard.
- :mod:`ec2`: what quarantine means on EC2 (the backends' own steps live beside their spawners'
  clients; OpenStack and Slurm follow the same contract).
- :mod:`purge`: deleting one person's data everywhere, with a dry run.
- :mod:`handlers`: the admin REST endpoints and page under /hub/api/hybrid/ and /hub/hybrid/.
"""
