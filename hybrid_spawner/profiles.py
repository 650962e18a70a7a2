"""Profiles an admin offers and the checks a spawn request must pass (pure, no I/O).

An admin declares profiles in the shape KubeSpawner's ``profile_list`` made familiar::

    {
        "slug": "slurm-cpu",                     # what user_options["profile"] holds
        "display_name": "Slurm CPU node",
        "description": "Up to 8 cores on the batch partition",
        "default": True,                         # pre-selected when the user has no last choice
        "backend": "slurm",                      # ec2 | openstack | slurm
        "overrides": {"req_partition": "batch"}, # trait values for that backend's spawner
        "options": {                             # what the researcher may choose, and within what
            "cpus": {"display_name": "CPUs", "trait": "req_nprocs", "min": 1, "max": 8, "default": 2},
            "walltime": {"trait": "req_runtime", "choices": ["01:00:00", "04:00:00"]},
            "size": {"choices": {"small": {"display_name": "2 GB", "overrides": {"req_memory": "2G"}}}},
        },
        "allowed_groups": ["hpc"], "allowed_users": ["ada"],   # omitted: everyone
        "cost_per_hour": 0.0,                    # shown in the form
        "max_servers": 10,                       # cap on this profile's running servers
        "queue_timeout": 30,                     # Slurm: move on along the burst chain after 30 s pending
        "burst": [                               # where to go when the backend above is full
            {"backend": "openstack", "overrides": {"flavor": "m1.small"}},
            {"backend": "ec2", "overrides": {"instance_types": ["t3.micro"]}},
        ],
    }

Admin mistakes raise :class:`ProfileConfigError` when the profiles are loaded; a request
that does not fit raises :class:`ProfileRequestError` with a message safe to show the user.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hybrid_spawner.backends import BACKENDS

SLUG_PATTERN = re.compile(r"^[a-z0-9]([a-z0-9_-]{0,62})$")
OPTION_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
# Keys JupyterHub itself may put into user_options; never treated as a forged option.
HUB_KEYS = frozenset({"profile"})
PROFILE_KEYS = frozenset(
    {
        "slug",
        "display_name",
        "description",
        "default",
        "backend",
        "overrides",
        "options",
        "allowed_groups",
        "allowed_users",
        "cost_per_hour",
        "max_servers",
        "queue_timeout",
        "burst",
    }
)
BURST_KEYS = frozenset({"backend", "overrides", "max_servers", "queue_timeout", "display_name"})
OPTION_KEYS = frozenset({"display_name", "description", "trait", "choices", "min", "max", "step", "type", "default", "format"})


class ProfileConfigError(ValueError):
    """The admin's profile configuration is invalid (raised when profiles are loaded)."""


class ProfileRequestError(ValueError):
    """A spawn request does not fit the profiles offered to this user. The message is for the user."""


@dataclass(frozen=True)
class Choice:
    value: str
    display_name: str
    overrides: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Option:
    """One value a researcher may choose: from ``choices``, or a number in [minimum, maximum]."""

    name: str
    display_name: str
    description: str = ""
    trait: str | None = None
    choices: tuple[Choice, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    kind: str = "choice"  # choice | int | float
    default: Any = None
    format: str = "{}"

    @property
    def is_range(self) -> bool:
        return self.kind in ("int", "float")

    def choice(self, value: str) -> Choice | None:
        return next((c for c in self.choices if c.value == value), None)

    def coerce(self, raw: Any) -> Any:
        """The validated value for ``raw`` or ProfileRequestError (message names the option)."""
        if self.kind == "choice":
            if not isinstance(raw, (str, int, float)) or isinstance(raw, bool):
                raise ProfileRequestError(f"option {self.name!r} must be one of {self.allowed_text()}")
            text = str(raw)
            if self.choice(text) is None:
                raise ProfileRequestError(f"option {self.name!r}: {text!r} is not one of {self.allowed_text()}")
            return text
        number = _to_number(raw, self.kind)
        if number is None:
            raise ProfileRequestError(f"option {self.name!r} must be a{'n integer' if self.kind == 'int' else ' number'}")
        if number < self.minimum or number > self.maximum:
            raise ProfileRequestError(f"option {self.name!r}: {raw!r} is outside {self.allowed_text()}")
        if self.step and not _on_step(number, self.minimum, self.step):
            raise ProfileRequestError(f"option {self.name!r}: {raw!r} is not a multiple of {self.step} from {_fmt(self.minimum)}")
        return number

    def allowed_text(self) -> str:
        if self.is_range:
            return f"{_fmt(self.minimum)}..{_fmt(self.maximum)}"
        return ", ".join(repr(c.value) for c in self.choices)

    def overrides_for(self, value: Any) -> dict[str, Any]:
        """Trait values this option sets when it has ``value``."""
        result: dict[str, Any] = {}
        if self.trait:
            result[self.trait] = value if self.format == "{}" else self.format.format(_fmt(value) if self.is_range else value)
        if self.kind == "choice":
            result.update(self.choice(value).overrides)
        return result


@dataclass(frozen=True)
class BurstStep:
    """One backend a spawn may go to: the profile's own (first) or a later one of its chain."""

    backend: str
    overrides: Mapping[str, Any] = field(default_factory=dict)
    max_servers: int | None = None  # this step's own cap (None: the hub's per-profile cap)
    queue_timeout: float | None = None  # Slurm: seconds pending before moving on (None: wait)
    display_name: str = ""


@dataclass(frozen=True)
class Profile:
    slug: str
    display_name: str
    backend: str
    description: str = ""
    default: bool = False
    overrides: Mapping[str, Any] = field(default_factory=dict)
    options: tuple[Option, ...] = ()
    allowed_groups: frozenset[str] | None = None
    allowed_users: frozenset[str] | None = None
    cost_per_hour: float | None = None
    max_servers: int | None = None  # the profile's own cap; None: HybridSpawner.max_servers_per_profile
    queue_timeout: float | None = None
    burst: tuple[BurstStep, ...] = ()

    def chain(self, overrides: Mapping[str, Any]) -> tuple[BurstStep, ...]:
        """The backends to try in order: the profile's own (with the request's ``overrides``,
        options included), then its burst steps."""
        first = BurstStep(self.backend, dict(overrides), None, self.queue_timeout)
        return (first, *self.burst)

    def option(self, name: str) -> Option | None:
        return next((o for o in self.options if o.name == name), None)

    def allows(self, user_name: str, groups: Iterable[str]) -> bool:
        """Open to everyone unless restricted; restricted by users, groups, or either."""
        if self.allowed_users is None and self.allowed_groups is None:
            return True
        if self.allowed_users and user_name in self.allowed_users:
            return True
        return bool(self.allowed_groups and self.allowed_groups.intersection(groups))


@dataclass(frozen=True)
class Resolution:
    """What a valid request resolves to: the profile, the chosen values, the trait values to set."""

    profile: Profile
    values: Mapping[str, Any]
    overrides: Mapping[str, Any]

    @property
    def user_options(self) -> dict[str, Any]:
        """The canonical user_options to store (JupyterHub's admin page shows ``profile``)."""
        return {"profile": self.profile.slug, **self.values}


# -- loading the admin's configuration ---------------------------------------------------------
def parse_profiles(
    raw: Any,
    backends: Iterable[str] = tuple(BACKENDS),
    settable: Callable[[str], Collection[str]] | None = None,
) -> list[Profile]:
    """Validate the admin's profile list and return it as Profile objects.

    ``backends`` are the backend names this hub has (``HybridSpawner.backend_classes``; by
    default the registry's), so a backend an admin adds there is accepted here too.
    ``settable(backend)``, when given, names the traits a profile may set on that backend's
    spawner (its ``config=True`` traits): an override or option naming anything else is a
    mistake that would be silently overwritten (state such as the launched instance type) or
    ignored, so it is refused here, where the admin sees it.
    """
    backends = tuple(backends)
    if not isinstance(raw, (list, tuple)):
        raise ProfileConfigError(f"profiles must be a list of dicts, got {type(raw).__name__}")
    if not raw:
        raise ProfileConfigError("profiles is empty: declare at least one profile")
    profiles = [_parse_profile(i, p, backends) for i, p in enumerate(raw)]
    if settable is not None:
        for p in profiles:
            _check_settable(p, settable)
    seen: set[str] = set()
    for p in profiles:
        if p.slug in seen:
            raise ProfileConfigError(f"profile slug {p.slug!r} is used twice; slugs must be unique")
        seen.add(p.slug)
    defaults = [p.slug for p in profiles if p.default]
    if len(defaults) > 1:
        raise ProfileConfigError(f"more than one profile has default=True: {defaults}")
    return profiles


def _parse_profile(index: int, raw: Any, backends: tuple[str, ...]) -> Profile:
    where = f"profile #{index}"
    if not isinstance(raw, Mapping):
        raise ProfileConfigError(f"{where} must be a dict, got {type(raw).__name__}")
    slug = raw.get("slug")
    if not isinstance(slug, str) or not SLUG_PATTERN.match(slug):
        raise ProfileConfigError(f"{where}: slug {slug!r} must match {SLUG_PATTERN.pattern} (lowercase letters, digits, - and _)")
    where = f"profile {slug!r}"
    unknown = set(raw) - PROFILE_KEYS
    if unknown:
        raise ProfileConfigError(f"{where}: unknown keys {sorted(unknown)}; allowed are {sorted(PROFILE_KEYS)}")
    backend = raw.get("backend")
    if backend not in backends:
        raise ProfileConfigError(f"{where}: backend {backend!r} must be one of {list(backends)}")
    overrides = raw.get("overrides") or {}
    if not isinstance(overrides, Mapping) or not all(isinstance(k, str) for k in overrides):
        raise ProfileConfigError(f"{where}: overrides must be a dict of trait name -> value")
    options_raw = raw.get("options") or {}
    if not isinstance(options_raw, Mapping):
        raise ProfileConfigError(f"{where}: options must be a dict of option name -> spec")
    options = tuple(_parse_option(where, name, spec) for name, spec in options_raw.items())
    cost = raw.get("cost_per_hour")
    if cost is not None and (isinstance(cost, bool) or not isinstance(cost, (int, float)) or cost < 0 or not math.isfinite(cost)):
        raise ProfileConfigError(f"{where}: cost_per_hour must be a non-negative number")
    burst = _parse_burst(where, raw.get("burst"), backends)
    return Profile(
        slug=slug,
        display_name=str(raw.get("display_name") or slug),
        backend=backend,
        description=str(raw.get("description") or ""),
        default=bool(raw.get("default", False)),
        overrides=dict(overrides),
        options=options,
        allowed_groups=_name_set(where, "allowed_groups", raw.get("allowed_groups")),
        allowed_users=_name_set(where, "allowed_users", raw.get("allowed_users")),
        cost_per_hour=None if cost is None else float(cost),
        max_servers=_cap(where, raw.get("max_servers")),
        queue_timeout=_seconds(where, "queue_timeout", raw.get("queue_timeout")),
        burst=burst,
    )


def _cap(where: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ProfileConfigError(f"{where}: max_servers must be a whole number >= 0 (0: no cap)")
    return value


def _seconds(where: str, key: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ProfileConfigError(f"{where}: {key} must be a positive number of seconds")
    return float(value)


def _parse_burst(where: str, raw: Any, backends: tuple[str, ...]) -> tuple[BurstStep, ...]:
    """The profile's burst chain: backends tried in order after its own is full."""
    if raw is None:
        return ()
    if not isinstance(raw, (list, tuple)):
        raise ProfileConfigError(f"{where}: burst must be a list of {{'backend': ..., 'overrides': {{...}}}}")
    steps = []
    for i, step in enumerate(raw):
        here = f"{where} burst step #{i + 1}"
        if isinstance(step, str):
            step = {"backend": step}
        if not isinstance(step, Mapping):
            raise ProfileConfigError(f"{here} must be a backend name or a dict")
        unknown = set(step) - BURST_KEYS
        if unknown:
            raise ProfileConfigError(f"{here}: unknown keys {sorted(unknown)}; allowed are {sorted(BURST_KEYS)}")
        backend = step.get("backend")
        if backend not in backends:
            raise ProfileConfigError(f"{here}: unknown backend {backend!r}; this hub has {list(backends)}")
        overrides = step.get("overrides") or {}
        if not isinstance(overrides, Mapping) or not all(isinstance(k, str) for k in overrides):
            raise ProfileConfigError(f"{here}: overrides must be a dict of trait name -> value")
        steps.append(
            BurstStep(
                backend=backend,
                overrides=dict(overrides),
                max_servers=_cap(here, step.get("max_servers")),
                queue_timeout=_seconds(here, "queue_timeout", step.get("queue_timeout")),
                display_name=str(step.get("display_name") or ""),
            )
        )
    return tuple(steps)


def _named_traits(profile: Profile) -> list[tuple[str, list[tuple[str, str]]]]:
    """(backend, [(where, trait name)]) for every trait a profile and its burst steps set."""
    where = f"profile {profile.slug!r}"
    named = [(f"{where} overrides", name) for name in profile.overrides]
    for option in profile.options:
        if option.trait:
            named.append((f"{where} option {option.name!r}", option.trait))
        for choice in option.choices:
            named += [(f"{where} option {option.name!r} choice {choice.value!r}", n) for n in choice.overrides]
    checks = [(profile.backend, named)]
    for i, step in enumerate(profile.burst):
        checks.append((step.backend, [(f"{where} burst step #{i + 1} overrides", n) for n in step.overrides]))
    return checks


def _check_settable(profile: Profile, settable: Callable[[str], Collection[str]]) -> None:
    for backend, named in _named_traits(profile):
        allowed = frozenset(settable(backend))
        _refuse_unsettable(named, allowed, backend)


def _refuse_unsettable(named: list[tuple[str, str]], settable: frozenset[str], backend: str) -> None:
    for context, name in named:
        if name not in settable:
            close = difflib.get_close_matches(name, sorted(settable), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ProfileConfigError(
                f"{context}: {name!r} is not a configurable setting of the {backend} spawner{hint}"
            )


def _name_set(where: str, key: str, value: Any) -> frozenset[str] | None:
    if value is None:
        return None
    if isinstance(value, str) or not isinstance(value, Iterable) or not all(isinstance(v, str) for v in value):
        raise ProfileConfigError(f"{where}: {key} must be a list of names")
    return frozenset(value)


def _parse_option(where: str, name: Any, spec: Any) -> Option:
    if not isinstance(name, str) or not OPTION_NAME_PATTERN.match(name) or name in HUB_KEYS:
        raise ProfileConfigError(f"{where}: option name {name!r} must match {OPTION_NAME_PATTERN.pattern} and not be 'profile'")
    where = f"{where} option {name!r}"
    if not isinstance(spec, Mapping):
        raise ProfileConfigError(f"{where} must be a dict")
    unknown = set(spec) - OPTION_KEYS
    if unknown:
        raise ProfileConfigError(f"{where}: unknown keys {sorted(unknown)}; allowed are {sorted(OPTION_KEYS)}")
    trait = spec.get("trait")
    if trait is not None and not isinstance(trait, str):
        raise ProfileConfigError(f"{where}: trait must be the name of a spawner trait")
    fmt = spec.get("format", "{}")
    if not isinstance(fmt, str) or "{}" not in fmt:
        raise ProfileConfigError(f"{where}: format must be a string containing '{{}}', e.g. '{{}}G'")
    common = dict(
        name=name,
        display_name=str(spec.get("display_name") or name),
        description=str(spec.get("description") or ""),
        trait=trait,
        format=fmt,
    )
    has_choices = "choices" in spec
    has_range = "min" in spec or "max" in spec
    if has_choices == has_range:
        raise ProfileConfigError(f"{where}: give either choices or min and max")
    if has_choices:
        choices = _parse_choices(where, spec["choices"])
        default = spec.get("default", choices[0].value)
        if not any(c.value == str(default) for c in choices):
            raise ProfileConfigError(f"{where}: default {default!r} is not one of the choices")
        if trait is None and not any(c.overrides for c in choices):
            raise ProfileConfigError(f"{where}: set trait, or overrides on the choices, or the option changes nothing")
        return Option(choices=choices, kind="choice", default=str(default), **common)
    kind = spec.get("type", "int")
    if kind not in ("int", "float"):
        raise ProfileConfigError(f"{where}: type must be 'int' or 'float'")
    if trait is None:
        raise ProfileConfigError(f"{where}: a range option needs the trait it sets")
    lo, hi, step = (_to_number(spec.get(k), kind) for k in ("min", "max", "step"))
    if lo is None or hi is None or lo > hi:
        raise ProfileConfigError(f"{where}: min and max must be {kind} numbers with min <= max")
    if spec.get("step") is not None and (step is None or step <= 0):
        raise ProfileConfigError(f"{where}: step must be a positive {kind}")
    default = _to_number(spec.get("default", lo), kind)
    if default is None or not lo <= default <= hi or (step and not _on_step(default, lo, step)):
        raise ProfileConfigError(f"{where}: default {spec.get('default')!r} is outside {lo}..{hi} or off-step")
    return Option(minimum=lo, maximum=hi, step=step, kind=kind, default=default, **common)


def _parse_choices(where: str, raw: Any) -> tuple[Choice, ...]:
    if isinstance(raw, Mapping):
        choices = []
        for value, spec in raw.items():
            spec = spec or {}
            if not isinstance(spec, Mapping) or set(spec) - {"display_name", "overrides"}:
                raise ProfileConfigError(f"{where}: choice {value!r} must be a dict with display_name and/or overrides")
            overrides = spec.get("overrides") or {}
            if not isinstance(overrides, Mapping):
                raise ProfileConfigError(f"{where}: choice {value!r} overrides must be a dict")
            choices.append(Choice(str(value), str(spec.get("display_name") or value), dict(overrides)))
    elif isinstance(raw, (list, tuple)):
        choices = [Choice(str(v), str(v)) for v in raw]
    else:
        raise ProfileConfigError(f"{where}: choices must be a list of values or a dict value -> spec")
    if not choices:
        raise ProfileConfigError(f"{where}: choices is empty")
    if len({c.value for c in choices}) != len(choices):
        raise ProfileConfigError(f"{where}: choices repeat a value")
    return tuple(choices)


# -- answering requests ------------------------------------------------------------------------
def visible_profiles(profiles: Iterable[Profile], user_name: str, groups: Iterable[str]) -> list[Profile]:
    """The profiles this user may see and pick, in the admin's order."""
    groups = set(groups)
    return [p for p in profiles if p.allows(user_name, groups)]


def default_profile(profiles: list[Profile], last_slug: str | None = None) -> Profile | None:
    """The user's last choice if still offered, else the admin's default, else the first."""
    for p in profiles:
        if last_slug and p.slug == last_slug:
            return p
    return next((p for p in profiles if p.default), profiles[0] if profiles else None)


def resolve(
    profiles: list[Profile], user_options: Mapping[str, Any] | None, user_name: str, groups: Iterable[str]
) -> Resolution:
    """Check ``user_options`` against the profiles offered to this user.

    No ``profile`` key picks the default profile (a bare ``POST /users/x/server``). Every other
    key must be an option of the chosen profile; options not given take their defaults.
    """
    user_options = dict(user_options or {})
    allowed = visible_profiles(profiles, user_name, groups)
    slug = user_options.pop("profile", None)
    if slug is None:
        profile = default_profile(allowed)
        if profile is None:
            raise ProfileRequestError(f"no profile is available to user {user_name!r}")
    else:
        if not isinstance(slug, str):
            raise ProfileRequestError("profile must be a profile slug (a string)")
        profile = next((p for p in profiles if p.slug == slug), None)
        if profile is None:
            raise ProfileRequestError(f"unknown profile {slug!r}; offered: {[p.slug for p in allowed]}")
        if profile not in allowed:
            raise ProfileRequestError(f"profile {slug!r} is not available to user {user_name!r}")
    offered = {o.name for o in profile.options}
    extra = sorted(set(user_options) - offered)
    if extra:
        raise ProfileRequestError(
            f"profile {profile.slug!r} does not offer {extra}; it offers {sorted(offered) or 'no options'}"
        )
    values: dict[str, Any] = {}
    overrides: dict[str, Any] = dict(profile.overrides)
    for option in profile.options:
        value = option.coerce(user_options[option.name]) if option.name in user_options else option.default
        values[option.name] = value
        overrides.update(option.overrides_for(value))
    return Resolution(profile=profile, values=values, overrides=overrides)


def form_to_user_options(formdata: Mapping[str, list[str]]) -> dict[str, Any]:
    """Turn the spawn form's fields into user_options (validation happens later, in start).

    Fields are ``profile`` and ``opt-<slug>--<option>``; only the chosen profile's options are
    kept, so the hidden inputs of other profiles never reach the request.
    """
    slug = _first(formdata.get("profile"))
    options: dict[str, Any] = {}
    if slug is not None:
        options["profile"] = slug
        prefix = f"opt-{slug}--"
        for key, values in formdata.items():
            if key.startswith(prefix):
                options[key[len(prefix) :]] = _first(values)
    return options


# Query arguments of /hub/spawn that belong to JupyterHub, not to the profile request.
RESERVED_QUERY_KEYS = frozenset({"next", "display_name", "_xsrf"})


def query_to_user_options(query: Mapping[str, Any]) -> dict[str, Any]:
    """Turn a spawn link's query arguments into user_options, refusing what would be dropped.

    A link names its profile with ``opt-profile=<slug>`` (JupyterHub 6 passes only ``opt-``
    fields to the spawner once any is present, without the prefix; JupyterHub 5 passes all of
    them as they are), so both ``opt-X`` and ``X`` are read as ``X``. Options may be given as
    ``opt-<option>`` or, as the form names them, ``opt-<slug>--<option>``; a field naming a
    profile other than the one the link starts is refused, not dropped, because silently
    dropping it starts a server the researcher did not ask for. Option values are checked
    later by :func:`resolve`.
    """
    fields: dict[str, tuple[str, Any]] = {}  # name without "opt-" -> (key as given, value)
    for key, raw in query.items():
        if key in RESERVED_QUERY_KEYS:
            continue
        name = key[4:] if key.startswith("opt-") else key
        if not name:
            raise ProfileRequestError(f"field {key!r} has no name")
        if isinstance(raw, (list, tuple)) and len(raw) > 1:
            raise ProfileRequestError(f"field {key!r} is given {len(raw)} times; give it once")
        value = _first(raw)
        if name in fields:
            raise ProfileRequestError(f"fields {fields[name][0]!r} and {key!r} name the same thing; give one")
        fields[name] = (key, value)
    slug = fields.pop("profile", (None, None))[1]
    options: dict[str, Any] = {} if slug is None else {"profile": slug}
    for name, (key, value) in fields.items():
        owner, sep, option = name.rpartition("--")
        if sep:
            if slug is None:
                raise ProfileRequestError(
                    f"field {key!r} belongs to profile {owner!r}, but no profile is named; "
                    f"add opt-profile={owner} to the link"
                )
            if owner != slug:
                raise ProfileRequestError(f"field {key!r} belongs to profile {owner!r}, not to {slug!r}")
            name = option
        if name in options:
            raise ProfileRequestError(f"option {name!r} is given twice")
        options[name] = value
    return options


def form_field(profile: Profile, option: Option) -> str:
    return f"opt-{profile.slug}--{option.name}"


def _first(values: Any) -> Any:
    if isinstance(values, (list, tuple)):
        return values[0] if values else None
    return values


def _to_number(raw: Any, kind: str) -> float | int | None:
    if raw is None or isinstance(raw, bool):
        return None
    try:
        if kind == "int":
            if isinstance(raw, float):
                return int(raw) if raw.is_integer() else None
            return int(str(raw).strip(), 10)
        number = float(raw)
        return number if math.isfinite(number) else None
    except (TypeError, ValueError):
        return None


def _on_step(value: float, start: float, step: float) -> bool:
    ratio = (value - start) / step
    return abs(ratio - round(ratio)) < 1e-9


def _fmt(number: float | None) -> str:
    return str(int(number)) if number is not None and float(number).is_integer() else str(number)
