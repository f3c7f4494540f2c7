#!/usr/bin/env bash
# Prepares a host for rampart.service (`rampart serve` as root, which
# separates privileges itself): the three system users, the data directory
# with its owners and modes, the origin secret, the unit, the tun module at
# boot, and (on an SELinux host) the policy module. Safe to run again.
# Run as root.
#
# The unit makes /etc read-only (ProtectSystem=strict), so the users must
# exist before the first start: this script creates them, as
# `rampart install` would.
#
#   dist/install.sh [--bin-dir DIR]   # DIR: where rampart, rampart-core,
#                                     # rampart-edge, rampart-tunnel were built
#   systemctl enable --now rampart
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
data=/var/lib/rampart
prefix=/usr/local/bin
bin_dir=
while [ $# -gt 0 ]; do
  case $1 in
    --bin-dir) bin_dir=$2; shift 2 ;;
    *) echo "usage: $0 [--bin-dir DIR]" >&2; exit 64 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "$0: run as root" >&2; exit 1; }

# One user per process; none has a shell or a home. Same flags as
# `rampart install` (cli/src/privsep.rs).
for user in rampart-edge rampart-core rampart-tunnel; do
  if ! getent passwd "$user" >/dev/null; then
    useradd --system --user-group --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin "$user"
  fi
done

# The layout `rampart serve` enforces at every start (cli/src/privsep.rs),
# made here because the supervisor holds no CAP_DAC_OVERRIDE: it cannot
# create origin-secret or edge/ in a directory rampart-core owns.
#
# /var/lib/rampart        rampart-core 0711  the core creates host-key and
#                                            setup-token here; others may
#                                            only pass through
#   core/                 rampart-core 0700  the database
#   edge/                 rampart-edge 0700  certificate, key, ACME state
#   host-key              rampart-core 0600  (made by the core on first start)
#   setup-token           rampart-core 0600  (made by the core, removed once used)
#   origin-secret         root 0600          read only by the supervisor,
#                                            which hands it to edge and core
#                                            on their standard input
install -d -o rampart-core -g rampart-core -m 0711 "$data"
install -d -o rampart-core -g rampart-core -m 0700 "$data/core"
install -d -o rampart-edge -g rampart-edge -m 0700 "$data/edge"
# 32 random bytes as 64 hex digits, the format `rampart serve` accepts.
if [ ! -s "$data/origin-secret" ]; then
  tmp=$(mktemp "$data/origin-secret.XXXXXX")
  head -c 32 /dev/urandom | od -An -v -tx1 | tr -d ' \n' >"$tmp"
  mv "$tmp" "$data/origin-secret"
fi
# An older install left it rampart-core:rampart-edge 0440.
chown root:root "$data/origin-secret"
chmod 0600 "$data/origin-secret"
for f in host-key setup-token; do
  if [ -e "$data/$f" ]; then
    chown rampart-core:rampart-core "$data/$f"
    chmod 0600 "$data/$f"
  fi
done

if [ -n "$bin_dir" ]; then
  for b in rampart rampart-core rampart-edge rampart-tunnel; do
    if [ -f "$bin_dir/$b" ]; then
      install -m 0755 -o root -g root "$bin_dir/$b" "$prefix/$b"
    else
      echo "note: $bin_dir/$b not found, not installed" >&2
    fi
  done
fi

# The tunnels open /dev/net/tun; the unit may not load modules.
echo tun >/etc/modules-load.d/rampart.conf
modprobe tun 2>/dev/null || true

# The per-process units of older versions (rampart-core.service,
# rampart-edge.service, rampart.target) gave edge and core capabilities
# of their own; rampart.service replaces them.
for old in rampart.target rampart-edge.service rampart-core.service; do
  if [ -f "/etc/systemd/system/$old" ]; then
    if [ -d /run/systemd/system ]; then
      systemctl disable --now "$old" 2>/dev/null || true
    fi
    rm -f "/etc/systemd/system/$old"
  fi
done
install -m 0644 "$here"/systemd/rampart.service /etc/systemd/system/
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload
fi

if command -v selinuxenabled >/dev/null 2>&1 && selinuxenabled; then
  "$here/../selinux/install"
fi
echo "done: systemctl enable --now rampart"
