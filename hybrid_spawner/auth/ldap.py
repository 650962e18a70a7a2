"""LDAPS logins whose LDAP groups become the user's JupyterHub groups (docs/ldap.md).

``HybridLDAPAuthenticator`` is jupyterhub-ldapauthenticator's ``LDAPAuthenticator`` (install the
``ldap`` extra) with three things added that a research hub needs:

* **Groups.** After the user's bind succeeds, the groups they belong to under
  ``group_search_base`` are read *with the user's own connection* and returned as the login's
  ``groups``; with ``Authenticator.manage_groups = True`` (on by default here, JupyterHub >= 5)
  the hub makes them the user's JupyterHub groups at every login, which is what the profiles'
  ``allowed_groups`` compare with. Someone removed from ``gpu-users`` in the directory loses the
  GPU profile at their next login.
* **Certificates are checked.** ldap3's TLS object checks nothing unless told to; here the
  server's certificate must chain to ``tls_kwargs["ca_certs_file"]`` (or the system's CAs) and
  name the server, unless an admin sets ``validate`` in ``tls_kwargs`` to something weaker.
  A certificate that does not check out fails the login with one log line that says so.
* **The hub's event loop never waits for the directory.** The upstream authenticator talks to
  LDAP with blocking calls inside its coroutine; here the whole login runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import re
import ssl

import ldap3
from ldap3.core.exceptions import LDAPException, LDAPSocketOpenError, LDAPSSLConfigurationError
from ldap3.utils.conv import escape_filter_chars
from ldapauthenticator import LDAPAuthenticator
from traitlets import Bool, Unicode, default, validate

# Carried from get_user_attributes (where the user's bound connection is) to authenticate, in
# the attributes dict the upstream code passes along; removed before auth_state is stored.
_GROUPS_KEY = "__hybrid_ldap_groups__"


def group_names(entries, name_attribute: str) -> list[str]:
    """JupyterHub group names from LDAP group entries (pure): each entry's first value of
    ``name_attribute``, sorted, without duplicates or empty names."""
    names = set()
    for entry in entries:
        values = entry.get(name_attribute) or []
        if isinstance(values, (str, bytes)):
            values = [values]
        if values:
            value = values[0].decode() if isinstance(values[0], bytes) else str(values[0])
            if value.strip():
                names.add(value.strip())
    return sorted(names)


def innermost_message(error: BaseException) -> str:
    """ldap3 wraps the ssl module's message in nested tuples; the words an admin needs are inside."""
    value = error
    while isinstance(value, BaseException) or (isinstance(value, tuple) and len(value) == 1):
        value = value.args[0] if isinstance(value, BaseException) and value.args else (
            value[0] if isinstance(value, tuple) else str(value))
    text = str(value)
    # "('socket ssl wrapping error: [SSL: ...] ...',)" is a tuple's text: take the quoted part.
    if text.startswith("('") and text.endswith("',)"):
        text = text[2:-3]
    return text


def is_certificate_error(error: BaseException) -> bool:
    text = str(error)
    return isinstance(error, LDAPSSLConfigurationError) or any(
        marker in text for marker in ("CERTIFICATE_VERIFY_FAILED", "certificate verify failed", "hostname", "doesn't match")
    )


class HybridLDAPAuthenticator(LDAPAuthenticator):
    """LDAPAuthenticator that syncs LDAP groups into JupyterHub groups and checks certificates."""

    group_search_base = Unicode(
        "",
        config=True,
        help="""Where the groups that become JupyterHub groups live, e.g.
        "ou=groups,dc=example,dc=org" (Active Directory: "OU=Groups,DC=corp,DC=example,DC=com").
        Searched below this base with member_group_filter after the user's bind succeeded,
        with the user's own credentials. Empty: no group sync (the user keeps the JupyterHub
        groups an admin gave them).""",
    )
    member_group_filter = Unicode(
        "(|(member={userdn})(uniqueMember={userdn})(memberUid={uid}))",
        config=True,
        help="""LDAP filter for the groups a user belongs to; {userdn} is the user's DN and
        {uid} the login name (both escaped). The default covers groupOfNames,
        groupOfUniqueNames and posixGroup. Active Directory with nested groups:
        "(member:1.2.840.113556.1.4.1941:={userdn})".""",
    )
    group_name_attribute = Unicode(
        "cn",
        config=True,
        help="""Attribute of a group entry whose value becomes the JupyterHub group name (and
        so what profiles name in allowed_groups), e.g. "cn" for "cn=gpu-users,..." -> "gpu-users".""",
    )
    log_group_sync = Bool(
        True,
        config=True,
        help="""Log the groups found for each login at INFO (names only), so an admin can see
        why a profile is or is not offered to someone.""",
    )

    @default("manage_groups")
    def _manage_groups_default(self):
        # The directory is the source of truth for group membership (JupyterHub >= 5).
        return True

    @default("tls_kwargs")
    def _tls_kwargs_default(self):
        return {"validate": ssl.CERT_REQUIRED}

    @validate("tls_kwargs")
    def _check_certificates_unless_told_not_to(self, proposal):
        # ldap3 checks nothing by default; an admin who sets only ca_certs_file means "check".
        return {"validate": ssl.CERT_REQUIRED, **proposal.value}

    def get_user_attributes(self, conn, userdn):
        attributes = dict(super().get_user_attributes(conn, userdn))
        if self.group_search_base:
            attributes[_GROUPS_KEY] = self._member_groups(conn, userdn)
        return attributes

    def _member_groups(self, conn, userdn: str) -> list[str]:
        uid = userdn.split(",", 1)[0].split("=", 1)[-1]
        search_filter = self.member_group_filter.format(userdn=escape_filter_chars(userdn), uid=escape_filter_chars(uid))
        conn.search(
            search_base=self.group_search_base,
            search_scope=ldap3.SUBTREE,
            search_filter=search_filter,
            attributes=[self.group_name_attribute],
        )
        entries = [e.entry_attributes_as_dict for e in conn.entries]
        return group_names(entries, self.group_name_attribute)

    async def authenticate(self, handler, data):
        # The upstream coroutine makes blocking ldap3 calls; give it a loop of its own in a thread.
        try:
            model = await asyncio.to_thread(asyncio.run, LDAPAuthenticator.authenticate(self, handler, data))
        except LDAPException as e:
            self._log_connection_failure(data, e)
            return None
        if not model:
            return None
        attributes = (model.get("auth_state") or {}).get("user_attributes") or {}
        groups = attributes.pop(_GROUPS_KEY, None)
        if groups is not None:
            model["groups"] = groups
            if self.log_group_sync:
                self.log.info("LDAP login of %s: groups %s", model["name"], ", ".join(groups) or "(none)")
        return model

    def _log_connection_failure(self, data, error: LDAPException) -> None:
        where = f"{self.server_address}:{self.server_port}"
        user = data.get("username", "?")
        reason = innermost_message(error)
        if "doesn't match any name" in reason:
            names = ", ".join(f"{kind}:{value}" for kind, value in re.findall(r"\('(DNS|IP Address)', '([^']+)'\)", reason))
            self.log.error(
                "LDAP login of %s refused: the certificate of the LDAP server %s is not for that name "
                "(it names %s). Set LDAPAuthenticator.server_address to a name the certificate carries.",
                user,
                where,
                names or "other names",
            )
        elif is_certificate_error(error) or isinstance(error, LDAPSocketOpenError) and "ssl" in str(error).lower():
            self.log.error(
                "LDAP login of %s refused: the certificate of the LDAP server %s could not be verified (%s). "
                "Set LDAPAuthenticator.tls_kwargs['ca_certs_file'] to the CA that signed it.",
                user,
                where,
                reason,
            )
        else:
            self.log.error("LDAP login of %s failed: cannot reach the LDAP server %s (%s)", user, where, reason)
