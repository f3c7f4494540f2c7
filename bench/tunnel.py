"""The tunnel and scale suites of bench/run.

tunnel: iperf3 between two network namespaces over one veth link: plain veth,
then through rampart-tunnel, wireguard-go and boringtun (each at both ends),
TCP with 1 and 4 streams and a 64-byte UDP packet rate, with the CPU the
tunnel processes used. Addresses: 198.18.2.0/30 (veth), 198.18.200.0/24
(inside the tunnel).

Environment: BENCH_TUNNELS=veth,rampart,... measures only those;
BENCH_RAMPART_VARIANTS=label=/path/to/rampart-tunnel,... adds other builds of
rampart-tunnel as contenders of the same run (to compare one change against
the one before it under the same load).

scale: one rampart-tunnel loads 100k peers over its control socket; memory
per peer (RSS delta) and load time, then the round trip of single-peer
changes (what the core waits for before a change is live).
"""

import base64
import json
import os
import shutil
import socket
import statistics
import struct
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TUNNEL_BIN = ROOT / "target" / "release" / "rampart-tunnel"
A_VETH, B_VETH = "198.18.2.2", "198.18.2.1"
A_TUN, B_TUN = "198.18.200.2", "198.18.200.1"
PORT = 51820
# The boringtun-cli the harness installs when there is none (`bench/run`).
BORINGTUN_VERSION = "0.7.1"


def boringtun_path():
    """boringtun-cli on PATH or in cargo's bin directory, or None."""
    return shutil.which("boringtun-cli") or shutil.which(os.path.expanduser("~/.cargo/bin/boringtun-cli"))


def sh(*args, check=True, **kw):
    return subprocess.run(args, check=check, capture_output=True, text=True, **kw)


def wg_keypair():
    private = sh("wg", "genkey").stdout.strip()
    public = subprocess.run(["wg", "pubkey"], input=private, capture_output=True, text=True, check=True).stdout.strip()
    return private, public


def proc_cpu(pid):
    """utime + stime of a process in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Control:
    """The core's side of rampart-tunnel's control socket (schemas::tunnel)."""

    def __init__(self, netns, extra=(), binary=TUNNEL_BIN):
        ours, theirs = socket.socketpair()
        args = [str(binary), "--netns", netns, *extra]
        self.proc = subprocess.Popen(args, stdin=theirs.fileno(), stderr=subprocess.DEVNULL)
        theirs.close()
        ours.settimeout(60)
        self.sock, self.next_id = ours, 1

    def request(self, command):
        body = json.dumps({"id": self.next_id, "command": command}).encode()
        self.next_id += 1
        self.sock.sendall(struct.pack(">I", len(body)) + body)
        header = self._read(4)
        return json.loads(self._read(struct.unpack(">I", header)[0]))

    def _read(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise RuntimeError("rampart-tunnel closed its control socket")
            buf += chunk
        return buf

    def setup(self, private, address, port=PORT):
        reply = self.request({"op": "setup", "interface": "rpb0", "private_key": private, "listen_port": port,
                              "addresses": [{"address": address, "prefix_len": 24}], "mtu": 1420,
                              "socket_buffer": 8 << 20})
        if reply.get("kind") != "ready":
            raise RuntimeError(f"setup failed: {reply}")

    def close(self):
        self.proc.kill()
        self.proc.wait()


class Lab:
    """Two namespaces, a and b, on one veth link; removed on exit."""

    def __enter__(self):
        tag = f"{os.getpid() % 100000}"
        self.a, self.b = f"rpb-a{tag}", f"rpb-b{tag}"
        for ns in (self.a, self.b):
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "link", "add", "va", "netns", self.a, "type", "veth", "peer", "name", "vb", "netns", self.b)
        sh("ip", "-n", self.a, "addr", "add", f"{A_VETH}/30", "dev", "va")
        sh("ip", "-n", self.b, "addr", "add", f"{B_VETH}/30", "dev", "vb")
        sh("ip", "-n", self.a, "link", "set", "va", "up")
        sh("ip", "-n", self.b, "link", "set", "vb", "up")
        self.procs = []
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            p.kill()
            p.wait()
        for ns in (self.a, self.b):
            sh("ip", "netns", "del", ns, check=False)

    def exec(self, ns, *args, **kw):
        return sh("ip", "netns", "exec", ns, *args, **kw)


def start_rampart(lab, binary=TUNNEL_BIN):
    (pa, ka), (pb, kb) = wg_keypair(), wg_keypair()
    a, b = Control(lab.a, binary=binary), Control(lab.b, binary=binary)
    a.setup(pa, A_TUN, port=PORT + 1)
    b.setup(pb, B_TUN)
    a.request({"op": "upsert_peers", "peers": [{"public_key": kb, "allowed_ips": ["198.18.200.0/24"],
                                                  "endpoint": f"{B_VETH}:{PORT}"}]})
    b.request({"op": "upsert_peers", "peers": [{"public_key": ka, "allowed_ips": [f"{A_TUN}/32"]}]})
    lab.procs += [a.proc, b.proc]
    # Closing the control socket stops a tunnel: keep both ends alive.
    lab.controls = [a, b]
    return [a.proc.pid, b.proc.pid]


def start_userspace_wg(lab, binary, extra):
    """wireguard-go or boringtun-cli at both ends, configured with wg."""
    (pa, ka), (pb, kb) = wg_keypair(), wg_keypair()
    pids = []
    tmp = Path(tempfile.mkdtemp(prefix="rampart-bench-wg-"))
    for ns, name, private, peer, addr, peer_addr, port, endpoint in (
        (lab.a, f"wa{os.getpid() % 10000}", pa, kb, A_TUN, "198.18.200.0/24", PORT + 1, f"{B_VETH}:{PORT}"),
        (lab.b, f"wb{os.getpid() % 10000}", pb, ka, B_TUN, f"{A_TUN}/32", PORT, None),
    ):
        p = subprocess.Popen(["ip", "netns", "exec", ns, binary, *extra, name],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        lab.procs.append(p)
        pids.append(p.pid)
        deadline = time.time() + 10
        while lab.exec(ns, "ip", "link", "show", name, check=False).returncode != 0:
            if time.time() > deadline:
                raise RuntimeError(f"{binary} did not create {name}")
            time.sleep(0.05)
        key = tmp / name
        key.write_text(private)
        cmd = ["wg", "set", name, "listen-port", str(port), "private-key", str(key), "peer", peer,
               "allowed-ips", peer_addr]
        if endpoint:
            cmd += ["endpoint", endpoint]
        lab.exec(ns, *cmd)
        lab.exec(ns, "ip", "addr", "add", f"{addr}/24", "dev", name)
        lab.exec(ns, "ip", "link", "set", name, "mtu", "1420", "up")
    shutil.rmtree(tmp, ignore_errors=True)
    return pids


def iperf(lab, args, seconds):
    server = subprocess.Popen(["ip", "netns", "exec", lab.b, "iperf3", "-s", "-1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    target = B_TUN if lab.tunnelled else B_VETH
    try:
        out = lab.exec(lab.a, "timeout", str(seconds + 15), "iperf3", "-c", target, "-t", str(seconds), "-J", *args,
                       check=False).stdout
    finally:
        server.wait(timeout=20)
    return json.loads(out)


def measure(lab, pids, seconds):
    """One run of the three tests; CPU% is summed over the tunnel processes."""
    out = {}
    for key, args in (("tcp1_mbps", ["-P", "1"]), ("tcp4_mbps", ["-P", "4"]),
                      ("udp64_kpps", ["-u", "-l", "64", "-b", "0"])):
        cpu0, t0 = sum(proc_cpu(p) for p in pids), time.time()
        result = iperf(lab, args, seconds)
        cpu = (sum(proc_cpu(p) for p in pids) - cpu0) / (time.time() - t0) * 100 if pids else 0.0
        end = result.get("end", {})
        if key.startswith("udp"):
            s = end.get("sum", {})
            value = (s.get("packets", 0) - s.get("lost_packets", 0)) / max(s.get("seconds", 1), 1e-9) / 1e3
        else:
            value = end.get("sum_received", {}).get("bits_per_second", 0) / 1e6
        out[key] = value
        out[key.split("_")[0] + "_cpu_pct"] = cpu
    return out


def bench_tunnel(runs, seconds):
    contenders = {"veth": None, "rampart": start_rampart,
                  "wireguard-go": lambda lab: start_userspace_wg(lab, "wireguard-go", ["-f"])}
    boringtun = boringtun_path()
    if boringtun:
        contenders["boringtun"] = lambda lab: start_userspace_wg(
            lab, boringtun, ["-f", "--disable-drop-privileges", "--threads", str(os.cpu_count() or 2)])
    else:
        print("  boringtun-cli not found (cargo install boringtun-cli); its column stays empty")
    for variant in filter(None, os.environ.get("BENCH_RAMPART_VARIANTS", "").split(",")):
        label, path = variant.split("=", 1)
        contenders[label] = lambda lab, path=path: start_rampart(lab, binary=path)
    only = os.environ.get("BENCH_TUNNELS")
    if only:
        contenders = {k: v for k, v in contenders.items() if k in only.split(",") or k.startswith("rampart")}
    results = {}
    for name, start in contenders.items():
        samples = []
        for i in range(runs):
            with Lab() as lab:
                lab.tunnelled = start is not None
                pids = start(lab) if start else []
                if start:
                    ok = lab.exec(lab.a, "ping", "-c", "1", "-W", "5", B_TUN, check=False).returncode == 0
                    if not ok:
                        raise RuntimeError(f"{name}: no ping through the tunnel")
                samples.append(measure(lab, pids, seconds))
                print(f"  {name} run {i + 1}/{runs}: " + ", ".join(f"{k}={v:.0f}" for k, v in samples[-1].items()))
        results[name] = summarise(samples)
    return results


def summarise(samples):
    out = {}
    for key in samples[0]:
        values = [s[key] for s in samples]
        out[key] = statistics.median(values)
        out[key + "_min"], out[key + "_max"] = min(values), max(values)
    return out


def print_tunnel(results):
    print("\ntunnel (iperf3 between two namespaces; median of runs, min-max)")
    cols = ["tcp1_mbps", "tcp4_mbps", "udp64_kpps", "tcp1_cpu_pct"]
    print(f"{'':14}" + "".join(f"{c:>26}" for c in cols))
    for name, r in results.items():
        cells = "".join(f"{r[c]:>10.0f} ({r[c + '_min']:.0f}-{r[c + '_max']:.0f})".rjust(26) for c in cols)
        print(f"{name:14}{cells}")


def fake_key(i):
    # Any 32 bytes are a usable X25519 public key for loading the table.
    return base64.b64encode(i.to_bytes(4, "big") + os.urandom(28)).decode()


def bench_scale(peers, changes):
    with Lab() as lab:
        private, _ = wg_keypair()
        ctl = Control(lab.b)
        lab.procs.append(ctl.proc)
        ctl.setup(private, B_TUN)
        base = rss_kib(ctl.proc.pid)
        batch, t0 = [], time.time()
        for i in range(peers):
            host = i + 2
            addr = f"198.{18 + (host >> 16)}.{(host >> 8) & 255}.{host & 255}/32"
            batch.append({"public_key": fake_key(i), "allowed_ips": [addr, f"2001:db8:1::{host >> 16:x}:{host & 0xffff:x}/128"]})
            if len(batch) == 1024 or i == peers - 1:
                reply = ctl.request({"op": "upsert_peers", "peers": batch})
                if reply.get("kind") != "done":
                    raise RuntimeError(f"load failed: {reply}")
                batch = []
        load_s = time.time() - t0
        loaded = rss_kib(ctl.proc.pid)
        stats = ctl.request({"op": "stats"})
        latencies = []
        for i in range(changes):
            key = fake_key(peers + i)
            t = time.perf_counter()
            ctl.request({"op": "upsert_peers", "peers": [{"public_key": key, "allowed_ips": ["198.19.255.1/32"]}]})
            ctl.request({"op": "remove_peers", "keys": [key]})
            latencies.append((time.perf_counter() - t) / 2 * 1e3)
        latencies.sort()
        return {
            "peers": stats["totals"]["peers"],
            "load_s": load_s,
            "bytes_per_peer": (loaded - base) * 1024 / peers,
            "rss_mib": loaded / 1024,
            "change_p50_ms": latencies[len(latencies) // 2],
            "change_p99_ms": latencies[int(len(latencies) * 0.99) - 1],
        }


def print_scale(r):
    print(f"\nscale (one rampart-tunnel, {r['peers']} peers)")
    print(f"  load time {r['load_s']:.2f} s, RSS {r['rss_mib']:.0f} MiB, {r['bytes_per_peer']:.0f} bytes/peer")
    print(f"  single-peer change acknowledged: p50 {r['change_p50_ms']:.3f} ms, p99 {r['change_p99_ms']:.3f} ms")
