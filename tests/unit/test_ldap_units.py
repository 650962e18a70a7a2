"""Pure parts of the LDAP login: group names from entries, the directory's LDIF, certificate errors."""

from __future__ import annotations

import ssl

import pytest

from hybrid_spawner.auth.ldap import HybridLDAPAuthenticator, group_names, is_certificate_error
from simulators.ldap import directory_ldif


def test_group_names_take_the_first_value_sorted_and_unique():
    entries = [{"cn": ["gpu-users"]}, {"cn": ["researchers", "alias"]}, {"cn": "gpu-users"}, {"cn": []}, {}, {"cn": [b"hpc"]}]
    assert group_names(entries, "cn") == ["gpu-users", "hpc", "researchers"]


def test_the_authenticator_checks_certificates_unless_told_otherwise():
    auth = HybridLDAPAuthenticator(bind_dn_template=["uid={username},ou=people,dc=x"])
    assert auth.tls_kwargs["validate"] == ssl.CERT_REQUIRED and auth.manage_groups is True
    auth.tls_kwargs = {"ca_certs_file": "/etc/ssl/ca.pem"}
    assert auth.tls_kwargs == {"validate": ssl.CERT_REQUIRED, "ca_certs_file": "/etc/ssl/ca.pem"}
    auth.tls_kwargs = {"validate": ssl.CERT_OPTIONAL}  # an explicit choice is the admin's
    assert auth.tls_kwargs["validate"] == ssl.CERT_OPTIONAL


def test_certificate_errors_are_told_apart():
    assert is_certificate_error(Exception("socket ssl wrapping error: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"))
    assert not is_certificate_error(Exception("socket connection error while opening: [Errno 111] Connection refused"))


def test_directory_ldif_refuses_a_group_member_who_is_not_a_person():
    text = directory_ldif({"ada": "pw"}, {"gpu-users": ["ada"]})
    assert "member: uid=ada,ou=people,dc=hybrid,dc=test" in text and "objectClass: posixAccount" in text
    with pytest.raises(ValueError, match="grace"):
        directory_ldif({"ada": "pw"}, {"gpu-users": ["ada", "grace"]})
