"""The topology's isolation, checked rather than assumed: the deployed stack's security groups and
route tables become firewalls and routes between network namespaces (simulators/netlab.py), and
real TCP connections are tried both ways between the internet, the VPN gateway, the hub, a
notebook node and the public Voila host."""

from __future__ import annotations

import pytest

from simulators.ec2sim import aws_client
from simulators.netlab import NetLab, netns_available
from simulators.sg_firewall import (
    Host,
    host_ruleset,
    internet_routed_subnets,
    router_ruleset,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(bool(netns_available()), reason=f"network namespaces: {netns_available()}"),
]

INTERNET = "203.0.113.10"  # documentation range: a visitor on the internet
ADMIN = "192.0.2.10"  # inside the template's default AdminCidr
NODE = "10.0.3.50"  # a notebook node the hub would launch in the research subnet

LISTENING = {"public": [80, 443, 22, 8080], "hub": [8000, 8081, 22], "node": [8888, 22], "vpn": [22]}

# (from, to, port): may the connection open? The reference deployment's table 1 with the hub.
EXPECTED = [
    # The internet reaches the public host's web ports and nothing else.
    ("internet", "public", 80, True), ("internet", "public", 443, True), ("internet", "public", 22, False),
    ("internet", "public", 8080, False), ("internet", "hub", 8000, False), ("internet", "hub", 8081, False),
    ("internet", "node", 8888, False), ("internet", "node", 22, False), ("internet", "vpn", 22, False),
    ("admin", "vpn", 22, True),
    # The public host runs hostile notebooks: it opens no connection into the research subnet.
    ("public", "node", 8888, False), ("public", "node", 22, False), ("public", "hub", 8000, False),
    ("public", "hub", 8081, False), ("public", "hub", 22, False),
    # The research subnet reaches the publisher API; nodes call the hub API, not its web port.
    ("node", "public", 8080, True), ("node", "hub", 8081, True), ("node", "hub", 8000, False),
    ("hub", "node", 8888, True), ("hub", "node", 22, False), ("hub", "public", 8080, True),
    # Researchers arrive through the VPN gateway: the hub's web port, SSH; not the nodes' servers.
    ("vpn", "hub", 8000, True), ("vpn", "hub", 22, True), ("vpn", "node", 22, True), ("vpn", "node", 8888, False),
    ("vpn", "public", 22, True), ("vpn", "public", 8080, False),
]


def stack_hosts(stack) -> list[Host]:
    out, ec2 = stack.outputs, aws_client("ec2", stack.endpoint)
    routed = internet_routed_subnets(stack.route_tables())

    def instance(suffix: str) -> dict:
        reply = ec2.describe_instances(Filters=[{"Name": "tag:Name", "Values": [f"{stack.hub_id}-{suffix}"]}])
        (found,) = [i for r in reply["Reservations"] for i in r["Instances"]]
        return found

    hosts = []
    for name, suffix, group in (("vpn", "vpn-gateway", "VpnGatewaySecurityGroupId"), ("hub", "hub", "HubSecurityGroupId"),
                                ("public", "voila", "PublicHostSecurityGroupId")):
        found = instance(suffix)
        hosts.append(Host(name, found["PrivateIpAddress"], out[group], found["SubnetId"] in routed))
    hosts.append(Host("node", NODE, out["NodeSecurityGroupId"], out["ResearchSubnetId"] in routed))
    return hosts


@pytest.fixture(scope="module")
def network(topology_stack):
    hosts = stack_hosts(topology_stack)
    ec2 = aws_client("ec2", topology_stack.endpoint)
    groups = {g["GroupId"]: g for g in ec2.describe_security_groups(GroupIds=[h.group_id for h in hosts])["SecurityGroups"]}
    lab = NetLab().start()
    try:
        for host in hosts:
            lab.add_host(host.name, host.address)
            lab.load_rules(host.name, host_ruleset(host, groups, hosts))
        lab.add_host("internet", INTERNET)
        lab.add_host("admin", ADMIN)
        outside = [lab.router_interface("internet"), lab.router_interface("admin")]
        for interface in outside:
            lab.load_rules(None, router_ruleset(interface, hosts).replace("vpc_router", f"from_{interface.replace('-', '_')}"))
        for host, ports in LISTENING.items():
            lab.listen(host, ports)
        yield lab, {h.name: h for h in hosts}
    finally:
        lab.close()


def test_the_stack_places_hosts_as_the_reference_deployment_does(network):
    _, hosts = network
    assert hosts["public"].address == "10.0.2.10" and hosts["public"].internet_facing
    assert hosts["vpn"].internet_facing
    assert not hosts["hub"].internet_facing and not hosts["node"].internet_facing


def test_reachability_matches_the_security_group_table(network):
    lab, _ = network
    found = {}
    for source in sorted({e[0] for e in EXPECTED}):
        targets = [(to, port) for src, to, port, _ in EXPECTED if src == source]
        for (to, port), opened in zip(targets, lab.probe(source, targets)):
            found[(source, to, port)] = opened
    wrong = [(src, to, port, f"expected {'open' if want else 'closed'}")
             for src, to, port, want in EXPECTED if found[(src, to, port)] != want]
    assert not wrong, wrong


def test_the_probe_sees_a_port_the_rules_would_otherwise_leave_open(network):
    # A control: the public host reaches the node's server once the node's security group is
    # gone, so "closed" above is the rules' doing, not a probe that cannot connect.
    lab, _ = network
    assert lab.probe("public", [("node", 8888)]) == [False]
    lab.load_rules("node", "flush ruleset\n")  # the last test of the module: nothing needs them after
    assert lab.probe("public", [("node", 8888)]) == [True]
