#!/usr/bin/env bash
# Prepares a host for Rampart's systemd units: the three system users, the
# data directory with its owners and modes, the origin secret, the units,
# the tun module at boot, and (on an SELinux host) the policy module.
# Safe to run again. Run as root.
#
#   dist/install.sh [--bin-dir DIR]   # DIR: where rampart, rampart-core,
#                                     # rampart-edge, rampart-tunnel were built
#   systemctl enable --now rampart.target
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

# One user per process; none has a shell or a home.
for user in rampart-edge rampart-core rampart-tunnel; do
  if ! getent passwd "$user" >/dev/null; then
    useradd --system --user-group --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin "$user"
  fi
done

# /var/lib/rampart        rampart-core 0711  the core creates host-key and
#                                            setup-token here; others may
#                                            only pass through
#   core/                 rampart-core 0700  the database
#   edge/                 rampart-edge 0700  certificate, key, ACME state
#   host-key              rampart-core 0600  (made by the core on first start)
#   setup-token           rampart-core 0600  (made by the core, removed once used)
#   origin-secret         rampart-core:rampart-edge 0440  read by both
install -d -o rampart-core -g rampart-core -m 0711 "$data"
install -d -o rampart-core -g rampart-core -m 0700 "$data/core"
install -d -o rampart-edge -g rampart-edge -m 0700 "$data/edge"
if [ ! -s "$data/origin-secret" ]; then
  tmp=$(mktemp "$data/origin-secret.XXXXXX")
  head -c 32 /dev/urandom | od -An -v -tx1 | tr -d ' \n' >"$tmp"
  mv "$tmp" "$data/origin-secret"
fi
chown rampart-core:rampart-edge "$data/origin-secret"
chmod 0440 "$data/origin-secret"
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

# The tunnels open /dev/net/tun; the core's unit may not load modules.
echo tun >/etc/modules-load.d/rampart.conf
modprobe tun 2>/dev/null || true

install -m 0644 "$here"/systemd/rampart-core.service "$here"/systemd/rampart-edge.service \
  "$here"/systemd/rampart.target /etc/systemd/system/
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload
fi

if command -v selinuxenabled >/dev/null 2>&1 && selinuxenabled; then
  "$here/../selinux/install"
fi
echo "done: systemctl enable --now rampart.target"
