"""The local Hub mirror over HTTPS, with a certificate from a throwaway CA, for the CA tests.

    python tests/tls_mirror.py --root DIR --certs DIR [--host 127.0.0.1] [--port 0]

makes ``DIR/ca.pem`` (the CA) and a server certificate for ``--host`` with Debian's ``openssl``
command, then prints ``tls mirror ready at https://HOST:PORT`` once it serves, and serves until
killed. The mirror is pybridge.mirror's own server; only its listening socket is wrapped in TLS,
as the standard library's http.server documents.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import ssl
import subprocess
import sys

from pybridge.mirror.server import MirrorServer

READY_LINE = "tls mirror ready at {url}"


def make_certificates(folder: str, host: str) -> tuple:
    """(CA file, server certificate, server key) in ``folder``; the server's is for ``host``."""
    os.makedirs(folder, exist_ok=True)
    ca, ca_key = os.path.join(folder, "ca.pem"), os.path.join(folder, "ca.key")
    cert, key = os.path.join(folder, "server.pem"), os.path.join(folder, "server.key")
    csr, ext = os.path.join(folder, "server.csr"), os.path.join(folder, "server.ext")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl = ["openssl", "req", *ec, "-subj"]
    subprocess.run(
        [*openssl, "/CN=hfbridge throwaway test CA", "-x509", "-days", "2", "-keyout", ca_key,
         "-out", ca, "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        check=True, capture_output=True,
    )  # fmt: skip
    subprocess.run(
        [*openssl, f"/CN={host}", "-keyout", key, "-out", csr], check=True, capture_output=True
    )
    kind = "IP" if _is_ip(host) else "DNS"
    with open(ext, "w", encoding="utf-8") as handle:
        handle.write(
            f"subjectAltName={kind}:{host}\nbasicConstraints=CA:FALSE\n"
            "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
        )
    subprocess.run(
        ["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-set_serial", "2",
         "-days", "2", "-extfile", ext, "-out", cert],
        check=True, capture_output=True,
    )  # fmt: skip
    return ca, cert, key


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True)
    parser.add_argument("--certs", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    _, cert, key = make_certificates(args.certs, args.host)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = MirrorServer((args.host, args.port), os.path.abspath(args.root), log=sys.stderr)
    # The handshake runs in the request's thread: a client that refuses the certificate does not
    # hold up the server's accept loop.
    server.socket = context.wrap_socket(
        server.socket, server_side=True, do_handshake_on_connect=False
    )
    host, port = server.server_address[:2]
    print(READY_LINE.format(url=f"https://{host}:{port}"), flush=True)
    server.serve_forever(poll_interval=0.2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
