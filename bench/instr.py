"""The `instr` suite: instructions per request in the proxy's own code.

The edge suite's rates move with this host's speed (±10-20 % from one
minute to the next), so a change worth a few per cent cannot be seen in
them. Instructions can: callgrind counts every instruction a process runs
in user space, the same count for the same binary and inputs whatever else
the machine is doing. Kernel work (the sockets, the wake-ups) is not
counted, so this complements the edge suite; it does not replace it.

rampart-edge and nginx each run under callgrind, one worker, in front of
the same stub as in the edge suite, and take the same HTTP/1.1 load
(h2load --h1, 64 keep-alive connections, the validated POST). Each is
measured twice, over a short and a long load, and the difference divided
by the difference in requests: the TLS handshakes and start-up of each load
cancel out, leaving the steady cost of one request.
"""

import os
import re
import subprocess
import time
from pathlib import Path

from common import BODY, ROUTE, edge_command, free_port, nginx_command, proxy_body, self_signed, start_nginx, \
    stub_body, wait_port

CONNECTIONS = 64
# valgrind runs a program some 50 times slower; every step is bounded.
LOAD_LIMIT_S = 600


def needs():
    return {"valgrind": "valgrind", "nginx": "nginx", "h2load": "nghttp2-client", "openssl": "openssl"}


def _totals(path):
    """The instruction total of one callgrind dump."""
    for line in Path(path).read_text().splitlines():
        if line.startswith("totals:"):
            return int(line.split()[1])
    raise RuntimeError(f"{path}: no totals line")


def _groups(path):
    """Instructions by component (crate, libc, ...) in one callgrind dump of
    a binary with debug information (rampart-edge)."""
    out = subprocess.run(["callgrind_annotate", "--threshold=100", "--inclusive=no", str(path)],
                         capture_output=True, text=True, check=True).stdout
    total = _totals(path)
    groups = {}
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+) \(\s*[\d.]+%\)\s+(\S+?):(.*)", line)
        if not m or "PROGRAM TOTALS" in line:
            continue
        count, file, function = int(m.group(1).replace(",", "")), m.group(2), m.group(3)
        # Frames that never return (a thread's entry) are listed with their
        # whole thread's cost; no function's own share can be that large.
        if count > total // 2:
            continue
        crate = re.search(r"/registry/src/[^/]+/([^/]+?)-\d[^/]*/", file)
        if crate:
            key = crate.group(1)
        elif "/rustc/" in file:
            # The standard library inlined into a crate's function: count it
            # with that crate (`hyper::proto::...` -> hyper).
            owner = re.match(r"\s*<?(?:<[^>]*>::)?(?:&(?:mut )?)?([a-z_][a-z0-9_]*)::", function)
            key = (owner.group(1).replace("_", "-") if owner else "rust std")
            key = "rust std" if key in ("core", "alloc", "std") else key
        elif file.startswith("./"):
            key = "libc"
        elif "/work/" in file or "/src/" in file:
            key = file.split("/src/")[0].rsplit("/", 1)[-1] or "own"
        else:
            key = "other"
        groups[key] = groups.get(key, 0) + count
    return groups


def _load(url, body_file, requests):
    """Sends `requests` POSTs over HTTP/1.1 keep-alive; all must succeed."""
    out = subprocess.run(
        ["h2load", "--h1", "-n", str(requests), "-c", str(CONNECTIONS), "-d", str(body_file),
         "-H", "Content-Type: application/json", url],
        capture_output=True, text=True, timeout=LOAD_LIMIT_S,
    ).stdout
    m = re.search(r"status codes: (\d+) 2xx", out)
    if not m or int(m.group(1)) != requests:
        raise RuntimeError(f"not every request succeeded under callgrind:\n{out}")


def _measure(name, argv, port, body_file, tmp, loads, split=True, log_level="warn"):
    """Runs `argv` (listening on `port`) under callgrind and returns its
    steady instructions per request and (with `split`) their split by
    component. `log_level` is rampart-edge's RUST_LOG: the edge suite's
    `warn` (no line per request) or the default `info` (an access line per
    request, to standard error: here a file)."""
    url = f"https://127.0.0.1:{port}{ROUTE}"
    log = open(tmp / f"{name}.valgrind.log", "w")
    proc = subprocess.Popen(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/cg.{name}.%p", *argv],
        env=dict(os.environ, RUST_LOG=log_level), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
    )
    try:
        wait_port(port, limit=120.0)
        _load(url, body_file, 500)  # warm-up: caches, pools, lazy tables
        dumps = {}
        short_n, long_n = loads
        for requests in loads:
            subprocess.run(["callgrind_control", "-z", str(proc.pid)], check=True, capture_output=True,
                           timeout=60)
            _load(url, body_file, requests)
            before = set(tmp.glob(f"cg.{name}.*"))
            subprocess.run(["callgrind_control", "-d", str(proc.pid)], check=True, capture_output=True,
                           timeout=60)
            deadline = time.monotonic() + 30
            while not (new := set(tmp.glob(f"cg.{name}.*")) - before) and time.monotonic() < deadline:
                time.sleep(0.1)
            if not new:
                raise RuntimeError(f"callgrind wrote no dump for {name}")
            dumps[requests] = max(new, key=lambda p: p.stat().st_mtime)
        per_request = (_totals(dumps[long_n]) - _totals(dumps[short_n])) / (long_n - short_n)
        result = {"instructions_per_req": round(per_request)}
        if split:
            short, long = _groups(dumps[short_n]), _groups(dumps[long_n])
            parts = {k: (long.get(k, 0) - short.get(k, 0)) / (long_n - short_n) for k in set(short) | set(long)}
            result["by_component"] = {k: round(v) for k, v in sorted(parts.items(), key=lambda kv: -kv[1])
                                      if v >= 50}
        return result
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def bench_instr(tmp, release, requests):
    """Both proxies' instructions per request, from loads of `requests` and
    a fifth of that, set up as in the edge suite (bench/common.py)."""
    loads = (requests // 5, requests)
    cert = tmp / "edge" / "tls"
    self_signed(cert)
    body_file = tmp / "body.json"
    body_file.write_text(BODY)
    stub_port, edge_port, edge_http, nginx_port = free_port(), free_port(), free_port(), free_port()
    stub = start_nginx(tmp / "stub", stub_body(stub_port))
    try:
        wait_port(stub_port)
        results = {}
        # valgrind does not know the Landlock system calls, and the edge
        # refuses to run unconfined unless told to. Confinement changes
        # no instruction on the request path (the seccomp filter runs in the
        # kernel), so the count is the confined edge's too.
        edge = edge_command(release, tmp, stub_port, edge_port, edge_http) + ["--workers", "1",
                                                                              "--danger-no-sandbox"]
        print("  instr/rampart (callgrind)", flush=True)
        results["rampart"] = _measure("rampart", edge, edge_port, body_file, tmp, loads)
        print("  instr/nginx (callgrind)", flush=True)
        nginx = nginx_command(tmp / "proxy", proxy_body(nginx_port, stub_port, cert), single=True)
        # Debian's nginx has no debug information to split by.
        results["nginx"] = _measure("nginx", nginx, nginx_port, body_file, tmp, loads, split=False)
        # Both again as shipped, with a log line per request: the edge at
        # its default level, nginx with its default access log.
        print("  instr/rampart, access log (callgrind)", flush=True)
        results["rampart_access_log"] = _measure("rampart-log", edge, edge_port, body_file, tmp, loads,
                                                 log_level="info")
        print("  instr/nginx, access log (callgrind)", flush=True)
        nginx = nginx_command(tmp / "proxy-log", proxy_body(nginx_port, stub_port, cert, tmp / "access.log"),
                              single=True)
        results["nginx_access_log"] = _measure("nginx-log", nginx, nginx_port, body_file, tmp, loads,
                                               split=False)
        results["requests"] = list(loads)
        for suffix in ("", "_access_log"):
            results["rampart_over_nginx" + suffix] = round(
                results["rampart" + suffix]["instructions_per_req"]
                / results["nginx" + suffix]["instructions_per_req"], 3)
        return results
    finally:
        stub.terminate()
        stub.wait()


def print_instr(r):
    short_n, long_n = r["requests"]
    print(f"\nInstructions per request in user space (callgrind; HTTP/1.1, {CONNECTIONS} keep-alive "
          f"connections; the difference between {long_n} and {short_n} requests; one worker)")
    for name in ("rampart", "nginx", "rampart_access_log", "nginx_access_log"):
        top = ", ".join(f"{k} {v}" for k, v in list(r[name].get("by_component", {}).items())[:10])
        label = name.replace("_access_log", ", access log")
        print(f"{label:20}{r[name]['instructions_per_req']:>8}   {top}")
    print(f"rampart/nginx: {r['rampart_over_nginx']:.2f}x the instructions without access logs, "
          f"{r['rampart_over_nginx_access_log']:.2f}x with them (kernel work not counted)")
