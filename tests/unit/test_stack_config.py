"""hybrid-stack-config's pure half: stack outputs in, hub configuration out."""

import pytest
from traitlets.config import Config, PyFileConfigLoader

from hybrid_spawner.stack_config import (
    REQUIRED_OUTPUTS,
    StackConfigError,
    render_hub_config,
)

OUTPUTS = {
    "HubId": "research-hub",
    "Region": "eu-west-1",
    "ResearchSubnetId": "subnet-0123",
    "NodeSecurityGroupId": "sg-0456",
    "NodeInstanceProfileName": "research-NodeInstanceProfile-X",
    "NodeDataRoleArn": "arn:aws:iam::123456789012:role/research-NodeDataRole-Y",
    "BucketName": "research-notebookbucket-z",
    "NodeImageParameterName": "/research/jupyter-node/ami",
    "NodeServerPort": "8888",
    "HubConnectUrl": "http://10.0.3.10:8081",
    "PublisherApiUrl": "http://10.0.2.10:8080/api/",
}


def load(text: str, tmp_path, before: str = "") -> Config:
    path = tmp_path / "jupyterhub_config.py"
    path.write_text(before + text)
    loader = PyFileConfigLoader(path.name, str(tmp_path))
    return loader.load_config()


def test_every_hub_setting_comes_from_the_stack(tmp_path):
    text = render_hub_config("research", OUTPUTS, {"NodeInstanceTypes": "m6i.xlarge, m5.xlarge"})
    c = load(text, tmp_path)
    assert c.EC2Spawner.subnet_ids == ["subnet-0123"]
    assert c.EC2Spawner.security_group_ids == ["sg-0456"]
    assert c.EC2Spawner.instance_profile == "research-NodeInstanceProfile-X"
    assert c.EC2Spawner.image == "resolve:ssm:/research/jupyter-node/ami"
    assert c.EC2Spawner.hub_id == "research-hub"
    assert c.EC2Spawner.region == "eu-west-1"
    assert c.EC2Spawner.port == 8888
    assert c.EC2Spawner.instance_types == ["m6i.xlarge", "m5.xlarge"]
    assert c.JupyterHub.hub_connect_url == "http://10.0.3.10:8081"
    assert c.STSIssuer.role_arn == OUTPUTS["NodeDataRoleArn"]
    assert c.STSIssuer.bucket == "research-notebookbucket-z"
    assert "endpoint_url" not in c.EC2Spawner


def test_the_publisher_address_joins_the_environment_the_admin_set(tmp_path):
    # Replacing c.Spawner.environment would drop what the admin put there (the publish token's
    # companions, proxies); the generated file merges into it.
    text = render_hub_config("research", OUTPUTS, {})
    c = load(text, tmp_path, before='c.Spawner.environment = {"HTTPS_PROXY": "http://proxy:3128"}\n')
    merged = c.Spawner.environment
    if hasattr(merged, "get_value"):
        merged = merged.get_value({})
    assert merged == {"HTTPS_PROXY": "http://proxy:3128", "HYBRID_PUBLISHER_URL": "http://10.0.2.10:8080/api/"}


def test_an_endpoint_url_is_written_for_the_ec2_and_ssm_clients(tmp_path):
    c = load(render_hub_config("research", OUTPUTS, {}, endpoint_url="http://127.0.0.1:5000"), tmp_path)
    assert c.EC2Spawner.endpoint_url == "http://127.0.0.1:5000"


@pytest.mark.parametrize("missing", ["ResearchSubnetId", "NodeDataRoleArn", "PublisherApiUrl"])
def test_a_stack_without_the_templates_outputs_is_refused_by_name(missing):
    outputs = {k: v for k, v in OUTPUTS.items() if k != missing}
    with pytest.raises(StackConfigError, match=missing):
        render_hub_config("other-stack", outputs, {})


def test_a_port_that_is_not_a_number_is_refused():
    with pytest.raises(StackConfigError, match="NodeServerPort"):
        render_hub_config("research", {**OUTPUTS, "NodeServerPort": "http"}, {})


def test_the_required_outputs_are_all_declared_by_the_template():
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    # CloudFormation's short-form tags (!Ref, !Sub ...) as plain values: only the keys matter here.
    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    from tests.fixtures.topology import TEMPLATE

    declared = yaml.load(TEMPLATE.read_text(), Loader=Loader)["Outputs"]
    assert set(REQUIRED_OUTPUTS) <= set(declared)


@pytest.mark.parametrize("value", ["t3.large,t3.medium", " t3.large , t3.medium ", "['t3.large', 't3.medium']"])
def test_instance_types_read_from_either_form_of_a_list_parameter(value):
    from hybrid_spawner.stack_config import comma_list

    assert comma_list(value) == ["t3.large", "t3.medium"]
