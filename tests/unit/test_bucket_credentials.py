"""Per-user bucket credentials, the pure and local parts: the policy documents, the issuers'
refusals, the spawner's hand-over and refresh secrets, the node agent's file and timing, and the
sync's credential file. The enforcement by a real store is in
tests/integration/test_bucket_credentials*.py (SeaweedFS with STS, a real hub)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from hybrid_spawner.bootstrap import refresh
from hybrid_spawner.bootstrap.credentials import CredentialRejected
from hybrid_spawner.bootstrap.node_agent import CredentialRefresher, refresh_delay, write_credentials
from hybrid_spawner.bucket_credentials import BucketCredentials, CredentialIssuer, IssueFailed, StaticKeysIssuer
from hybrid_spawner.bucket_credentials import policy
from hybrid_spawner.remote import SpawnFailed
from tests.contract.memory_backend import MemorySpawner
from tests.unit.test_remote_lifecycle import play_node
from voila_publisher.sync.s3.credentials import FileCredentials
from voila_publisher.sync.store import StoreError

DOCS = Path(__file__).resolve().parents[2] / "docs" / "security.md"
UTC = dt.timezone.utc


# -- policy (pure) ----------------------------------------------------------------------------
def test_session_policy_confines_list_and_objects_to_the_users_prefix():
    doc = policy.session_policy("research-notebooks", "users/alice/")
    listing, objects = doc["Statement"]
    assert listing["Action"] == "s3:ListBucket" and listing["Resource"] == "arn:aws:s3:::research-notebooks"
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["users/alice/", "users/alice/*"]}}
    assert objects["Resource"] == "arn:aws:s3:::research-notebooks/users/alice/*"
    assert {"s3:GetObject", "s3:PutObject", "s3:DeleteObject"} <= set(objects["Action"])
    assert "${" not in json.dumps(doc), "no policy variable: role sessions have no aws:username"
    assert len(policy.compact(doc)) < 2048  # STS's packed session policy limit leaves room


@pytest.mark.parametrize(
    "template, user, prefix",
    [("users/{username}/", "alice", "users/alice/"), ("/home/{username}", "bob.smith@uni", "home/bob.smith@uni/")],
)
def test_user_prefix(template, user, prefix):
    assert policy.user_prefix(template, user) == prefix


@pytest.mark.parametrize(
    "template, user",
    [("users/", "alice"), ("users/{username}/", "a*"), ("users/{username}/", "a?b"), ("users/{username}/", "${x}"),
     ("users/{username}/", "a/b"), ("users/{username}/", ".."), ("users/{username}/", ""), ("u*/{username}/", "a"),
     ("users//{username}/", "a"), ("users/{username}/", "a\nb"), ("users/{username}/{server}/", "a")],
)
def test_user_prefix_refuses_what_would_not_confine_one_user(template, user):
    with pytest.raises(policy.PrefixRefused):
        policy.user_prefix(template, user)


def test_session_name_is_a_valid_role_session_name():
    name = policy.session_name("José Müller/../" + "x" * 80)
    assert re.fullmatch(r"[\w+=,.@-]{2,64}", name) and name.startswith("hub-")


def test_the_security_page_prints_the_policies_the_code_uses():
    """docs/security.md and the code cannot drift apart: every document is printed verbatim."""
    text = DOCS.read_text()
    blocks = [json.loads(b) for b in re.findall(r"```json\n(.*?)```", text, re.S)]
    expected = [
        policy.session_policy("research-notebooks", "users/alice/"),
        policy.node_data_role_policy("research-notebooks"),
        policy.node_data_trust_policy("arn:aws:iam::123456789012:role/jupyterhub"),
        policy.hub_assume_policy("arn:aws:iam::123456789012:role/jupyter-node-data"),
    ]
    for document in expected:
        assert document in blocks, f"docs/security.md lacks {json.dumps(document)[:80]}…"
    code = "".join(re.findall(r"```.*?```", text, re.S))
    assert "${" not in code, "no example may rely on a policy variable (role sessions have no aws:username)"


def test_no_doc_or_example_config_hands_nodes_a_shared_key_or_a_username_variable():
    root = DOCS.parents[1]
    files = [root / "README.md", *(root / "docs").glob("*.md"), *(root / "jupyter_config").rglob("*.py")]
    for path in files:
        text = path.read_text()
        if path.name != "security.md":  # which explains why the variable cannot work
            assert "aws:username" not in text, path
        for line in text.splitlines():
            if re.search(r"AWS_SECRET_ACCESS_KEY[\"']?\s*[:=]\s*[\"'\w]", line):
                raise AssertionError(f"{path.name}: a static key in a configuration: {line.strip()}")
    # The demo too: its nodes get no S3 key, only what the issuer hands them.
    demo = (root / "simulators" / "demo_stack.py").read_text()
    node_environment = demo.split("node_environment={", 1)[1].split("},", 1)[0]
    assert "CREDENTIALS" not in node_environment and "AWS_ACCESS_KEY_ID" not in node_environment
    assert "sts=True" in demo and "bucket_credentials=" in demo


# -- issuers ----------------------------------------------------------------------------------
async def test_static_keys_issuer_reads_a_private_file_and_refuses_the_rest(tmp_path):
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({"alice": {"access_key_id": "AK-alice", "secret_access_key": "s-alice"}}))
    os.chmod(keys, 0o600)
    issuer = StaticKeysIssuer(bucket="nb", keys_file=str(keys), endpoint_url="http://rgw")
    creds = await issuer.issue("alice")
    assert (creds.access_key_id, creds.prefix, creds.expiration) == ("AK-alice", "users/alice/", None)
    assert creds.node_environment() == {"HYBRID_SYNC_BUCKET": "nb", "HYBRID_SYNC_PREFIX": "users/alice/",
                                        "HYBRID_S3_ENDPOINT_URL": "http://rgw", "HYBRID_S3_REGION": "us-east-1"}
    with pytest.raises(IssueFailed, match="no bucket key for user 'bob'"):
        await issuer.issue("bob")
    os.chmod(keys, 0o644)
    with pytest.raises(IssueFailed, match="chmod 600"):
        await issuer.issue("alice")
    with pytest.raises(IssueFailed, match="keys_file or"):
        await StaticKeysIssuer(bucket="nb").issue("alice")
    with pytest.raises(IssueFailed, match="bucket is not set"):
        await StaticKeysIssuer(keys=lambda u: None).issue("alice")
    lookup = StaticKeysIssuer(bucket="nb", keys=lambda u: {"access_key_id": f"AK-{u}", "secret_access_key": "s"})
    assert (await lookup.issue("carol")).access_key_id == "AK-carol"


def test_credentials_never_show_their_secret():
    creds = BucketCredentials("AKIAEXAMPLE", "very-secret", "session-token", None, "nb", "users/a/")
    assert "very-secret" not in repr(creds) and "session-token" not in str(creds)


# -- the spawner hands them over once and refreshes them through the hub -----------------------
class CountingIssuer(CredentialIssuer):
    """An issuer with no store behind it (the real ones are tested against SeaweedFS's STS)."""

    issued = 0

    def issue_blocking(self, username, prefix):
        CountingIssuer.issued += 1
        n = CountingIssuer.issued
        expires = dt.datetime.now(UTC) + dt.timedelta(hours=1)
        return BucketCredentials(f"AK{n}", f"secret-{n}", f"token-{n}", expires, self.bucket, prefix)


def spawner(**kw):
    from traitlets.config import Config

    config = Config()
    config.CountingIssuer.bucket = "nb"
    return MemorySpawner(start_timeout=10, config=config, bucket_credentials_issuer=CountingIssuer, **kw)


async def test_spawn_hands_the_node_its_users_credentials_and_a_refresh_secret_that_dies_at_stop():
    sp = spawner()
    node = asyncio.ensure_future(play_node(sp))
    await sp.start()
    answer = await node
    bundle = answer["bucket_credentials"]
    assert bundle["credentials"]["AccessKeyId"].startswith("AK")
    assert answer["environment"]["HYBRID_SYNC_PREFIX"] == "users/u/"
    assert bundle["credentials"]["SecretAccessKey"] not in sp.scripts[-1]
    state = sp.get_state()
    assert state["bucket_refresh_hash"] == refresh.digest(bundle["refresh_secret"])
    assert bundle["refresh_secret"] not in json.dumps(state)

    label, fresh = await refresh.registry.refresh(bundle["refresh_secret"])
    assert fresh["credentials"]["AccessKeyId"] != bundle["credentials"]["AccessKeyId"]
    with pytest.raises(refresh.RefreshTooSoon):
        await refresh.registry.refresh(bundle["refresh_secret"])

    # A restarted hub finds the hash in the state and keeps honouring the node's secret.
    refresh.registry.forget(state["bucket_refresh_hash"])
    again = spawner()
    again.load_state(state)
    _, after_restart = await refresh.registry.refresh(bundle["refresh_secret"])
    assert after_restart["credentials"]["AccessKeyId"]

    await again.stop()
    await sp.stop()
    with pytest.raises(CredentialRejected):
        await refresh.registry.refresh(bundle["refresh_secret"])
    with pytest.raises(CredentialRejected):
        await refresh.registry.refresh("guessed")
    await sp.cache.close()
    await again.cache.close()


async def test_a_refused_issue_fails_the_spawn_before_any_node_exists():
    sp = spawner(user=__import__("types").SimpleNamespace(name="a*", url="/user/a*/"))
    with pytest.raises(SpawnFailed, match="No bucket credentials for your server: user name"):
        await sp.start()
    assert sp.cache.nodes == {} and not sp.scripts
    await sp.cache.close()


# -- the node side: the file, its timing, its refresher; the sync's reader ---------------------
def node_credentials(seconds: float, key="AK1") -> dict:
    expires = dt.datetime.now(UTC) + dt.timedelta(seconds=seconds)
    return {"AccessKeyId": key, "SecretAccessKey": "s", "SessionToken": "t", "Expiration": expires.isoformat()}


def test_refresh_waits_half_the_remaining_lifetime_and_never_for_keys_that_do_not_expire():
    now = dt.datetime(2030, 1, 1, tzinfo=UTC)
    creds = {"Expiration": (now + dt.timedelta(hours=1)).isoformat()}
    assert refresh_delay(creds, now) == 1800
    assert refresh_delay({"Expiration": (now - dt.timedelta(seconds=5)).isoformat()}, now) == 0
    assert refresh_delay({"Expiration": None}, now) is None


def test_the_sync_rereads_a_replaced_file_and_never_signs_with_expired_credentials(tmp_path):
    path = tmp_path / "creds.json"
    write_credentials(str(path), node_credentials(60, "AK1"))
    assert path.stat().st_mode & 0o777 == 0o600
    reader = FileCredentials(str(path))
    assert reader.frozen().access_key == "AK1"
    write_credentials(str(path), node_credentials(60, "AK2-longer"))
    assert reader.frozen() == ("AK2-longer", "s", "t")
    write_credentials(str(path), node_credentials(-1, "AK3"))
    with pytest.raises(StoreError) as e:
        reader.frozen()
    assert e.value.reason == "expired-credentials" and e.value.fatal
    path.write_text("{not json")
    with pytest.raises(StoreError, match="not the JSON"):
        FileCredentials(str(path)).frozen()
    with pytest.raises(StoreError, match="HYBRID_S3_CREDENTIALS_FILE"):
        FileCredentials(str(tmp_path / "missing.json")).frozen()


def test_the_refresher_replaces_the_file_before_expiry_and_stops_when_revoked(tmp_path):
    answers = [200, 200, 403]
    seen = []

    class Hub(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append(body["secret"])
            status = answers.pop(0) if answers else 403
            self.send_response(status)
            self.end_headers()
            if status == 200:
                self.wfile.write(json.dumps({"credentials": node_credentials(1.0, f"AK{len(seen) + 1}")}).encode())

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    path = tmp_path / "creds.json"
    first = node_credentials(1.0, "AK1")
    write_credentials(str(path), first)
    url = f"http://127.0.0.1:{server.server_port}/hub/api/hybrid/bucket-credentials"
    refresher = CredentialRefresher(url, "the-secret", str(path), first)
    refresher.start()
    refresher.join(10)
    server.shutdown()
    assert not refresher.is_alive(), "a revoked secret must end the refresher"
    assert seen == ["the-secret"] * 3 and refresher.refreshes == 2
    assert json.loads(path.read_text())["AccessKeyId"] == "AK3"


def test_every_registered_backend_hands_over_bucket_credentials_the_same_way():
    """The hand-over lives in RemoteSpawner: a backend that bypassed it would give its nodes none."""
    from hybrid_spawner.backends import BACKENDS, spawner_class
    from hybrid_spawner.remote import RemoteSpawner

    for name in BACKENDS:
        cls = spawner_class(name)
        assert issubclass(cls, RemoteSpawner), name
        assert cls._bootstrap_payload is RemoteSpawner._bootstrap_payload, f"{name} overrides the payload"
        assert cls.class_traits()["bucket_credentials_issuer"] is not None
