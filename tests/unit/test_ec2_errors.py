"""EC2Spawner turns AWS client errors into one actionable sentence without secrets."""

import botocore.exceptions
import pytest

from hybrid_spawner.backends.ec2.spawner import EC2Spawner


@pytest.fixture
def spawner():
    return EC2Spawner(region="eu-west-1", image="resolve:ssm:/img", subnet_ids=["subnet-0123abcd"],
                      security_group_ids=["sg-0123abcd"], endpoint_url="https://ec2.vpce.example")


def client_error(code, message="m"):
    return botocore.exceptions.ClientError({"Error": {"Code": code, "Message": message}}, "RunInstances")


def test_client_errors_name_the_setting(spawner):
    assert spawner.describe_error(client_error("ParameterNotFound")) == (
        "Could not start the server: SSM parameter resolve:ssm:/img does not exist in eu-west-1 (EC2Spawner.image)."
    )
    assert "subnet-0123abcd" in spawner.describe_error(client_error("InvalidSubnetID.NotFound"))
    assert "sg-0123abcd" in spawner.describe_error(client_error("InvalidGroup.NotFound"))
    assert "IAM policy" in spawner.describe_error(client_error("UnauthorizedOperation", "Encoded authorization failure"))


def test_client_side_errors(spawner):
    assert "no AWS credentials" in spawner.describe_error(botocore.exceptions.NoCredentialsError())
    unreachable = botocore.exceptions.EndpointConnectionError(endpoint_url="https://ec2.vpce.example")
    assert spawner.describe_error(unreachable) == (
        "Could not start the server: cannot reach EC2 in eu-west-1 (https://ec2.vpce.example)."
    )
    partial = botocore.exceptions.PartialCredentialsError(provider="env", cred_var="AWS_SECRET_ACCESS_KEY")
    assert spawner.describe_error(partial) == "Could not start the server: AWS client error (PartialCredentialsError)."
    assert spawner.describe_error(ValueError("x")) is None  # unexpected: logged with traceback, generic to user


def test_state_round_trip_and_names(spawner):
    spawner.node_id, spawner.node_ip, spawner.node_port, spawner.launched_instance_type = "i-1", "10.0.0.5", 8888, "t3.large"
    state = spawner.get_state()
    assert state["backend"] == "ec2" and state["instance_type"] == "t3.large" and state["spawner_version"]
    other = EC2Spawner()
    other.load_state({**state, "backend": "openstack"})
    assert other.node_id is None, "a state written by another backend is not taken for ours"
    other.load_state(state)
    assert (other.node_id, other.node_ip, other.node_port, other.launched_instance_type) == ("i-1", "10.0.0.5", 8888, "t3.large")
    assert other.describe_node() == "instance i-1 (t3.large)"
    other.clear_state()
    assert other.node_id is None and other.launched_instance_type is None


async def test_garbled_run_instances_reply_is_retried_with_the_same_client_token(spawner, monkeypatch):
    from botocore.parsers import ResponseParserError

    seen = []

    async def flaky_call(service, method, **request):
        seen.append(request["ClientToken"])
        if len(seen) == 1:
            raise ResponseParserError("Unable to parse response")
        return {"Instances": [{"InstanceId": "i-9", "InstanceType": "t3.micro"}]}

    monkeypatch.setattr(spawner, "_call", flaky_call)
    reply = await spawner._run_instances({"ClientToken": "tok-1"})
    assert reply["Instances"][0]["InstanceId"] == "i-9" and seen == ["tok-1", "tok-1"]
