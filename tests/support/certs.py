"""Throwaway X.509 material for TLS tests: a CA, a server certificate and a client certificate."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

Key = ec.EllipticCurvePrivateKey


@dataclass
class Issued:
    cert_pem: str
    key_pem: str
    cert: x509.Certificate
    key: Key


@dataclass
class CertBundle:
    ca: Issued
    server: Issued
    client: Issued


def _key_pem(key: Key) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(subject: str, issuer: x509.Name, key: Key) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
    )


def _done(builder: x509.CertificateBuilder, signer: Key, key: Key) -> Issued:
    cert = builder.sign(signer, hashes.SHA256())
    return Issued(cert.public_bytes(serialization.Encoding.PEM).decode(), _key_pem(key), cert, key)


def make_ca(common_name: str = "Test CA") -> Issued:
    """A self-signed CA certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    builder = _builder(common_name, _name(common_name), key).add_extension(
        x509.BasicConstraints(ca=True, path_length=None), critical=True
    )
    key_usage = x509.KeyUsage(False, False, False, False, False, True, True, False, False)  # cert + CRL sign
    return _done(builder.add_extension(key_usage, critical=True), key, key)


def issue(ca: Issued, common_name: str, hosts: tuple[str, ...] = (), client: bool = False) -> Issued:
    """A leaf certificate signed by ``ca``: for a server (SANs ``hosts``) or a client."""
    key = ec.generate_private_key(ec.SECP256R1())
    builder = _builder(common_name, ca.cert.subject, key).add_extension(
        x509.BasicConstraints(ca=False, path_length=None), critical=True
    )
    usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if hosts:
        names: list[x509.GeneralName] = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return _done(builder, ca.key, key)


def make_bundle(client_user: str = "certuser", hosts: tuple[str, ...] = ("127.0.0.1", "localhost")) -> CertBundle:
    """A CA with a server certificate for ``hosts`` and a client certificate whose CN is ``client_user``."""
    ca = make_ca()
    return CertBundle(ca, issue(ca, hosts[0], hosts), issue(ca, client_user, client=True))
