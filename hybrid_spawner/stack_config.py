"""From a deployed topology stack to the hub's configuration.

``hybrid-stack-config --stack NAME`` reads the outputs and parameters of a stack made from
``jupyter_config/aws/research-cloud.yaml`` and writes the part of ``jupyterhub_config.py`` that
comes from the network: subnets, security groups, instance profile, node image parameter, hub id,
bucket, node-data role and the publisher's private address. The admin's own file keeps the rest
(authenticator, profiles) and loads this one with ``load_subconfig``, so re-running the command
after a stack update never overwrites hand-written settings.

:func:`render_hub_config` is pure (outputs in, Python text out); :func:`read_stack` is the only
code that talks to CloudFormation.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

# Outputs the template declares and the hub needs; a stack missing one is not ours (or older).
REQUIRED_OUTPUTS = (
    "HubId",
    "Region",
    "ResearchSubnetId",
    "NodeSecurityGroupId",
    "NodeInstanceProfileName",
    "NodeDataRoleArn",
    "BucketName",
    "NodeImageParameterName",
    "NodeServerPort",
    "HubConnectUrl",
    "PublisherApiUrl",
)


class StackConfigError(Exception):
    """The stack cannot be turned into a hub configuration; the message says why."""


def comma_list(value: str) -> list[str]:
    """A CommaDelimitedList parameter's value: "a,b" from CloudFormation; moto's server answers
    with the list's repr ("['a', 'b']"), which a simulated deployment must read the same way."""
    text = value.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    return [item.strip().strip("'\"") for item in text.split(",") if item.strip().strip("'\"")]


def render_hub_config(stack_name: str, outputs: dict[str, str], parameters: dict[str, str], *,
                      endpoint_url: str = "") -> str:
    """The hub configuration (Python) for a stack's ``outputs`` and ``parameters``."""
    missing = [key for key in REQUIRED_OUTPUTS if not outputs.get(key)]
    if missing:
        raise StackConfigError(
            f"stack {stack_name!r} lacks the outputs {', '.join(missing)}: "
            "was it made from jupyter_config/aws/research-cloud.yaml?"
        )
    types = comma_list(parameters.get("NodeInstanceTypes", ""))
    try:
        port = int(outputs["NodeServerPort"])
    except ValueError:
        raise StackConfigError(f"NodeServerPort {outputs['NodeServerPort']!r} is not a port number") from None
    region = outputs["Region"]
    lines = [
        f"# Written by hybrid-stack-config from the stack {stack_name!r} ({region}).",
        "# Re-run the command after a stack update; keep your own settings in jupyterhub_config.py.",
        f"c.EC2Spawner.region = {region!r}",
        f"c.EC2Spawner.hub_id = {outputs['HubId']!r}",
        f"c.EC2Spawner.subnet_ids = [{outputs['ResearchSubnetId']!r}]",
        f"c.EC2Spawner.security_group_ids = [{outputs['NodeSecurityGroupId']!r}]",
        f"c.EC2Spawner.instance_profile = {outputs['NodeInstanceProfileName']!r}",
        f"c.EC2Spawner.image = {'resolve:ssm:' + outputs['NodeImageParameterName']!r}",
        f"c.EC2Spawner.port = {port}",
    ]
    if types:
        lines.append(f"c.EC2Spawner.instance_types = {types!r}")
    if endpoint_url:
        # A private endpoint (or a simulation): shared by the EC2 and SSM clients.
        lines.append(f"c.EC2Spawner.endpoint_url = {endpoint_url!r}")
    lines += [
        f"c.JupyterHub.hub_connect_url = {outputs['HubConnectUrl']!r}",
        "# Per-user bucket credentials: sessions of the node-data role narrowed to users/<name>/.",
        'c.RemoteSpawner.bucket_credentials_issuer = "hybrid_spawner.bucket_credentials.STSIssuer"',
        f"c.STSIssuer.bucket = {outputs['BucketName']!r}",
        f"c.STSIssuer.role_arn = {outputs['NodeDataRoleArn']!r}",
        f"c.STSIssuer.region = {region!r}",
        "# Merged into (not replacing) the environment the hub gives every server.",
        f"c.Spawner.environment.update({{'HYBRID_PUBLISHER_URL': {outputs['PublisherApiUrl']!r}}})",
    ]
    return "\n".join(lines) + "\n"


def read_stack(stack_name: str, *, region: str | None, endpoint_url: str = "") -> tuple[dict, dict]:
    """The outputs and parameters of a complete stack; raises StackConfigError otherwise."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    client = boto3.client("cloudformation", region_name=region, endpoint_url=endpoint_url or None)
    try:
        stacks = client.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as error:
        raise StackConfigError(f"cannot read the stack {stack_name!r}: {error.response['Error'].get('Message', error)}") from None
    except BotoCoreError as error:
        raise StackConfigError(f"cannot reach CloudFormation: {error}") from None
    stack = stacks[0]
    status = stack["StackStatus"]
    if status not in ("CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE"):
        raise StackConfigError(f"stack {stack_name!r} is {status}; wait until it is complete")
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    parameters = {p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])}
    return outputs, parameters


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole: a hub starting meanwhile reads the old file or the new."""
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hybrid-stack-config",
        description="Write the hub configuration for a stack made from jupyter_config/aws/research-cloud.yaml.",
    )
    parser.add_argument("--stack", required=True, help="the CloudFormation stack name")
    parser.add_argument("--region", default=None, help="the stack's region (default: the AWS configuration's)")
    parser.add_argument("--endpoint-url", default="", help="a private or simulated AWS endpoint, also written for the hub")
    parser.add_argument("--output", default="-", help="file to write (default: standard output)")
    args = parser.parse_args(argv)
    try:
        outputs, parameters = read_stack(args.stack, region=args.region, endpoint_url=args.endpoint_url)
        text = render_hub_config(args.stack, outputs, parameters, endpoint_url=args.endpoint_url)
    except StackConfigError as error:
        print(f"hybrid-stack-config: {error}", file=sys.stderr)
        return 2
    if args.output == "-":
        sys.stdout.write(text)
    else:
        write_atomically(Path(args.output), text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
