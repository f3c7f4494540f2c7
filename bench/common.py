"""What the edge and instr suites share: the load (route, body, the stub's
answer), ports, nginx as stub and as proxy, the certificate, and the
command line of rampart-edge under test."""

import json
import socket
import subprocess
import sys
import time

# The validated route under load. The stub answers what the core would, so
# rampart-edge checks a real answer against the route's response type.
ORG = "0192f0c4-8c3e-7a6b-9a8b-0123456789ab"
ROUTE = f"/api/v1/orgs/{ORG}/users"
# 211 bytes, as the issue asks: a name (1-64 characters, no control
# characters) and an email address, both checked by the edge.
BODY = json.dumps({"name": "Benchmark User " + "x" * 49, "email": "benchmark.user." + "y" * 40 + "@" + "z" * 54 + ".example.com"})
assert len(BODY) == 211, len(BODY)
STUB_ANSWER = json.dumps(
    {"id": "0192f0c4-8c3e-7a6b-9a8b-0123456789ac", "org_id": ORG, "name": "Benchmark User",
     "email": "benchmark.user@example.com", "disabled": False, "created_at": "2026-01-01T00:00:00Z"}
)


def die(msg):
    print(f"bench: {msg}", file=sys.stderr)
    sys.exit(2)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, limit=20.0):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    die(f"nothing listening on 127.0.0.1:{port} after {limit}s")


def self_signed(cert_dir):
    """A P-256 certificate for localhost and 127.0.0.1 in `cert_dir`
    (cert.pem, key.pem), where rampart-edge's state directory keeps it."""
    cert_dir.mkdir(parents=True)
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", str(cert_dir / "key.pem"), "-out", str(cert_dir / "cert.pem"), "-days", "2",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )


def edge_command(release, tmp, stub_port, https_port, http_port):
    """rampart-edge in front of the stub, its state (and certificate) in
    tmp/edge, with the login throttle out of the way."""
    secret = tmp / "secret"
    secret.write_text("ab" * 32)
    return [str(release / "rampart-edge"), "--state-dir", str(tmp / "edge"), "--origin-secret-file", str(secret),
            "--core-addr", f"127.0.0.1:{stub_port}", "--https-addr", f"127.0.0.1:{https_port}",
            "--http-addr", f"127.0.0.1:{http_port}", "--login-attempts-per-minute", "1000000"]


def nginx_conf(prefix, body):
    (prefix / "logs").mkdir(parents=True, exist_ok=True)
    conf = prefix / "nginx.conf"
    conf.write_text(
        "worker_processes auto;\n"
        f"pid {prefix}/nginx.pid;\n"
        "error_log stderr error;\n"
        "events { worker_connections 4096; }\n"
        "http {\n"
        "  access_log off;\n"
        f"  client_body_temp_path {prefix}/body; proxy_temp_path {prefix}/proxy;\n"
        f"  fastcgi_temp_path {prefix}/fcgi; uwsgi_temp_path {prefix}/uwsgi; scgi_temp_path {prefix}/scgi;\n"
        f"{body}\n"
        "}\n"
    )
    return conf


def stub_body(port):
    """The stub backend: nginx answering every request with STUB_ANSWER."""
    answer = STUB_ANSWER.replace("'", "\\'")
    return (f"  server {{ listen 127.0.0.1:{port}; keepalive_requests 1000000;\n"
            f"    location / {{ default_type application/json; return 201 '{answer}'; }} }}")


def proxy_body(port, stub_port, cert_dir, access_log=None):
    """nginx as the TLS 1.3 reverse proxy in front of the stub; with
    `access_log` (a path), logging each request there as nginx does by
    default (the `combined` format, one `write` per request)."""
    log = f"    access_log {access_log};\n" if access_log else ""
    return (f"  upstream stub {{ server 127.0.0.1:{stub_port}; keepalive 256; }}\n"
            f"  server {{ listen 127.0.0.1:{port} ssl http2;\n{log}"
            f"    ssl_certificate {cert_dir}/cert.pem; ssl_certificate_key {cert_dir}/key.pem;\n"
            "    ssl_protocols TLSv1.3; keepalive_requests 1000000; server_tokens off;\n"
            "    location / { proxy_pass http://stub; proxy_http_version 1.1;\n"
            '      proxy_set_header Connection ""; } }')


def nginx_command(prefix, body, single=False):
    """nginx with `body` as its http block's servers; `single`: one process
    and no master, for a profiler to follow the process that works."""
    conf = nginx_conf(prefix, body)
    directives = "daemon off; master_process off;" if single else "daemon off;"
    return ["nginx", "-c", str(conf), "-p", str(prefix), "-g", directives]


def start_nginx(prefix, body):
    return subprocess.Popen(nginx_command(prefix, body))
