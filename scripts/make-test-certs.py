"""Make the private CA and the certificates the test broker's TLS listener and
the TLS tests use (with trustme), in DIR (default /etc/rabbitmq/dovecote-tls).

  ca.pem                         the CA the tests trust (ssl_ca_file)
  server.pem, server.key         the broker: localhost and 127.0.0.1
  client.pem, client.key         a client certificate, CN dovecote-client (EXTERNAL)
  client-encrypted.key           the same key, encrypted with ssl_key_password
                                 "dovecote-test-passphrase"

Files are world-readable: RabbitMQ reads them as its own user, and they guard
nothing but a broker on 127.0.0.1 for tests. Does nothing if they exist.
"""

from __future__ import annotations

import pathlib
import sys

import trustme
from cryptography.hazmat.primitives import serialization

KEY_PASSWORD = b"dovecote-test-passphrase"
CLIENT_NAME = "dovecote-client"


def main(directory: str) -> int:
    folder = pathlib.Path(directory)
    if (folder / "client-encrypted.key").exists():
        return 0
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)
    ca = trustme.CA(organization_name="dovecote test CA")
    server = ca.issue_cert("localhost", "127.0.0.1", common_name="localhost")
    client = ca.issue_cert(f"{CLIENT_NAME}.invalid", common_name=CLIENT_NAME)
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    server.cert_chain_pems[0].write_to_path(str(folder / "server.pem"))
    for blob in server.cert_chain_pems[1:]:
        blob.write_to_path(str(folder / "server.pem"), append=True)
    server.private_key_pem.write_to_path(str(folder / "server.key"))
    client.cert_chain_pems[0].write_to_path(str(folder / "client.pem"))
    client.private_key_pem.write_to_path(str(folder / "client.key"))
    key = serialization.load_pem_private_key(client.private_key_pem.bytes(), password=None)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(KEY_PASSWORD))
    (folder / "client-encrypted.key").write_bytes(encrypted)
    for path in folder.iterdir():
        path.chmod(0o644)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "/etc/rabbitmq/dovecote-tls"))
