"""Certificates for the --tls tests, made fresh in a directory of the test's
(python3-cryptography; EC P-256 keys, quick to make).

    ca          the CA both ends trust (--tls-cacert ca.pem)
    crl         its revocation list, naming revoked (--tls-cacrl crl.pem)
    server      signed by ca, names localhost, 127.0.0.1, ::1 and the
                two-host test's 10.231.0.1 and 10.231.0.2
    client      signed by ca, CN "criu-lazy client" and no address at all
    wrongname   signed by ca, names wrong.example only
    revoked     signed by ca, revoked in crl
    rogue       signed by rogue-ca, which nobody trusts

Each NAME has NAME.pem (certificate) and NAME.key (private key).
"""
import datetime
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DAY = datetime.timedelta(days=1)
SERVER_NAMES = ["localhost"]
SERVER_IPS = ["127.0.0.1", "::1", "10.231.0.1", "10.231.0.2"]


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "criu-lazy tests"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write(d, name, cert, key):
    (d / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (d / f"{name}.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    (d / f"{name}.key").chmod(0o600)


def _builder(subject, issuer, pub, serial):
    now = datetime.datetime.now(datetime.timezone.utc)
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
            .public_key(pub).serial_number(serial)
            .not_valid_before(now - DAY).not_valid_after(now + 30 * DAY))


class Authority:
    def __init__(self, d, name, serial):
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.subject = _name(f"criu-lazy {name}")
        self.cert = (_builder(self.subject, self.subject, self.key.public_key(), serial)
                     .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                     .add_extension(x509.KeyUsage(False, False, False, False, False, True, True,
                                                  False, False), critical=True)
                     .add_extension(x509.SubjectKeyIdentifier.from_public_key(
                         self.key.public_key()), critical=False)
                     .sign(self.key, hashes.SHA256()))
        _write(d, name, self.cert, self.key)

    def issue(self, d, name, cn, serial, dns=(), ips=()):
        key = ec.generate_private_key(ec.SECP256R1())
        b = (_builder(_name(cn), self.subject, key.public_key(), serial)
             .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
             .add_extension(x509.KeyUsage(True, False, False, False, False, False, False,
                                          False, False), critical=True)
             .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                   ExtendedKeyUsageOID.CLIENT_AUTH]),
                            critical=False)
             .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                 self.key.public_key()), critical=False))
        alt = [x509.DNSName(n) for n in dns] + [x509.IPAddress(ipaddress.ip_address(a))
                                                 for a in ips]
        if alt:
            b = b.add_extension(x509.SubjectAlternativeName(alt), critical=False)
        cert = b.sign(self.key, hashes.SHA256())
        _write(d, name, cert, key)
        return cert

    def revoke(self, d, certs):
        now = datetime.datetime.now(datetime.timezone.utc)
        b = (x509.CertificateRevocationListBuilder().issuer_name(self.subject)
             .last_update(now - DAY).next_update(now + 30 * DAY))
        for c in certs:
            b = b.add_revoked_certificate(x509.RevokedCertificateBuilder()
                                          .serial_number(c.serial_number)
                                          .revocation_date(now - DAY).build())
        crl = b.sign(self.key, hashes.SHA256())
        (d / "crl.pem").write_bytes(crl.public_bytes(serialization.Encoding.PEM))


class Certs:
    """The set above, made in directory d."""

    def __init__(self, d):
        self.dir = Path(d)
        self.dir.mkdir(parents=True, exist_ok=True)
        ca = Authority(self.dir, "ca", 1)
        ca.issue(self.dir, "server", "localhost", 10, SERVER_NAMES, SERVER_IPS)
        ca.issue(self.dir, "client", "criu-lazy client", 11)
        ca.issue(self.dir, "wrongname", "wrong.example", 12, ["wrong.example"])
        revoked = ca.issue(self.dir, "revoked", "localhost", 13, SERVER_NAMES, SERVER_IPS)
        ca.revoke(self.dir, [revoked])
        rogue = Authority(self.dir, "rogue-ca", 1)
        rogue.issue(self.dir, "rogue", "localhost", 20, SERVER_NAMES, SERVER_IPS)

    def path(self, name):
        return self.dir / name

    def args(self, name, ca="ca", crl=True, extra=()):
        """--tls and its files for an end that presents certificate NAME."""
        out = ["--tls", "--tls-cacert", self.path(f"{ca}.pem"),
               "--tls-cert", self.path(f"{name}.pem"), "--tls-key", self.path(f"{name}.key")]
        if crl:
            out += ["--tls-cacrl", self.path("crl.pem")]
        return out + list(extra)
