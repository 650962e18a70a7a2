"""HybridSpawner: the researcher picks a profile, the profile's backend spawner runs the server.

A modern ProfilesSpawner/WrapSpawner. Profiles come from ``c.HybridSpawner.profiles`` (see
:mod:`hybrid_spawner.profiles` for the schema); ``start()`` checks ``user_options`` against them
— whether they came from the form or the REST API — and only then builds the backend spawner
(EC2, OpenStack or Slurm) with the profile's overrides and starts it. The backend and the
child's state are persisted, so a hub restart finds every server again.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import jinja2
from jupyterhub.spawner import Spawner
from jupyterhub.utils import maybe_future
from tornado import web
from traitlets import Any as AnyTrait
from traitlets import Callable, Dict, Float, Integer, List, TraitError, Unicode, Union, default

from hybrid_spawner import caps, chain, parking, startup_check
from hybrid_spawner.costs import recorder as usage_recorder
from hybrid_spawner.costs.handlers import register_cost_handlers
from hybrid_spawner._version import __version__
from hybrid_spawner.backends import BACKENDS, spawner_class
from hybrid_spawner.profiles import (
    Profile,
    ProfileConfigError,
    ProfileRequestError,
    default_profile,
    form_field,
    form_to_user_options,
    parse_profiles,
    query_to_user_options,
    resolve,
    visible_profiles,
)

try:  # JupyterHub >= 6.0
    from jupyterhub.spawner import SpawnException
except ImportError:  # JupyterHub 5: an HTTPError whose message the spawn page shows as is

    class SpawnException(web.HTTPError):
        def __init__(self, message, *, reason, log_message="", status_code=400, **_):
            super().__init__(status_code, "%s", log_message or message)
            self.message = self.jupyterhub_message = message
            self.reason = reason
            self.status_code = status_code


TEMPLATES = Path(__file__).parent / "templates"

# Attributes the hub sets on a spawner at creation (User._new_spawner) that a child needs too.
INHERITED_ATTRIBUTES = (
    "user",
    "orm_spawner",
    "hub",
    "authenticator",
    "proxy_spec",
    "_deprecated_db_session",
    "oauth_client_id",
    "cookie_options",
    "cookie_host_prefix_enabled",
    "trusted_alt_names",
    "public_url",
    "public_hub_url",
    "internal_ssl",
    "internal_trust_bundles",
    "internal_certs_location",
)
# Attributes the hub sets just before start() (User.spawn).
PER_START_ATTRIBUTES = ("api_token", "admin_access", "cert_paths", "handler")


class HybridSpawner(Spawner):
    """Offers the admin's profiles and delegates to the chosen backend's spawner."""

    profiles = Union(
        [List(Dict()), Callable()],
        default_value=[],
        config=True,
        help="""The profiles offered on the spawn page, a list of dicts (or a callable, possibly
        async, taking the spawner and returning one, to compute it per user). Each dict has
        slug, display_name, description, default, backend ("ec2", "openstack", "slurm"),
        overrides (trait values for that backend's spawner), options (what the researcher may
        choose: {"cpus": {"trait": "req_nprocs", "min": 1, "max": 8}, "partition": {"trait":
        "req_partition", "choices": ["debug", "batch"]}}), allowed_groups / allowed_users
        (JupyterHub group and user names; omitted = everyone) and cost_per_hour (shown in the
        form). Requests are checked against these in start(), also when they come through the
        REST API. See docs/profiles.md for examples.""",
    )
    backend_classes = Dict(
        dict(BACKENDS),
        config=True,
        help="""Spawner class per backend name, as import strings (default: the registry in
        hybrid_spawner/backends/__init__.py). A profile's "backend" must be one of these names.
        Configure each class as usual (c.EC2Spawner..., c.SlurmSpawner...); a profile's
        overrides come on top. Add your own backend here, or remove one the hub must not use.""",
    )
    form_template = Unicode(
        "",
        config=True,
        help="""Absolute path of a Jinja2 template that replaces the built-in spawn form
        (hybrid_spawner/templates/form.html). It receives `profiles` (visible to the user),
        `selected` (the pre-selected slug), `field` (field(profile, option) -> input name) and
        `last_values` (the user's last option values).""",
    )
    start_timeout = Float(
        900,
        config=True,
        help="""Upper bound the hub waits for any backend's start. Keep it at or above the
        largest start_timeout of the backend spawners: each backend fails (and cleans up)
        on its own, shorter timeout first, so the user sees why.""",
    )

    max_servers_per_user = Integer(
        0,
        config=True,
        help="""Most servers one user may run at once, on all backends and profiles (named
        servers included); 0 for no cap. Servers the backend lists with the user as owner
        (EC2 tag jupyterhub/owner, Nova metadata hybrid-owner) count too, also when they were
        started outside JupyterHub. Over the cap a spawn is refused with the reason on the
        spawn page and nothing is launched.""",
    )
    max_servers_per_backend = Dict(
        value_trait=Integer(),
        config=True,
        help="""Most servers running at once per backend, e.g. {"ec2": 20, "openstack": 10}
        (absent or 0: no cap). Counted from this hub's servers plus the backend's own
        listing of nodes carrying this hub's tag, so instances started by hand with the tag
        count too (Slurm lists only this hub's jobs). A profile with a burst chain moves on
        to its next backend when one is full.""",
    )
    max_servers_per_profile = Integer(
        0,
        config=True,
        help="""Most servers running at once per profile, for profiles without their own
        "max_servers"; 0 for no cap.""",
    )
    cap_listing_max_age = Float(
        2.0,
        config=True,
        help="""Seconds a backend's status listing may be old when a cap is checked. Spawns
        arriving together share one listing call; 0 lists afresh for every spawn.""",
    )

    usage_ledger = Unicode(
        "hybrid_usage.sqlite",
        config=True,
        help="""SQLite file where each server's start and stop (user, profile, backend, hourly
        price) are recorded, for the month-to-date figures on the spawn form, the admin page
        /hub/hybrid/costs and /hub/api/hybrid/costs. A relative path is relative to the hub's
        working directory, beside the default jupyterhub.sqlite. Empty: record nothing.""",
    )
    price_table = Unicode(
        "",
        config=True,
        help="""Optional JSON price table (see docs/costs.md): hourly prices per launched
        instance type, per profile (and backend), per backend. Prices not in it come from
        the profile's cost_per_hour. Read at each start; checked when the hub starts.""",
    )

    child = AnyTrait(None, allow_none=True)
    child_backend = Unicode("")
    child_profile = Unicode("")
    child_overrides = Dict()
    # Why the previous server ended (set by the backend's poll()); outlives the backend
    # spawner, which clear_state drops, so the next start can say it first.
    last_stop_message = Unicode("")
    # Nodes stopped with their disks (stop_action = "stop"), one per profile slug:
    # {"backend", "overrides", "node": parking record}. A stopped node fits only the profile
    # that launched it; the next start of that profile resumes it (see parking.py).
    parked_nodes = Dict()

    @default("server_token_scopes")
    def _default_server_token_scopes(self):
        # The token is minted for this spawner, not its backend child: same scopes.
        from hybrid_spawner.remote import SERVER_TOKEN_SCOPES

        return list(SERVER_TOKEN_SCOPES)

    @default("options_form")
    def _options_form_default(self):
        return HybridSpawner._render_form

    @default("options_from_form")
    def _options_from_form_default(self):
        return form_to_user_options

    @default("apply_user_options")
    def _apply_user_options_default(self):
        # JupyterHub >= 5.3 hook: our options are checked against the profiles and applied to
        # the backend spawner in start(); nothing to do before (and no "unhandled" warning).
        return _options_applied_in_start

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._child_ready = asyncio.Event()
        self._attempts: chain.Attempts | None = None

    # ------------------------------------------------------------------ profiles
    def _group_names(self) -> list[str]:
        return [g.name for g in getattr(self.user, "groups", [])]

    async def load_profiles(self) -> list[Profile]:
        raw = self.profiles
        if callable(raw):
            raw = await maybe_future(raw(self))
        try:
            return parse_profiles(raw, self.backend_classes, self._settable_traits)
        except ProfileConfigError as e:
            self.log.error("HybridSpawner.profiles is invalid: %s", e)
            raise SpawnException(
                "The server profiles are misconfigured; please tell your administrator.",
                reason="profiles-config",
                status_code=500,
                log_message=f"HybridSpawner.profiles is invalid: {e}",
            ) from None

    def _settable_traits(self, backend: str) -> frozenset[str]:
        """What a profile may set on a backend's spawner: its configurable traits, as
        KubeSpawner allows for profile overrides (state traits would be overwritten)."""
        return frozenset(spawner_class(backend, self.backend_classes).class_trait_names(config=True))

    async def _render_form(self) -> str:
        profiles = visible_profiles(await self.load_profiles(), self.user.name, self._group_names())
        if not profiles:
            return "<p class='alert alert-warning'>No server profile is available to you. Ask your administrator.</p>"
        last = dict(self.orm_spawner.user_options or {}) if self.orm_spawner is not None else {}
        path = Path(self.form_template) if self.form_template else TEMPLATES / "form.html"
        return render_form(path.read_text(), profiles, last, await usage_recorder.month_to_date(self))

    async def options_from_query(self, query_data):
        """A spawn link (``GET /hub/spawn/<user>?opt-profile=<slug>&opt-cpus=2``): checked in full
        here, so a link that does not fit is refused with its reason on the spawn page and
        nothing starts, instead of starting another profile than the one it names.

        Reads the query the browser sent (``self.handler``, set by the hub before this call)
        when there is one: JupyterHub 6 drops fields without the ``opt-`` prefix once any
        field has it, which would turn ``?profile=gpu&opt-gpu--cpus=2`` into a request for
        the default profile. Falls back to what the hub passed.
        """
        request = getattr(getattr(self, "handler", None), "request", None)
        if request is not None and request.query_arguments:
            query = {k: [b.decode("utf8", "replace") for b in v] for k, v in request.query_arguments.items()}
        else:
            query = dict(query_data or {})
        try:
            user_options = query_to_user_options(query)
            resolution = resolve(await self.load_profiles(), user_options, self.user.name, self._group_names())
        except ProfileRequestError as e:
            self.log.warning("%s: refused spawn link: %s", self._log_name, e)
            raise SpawnException(f"Invalid server options: {e}", reason="invalid-options", status_code=400) from None
        return resolution.user_options

    # ------------------------------------------------------------------ child spawner
    def _build_child(self, backend: str, overrides: dict[str, Any]) -> Spawner:
        if backend not in self.backend_classes:
            raise SpawnException(
                f"Backend {backend!r} is not enabled on this hub.", reason="profiles-config", status_code=500
            )
        cls = spawner_class(backend, self.backend_classes)
        kwargs = {name: getattr(self, name) for name in INHERITED_ATTRIBUTES if self.has_trait(name) and hasattr(self, name)}
        kwargs["config"] = self.config
        kwargs["user_options"] = dict(self.user_options or {})
        child = cls(**kwargs)
        for name, value in overrides.items():
            _set_override(child, name, value)
        return child

    def _adopt(self, child: Spawner, backend: str, slug: str, overrides: dict) -> None:
        self.child, self.child_backend, self.child_profile, self.child_overrides = child, backend, slug, dict(overrides)
        self._child_ready.set()

    # ------------------------------------------------------------------ lifecycle
    async def start(self):
        self._child_ready.clear()
        profiles = await self.load_profiles()
        try:
            resolution = resolve(profiles, self.user_options, self.user.name, self._group_names())
        except ProfileRequestError as e:
            self.log.warning("%s: refused spawn request: %s", self._log_name, e)
            raise SpawnException(f"Invalid server options: {e}", reason="invalid-options", status_code=400) from None
        self.user_options = resolution.user_options
        profile = resolution.profile
        self._attempts = attempts = chain.Attempts()
        self._child_ready.set()  # progress() streams the attempts from now on
        try:
            step, child, result = await chain.start_along_chain(
                profile.chain(resolution.overrides),
                self._child_for_step,
                lambda step, child: self._hold_slot(profile, step, child),
                self._release_slot,
                attempts,
            )
        except (caps.CapReached, caps.CapUnknown, chain.ChainExhausted) as e:
            self.log.warning("%s: spawn of profile %s refused: %s", self._log_name, profile.slug, e)
            raise SpawnException(str(e), reason="capacity", status_code=429) from None
        finally:
            attempts.finish()
        self.log.info("%s: started profile %s on %s", self._log_name, profile.slug, step.backend)
        await usage_recorder.record_start(
            self, profile=profile.slug, backend=step.backend, child=child, profile_price=profile.cost_per_hour
        )
        return result

    def _child_for_step(self, step) -> Spawner:
        """The backend spawner of one chain step, set up for this start and adopted (so that
        stop() during the spawn reaches it)."""
        child = self._build_child(step.backend, dict(step.overrides))
        for name in PER_START_ATTRIBUTES:
            if hasattr(self, name) and child.has_trait(name):
                setattr(child, name, getattr(self, name))
        child.user_options = dict(self.user_options)
        if self.last_stop_message and hasattr(child, "last_stop_message"):
            # RemoteSpawner.start shows it as the first progress event, then forgets it.
            child.last_stop_message, self.last_stop_message = self.last_stop_message, ""
        slug = self.user_options.get("profile", "")
        parked = self.parked_nodes.get(slug)
        if parked and parked.get("backend") == step.backend and hasattr(child, "parked_node"):
            # The child resumes it; if the start fails, clear_state takes it back.
            child.parked_node = dict(parked["node"])
            self.parked_nodes = {k: v for k, v in self.parked_nodes.items() if k != slug}
        self._adopt(child, step.backend, self.user_options.get("profile", ""), step.overrides)
        self.log.info("%s: trying profile %s on %s", self._log_name, self.child_profile, step.backend)
        return child

    # ------------------------------------------------------------------ caps
    @property
    def _slot_key(self) -> str:
        return f"{self.user.name}/{self.name}"

    def _holding(self, profile_slug: str, backend: str, child) -> caps.Holding:
        return caps.Holding(self._slot_key, self.user.name, profile_slug, backend, lambda: getattr(child, "node_id", None))

    async def _hold_slot(self, profile: Profile, step, child) -> None:
        limits = caps.Limits(
            per_user=self.max_servers_per_user,
            per_backend=self.max_servers_per_backend.get(step.backend, 0),
            per_profile=profile.max_servers if profile.max_servers is not None else self.max_servers_per_profile,
            per_step=step.max_servers or 0,
        )

        async def listing(fresh_after: float):
            try:
                cache = child.status_cache()
            except NotImplementedError:
                return None
            except Exception as e:  # e.g. an OpenStack cloud missing from clouds.yaml
                self.log.warning("%s: no status listing for the caps: %s", self._log_name, e)
                raise caps.CapUnknown(
                    f"Cannot count the running servers on {chain.step_label(step)} right now "
                    f"({type(e).__name__}); please tell your administrator."
                ) from None
            return await caps.backend_listing(cache, self.cap_listing_max_age, fresh_after)

        await caps.GATE.admit(
            self._holding(profile.slug, step.backend, child), limits, listing, chain.step_label(step)
        )

    def _release_slot(self) -> None:
        caps.GATE.release(self._slot_key)

    async def stop(self, now=False):
        if self.child is not None:
            await self.child.stop(now=now)
            await usage_recorder.record_stop(self)
        self._release_slot()

    # ------------------------------------------------------------------ parked nodes
    def parked_entries(self) -> dict[str, tuple[str, dict]]:
        """{profile slug: (backend, parking record)} of this server's stopped nodes."""
        return {slug: (e["backend"], e["node"]) for slug, e in self.parked_nodes.items()}

    async def end_parked_node(self, slug: str, reason: str) -> None:
        """Terminate the stopped node kept for ``slug`` (expired, or the user is deleted)."""
        entry = self.parked_nodes.get(slug)
        if not entry:
            return
        child = self._build_child(entry["backend"], entry["overrides"])
        await child.terminate_node(entry["node"][parking.NODE_ID])
        self.parked_nodes = {k: v for k, v in self.parked_nodes.items() if k != slug}
        self.log.info("%s: terminated stopped %s (%s)", self._log_name, entry["node"][parking.NODE_ID], reason)

    async def delete_forever(self):
        """JupyterHub deletes the user (or this server): no stopped node of theirs stays behind,
        and each profile's backend deletes what it keeps for them (home volumes), if its
        settings say so. The backend spawner of the last start is gone by now: one is built per
        profile, from the profile's overrides (the storage is found by its tags)."""
        for slug in list(self.parked_nodes):
            await self.end_parked_node(slug, "the server is deleted")
        try:
            profiles = await self.load_profiles()
        except SpawnException:
            return  # misconfigured profiles: logged by load_profiles; nothing is deleted
        seen = set()
        for profile in profiles:
            key = (profile.backend, repr(sorted(dict(profile.overrides).items())))
            if key in seen or profile.backend not in self.backend_classes:
                continue
            seen.add(key)
            try:
                await self._build_child(profile.backend, dict(profile.overrides)).delete_forever()
            except Exception:
                self.log.exception("%s: deleting the %s storage of profile %s failed", self._log_name,
                                   profile.backend, profile.slug)

    async def poll(self):
        if self.child is None:
            return 0
        status = await self.child.poll()
        if status is not None:
            # The hub does not call stop() for a server that poll() reports ended (a node
            # terminated outside JupyterHub): its usage row is closed here, when it is noticed.
            await usage_recorder.record_stop(self)
        return status

    async def progress(self):
        try:
            await asyncio.wait_for(self._child_ready.wait(), 30)
        except asyncio.TimeoutError:
            return
        source = self._attempts.stream() if self._attempts is not None else self.child.progress()
        async for event in source:
            yield event

    # ------------------------------------------------------------------ state
    def get_state(self) -> dict:
        state = super().get_state()
        if self.child is not None:
            state.update(
                hybrid_version=__version__,
                backend=self.child_backend,
                profile=self.child_profile,
                overrides=self.child_overrides,
                child_state=self.child.get_state(),
            )
        if self.last_stop_message:
            state["last_stop_message"] = self.last_stop_message
        if self.parked_nodes:
            state["parked_nodes"] = {k: dict(v) for k, v in self.parked_nodes.items()}
        return state

    def load_state(self, state: dict) -> None:
        """Rebuild the backend spawner from the stored backend and overrides (not from the
        current profiles: an admin editing profiles must not orphan a running server)."""
        super().load_state(state)
        self.last_stop_message = state.get("last_stop_message", "")
        self.parked_nodes = valid_parked_nodes(state.get("parked_nodes"))
        backend = state.get("backend")
        if not backend or backend not in self.backend_classes:
            return
        try:
            child = self._build_child(backend, state.get("overrides") or {})
        except Exception:
            self.log.exception("%s: cannot restore the %s spawner from state", self._log_name, backend)
            return
        child.load_state(state.get("child_state") or {})
        self._adopt(child, backend, state.get("profile", ""), state.get("overrides") or {})
        # A server in the hub's database counts against the caps after a restart too.
        caps.GATE.hold(self._holding(self.child_profile, backend, child))

    def clear_state(self) -> None:
        super().clear_state()
        if self.child is not None:
            self.child.clear_state()
            self.last_stop_message = getattr(self.child, "last_stop_message", "") or self.last_stop_message
            parked = getattr(self.child, "parked_node", None)
            if parked:  # kept for the next start of this profile (clear_state keeps it in the child)
                self.parked_nodes = {**self.parked_nodes, self.child_profile: {
                    "backend": self.child_backend, "overrides": dict(self.child_overrides), "node": dict(parked)}}
                self.child.parked_node = {}
        self.child = None
        self.child_backend = self.child_profile = ""
        self.child_overrides = {}
        self._child_ready.clear()
        self._attempts = None
        self._release_slot()


def valid_parked_nodes(value) -> dict:
    """The parked nodes read back from the hub's database; anything malformed is dropped."""
    if not isinstance(value, dict):
        return {}
    return {
        slug: {"backend": entry["backend"], "overrides": dict(entry.get("overrides") or {}), "node": dict(entry["node"])}
        for slug, entry in value.items()
        if isinstance(entry, dict) and isinstance(entry.get("backend"), str) and parking.valid_record(entry.get("node"))
    }


def _options_applied_in_start(spawner, user_options) -> None:
    return None


def render_form(template_text: str, profiles: list[Profile], last_options: dict, spent: dict | None = None) -> str:
    """The spawn form for ``profiles`` (already filtered for the user), pre-selecting the
    user's last profile and its option values, with the user's month to date (``spent``, the
    JSON of :mod:`hybrid_spawner.costs`) when known. Autoescaped: names come from config."""
    selected = default_profile(profiles, last_options.get("profile"))
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    return env.from_string(template_text).render(
        profiles=profiles,
        selected=selected.slug,
        field=form_field,
        last_values=last_options if last_options.get("profile") == selected.slug else {},
        spent=spent,
    )


def _set_override(child: Spawner, name: str, value: Any) -> None:
    """Set a profile override, coercing numbers for string traits (req_nprocs is a Unicode)."""
    if not child.has_trait(name):
        raise SpawnException(
            "The server profile is misconfigured; please tell your administrator.",
            reason="profiles-config",
            status_code=500,
            log_message=f"profile override {name!r} is not a configurable trait of {type(child).__name__}",
        )
    try:
        setattr(child, name, value)
    except TraitError:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            setattr(child, name, str(value))
        else:
            raise


# A hub configured with HybridSpawner checks its profiles when it starts (see startup_check).
startup_check.install(HybridSpawner)
register_cost_handlers()
