"""Pure EC2 request planning: validation, tags, fallback order, RunInstances, messages."""

from hybrid_spawner.backends.ec2 import plan


def test_good_settings_have_no_problems():
    assert plan.option_problems("eu-west-1", "ami-0123456789abcdef0", ["t3.medium"], ["subnet-0123abcd"], ["sg-0123abcd"]) == []
    assert plan.option_problems("us-gov-west-1", "resolve:ssm:/images/jupyter", ["t3.medium"], [], []) == []


def test_each_bad_setting_is_named_with_its_trait():
    problems = plan.option_problems("", "debian", [], ["research"], ["default"])
    text = " | ".join(problems)
    assert "EC2Spawner.region" in text and "EC2Spawner.image" in text and "instance_types is empty" in text
    assert "'research' is not a subnet id" in text and "'default' is not a security group id" in text
    assert plan.option_problems("eu-west-1", "resolve:ssm:", ["t3.small"], [], []) == [
        "EC2Spawner.image names no SSM parameter after resolve:ssm:"
    ]
    assert "not an AWS region name" in plan.option_problems("Europe", "ami-0123456789abcdef0", ["x"], [], [])[0]


def test_tags_name_the_server_and_cannot_be_overridden():
    tags = {t["Key"]: t["Value"] for t in plan.instance_tags("ann", "gpu", "hub-1", {"Name": "evil", "project": "p"})}
    assert tags == {
        "Name": "jupyter-ann-gpu",
        "project": "p",
        plan.TAG_OWNER: "ann",
        plan.TAG_HUB: "hub-1",
        plan.TAG_SERVER: "gpu",
    }
    assert {t["Key"]: t["Value"] for t in plan.instance_tags("ann", "", "h", {})}["Name"] == "jupyter-ann"


def test_fallback_tries_every_subnet_before_the_next_type():
    order = [(a.instance_type, a.subnet_id) for a in plan.launch_attempts(["big", "small"], ["s1", "s2"])]
    assert order == [("big", "s1"), ("big", "s2"), ("small", "s1"), ("small", "s2")]
    assert [a.subnet_id for a in plan.launch_attempts(["t"], [])] == [None]


def spec(**kw):
    base = dict(image_id="ami-1", user_data="#!/bin/bash\n", tags=[{"Key": "a", "Value": "b"}], security_group_ids=["sg-1"])
    base.update(kw)
    return plan.LaunchSpec(**base)


def test_run_instances_request_is_private_imdsv2_and_tagged():
    req = plan.run_instances_request(spec(), plan.Attempt("t3.small", "subnet-1"), "tok")
    assert req["InstanceType"] == "t3.small" and req["ClientToken"] == "tok" and req["MaxCount"] == 1
    assert req["NetworkInterfaces"] == [{"DeviceIndex": 0, "SubnetId": "subnet-1", "AssociatePublicIpAddress": False, "Groups": ["sg-1"]}]
    assert "SecurityGroupIds" not in req
    assert req["MetadataOptions"]["HttpTokens"] == "required"
    assert {t["ResourceType"] for t in req["TagSpecifications"]} == {"instance", "volume"}
    assert "BlockDeviceMappings" not in req and "IamInstanceProfile" not in req and "KeyName" not in req


def test_run_instances_optional_parts():
    s = spec(instance_profile="arn:aws:iam::1:instance-profile/nb", key_name="ops", imdsv2_required=False,
             root_device_name="/dev/xvda", root_volume_size=50, root_volume_type="io2", root_volume_encrypted=True)
    req = plan.run_instances_request(s, plan.Attempt("t3.small", None), "tok")
    assert req["IamInstanceProfile"] == {"Arn": "arn:aws:iam::1:instance-profile/nb"}
    assert req["KeyName"] == "ops" and req["SecurityGroupIds"] == ["sg-1"] and "NetworkInterfaces" not in req
    assert req["MetadataOptions"]["HttpTokens"] == "optional"
    assert req["BlockDeviceMappings"][0] == {
        "DeviceName": "/dev/xvda",
        "Ebs": {"VolumeSize": 50, "VolumeType": "io2", "Encrypted": True, "DeleteOnTermination": True},
    }
    assert plan.run_instances_request(spec(instance_profile="nb"), plan.Attempt("t", None), "x")["IamInstanceProfile"] == {"Name": "nb"}


def test_error_messages_are_actionable():
    msg = plan.client_error_message("InvalidSubnetID.NotFound", "The subnet ID 'subnet-9' does not exist",
                                    region="eu-west-1", image="ami-1", subnets="subnet-9", groups="")
    assert msg == "Could not start the server: subnet subnet-9 does not exist in eu-west-1 (EC2Spawner.subnet_ids)."
    assert "credentials" in plan.client_error_message("AuthFailure", "", region="r", image="i", subnets="s", groups="g")
    assert plan.client_error_message("Weird", "x" * 1000, region="r", image="i", subnets="s", groups="g").startswith(
        "EC2 refused the request (Weird: xxx"
    )


def test_the_chosen_instance_type_comes_first_then_the_fallbacks():
    assert plan.instance_type_order("t3.large", ["t3.medium", "t3.large", "m5.large"]) == ["t3.large", "t3.medium", "m5.large"]
    assert plan.instance_type_order("", ["t3.medium"]) == ["t3.medium"]
    order = [a.instance_type for a in plan.launch_attempts(plan.instance_type_order("c5.large", ["t3.medium"]), ["s1"])]
    assert order == ["c5.large", "t3.medium"]
