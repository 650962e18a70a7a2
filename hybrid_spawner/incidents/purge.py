"""Delete one person's data everywhere, on request (the "right to erasure" runbook, automated).

What a purge covers, each part only where it is configured:
- the bucket: every object version and delete marker under the user's prefix (a versioned
  bucket keeps deleted objects as old versions: deleting only the current ones erases nothing);
- EC2: the user's stopped instances, unattached volumes and snapshots that carry this hub's tag;
- the public host: every dashboard the user published (all versions, static pages, thumbnails),
  through the publisher API with the user's own publish token.

A dry run lists exactly what a real run would delete. The handler refuses a purge while the user
has a running server, and this module refuses one while the user has an open incident (the
snapshots are evidence). Every SDK call runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from traitlets import Unicode
from traitlets.config import LoggingConfigurable

from hybrid_spawner.backends.ec2.plan import TAG_HUB, TAG_OWNER
from hybrid_spawner.incidents.store import IncidentStore

LISTED = 100  # names shown per part in a report; the counts are always complete


class PurgeError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class UserDataPurge(LoggingConfigurable):
    """Where a user's data lives, for the admin's purge action (docs/incidents.md)."""

    bucket = Unicode("", config=True, help="The notebook bucket; empty: the bucket is not purged.")
    prefix_template = Unicode(
        "users/{username}/", config=True,
        help="The user's prefix in the bucket ({username}); must match the nodes' prefix_template.",
    )
    s3_endpoint_url = Unicode("", config=True, help="S3-compatible endpoint of the bucket; empty for AWS S3.")
    s3_region = Unicode("us-east-1", config=True, help="Region of the bucket.")
    ec2_region = Unicode("", config=True, help="Region of the hub's instances; empty: EC2 is not purged.")
    ec2_endpoint_url = Unicode("", config=True, help="EC2 endpoint (private endpoint or simulation); empty for AWS.")
    hub_id = Unicode(
        "", config=True,
        help="Only instances, volumes and snapshots tagged jupyterhub/hub-id=<this> are touched (c.EC2Spawner.hub_id).",
    )
    publisher_url = Unicode("", config=True, help="The publisher API (http://<public host private address>/api/); empty: dashboards are not purged.")
    publisher_secret_file = Unicode(
        "", config=True, help="File with the secret shared with the publisher (mints the user's publish token).",
    )


def summary(report: dict) -> str:
    parts = []
    if "bucket" in report:
        b = report["bucket"]
        parts.append(f"{b['versions']} object versions and {b['delete_markers']} delete markers ({b['bytes']} bytes) "
                     f"under s3://{b['bucket']}/{b['prefix']}")
    if "ec2" in report:
        e = report["ec2"]
        parts.append(f"{len(e['instances'])} stopped instances, {len(e['volumes'])} volumes, {len(e['snapshots'])} snapshots")
    if "dashboards" in report:
        parts.append(f"{len(report['dashboards'])} dashboards")
    return "; ".join(parts) or "nothing configured to purge"


# -- the bucket ------------------------------------------------------------------------------
def _s3(settings: UserDataPurge):
    import boto3

    return boto3.session.Session().client("s3", region_name=settings.s3_region,
                                          endpoint_url=settings.s3_endpoint_url or None)


def _purge_bucket(settings: UserDataPurge, user: str, dry_run: bool) -> dict:
    from hybrid_spawner.bucket_credentials.policy import user_prefix

    prefix = user_prefix(settings.prefix_template, user)
    client = _s3(settings)
    versions, markers, size = [], [], 0
    for page in client.get_paginator("list_object_versions").paginate(Bucket=settings.bucket, Prefix=prefix):
        for v in page.get("Versions", []):
            versions.append({"Key": v["Key"], "VersionId": v["VersionId"]})
            size += v.get("Size", 0)
        markers += [{"Key": m["Key"], "VersionId": m["VersionId"]} for m in page.get("DeleteMarkers", [])]
    errors = []
    if not dry_run:
        doomed = versions + markers
        for start in range(0, len(doomed), 1000):  # DeleteObjects takes at most 1,000 keys
            reply = client.delete_objects(Bucket=settings.bucket, Delete={"Objects": doomed[start:start + 1000], "Quiet": True})
            errors += [f"{e['Key']} ({e.get('VersionId')}): {e.get('Code')}" for e in reply.get("Errors", [])]
    return {"bucket": settings.bucket, "prefix": prefix, "versions": len(versions), "delete_markers": len(markers),
            "bytes": size, "keys": sorted({v["Key"] for v in versions})[:LISTED], "errors": errors}


# -- EC2 -------------------------------------------------------------------------------------
def _purge_ec2(settings: UserDataPurge, user: str, dry_run: bool) -> dict:
    from hybrid_spawner.backends.ec2.client import aws_client

    if not settings.hub_id:
        raise PurgeError(500, "c.UserDataPurge.hub_id is not set: refusing to touch EC2 without this hub's tag")
    ec2 = aws_client("ec2", settings.ec2_region, settings.ec2_endpoint_url or None)
    mine = [{"Name": f"tag:{TAG_HUB}", "Values": [settings.hub_id]}, {"Name": f"tag:{TAG_OWNER}", "Values": [user]}]
    reply = ec2.describe_instances(Filters=[*mine, {"Name": "instance-state-name", "Values": ["stopped", "stopping"]}])
    instances = [i["InstanceId"] for r in reply["Reservations"] for i in r["Instances"]]
    volumes = [v["VolumeId"] for v in ec2.describe_volumes(Filters=[*mine, {"Name": "status", "Values": ["available"]}])["Volumes"]]
    snapshots = [s["SnapshotId"] for s in ec2.describe_snapshots(OwnerIds=["self"], Filters=mine)["Snapshots"]]
    if not dry_run:
        if instances:
            ec2.terminate_instances(InstanceIds=instances)
        for volume in volumes:
            ec2.delete_volume(VolumeId=volume)
        for snapshot in snapshots:
            ec2.delete_snapshot(SnapshotId=snapshot)
    return {"instances": instances, "volumes": volumes, "snapshots": snapshots}


# -- the public host ---------------------------------------------------------------------------
def _publisher(settings: UserDataPurge, user: str, method: str, path: str):
    from voila_publisher.tokens import derive_publish_token

    secret = Path(settings.publisher_secret_file).read_text().strip()
    request = urllib.request.Request(
        settings.publisher_url.rstrip("/") + path, method=method,
        headers={"Authorization": f"Bearer {derive_publish_token(secret, user)}"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        body = answer.read()
    return json.loads(body) if body else None


def _purge_dashboards(settings: UserDataPurge, user: str, dry_run: bool) -> list[str]:
    listed = _publisher(settings, user, "GET", "/dashboards?" + urllib.parse.urlencode({"owner": user}))
    slugs = sorted(d["slug"] for d in listed if d.get("owner") == user)
    if not dry_run:
        for slug in slugs:
            try:
                _publisher(settings, user, "DELETE", f"/dashboards/{urllib.parse.quote(user)}/{urllib.parse.quote(slug)}")
            except urllib.error.HTTPError as error:
                if error.code != 404:  # gone meanwhile: fine
                    raise
    return slugs


async def purge_user(config, user: str, *, dry_run: bool, log) -> dict:
    """Delete (or, with ``dry_run``, list) ``user``'s data in every configured place."""
    held = await asyncio.to_thread(IncidentStore(config=config, log=log).open_for, user)
    if held:
        raise PurgeError(409, f"{user} has an open incident ({held['id']}): its evidence is kept until it is released")
    settings = UserDataPurge(config=config, log=log)
    report: dict = {"user": user, "dry_run": dry_run}
    try:
        if settings.bucket:
            report["bucket"] = await asyncio.to_thread(_purge_bucket, settings, user, dry_run)
        if settings.ec2_region:
            report["ec2"] = await asyncio.to_thread(_purge_ec2, settings, user, dry_run)
        if settings.publisher_url:
            report["dashboards"] = await asyncio.to_thread(_purge_dashboards, settings, user, dry_run)
    except PurgeError:
        raise
    except Exception as error:  # an unreachable store or cloud: say which part, keep what is known
        done = ", ".join(k for k in ("bucket", "ec2", "dashboards") if k in report) or "nothing"
        raise PurgeError(502, f"purging {user}'s data failed ({type(error).__name__}: {error}); "
                              f"done before the failure: {done}. Run it again: a purge is idempotent.") from None
    report["summary"] = summary(report)
    return report
