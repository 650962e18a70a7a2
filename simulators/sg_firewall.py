"""Security groups as host firewalls: how the isolation tests enforce a deployed stack's rules.

A security group is a stateful allow-list on the receiving instance: an inbound rule names a
protocol, a port range and a source (an address range or another group, meaning "any instance in
that group"); replies to allowed connections pass; everything else is dropped. Outbound rules
are "all traffic" in the reference topology and are not rendered. This module turns the groups
as EC2 describes them (``DescribeSecurityGroups``) into one nftables ruleset per host, given which
hosts are members of which group; the routing between subnets is :func:`router_ruleset`.

Pure code: the tests' network namespaces (simulators/netlab.py) load what it writes.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Host:
    name: str
    address: str
    group_id: str
    internet_facing: bool  # in a subnet routed to the internet gateway, with a public address


def _sources(permission: dict, hosts: list[Host]) -> list[str]:
    sources = [r["CidrIp"] for r in permission.get("IpRanges", [])]
    for pair in permission.get("UserIdGroupPairs", []):
        sources += [h.address for h in hosts if h.group_id == pair["GroupId"]]
    return sources


def _match(permission: dict) -> str:
    protocol = str(permission.get("IpProtocol", "-1"))
    if protocol in ("-1", "all"):
        return ""
    if protocol not in ("tcp", "udp"):
        raise ValueError(f"protocol {protocol!r} is not rendered (only tcp, udp and all)")
    low, high = permission["FromPort"], permission["ToPort"]
    ports = str(low) if low == high else f"{low}-{high}"
    return f"{protocol} dport {ports} "


def host_ruleset(host: Host, groups: dict[str, dict], hosts: list[Host]) -> str:
    """The nftables ruleset that makes ``host`` behave like an instance in its security group."""
    group = groups[host.group_id]
    rules = []
    for permission in group.get("IpPermissions", []):
        match = _match(permission)
        for source in _sources(permission, hosts):
            prefix = "" if source == "0.0.0.0/0" else f"ip saddr {source} "
            rules.append(f"    {prefix}{match}accept")
    body = "\n".join(rules)
    return (
        "table inet security_group {\n"
        "  chain input {\n"
        "    type filter hook input priority 0; policy drop;\n"
        "    ct state established,related accept\n"
        '    iif "lo" accept\n'
        f"{body}\n"
        "  }\n"
        "}\n"
    )


def router_ruleset(outside_interface: str, hosts: list[Host]) -> str:
    """The VPC router: from the internet only instances with a public address in an internet-routed
    subnet can be reached (the research subnet's route table has a NAT route, no gateway route)."""
    reachable = sorted(h.address for h in hosts if h.internet_facing)
    allowed = f"ip daddr {{ {', '.join(reachable)} }} accept\n    " if reachable else ""
    return (
        "table inet vpc_router {\n"
        "  chain forward {\n"
        "    type filter hook forward priority 0; policy accept;\n"
        "    ct state established,related accept\n"
        f'    iifname "{outside_interface}" {allowed}iifname "{outside_interface}" drop\n'
        "  }\n"
        "}\n"
    )


def internet_routed_subnets(route_tables: list[dict]) -> set[str]:
    """Subnets whose route table sends 0.0.0.0/0 to an internet gateway (``DescribeRouteTables``)."""
    routed = set()
    for table in route_tables:
        if any(r.get("DestinationCidrBlock") == "0.0.0.0/0" and str(r.get("GatewayId", "")).startswith("igw-")
               for r in table.get("Routes", [])):
            routed |= {a["SubnetId"] for a in table.get("Associations", []) if a.get("SubnetId")}
    return routed
