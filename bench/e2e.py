"""The end-to-end suite of bench/run: requests through rampart-edge and
rampart-core into SQLite, as an API client makes them.

- create: POST /api/v1/orgs/{id}/users (each a unique name, one transaction
  with its audit entry) with wrk at 16 connections;
- list: GET /api/v1/orgs/{id}/users?limit=100 (first page), a search whose
  first 100 matches come early ("user 99"), and one that matches nobody
  (every user of the organization tested), at 10k and at 1M users in the
  organization;
- create again, into that organization once it holds 10k and 1M users
  (after its lists, which the new users would otherwise grow): the
  indexes a create writes are then that much bigger.

The users beyond those the create run made are written straight into the
database (same columns, ids and keys as the core writes; no audit entries),
with the core stopped, because creating a million through the API would take
most of an hour on this machine. Everything listens on 127.0.0.1.
"""

import base64
import json
import os
import signal
import sqlite3
import ssl
import subprocess
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

from tunnel import summarise  # median, min and max of each key

ROOT = Path(__file__).resolve().parent.parent
RELEASE = ROOT / "target" / "release"


def free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Instance:
    """`rampart serve` on a temporary data directory."""

    def __init__(self, data_dir, env=None):
        self.data_dir = Path(data_dir)
        self.env = {"RUST_LOG": "warn", **(env or {})}
        self.https = free_port()
        self.http = free_port()
        self.core = free_port()
        self.proc = None
        # One client TLS context for every request: making one loads the
        # system's CA store, which costs Python tens of milliseconds, and
        # the API numbers here are the server's, not that.
        self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.tls.check_hostname = False
        self.tls.verify_mode = ssl.CERT_NONE

    def start(self):
        log = open(self.data_dir.parent / "serve.log", "ab")
        self.proc = subprocess.Popen(
            [str(RELEASE / "rampart"), "serve", "--data-dir", str(self.data_dir),
             "--http-addr", f"127.0.0.1:{self.http}", "--https-addr", f"127.0.0.1:{self.https}",
             "--core-addr", f"127.0.0.1:{self.core}"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, env={**os.environ, **self.env})
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if self.request("GET", "/readyz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError("rampart did not become ready in 60 s")

    def stop(self):
        if self.proc:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)
            self.proc = None

    def request(self, method, path, body=None, token=None):
        headers = {"content-type": "application/json"} if body is not None else {}
        if token:
            headers["authorization"] = f"Bearer {token}"
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"https://127.0.0.1:{self.https}{path}", data=data, method=method,
                                     headers=headers)
        try:
            with urllib.request.urlopen(req, context=self.tls, timeout=30) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")


def bootstrap(inst):
    """First admin, then an admin API token (a bearer needs no CSRF header)."""
    token = (inst.data_dir / "setup-token").read_text().strip()
    status, _ = inst.request("POST", "/api/v1/setup",
                             {"token": token, "username": "bench", "password": "correct-horse-battery-9"})
    if status != 201:
        raise RuntimeError(f"setup: {status}")
    # Log in through the API to mint the token; a cookie jar is overkill for
    # one call, so use the login's session directly.
    import http.cookiejar

    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar),
                                         urllib.request.HTTPSHandler(context=inst.tls))

    def call(method, path, body, csrf=None):
        headers = {"content-type": "application/json"}
        if csrf:
            headers["x-csrf-token"] = csrf
        req = urllib.request.Request(f"https://localhost:{inst.https}{path}", json.dumps(body).encode(),
                                     method=method, headers=headers)
        with opener.open(req, timeout=30) as r:
            return json.loads(r.read())

    # __Host- cookies need a host name, not an IP: resolve localhost.
    login = call("POST", "/api/v1/auth/login", {"username": "bench", "password": "correct-horse-battery-9"})
    made = call("POST", "/api/v1/tokens", {"name": "bench", "role": "admin"}, csrf=login["csrf_token"])
    bearer = made["token"]
    orgs = []
    for name in ("Create bench", "List bench"):
        status, org = inst.request("POST", "/api/v1/orgs", {"name": name}, token=bearer)
        if status != 201:
            raise RuntimeError(f"create org: {status} {org}")
        orgs.append(org["id"])
    return bearer, orgs


def wrk(url, token, seconds, lua_body=None, connections=16):
    script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    lines = [f'wrk.headers["authorization"] = "Bearer {token}"']
    if lua_body:
        lines.append(lua_body)
    lines.append("""
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %f %f %f %d\\n", summary.requests, summary.duration / 1e6,
    latency:percentile(50) / 1e3, latency:percentile(99) / 1e3,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end""")
    script.write("\n".join(lines))
    script.close()
    out = subprocess.run(["wrk", "-t", "2", "-c", str(connections), "-d", f"{seconds}s", "--timeout", "10s",
                          "-s", script.name, url], capture_output=True, text=True, timeout=seconds + 60)
    out = out.stdout + out.stderr
    os.unlink(script.name)
    for l in out.splitlines():
        if l.startswith("first non-201"):
            print("  " + l[:300])
    line = next((l for l in out.splitlines() if l.startswith("RESULT")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no result: {out[-2000:]}")
    n, dur, p50, p99, errors = line.split()[1:]
    return {"req_s": int(n) / float(dur), "p50_ms": float(p50), "p99_ms": float(p99), "errors": int(errors)}


CREATE_LUA = """
local threads = 0
setup = function(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
counter = 0
statuses = {}
request = function()
  counter = counter + 1
  local body = string.format('{"name":"Bench user %d-%d-%d"}', tid, counter, os.time())
  local headers = {["content-type"] = "application/json", ["authorization"] = wrk.headers["authorization"]}
  return wrk.format("POST", nil, headers, body)
end
response = function(status, headers, body)
  if status ~= 201 and not reported then
    reported = true
    io.write("first non-201: " .. status .. " " .. body .. "\\n")
  end
end
"""


def uuid7():
    ms = int(time.time() * 1000)
    r = os.urandom(10)
    raw = ms.to_bytes(6, "big") + bytes([0x70 | (r[0] & 0x0F), r[1], 0x80 | (r[2] & 0x3F)]) + r[3:10]
    return str(uuid.UUID(bytes=raw))


def seed_users(db_path, org_id, target):
    """Adds users until the org has `target`; returns how many were added."""
    db = sqlite3.connect(db_path, timeout=60)
    have = db.execute("SELECT count(*) FROM users WHERE org_id = ?", (org_id,)).fetchone()[0]
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
    added = 0
    while have + added < target:
        n = min(50_000, target - have - added)
        rows = []
        for i in range(n):
            name = f"Seeded user {have + added + i}"
            email = f"seeded.user.{have + added + i}@example.com"
            rows.append((uuid7(), org_id, name, name.lower(), email, email, 0, now))
        db.executemany("INSERT INTO users (id, org_id, name, name_key, email, email_key, disabled, created_at) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        db.commit()
        added += n
    db.close()
    return added


def bench_e2e(runs, seconds, sizes=(10_000, 1_000_000)):
    results = {}
    with tempfile.TemporaryDirectory(prefix="rampart-bench-e2e-") as tmp:
        # As root, `rampart serve` runs the core and the edge as their own
        # users, which must be able to reach the data directory inside.
        os.chmod(tmp, 0o711)
        inst = Instance(Path(tmp) / "data")
        inst.start()
        try:
            # Users are created in one org and listed in another, so that the
            # creates do not add to the sizes the lists are measured at.
            token, (create_org, org) = bootstrap(inst)
            created = f"https://127.0.0.1:{inst.https}/api/v1/orgs/{create_org}/users"
            base = f"https://127.0.0.1:{inst.https}/api/v1/orgs/{org}/users"
            creates = [wrk(created, token, seconds, CREATE_LUA) for _ in range(runs)]
            results["create_user"] = summarise(creates)
            print(f"  create user: {results['create_user']['req_s']:.0f} req/s, "
                  f"p99 {results['create_user']['p99_ms']:.1f} ms")
            for size in sizes:
                inst.stop()
                t0 = time.time()
                added = seed_users(inst.data_dir / "core" / "rampart.db", org, size)
                print(f"  seeded {added} users in {time.time() - t0:.1f} s (the listed org now has {size})")
                inst.start()
                first = summarise([wrk(base + "?limit=100", token, seconds) for _ in range(runs)])
                search = summarise([wrk(base + "?limit=100&search=user%2099", token, seconds) for _ in range(runs)])
                # The worst case: a term no user has, so every user of the
                # org is tested before the page comes back empty.
                miss = summarise([wrk(base + "?limit=100&search=qqqq", token, seconds) for _ in range(runs)])
                results[f"list_{size}"] = first
                results[f"search_{size}"] = search
                results[f"search_miss_{size}"] = miss
                print(f"  {size} users: list {first['req_s']:.0f} req/s p99 {first['p99_ms']:.1f} ms; "
                      f"search {search['req_s']:.0f} req/s p99 {search['p99_ms']:.1f} ms; "
                      f"a search matching nobody {miss['req_s']:.1f} req/s p99 {miss['p99_ms']:.1f} ms")
                # Creates into the org of this size, after its lists (the
                # next size's seeding tops the org up to that size).
                grown = summarise([wrk(base, token, seconds, CREATE_LUA) for _ in range(runs)])
                results[f"create_user_{size}"] = grown
                print(f"  create user with {size} in the org: {grown['req_s']:.0f} req/s, "
                      f"p99 {grown['p99_ms']:.1f} ms")
        finally:
            inst.stop()
    return results


def print_e2e(results):
    print("\ne2e (edge + core + SQLite, wrk 16 connections; median of runs, min-max)")
    print(f"{'':22}{'req/s':>22}{'p50 ms':>12}{'p99 ms':>22}{'errors':>8}")
    def rate(x):
        return f"{x:.0f}" if x >= 100 else f"{x:.1f}"

    for name, r in results.items():
        print(f"{name:22}{rate(r['req_s']):>10} ({rate(r['req_s_min'])}-{rate(r['req_s_max'])})".ljust(44)
              + f"{r['p50_ms']:>10.2f}{r['p99_ms']:>10.2f} ({r['p99_ms_min']:.1f}-{r['p99_ms_max']:.1f})"
              + f"{r['errors']:>8.0f}")


def logged(log, message, field):
    """The numbers `field=N` on the log lines that contain `message`."""
    out = []
    for line in log.splitlines():
        if message in line and f"{field}=" in line:
            value = line.split(f"{field}=", 1)[1].split()[0]
            if value.isdigit():
                out.append(int(value))
    return out


def bench_api_peers(devices=2000, changes=100):
    """API change -> peer live in the tunnel, with `devices` peers present.

    `rampart serve` runs a VPN server's tunnel in a namespace of its own;
    `devices` devices are created through the API and attached, then single
    devices are created and deleted `changes` times. The core logs, for each
    change it hands the tunnel, the time from the API request to the
    tunnel's acknowledgement (`live_after_us`); this reads those.
    """
    ns = f"rpb-api{os.getpid() % 100000}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
    try:
        with tempfile.TemporaryDirectory(prefix="rampart-bench-api-") as tmp:
            os.chmod(tmp, 0o711)
            inst = Instance(Path(tmp) / "data",
                            {"RAMPART_TUNNEL_NETNS": ns, "RUST_LOG": "warn,core_api::tunnels=info"})
            log = Path(tmp) / "serve.log"
            inst.start()
            try:
                token, (org, _) = bootstrap(inst)

                def made(path, body):
                    status, answer = inst.request("POST", path, body, token=token)
                    if status != 201:
                        raise RuntimeError(f"POST {path}: {status} {answer}")
                    return answer["id"]

                server = made("/api/v1/servers", {"name": "bench", "network": "198.18.0.0/15", "port": 51820})
                user = made(f"/api/v1/orgs/{org}/users", {"name": "Many devices"})
                t0 = time.time()
                for n in range(devices):
                    key = base64.b64encode(os.urandom(32)).decode()
                    made(f"/api/v1/users/{user}/devices", {"name": f"d{n}", "public_key": key})
                created_s = time.time() - t0
                for method, path in (("POST", f"/api/v1/servers/{server}/start"),
                                     ("PUT", f"/api/v1/servers/{server}/orgs/{org}")):
                    status, answer = inst.request(method, path, token=token)
                    if status != 200:
                        raise RuntimeError(f"{method} {path}: {status} {answer}")
                t0 = time.time()
                while sum(logged(log.read_text(), "tunnel peers changed", "upserted")) < devices:
                    if time.time() - t0 > 60:
                        raise RuntimeError("the attached devices did not all reach the tunnel in 60 s")
                    time.sleep(0.02)
                attach_s = time.time() - t0
                before = len(logged(log.read_text(), "tunnel peers changed", "live_after_us"))
                for n in range(changes):
                    device = made(f"/api/v1/users/{user}/devices", {"name": f"x{n}"})
                    status, _ = inst.request("DELETE", f"/api/v1/devices/{device}", token=token)
                    if status != 204:
                        raise RuntimeError(f"delete device: {status}")
                t0 = time.time()
                while True:
                    single = logged(log.read_text(), "tunnel peers changed", "live_after_us")[before:]
                    if len(single) >= 2 * changes:
                        break
                    if time.time() - t0 > 10:
                        raise RuntimeError(f"only {len(single)} of {2 * changes} changes logged")
                    time.sleep(0.02)
            finally:
                inst.stop()
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
    single.sort()
    return {
        "api_devices": devices,
        "api_devices_created_per_s": devices / created_s,
        "api_attach_all_live_s": attach_s,
        "api_change_live_p50_ms": single[len(single) // 2] / 1000,
        "api_change_live_p99_ms": single[max(0, int(len(single) * 0.99) - 1)] / 1000,
        "api_change_live_max_ms": single[-1] / 1000,
    }


def print_api_peers(r):
    print(f"  API change -> peer live, {r['api_devices']} devices present: "
          f"p50 {r['api_change_live_p50_ms']:.2f} ms, p99 {r['api_change_live_p99_ms']:.2f} ms, "
          f"max {r['api_change_live_max_ms']:.2f} ms; all {r['api_devices']} live {r['api_attach_all_live_s']:.2f} s "
          "after the attach answered")
    print(f"  {r['api_devices']} devices created one after another through the API (a TLS connection each): "
          f"{r['api_devices_created_per_s']:.0f}/s")
