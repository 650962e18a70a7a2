"""The spawn form rendered from profiles (no hub needed) and the form -> user_options round trip."""

from hybrid_spawner.profiles import form_to_user_options, parse_profiles, resolve
from hybrid_spawner.spawner import TEMPLATES, render_form

PROFILES = parse_profiles(
    [
        {
            "slug": "slurm-cpu",
            "display_name": "HPC <b>node</b>",
            "description": "Cores & memory <script>alert(1)</script>",
            "backend": "slurm",
            "cost_per_hour": 0,
            "options": {
                "cpus": {"display_name": "CPUs", "trait": "req_nprocs", "min": 1, "max": 8, "default": 2},
                "walltime": {"trait": "req_runtime", "choices": {"01:00:00": {"display_name": "1 h"}, "08:00:00": {"display_name": "8 h"}}},
            },
        },
        {"slug": "ec2-small", "display_name": "Cloud VM", "backend": "ec2", "default": True, "cost_per_hour": 0.0416},
    ]
)
TEMPLATE = (TEMPLATES / "form.html").read_text()


def test_form_offers_each_profile_with_cost_and_escapes_config_text():
    html = render_form(TEMPLATE, PROFILES, {})
    assert 'name="profile" id="profile-slurm-cpu"' in html and 'value="ec2-small" checked' in html
    assert "$0.04/h" in html and ">free<" in html
    assert "<script>" not in html and "&lt;script&gt;" in html and "HPC &lt;b&gt;node&lt;/b&gt;" in html
    assert 'name="opt-slurm-cpu--cpus"' in html and 'min="1" max="8"' in html
    assert '<option value="08:00:00" >8 h</option>' in html


def test_form_preselects_the_last_choice_and_its_values():
    html = render_form(TEMPLATE, PROFILES, {"profile": "slurm-cpu", "cpus": 6, "walltime": "08:00:00"})
    assert 'value="slurm-cpu" checked' in html and 'value="ec2-small" checked' not in html
    assert 'name="opt-slurm-cpu--cpus"' in html and 'value="6"' in html
    assert '<option value="08:00:00" selected>8 h</option>' in html


def test_posted_form_resolves_to_the_chosen_values():
    form = {"profile": ["slurm-cpu"], "opt-slurm-cpu--cpus": ["4"], "opt-slurm-cpu--walltime": ["08:00:00"], "_xsrf": ["x"]}
    resolution = resolve(PROFILES, form_to_user_options(form), "ada", [])
    assert resolution.user_options == {"profile": "slurm-cpu", "cpus": 4, "walltime": "08:00:00"}
    assert resolution.overrides == {"req_nprocs": 4, "req_runtime": "08:00:00"}
