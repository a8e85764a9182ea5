"""A locked-down Apache Kafka for tests: TLS, SASL/SCRAM and ACLs, as a bank or a hospital runs it.

``SecureKraftCluster`` is a ``KraftCluster`` whose client listener is ``SASL_SSL`` (SCRAM-SHA-512),
used between the brokers too (as the ``admin`` super user); its controllers talk TLS with client
certificates (principal ``User:CN=kafka-node``, a super user), so nothing on it is anonymous. The
StandardAuthorizer allows nothing without an ACL (``allow.everyone.if.no.acl.found=false``). A second
client listener on node 1 serves a certificate that expired yesterday, for the "expired
certificate" case. The CA, the certificates and the SCRAM users (added when the storage is
formatted, ``--add-scram``) are made by the fixture; nothing is downloaded.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.apache_kafka.broker import KraftCluster, KraftNode, free_port

MECHANISM = "SCRAM-SHA-512"
ADMIN = ("admin", "admin-secret")
NODE_PRINCIPAL = "User:CN=kafka-node"


@dataclass(frozen=True)
class Certificates:
	ca: Path  # the CA's certificate (what clients trust)
	node: Path  # a node's key and certificate chain, PEM (its keystore)
	expired: Path  # the same, expired yesterday
	other_ca: Path  # a CA nobody here signed with (the "unknown CA" case)


def make_certificates(folder: Path) -> Certificates:
	"""A CA, a node certificate for 127.0.0.1/localhost (CN=kafka-node), one that expired yesterday,
	and an unrelated CA; PEM files in ``folder``."""
	from cryptography import x509
	from cryptography.hazmat.primitives import hashes, serialization
	from cryptography.hazmat.primitives.asymmetric import ec
	from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

	folder.mkdir(parents=True, exist_ok=True)
	now = datetime.datetime.now(datetime.timezone.utc)

	def name(cn: str) -> x509.Name:
		return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

	def ca(cn: str):
		key = ec.generate_private_key(ec.SECP256R1())
		cert = (
			x509.CertificateBuilder().subject_name(name(cn)).issuer_name(name(cn)).public_key(key.public_key())
			.serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
			.not_valid_after(now + datetime.timedelta(days=30))
			.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
			.sign(key, hashes.SHA256())
		)  # fmt: skip
		return key, cert

	def leaf(issuer_key, issuer_cert, not_before, not_after) -> bytes:
		key = ec.generate_private_key(ec.SECP256R1())
		cert = (
			x509.CertificateBuilder().subject_name(name("kafka-node")).issuer_name(issuer_cert.subject)
			.public_key(key.public_key()).serial_number(x509.random_serial_number())
			.not_valid_before(not_before).not_valid_after(not_after)
			.add_extension(x509.SubjectAlternativeName(
				[x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
			.add_extension(x509.ExtendedKeyUsage(
				[ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
			.sign(issuer_key, hashes.SHA256())
		)  # fmt: skip
		pem_key = key.private_bytes(
			serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
		)
		return (
			pem_key
			+ cert.public_bytes(serialization.Encoding.PEM)
			+ issuer_cert.public_bytes(serialization.Encoding.PEM)
		)

	ca_key, ca_cert = ca("Spine test CA")
	_, other_cert = ca("Some other CA")
	paths = Certificates(
		folder / "ca.pem", folder / "node.pem", folder / "expired.pem", folder / "other-ca.pem"
	)
	paths.ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
	paths.other_ca.write_bytes(other_cert.public_bytes(serialization.Encoding.PEM))
	paths.node.write_bytes(
		leaf(ca_key, ca_cert, now - datetime.timedelta(days=1), now + datetime.timedelta(days=30))
	)
	paths.expired.write_bytes(
		leaf(ca_key, ca_cert, now - datetime.timedelta(days=30), now - datetime.timedelta(days=1))
	)
	return paths


class SecureKraftCluster(KraftCluster):
	"""``KraftCluster`` with TLS, SASL/SCRAM and ACLs (see the module's docstring).

	``users`` are SCRAM users ``{name: password}`` made at format time, besides ``admin``.
	``client_conf(user)`` is what a librdkafka client (a site's kafka block) needs to connect.
	"""

	def __init__(self, nodes: int = 1, *, users: dict[str, str] | None = None, **kw: Any):
		super().__init__(nodes, **kw)
		self.users = {ADMIN[0]: ADMIN[1], **(users or {})}
		self.certs = make_certificates(self.data_dir / "certs")
		self.expired_port = free_port()
		jaas = (
			"org.apache.kafka.common.security.scram.ScramLoginModule required "
			f'username="{ADMIN[0]}" password="{ADMIN[1]}";'
		)
		for n in self.nodes:
			listeners = f"CLIENT://127.0.0.1:{n.port},CONTROLLER://127.0.0.1:{n.controller_port}"
			advertised = f"CLIENT://127.0.0.1:{n.port}"
			if n.node_id == 1:
				listeners += f",EXPIRED://127.0.0.1:{self.expired_port}"
				advertised += f",EXPIRED://127.0.0.1:{self.expired_port}"
			n.props.update({
				"listeners": listeners,
				"advertised.listeners": advertised,
				"inter.broker.listener.name": "CLIENT",
				"listener.security.protocol.map": "CLIENT:SASL_SSL,CONTROLLER:SSL,EXPIRED:SASL_SSL",
				"sasl.enabled.mechanisms": MECHANISM,
				"sasl.mechanism.inter.broker.protocol": MECHANISM,
				"listener.name.client.scram-sha-512.sasl.jaas.config": jaas,
				"listener.name.expired.scram-sha-512.sasl.jaas.config": jaas,
				"ssl.keystore.type": "PEM",
				"ssl.keystore.location": str(self.certs.node),
				"ssl.truststore.type": "PEM",
				"ssl.truststore.location": str(self.certs.ca),
				"listener.name.controller.ssl.client.auth": "required",
				"listener.name.expired.ssl.keystore.location": str(self.certs.expired),
				"listener.name.expired.ssl.keystore.type": "PEM",
				"authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
				"allow.everyone.if.no.acl.found": "false",
				"super.users": f"User:{ADMIN[0]};{NODE_PRINCIPAL}",
			})  # fmt: skip

	def format_args(self, node: KraftNode) -> list[str]:
		return [a for user, password in self.users.items()
			for a in ("--add-scram", f"{MECHANISM}=[name={user},password={password}]")]  # fmt: skip

	def client_conf(
		self, user: str, password: str | None = None, *, port: int | None = None
	) -> dict[str, Any]:
		"""The librdkafka settings of ``user`` (its own password unless one is given): what a site's
		``kafka`` block says to connect to this cluster."""
		servers = f"127.0.0.1:{port}" if port else self.bootstrap_servers
		return {
			"bootstrap.servers": servers,
			"security.protocol": "SASL_SSL",
			"sasl.mechanisms": MECHANISM,
			"sasl.username": user,
			"sasl.password": self.users.get(user, "") if password is None else password,
			"ssl.ca.location": str(self.certs.ca),
		}

	def admin_conf(self) -> dict[str, Any]:
		return self.client_conf(ADMIN[0])

	def describe(self) -> str:
		return super().describe() + " with SASL_SSL (SCRAM-SHA-512) and ACLs"
