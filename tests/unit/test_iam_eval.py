"""hybrid_spawner.iam_eval against the semantics AWS documents (IAM User Guide: "Policy evaluation
logic", "IAM JSON policy elements: Condition operators", "Condition keys with multiple values")."""

import pytest

from hybrid_spawner.iam_eval import Resource, UnsupportedPolicy, authorize, conditions_hold, decide, substitute


def policy(*statements):
    return [{"Version": "2012-10-17", "Statement": list(statements)}]


def allow(action="s3:GetObject", resource="*", **condition):
    statement = {"Effect": "Allow", "Action": action, "Resource": resource}
    if condition:
        statement["Condition"] = condition
    return statement


def test_no_statement_is_an_implicit_deny_and_an_explicit_deny_wins():
    assert decide(policy(), "s3:GetObject", "arn:aws:s3:::b/k", {}) == "ImplicitDeny"
    both = policy(allow(), {"Effect": "Deny", "Action": "s3:*", "Resource": "arn:aws:s3:::b/*"})
    assert decide(both, "s3:GetObject", "arn:aws:s3:::b/k", {}) == "ExplicitDeny"
    assert decide(both, "s3:GetObject", "arn:aws:s3:::other/k", {}) == "Allow"


def test_actions_match_case_insensitively_with_wildcards_and_resources_case_sensitively():
    p = policy(allow("EC2:describe*", "arn:aws:ec2:*:*:instance/i-?bc"))
    assert decide(p, "ec2:DescribeInstances", "arn:aws:ec2:eu-west-1:1:instance/i-abc", {}) == "Allow"
    assert decide(p, "ec2:DescribeInstances", "arn:aws:ec2:eu-west-1:1:instance/i-ABC", {}) == "ImplicitDeny"
    assert decide(p, "ec2:DescribeInstances", "arn:aws:ec2:eu-west-1:1:instance/i-abbc", {}) == "ImplicitDeny"
    assert decide(p, "ec2:RunInstances", "arn:aws:ec2:eu-west-1:1:instance/i-abc", {}) == "ImplicitDeny"


def test_not_action_and_not_resource():
    p = policy({"Effect": "Allow", "NotAction": "iam:*", "NotResource": "arn:aws:s3:::secret/*"})
    assert decide(p, "s3:GetObject", "arn:aws:s3:::open/k", {}) == "Allow"
    assert decide(p, "s3:GetObject", "arn:aws:s3:::secret/k", {}) == "ImplicitDeny"
    assert decide(p, "iam:PassRole", "arn:aws:iam::1:role/r", {}) == "ImplicitDeny"


def test_string_equals_is_case_sensitive_and_values_of_one_key_are_alternatives():
    cond = {"StringEquals": {"ec2:InstanceType": ["t3.medium", "t3.large"]}}
    assert conditions_hold(cond, {"ec2:InstanceType": "t3.large"})
    assert not conditions_hold(cond, {"ec2:InstanceType": "T3.large"})
    assert not conditions_hold(cond, {"ec2:InstanceType": "m5.large"})


def test_keys_and_operators_are_all_required():
    cond = {"StringEquals": {"a": "1", "b": "2"}, "Bool": {"c": "true"}}
    assert conditions_hold(cond, {"a": "1", "b": "2", "c": "true"})
    assert not conditions_hold(cond, {"a": "1", "b": "2", "c": "false"})
    assert not conditions_hold(cond, {"a": "1", "c": "true"})


def test_a_missing_key_fails_every_operator_but_null_and_for_all_values():
    assert not conditions_hold({"StringEquals": {"k": "v"}}, {})
    assert not conditions_hold({"StringLike": {"k": "*"}}, {})
    assert not conditions_hold({"Bool": {"k": "false"}}, {})
    assert conditions_hold({"Null": {"k": "true"}}, {})
    assert not conditions_hold({"Null": {"k": "false"}}, {})
    assert conditions_hold({"Null": {"k": "false"}}, {"k": "x"})
    assert conditions_hold({"ForAllValues:StringEquals": {"aws:TagKeys": ["a"]}}, {})
    assert not conditions_hold({"ForAnyValue:StringEquals": {"aws:TagKeys": ["a"]}}, {})


def test_string_like_wildcards():
    assert conditions_hold({"StringLike": {"s3:prefix": "users/*"}}, {"s3:prefix": "users/ada/"})
    assert conditions_hold({"StringLike": {"s3:prefix": "users/?da"}}, {"s3:prefix": "users/ada"})
    assert not conditions_hold({"StringLike": {"s3:prefix": "users/*"}}, {"s3:prefix": "admin/users/"})


def test_arn_like_matches_part_by_part():
    cond = {"ArnLike": {"aws:SourceArn": "arn:aws:ec2:*:111122223333:instance/*"}}
    assert conditions_hold(cond, {"aws:SourceArn": "arn:aws:ec2:eu-west-1:111122223333:instance/i-1"})
    assert not conditions_hold(cond, {"aws:SourceArn": "arn:aws:ec2:eu-west-1:999988887777:instance/i-1"})
    # The account part cannot be eaten by the region's wildcard.
    assert not conditions_hold(cond, {"aws:SourceArn": "arn:aws:ec2:eu-west-1:x:111122223333:instance/i-1"})
    assert not conditions_hold(cond, {"aws:SourceArn": "not-an-arn"})


def test_bool_compares_true_and_false():
    assert conditions_hold({"Bool": {"kms:GrantIsForAWSResource": "true"}}, {"kms:GrantIsForAWSResource": True})
    assert not conditions_hold({"Bool": {"kms:GrantIsForAWSResource": "true"}}, {"kms:GrantIsForAWSResource": "false"})


def test_for_all_values_needs_every_request_value_in_the_policy():
    cond = {"ForAllValues:StringEquals": {"aws:TagKeys": ["hybrid/incident"]}}
    assert conditions_hold(cond, {"aws:TagKeys": ["hybrid/incident"]})
    assert not conditions_hold(cond, {"aws:TagKeys": ["hybrid/incident", "jupyterhub/hub-id"]})
    assert conditions_hold({"ForAnyValue:StringEquals": {"aws:TagKeys": ["a"]}}, {"aws:TagKeys": ["b", "a"]})


def test_what_is_not_modelled_is_refused_not_guessed():
    with pytest.raises(UnsupportedPolicy):
        conditions_hold({"NumericLessThan": {"k": "3"}}, {"k": "2"})
    with pytest.raises(UnsupportedPolicy):
        conditions_hold({"StringEqualsIfExists": {"k": "v"}}, {})
    with pytest.raises(UnsupportedPolicy, match="multivalued"):
        conditions_hold({"StringEquals": {"aws:TagKeys": "a"}}, {"aws:TagKeys": ["a"]})
    with pytest.raises(UnsupportedPolicy, match="variables"):
        decide(policy(allow(resource="arn:aws:s3:::b/${aws:username}/*")), "s3:GetObject", "arn:aws:s3:::b/x/k", {})


def test_a_request_is_allowed_only_if_every_resource_is():
    p = policy(allow("ec2:RunInstances", "arn:aws:ec2:r:1:instance/*"))
    both = [Resource("arn:aws:ec2:r:1:instance/*"), Resource("arn:aws:ec2:r:1:volume/*")]
    result = authorize(p, "ec2:RunInstances", both)
    assert not result["allowed"] and result["decisions"]["arn:aws:ec2:r:1:volume/*"] == "ImplicitDeny"
    assert not authorize(p, "ec2:RunInstances", [])["allowed"]


def test_substitute_splices_lists_and_replaces_inside_strings():
    doc = {"Resource": "arn:aws:ssm:REGION:ACCOUNT_ID:parameterAMI_PARAMETER_NAME", "Types": ["INSTANCE_TYPE"]}
    out = substitute(doc, {"REGION": "eu-west-1", "ACCOUNT_ID": "1", "AMI_PARAMETER_NAME": "/a/b",
                           "INSTANCE_TYPE": ["t3.medium", "t3.large"]})
    assert out == {"Resource": "arn:aws:ssm:eu-west-1:1:parameter/a/b", "Types": ["t3.medium", "t3.large"]}
