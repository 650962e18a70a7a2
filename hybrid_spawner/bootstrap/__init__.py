"""How a node gets its server's secrets without them ever touching user-data.

The flow, shared by every backend (EC2, OpenStack, Slurm)::

    spawner                          hub                                   node
    -------                          ---                                   ----
    credentials.registry.issue(...)  keeps sha256(credential) only
    script.render_bootstrap_script() (hub URL + credential, nothing else) -> user-data / job script
                                     POST /hub/api/hybrid/bootstrap  <----  {"credential": ...}
                                     -> 200 {"environment", "command",     (JUPYTERHUB_API_TOKEN ...)
                                             "port", "report_secret"}
                                     POST /hub/api/hybrid/port        <----  {"secret": ..., "port": N}
    await entry.wait_port()       <- resolved with the validated port

Rooms: :mod:`.credentials` (the single-use credential store), :mod:`.handlers` (the two hub
endpoints), :mod:`.script` (the boot script and the node's payload), :mod:`.node_agent` (the node
side, standard library only). This file imports nothing, so that
``python -m hybrid_spawner.node_agent`` on a node loads only the agent.
"""
