"""A real OpenLDAP ``slapd`` serving LDAPS on a loopback port, in a directory of its own.

Used by the LDAP tests and by ``python -m jupyter_config.demo --ldap``. It makes a throwaway
certificate authority and a server certificate for 127.0.0.1/localhost with openssl, writes a
``slapd.conf``, loads the people and groups offline with ``slapadd`` and runs slapd in the
foreground, dropping root to the ``openldap`` account when started as root (that account must
then be able to reach ``directory``: not below a 0700 folder such as pytest's tmp_path). Needs the Debian
packages ``slapd`` and ``ldap-utils`` (scripts/install.sh installs them).

The directory's tree (``dc=hybrid,dc=test``)::

    ou=people   uid=<name>  (inetOrgPerson + posixAccount, a password each)
    ou=groups   cn=<group>  (groupOfNames, member = the people's DNs)
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from simulators.processes import ManagedProcess, free_port

SUFFIX = "dc=hybrid,dc=test"
PEOPLE = f"ou=people,{SUFFIX}"
GROUPS = f"ou=groups,{SUFFIX}"
ADMIN_DN = f"cn=admin,{SUFFIX}"
SCHEMAS = ("core", "cosine", "nis", "inetorgperson")

# Who is in the directory unless a caller says otherwise: two researchers, one with GPU access.
DEFAULT_PEOPLE = {"ada": "ada-password", "grace": "grace-password"}
DEFAULT_GROUPS = {"gpu-users": ["ada"], "researchers": ["ada", "grace"]}


def slapd_available() -> str | None:
    """None when slapd can run here, else why not."""
    for tool in ("slapd", "slapadd", "openssl"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            return f"{tool} is not installed (apt-get install slapd ldap-utils openssl)"
    return None


def _tool(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


def _run(argv, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run([str(a) for a in argv], capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed ({result.returncode}): {result.stderr.strip()[-2000:]}")
    return result


def make_ca(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed CA (certificate, key) good for a day: enough for a test or a demo."""
    key, cert = directory / f"{name}.key", directory / f"{name}.pem"
    _run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
          "-subj", f"/CN={name}", "-keyout", key, "-out", cert,
          "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    return cert, key


def make_server_cert(
    directory: Path, ca: tuple[Path, Path], name: str = "server", alt_names: str = "IP:127.0.0.1,DNS:localhost"
) -> tuple[Path, Path]:
    """A server certificate for ``alt_names`` (subjectAltName syntax), signed by ``ca``."""
    key, csr, cert = directory / f"{name}.key", directory / f"{name}.csr", directory / f"{name}.pem"
    extensions = directory / f"{name}.ext"
    extensions.write_text(f"subjectAltName={alt_names}\nextendedKeyUsage=serverAuth\n")
    _run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", key, "-out", csr])
    _run(["openssl", "x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial",
          "-days", "1", "-extfile", extensions, "-out", cert])
    return cert, key


def directory_ldif(people: dict[str, str], groups: dict[str, list[str]]) -> str:
    """The entries slapadd loads (pure). Passwords are stored as given: slapd compares them on
    bind, and the directory lives only as long as the test or demo."""
    entries = [
        f"dn: {SUFFIX}\nobjectClass: top\nobjectClass: dcObject\nobjectClass: organization\no: Hybrid research cloud\ndc: hybrid",
        f"dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people",
        f"dn: {GROUPS}\nobjectClass: organizationalUnit\nou: groups",
    ]
    for uid_number, (name, password) in enumerate(sorted(people.items()), start=10001):
        entries.append(
            f"dn: uid={name},{PEOPLE}\nobjectClass: inetOrgPerson\nobjectClass: posixAccount\n"
            f"uid: {name}\ncn: {name}\nsn: {name}\nmail: {name}@hybrid.test\n"
            f"uidNumber: {uid_number}\ngidNumber: {uid_number}\nhomeDirectory: /home/{name}\n"
            f"loginShell: /bin/bash\nuserPassword: {password}"
        )
    for group, members in sorted(groups.items()):
        unknown = set(members) - set(people)
        if unknown:
            raise ValueError(f"group {group!r} names people not in the directory: {sorted(unknown)}")
        lines = [f"dn: cn={group},{GROUPS}", "objectClass: groupOfNames", f"cn: {group}"]
        lines += [f"member: uid={m},{PEOPLE}" for m in members]
        entries.append("\n".join(lines))
    return "\n\n".join(entries) + "\n"


def slapd_conf(directory: Path, ca: Path, cert: Path, key: Path, admin_password: str) -> str:
    schema = "\n".join(f"include /etc/ldap/schema/{s}.schema" for s in SCHEMAS)
    return f"""{schema}
pidfile {directory}/slapd.pid
argsfile {directory}/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb
TLSCACertificateFile {ca}
TLSCertificateFile {cert}
TLSCertificateKeyFile {key}
database mdb
maxsize 10485760
suffix "{SUFFIX}"
rootdn "{ADMIN_DN}"
rootpw {admin_password}
directory {directory}/data
# People may check their own password and read the directory once bound; nobody reads a password.
access to attrs=userPassword by self =xw by anonymous auth by * none
access to * by users read by * none
"""


@dataclass
class LocalSlapd:
    """slapd on ``ldaps://127.0.0.1:<port>/`` with its own CA. ``ca_cert`` is what clients trust."""

    directory: Path
    people: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_PEOPLE))
    groups: dict[str, list[str]] = field(default_factory=lambda: {k: list(v) for k, v in DEFAULT_GROUPS.items()})
    admin_password: str = "admin-password"
    # The names the server certificate carries (a test gives it only a name clients do not use).
    alt_names: str = "IP:127.0.0.1,DNS:localhost"
    port: int = 0
    process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"ldaps://127.0.0.1:{self.port}/"

    @property
    def ca_cert(self) -> Path:
        return self.directory / "tls" / "ca.pem"

    def start(self, timeout: float = 30.0) -> "LocalSlapd":
        reason = slapd_available()
        if reason:
            raise RuntimeError(reason)
        d = self.directory = Path(self.directory).resolve()
        tls, data = d / "tls", d / "data"
        tls.mkdir(parents=True, exist_ok=True)
        data.mkdir(exist_ok=True)
        ca = make_ca(tls, "ca")
        cert, key = make_server_cert(tls, ca, alt_names=self.alt_names)
        conf = d / "slapd.conf"
        conf.write_text(slapd_conf(d, ca[0], cert, key, self.admin_password))
        ldif = d / "directory.ldif"
        ldif.write_text(directory_ldif(self.people, self.groups))
        _run([_tool("slapadd"), "-f", conf, "-l", ldif])
        owner = self._unprivileged_account()
        if owner is not None:  # slapd drops root to this account: it must own what it opens
            for path in [d, *d.rglob("*")]:
                os.chown(path, owner.pw_uid, owner.pw_gid)
        self.port = self.port or free_port()
        argv = [_tool("slapd"), "-d", "stats", "-h", self.url, "-f", conf]
        if owner is not None:
            argv += ["-u", owner.pw_name, "-g", owner.pw_name]
        # -d keeps slapd in the foreground (the process we stop) and logs binds and searches.
        self.process = ManagedProcess("slapd", argv, log_dir=d, cwd=d, ready=self._serves, ready_timeout=timeout)
        self.process.start()
        return self

    @staticmethod
    def _unprivileged_account():
        if os.geteuid() != 0:
            return None
        for name in ("openldap", "nobody"):
            try:
                return pwd.getpwnam(name)
            except KeyError:
                continue
        raise RuntimeError("no unprivileged account to run slapd as (openldap or nobody)")

    def _serves(self) -> bool:
        """An anonymous LDAPS bind with the CA's certificate checked answers (the name is not
        checked here: a test may give the certificate a name on purpose)."""
        env = {**os.environ, "LDAPTLS_CACERT": str(self.ca_cert), "LDAPTLS_REQCERT": "allow"}
        result = subprocess.run(
            ["ldapwhoami", "-x", "-H", self.url], capture_output=True, text=True, env=env, timeout=5
        )
        return result.returncode == 0

    def set_group_members(self, group: str, members: list[str]) -> None:
        """Change a group's members in the running directory (as its admin, over LDAPS), as a
        directory administrator would; groupOfNames needs at least one member."""
        if not members or set(members) - set(self.people):
            raise ValueError(f"members must be people of the directory: {members}")
        ldif = f"dn: cn={group},{GROUPS}\nchangetype: modify\nreplace: member\n"
        ldif += "".join(f"member: uid={m},{PEOPLE}\n" for m in members)
        env = {**os.environ, "LDAPTLS_CACERT": str(self.ca_cert), "LDAPTLS_REQCERT": "demand"}
        _run(["ldapmodify", "-x", "-H", self.url, "-D", ADMIN_DN, "-w", self.admin_password], input=ldif, env=env)
        self.groups[group] = list(members)

    def log_text(self) -> str:
        return self.process.log_text() if self.process else ""

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
