"""Profile model and request validation (pure)."""

import re

import pytest

from hybrid_spawner.profiles import (
    ProfileConfigError,
    ProfileRequestError,
    default_profile,
    form_to_user_options,
    parse_profiles,
    resolve,
    visible_profiles,
)

RAW = [
    {
        "slug": "ec2-small",
        "display_name": "EC2 small",
        "backend": "ec2",
        "overrides": {"instance_type": "t3.medium"},
        "options": {
            "instance_type": {"trait": "instance_type", "choices": ["t3.medium", "t3.large"]},
        },
        "cost_per_hour": 0.04,
    },
    {
        "slug": "slurm-cpu",
        "display_name": "Slurm CPU",
        "description": "batch partition",
        "backend": "slurm",
        "default": True,
        "overrides": {"req_partition": "batch"},
        "options": {
            "cpus": {"trait": "req_nprocs", "min": 1, "max": 8, "default": 2},
            "memory": {"trait": "req_memory", "min": 1, "max": 16, "step": 1, "format": "{}G", "default": 2},
            "walltime": {"trait": "req_runtime", "choices": ["01:00:00", "04:00:00"]},
            "size": {"choices": {"s": {"display_name": "small", "overrides": {"req_gres": ""}},
                                  "g": {"display_name": "one GPU", "overrides": {"req_gres": "gpu:1"}}}},
        },
    },
    {
        "slug": "slurm-gpu",
        "backend": "slurm",
        "allowed_groups": ["gpu-users"],
        "allowed_users": ["boss"],
    },
]


@pytest.fixture
def profiles():
    return parse_profiles(RAW)


def test_resolve_applies_overrides_values_and_defaults(profiles):
    r = resolve(profiles, {"profile": "slurm-cpu", "cpus": "4", "walltime": "04:00:00", "size": "g"}, "ada", [])
    assert r.profile.slug == "slurm-cpu"
    assert r.values == {"cpus": 4, "memory": 2, "walltime": "04:00:00", "size": "g"}
    assert r.overrides == {
        "req_partition": "batch",
        "req_nprocs": 4,
        "req_memory": "2G",
        "req_runtime": "04:00:00",
        "req_gres": "gpu:1",
    }
    assert r.user_options["profile"] == "slurm-cpu"


def test_no_profile_key_picks_the_default(profiles):
    r = resolve(profiles, {}, "ada", [])
    assert r.profile.slug == "slurm-cpu"


def test_unknown_slug_refused(profiles):
    with pytest.raises(ProfileRequestError, match="unknown profile 'nope'"):
        resolve(profiles, {"profile": "nope"}, "ada", [])


@pytest.mark.parametrize(
    "options, message",
    [
        ({"cpus": 9}, "outside 1..8"),
        ({"cpus": 0}, "outside 1..8"),
        ({"cpus": "2.5"}, "must be an integer"),
        ({"cpus": True}, "must be an integer"),
        ({"cpus": "1; rm -rf /"}, "must be an integer"),
        ({"walltime": "99:00:00"}, "not one of"),
        ({"walltime": ["01:00:00"]}, "must be one of"),
        ({"size": "xl"}, "not one of"),
    ],
)
def test_values_outside_choices_or_ranges_refused(profiles, options, message):
    with pytest.raises(ProfileRequestError, match=message):
        resolve(profiles, {"profile": "slurm-cpu", **options}, "ada", [])


@pytest.mark.parametrize("key", ["req_partition", "cmd", "batch_submit_cmd", "instance_type", "environment"])
def test_anything_not_offered_is_refused(profiles, key):
    with pytest.raises(ProfileRequestError, match="does not offer"):
        resolve(profiles, {"profile": "slurm-cpu", key: "x"}, "ada", [])


def test_group_restricted_profile(profiles):
    assert [p.slug for p in visible_profiles(profiles, "ada", ["staff"])] == ["ec2-small", "slurm-cpu"]
    assert "slurm-gpu" in [p.slug for p in visible_profiles(profiles, "ada", ["gpu-users"])]
    assert "slurm-gpu" in [p.slug for p in visible_profiles(profiles, "boss", [])]
    with pytest.raises(ProfileRequestError, match="not available to user 'ada'"):
        resolve(profiles, {"profile": "slurm-gpu"}, "ada", ["staff"])
    assert resolve(profiles, {"profile": "slurm-gpu"}, "ada", ["gpu-users"]).profile.slug == "slurm-gpu"


def test_profile_must_be_a_string(profiles):
    with pytest.raises(ProfileRequestError, match="slug"):
        resolve(profiles, {"profile": ["slurm-cpu"]}, "ada", [])


def test_default_prefers_last_choice(profiles):
    assert default_profile(profiles, "ec2-small").slug == "ec2-small"
    assert default_profile(profiles, "gone").slug == "slurm-cpu"
    assert default_profile(parse_profiles([{"slug": "a", "backend": "ec2"}])).slug == "a"


def test_form_keeps_only_the_chosen_profiles_fields(profiles):
    form = {
        "profile": ["slurm-cpu"],
        "opt-slurm-cpu--cpus": ["3"],
        "opt-ec2-small--instance_type": ["t3.large"],
        "unrelated": ["x"],
    }
    assert form_to_user_options(form) == {"profile": "slurm-cpu", "cpus": "3"}


def test_float_range_and_step():
    (p,) = parse_profiles(
        [{"slug": "f", "backend": "slurm", "options": {"mem": {"trait": "m", "type": "float", "min": 0.5, "max": 4, "step": 0.5}}}]
    )
    assert resolve([p], {"mem": "1.5"}, "u", []).values["mem"] == 1.5
    with pytest.raises(ProfileRequestError, match="multiple of 0.5"):
        resolve([p], {"mem": "1.2"}, "u", [])
    with pytest.raises(ProfileRequestError, match="number"):
        resolve([p], {"mem": "nan"}, "u", [])


@pytest.mark.parametrize(
    "raw, message",
    [
        ({}, "must be a list"),
        ([], "empty"),
        ([{"slug": "A b", "backend": "ec2"}], "slug"),
        ([{"slug": "a", "backend": "k8s"}], "backend"),
        ([{"slug": "a", "backend": "ec2"}, {"slug": "a", "backend": "slurm"}], "twice"),
        ([{"slug": "a", "backend": "ec2", "default": True}, {"slug": "b", "backend": "ec2", "default": True}], "default=True"),
        ([{"slug": "a", "backend": "ec2", "colour": "red"}], "unknown keys"),
        ([{"slug": "a", "backend": "ec2", "cost_per_hour": -1}], "cost_per_hour"),
        ([{"slug": "a", "backend": "ec2", "allowed_groups": "hpc"}], "list of names"),
        ([{"slug": "a", "backend": "ec2", "options": {"profile": {"trait": "x", "choices": ["1"]}}}], "option name"),
        ([{"slug": "a", "backend": "ec2", "options": {"x": {"trait": "x"}}}], "either choices or min"),
        ([{"slug": "a", "backend": "ec2", "options": {"x": {"trait": "x", "choices": ["1"], "min": 1}}}], "either choices"),
        ([{"slug": "a", "backend": "ec2", "options": {"x": {"choices": ["1"]}}}], "changes nothing"),
        ([{"slug": "a", "backend": "ec2", "options": {"x": {"trait": "x", "choices": ["1"], "default": "2"}}}], "default"),
        ([{"slug": "a", "backend": "ec2", "options": {"x": {"trait": "x", "min": 4, "max": 2}}}], "min <= max"),
        ([{"slug": "a", "backend": "ec2", "options": {"x": {"trait": "x", "min": 1, "max": 2, "default": 3}}}], "outside"),
        ([{"slug": "a", "backend": "ec2", "options": {"x": {"min": 1, "max": 2}}}], "needs the trait"),
        ([{"slug": "a", "backend": "ec2", "options": {"x": {"trait": "x", "min": 1, "max": 2, "format": "G"}}}], "format"),
    ],
)
def test_admin_mistakes_are_reported(raw, message):
    with pytest.raises(ProfileConfigError, match=message):
        parse_profiles(raw)


# -- spawn links ---------------------------------------------------------------------------------
from hybrid_spawner.profiles import query_to_user_options  # noqa: E402


@pytest.mark.parametrize(
    "query",
    [
        {"opt-profile": ["slurm-cpu"], "opt-cpus": ["4"]},  # JupyterHub 5 passes the keys as sent
        {"profile": ["slurm-cpu"], "cpus": ["4"]},  # JupyterHub 6 strips opt-
        {"profile": ["slurm-cpu"], "opt-slurm-cpu--cpus": ["4"]},  # the form's field names
        {"opt-profile": ["slurm-cpu"], "slurm-cpu--cpus": ["4"], "next": ["/hub/home"]},
    ],
)
def test_spawn_link_forms_all_name_the_profile_and_its_option(profiles, query):
    options = query_to_user_options(query)
    assert options == {"profile": "slurm-cpu", "cpus": "4"}
    assert resolve(profiles, options, "ada", []).values["cpus"] == 4


@pytest.mark.parametrize(
    "query, message",
    [
        ({"opt-profile": ["slurm-cpu"], "opt-ec2-small--instance_type": ["t3.large"]}, "belongs to profile 'ec2-small', not to 'slurm-cpu'"),
        ({"opt-slurm-cpu--cpus": ["2"]}, "no profile is named; add opt-profile=slurm-cpu"),
        ({"opt-profile": ["slurm-cpu"], "profile": ["ec2-small"]}, "name the same thing"),
        ({"opt-profile": ["slurm-cpu"], "opt-cpus": ["2", "3"]}, "given 2 times"),
        ({"opt-profile": ["slurm-cpu"], "opt-cpus": ["2"], "opt-slurm-cpu--cpus": ["3"]}, "given twice"),
        ({"opt-": ["x"]}, "has no name"),
    ],
)
def test_spawn_link_fields_that_would_be_dropped_are_refused(query, message):
    with pytest.raises(ProfileRequestError, match=re.escape(message)):
        query_to_user_options(query)


# -- only configurable settings ------------------------------------------------------------------
SETTABLE = {"ec2": {"instance_type", "instance_types"}, "slurm": {"req_partition", "req_nprocs", "req_memory", "req_runtime", "req_gres"}}


@pytest.mark.parametrize(
    "profile, message",
    [
        ({"slug": "a", "backend": "ec2", "overrides": {"node_id": "i-1"}}, "profile 'a' overrides: 'node_id' is not a configurable setting of the ec2 spawner"),
        ({"slug": "a", "backend": "ec2", "options": {"t": {"trait": "instance_typ", "choices": ["x"]}}},
         "option 't': 'instance_typ' is not a configurable setting of the ec2 spawner (did you mean instance_type"),
        ({"slug": "a", "backend": "slurm", "options": {"s": {"choices": {"x": {"overrides": {"job_id": "1"}}}}}},
         "option 's' choice 'x': 'job_id' is not"),
    ],
)
def test_profiles_may_set_only_configurable_settings(profile, message):
    with pytest.raises(ProfileConfigError, match=re.escape(message)):
        parse_profiles([profile], settable=SETTABLE.__getitem__)
    assert parse_profiles(RAW, settable=SETTABLE.__getitem__)
