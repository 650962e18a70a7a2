"""Quarantine on Slurm: a running job is suspended (its processes stopped with SIGSTOP, their
memory kept for forensics, the node's other jobs unaffected), a pending one held, and the job's
comment names the incident. Suspending needs a Slurm operator or admin: run the hub's account as
one (``sacctmgr modify user <hub account> set adminlevel=operator``) or as SlurmUser.
"""

from __future__ import annotations

from traitlets import List, Unicode
from traitlets.config import Configurable


class SlurmIncidents(Configurable):
    scontrol_command = List(
        Unicode(), ["scontrol"], config=True,
        help="""argv prefix of scontrol as the hub's account runs it (a full path where Slurm is not
        on the hub's PATH, e.g. ["/opt/slurm/bin/scontrol"]).""",
    )
    scancel_command = List(
        Unicode(), ["scancel"], config=True,
        help="argv prefix of scancel for ending a quarantined job after the forensics.",
    )


async def _scontrol(spawner, commands: SlurmIncidents, *args: str) -> str:
    code, out, err = await spawner._run([*commands.scontrol_command, *args])
    if code != 0:
        raise RuntimeError(f"scontrol {' '.join(args)} failed: {(err or out).strip()[:300]}")
    return out


async def isolate(spawner, node_id: str, incident_id: str, record) -> None:
    commands = SlurmIncidents(config=spawner.config)
    shown = await _scontrol(spawner, commands, "show", "job", "--oneliner", node_id)
    state = next((w.split("=", 1)[1] for w in shown.split() if w.startswith("JobState=")), "UNKNOWN")
    if state == "PENDING":
        await _scontrol(spawner, commands, "hold", node_id)
        record(f"held pending job {node_id}")
    elif state == "RUNNING":
        await _scontrol(spawner, commands, "suspend", node_id)
        record(f"suspended job {node_id} (processes stopped, memory kept)")
    else:
        raise RuntimeError(f"job {node_id} is {state}; nothing to isolate")
    await _scontrol(spawner, commands, "update", f"JobId={node_id}", f"Comment=hybrid incident {incident_id}")
    record(f"commented job {node_id} with incident {incident_id}")


def context(spawner) -> dict:
    commands = SlurmIncidents(config=spawner.config)
    return {"scancel": list(commands.scancel_command), "env": spawner._slurm_env()}


async def end(where: dict, node_id: str) -> str:
    import asyncio

    proc = await asyncio.create_subprocess_exec(*where["scancel"], node_id, env=where["env"],
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    if proc.returncode != 0 and "Invalid job id" not in err.decode():
        raise RuntimeError(f"scancel {node_id} failed: {err.decode().strip()[:300]}")
    return f"cancelled job {node_id}"
