#!/usr/bin/env bash
# The hardened unit, run by a real systemd (docs/agent.md, "systemd"; not in `make test`).
#
#   sudo make agent-systemd-e2e        # or: sudo scripts/agent-systemd-e2e.sh
#
# 1. A Debian 12 (amd64) root filesystem with systemd, debootstrapped into
#    build/systemd-e2e/rootfs (kept between runs; FRESH=1 rebuilds it), booted as a container
#    with systemd-nspawn (host network: it reaches fleetd on the host's loopback).
# 2. The agent wheel installed in /opt/fleetd-agent, agent/systemd/fleetd-agent.service with
#    /etc/fleetd-agent/agent.env and a ReadWritePaths drop-in for one allowlisted
#    destination (/etc/demo-app), and an allowlisted unit to restart (demo-app.service).
# 3. `fleetd serve` on the host; `systemctl start fleetd-agent` in the container: the agent,
#    sandboxed by the unit, must enrol, register and heartbeat (GetDevice: ONLINE).
# 4. A probe unit with exactly the agent unit's settings (the same file, another ExecStart)
#    checks that the sandbox allows what the agent's job needs -- systemctl restart of the
#    allowlisted unit (under NoNewPrivileges), journalctl -u, an atomic write + chown in the
#    ReadWritePaths destination, its state directory -- and refuses what it must not: writes
#    elsewhere in /etc or /usr, /root, mount, raw sockets, chroot.
#
# Needs: root, apt (debootstrap, systemd-container), the repository's .venv. Every process
# it starts is stopped on exit (the container is powered off).
set -euo pipefail

cd "$(dirname "$0")/.."
REPO=$PWD
WORK=$REPO/build/systemd-e2e
ROOTFS=$WORK/rootfs
DATA=$WORK/fleetd
PY=$REPO/.venv/bin/python
FLEETD=$REPO/.venv/bin/fleetd
DEVICE_ID=systemd-e2e
HEARTBEAT=${HEARTBEAT:-2}
START=$SECONDS

say() { printf '\n== %s (%ss)\n' "$*" "$((SECONDS - START))"; }
die() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (debootstrap, systemd-nspawn)"
[ -x "$FLEETD" ] || die "no $FLEETD: run make bootstrap first"

SERVER_PID=""
NSPAWN_PID=""
cleanup() {
    status=$?
    if [ -n "$NSPAWN_PID" ] && kill -0 "$NSPAWN_PID" 2>/dev/null; then
        in_container systemctl poweroff >/dev/null 2>&1 || kill -TERM "$NSPAWN_PID" 2>/dev/null
        for _ in $(seq 1 60); do kill -0 "$NSPAWN_PID" 2>/dev/null || break; sleep 0.5; done
        kill -KILL "$NSPAWN_PID" 2>/dev/null || true
    fi
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [ "$status" != 0 ] && [ -f "$WORK/fleetd.log" ]; then
        echo "--- last lines of $WORK/fleetd.log"
        tail -n 30 "$WORK/fleetd.log"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "host tools: debootstrap, systemd-nspawn"
need=()
for tool in debootstrap:debootstrap systemd-nspawn:systemd-container curl:curl; do
    command -v "${tool%%:*}" >/dev/null 2>&1 || need+=("${tool#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

mkdir -p "$WORK"
if [ "${FRESH:-0}" = 1 ] || [ ! -f "$ROOTFS/.fleetd-e2e-complete" ]; then
    say "debootstrap bookworm with systemd"
    rm -rf "$ROOTFS"
    debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,python3-venv,ca-certificates \
        bookworm "$ROOTFS" ${MIRROR:+"$MIRROR"} >"$WORK/debootstrap.log" 2>&1 \
        || { tail -n 20 "$WORK/debootstrap.log"; die "debootstrap"; }
    touch "$ROOTFS/.fleetd-e2e-complete"
else
    say "reusing $ROOTFS (FRESH=1 rebuilds it)"
fi

say "the agent wheel in /opt/fleetd-agent"
rm -rf "$WORK/wheels" "$ROOTFS/opt/fleetd-agent" "$ROOTFS/tmp/wheels"
AGENT_WHEEL=$("$PY" scripts/build_agent_wheel.py --out "$WORK/wheels")
"$PY" -m pip download --quiet --disable-pip-version-check --only-binary=:all: \
    --dest "$WORK/wheels" "$AGENT_WHEEL"
cp -r "$WORK/wheels" "$ROOTFS/tmp/wheels"
chroot "$ROOTFS" /usr/bin/env -i PATH=/usr/bin:/bin HOME=/root python3 -m venv /opt/fleetd-agent
chroot "$ROOTFS" /usr/bin/env -i PATH=/usr/bin:/bin HOME=/root /opt/fleetd-agent/bin/pip \
    install --quiet --disable-pip-version-check --no-index --find-links /tmp/wheels fleetd-agent

say "fleetd on the host"
read -r API_PORT GATEWAY_PORT < <("$PY" -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')
export FLEETD_DATA_DIR=$DATA FLEETD_API_ADDR=127.0.0.1:$API_PORT
export FLEETD_GATEWAY_ADDR=127.0.0.1:$GATEWAY_PORT FLEETD_HEARTBEAT_INTERVAL=$HEARTBEAT
rm -rf "$DATA"
"$FLEETD" init >/dev/null
TOKEN=$("$FLEETD" token create --uses 1 --ttl 30m --description systemd-e2e 2>/dev/null)
API_KEY=$(cat "$DATA/admin-api-key")
"$FLEETD" serve >"$WORK/fleetd.log" 2>&1 &
SERVER_PID=$!
ENDPOINT=https://127.0.0.1:$API_PORT
operator() {  # METHOD JSON: a Connect JSON call to the operator API
    curl -sS --fail-with-body --cacert "$DATA/pki/ca.pem" -H "X-API-Key: $API_KEY" \
        -H 'content-type: application/json' -d "$2" "$ENDPOINT/fleetd.v1.DeviceService/$1"
}
for _ in $(seq 1 120); do
    operator ListDevices '{}' >/dev/null 2>&1 && break
    kill -0 "$SERVER_PID" 2>/dev/null || die "fleetd serve exited"
    sleep 0.5
done
operator ListDevices '{}' >/dev/null || die "the control API did not come up"

say "install the unit, its settings and the allowlisted destination in the container"
UNITS=$ROOTFS/etc/systemd/system
install -m 0644 agent/systemd/fleetd-agent.service "$UNITS/fleetd-agent.service"
install -d "$UNITS/fleetd-agent.service.d"
printf '[Service]\nReadWritePaths=/etc/demo-app\n' >"$UNITS/fleetd-agent.service.d/paths.conf"
install -d -m 0750 "$ROOTFS/etc/fleetd-agent"
install -m 0644 "$DATA/pki/ca.pem" "$ROOTFS/etc/fleetd-agent/ca.pem"
cat >"$ROOTFS/etc/fleetd-agent/agent.env" <<EOF
FLEETD_API_ENDPOINT=$ENDPOINT
FLEETD_CA_CERT=/etc/fleetd-agent/ca.pem
FLEETD_ENROLLMENT_TOKEN_FILE=/var/lib/fleetd-agent/enrollment-token
FLEETD_AGENT_CONFIG=/etc/fleetd-agent/agent.toml
FLEETD_CONTAINER_RUNTIME=none
FLEETD_DEVICE_ID=$DEVICE_ID
FLEETD_DEVICE_TYPE=raspberry-pi
FLEETD_AGENT_TAGS=systemd
FLEETD_AGENT_DATA_DIR=/var/lib/fleetd-agent
EOF
chmod 0600 "$ROOTFS/etc/fleetd-agent/agent.env"
cat >"$ROOTFS/etc/fleetd-agent/agent.toml" <<EOF
# The allowlists match the paths.conf drop-in (docs/agent.md, "Configuration").
tuf_url = "$ENDPOINT/tuf"
allowed_dirs = ["/etc/demo-app"]
systemd_units = ["demo-app.service"]
EOF
rm -rf "$ROOTFS/var/lib/fleetd-agent"
install -d -m 0700 "$ROOTFS/var/lib/fleetd-agent"
printf '%s\n' "$TOKEN" >"$ROOTFS/var/lib/fleetd-agent/enrollment-token"
chmod 0600 "$ROOTFS/var/lib/fleetd-agent/enrollment-token"
printf 'not for the agent\n' >"$ROOTFS/root/secret"  # ProtectHome must hide it
# debootstrap writes no /etc/hosts; a device has one (the probe resolves localhost).
[ -f "$ROOTFS/etc/hosts" ] || printf '127.0.0.1 localhost\n::1 localhost ip6-localhost\n' \
    >"$ROOTFS/etc/hosts"
# An application the agent may configure and restart; owned by another user.
install -d -o 65534 -g 65534 -m 0755 "$ROOTFS/etc/demo-app"
printf 'v1\n' >"$ROOTFS/etc/demo-app/config" && chown 65534:65534 "$ROOTFS/etc/demo-app/config"
cat >"$UNITS/demo-app.service" <<'EOF'
[Unit]
Description=an application whose config the agent manages
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c 'date +%%s.%%N >>/run/demo-app.starts'
EOF
# The probe: the agent's unit file with another ExecStart and no restarts, so every sandbox
# setting is the agent's own.
sed -e 's#^ExecStart=.*#ExecStart=/usr/local/bin/sandbox-probe#' \
    -e 's#^Restart=.*#Restart=no#' agent/systemd/fleetd-agent.service \
    >"$UNITS/sandbox-probe.service"
cp -r "$UNITS/fleetd-agent.service.d" "$UNITS/sandbox-probe.service.d"
install -m 0755 /dev/stdin "$ROOTFS/usr/local/bin/sandbox-probe" <<'EOF'
#!/bin/sh
# Inside the agent's sandbox: what the agent needs works, what it must not do fails.
fails=0
allowed() { if "$@" >/dev/null 2>&1; then echo "allowed: $*"; else echo "FAIL refused: $*"; fails=$((fails + 1)); fi; }
refused() { if "$@" >/dev/null 2>&1; then echo "FAIL allowed: $*"; fails=$((fails + 1)); else echo "refused: $*"; fi; }
before=$(wc -l </run/demo-app.starts)
allowed systemctl restart demo-app.service
after=$(wc -l </run/demo-app.starts)
[ "$after" -gt "$before" ] && echo "demo-app.service started again ($before -> $after)" \
    || { echo "FAIL demo-app.service did not restart"; fails=$((fails + 1)); }
allowed journalctl -u demo-app.service -n 3 --no-pager
allowed sh -c 'printf "v2\n" >/etc/demo-app/.config.new && chown 65534:65534 /etc/demo-app/.config.new && mv /etc/demo-app/.config.new /etc/demo-app/config'
allowed sh -c 'echo probe >/var/lib/fleetd-agent/probe && rm /var/lib/fleetd-agent/probe'
allowed /opt/fleetd-agent/bin/python -c 'import agent.runner, socket; socket.getaddrinfo("localhost", 443)'
refused sh -c 'echo x >/etc/fleetd-probe'
refused sh -c 'echo x >/usr/local/bin/fleetd-probe'
refused cat /root/secret
refused mount -t tmpfs none /mnt
refused /opt/fleetd-agent/bin/python -c 'import socket; socket.socket(socket.AF_PACKET, socket.SOCK_RAW)'
refused /opt/fleetd-agent/bin/python -c 'import os; os.setuid(0); os.chroot("/")'
echo "probe: $fails unexpected result(s)"
exit "$fails"
EOF

say "boot the container (systemd-nspawn, host network)"
systemd-nspawn -q --register=no --keep-unit -D "$ROOTFS" -M fleetd-e2e -b \
    >"$WORK/nspawn.log" 2>&1 </dev/null &
NSPAWN_PID=$!
in_container() {  # a command in the container's namespaces, talking to its systemd
    local init
    init=$(pgrep -P "$NSPAWN_PID" | head -n1)
    [ -n "$init" ] || return 1
    nsenter -t "$init" -m -u -i -p -C -- /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
        "$@"
}
for _ in $(seq 1 120); do
    state=$(in_container systemctl is-system-running 2>/dev/null || true)
    case $state in running | degraded) break ;; esac
    kill -0 "$NSPAWN_PID" 2>/dev/null || { cat "$WORK/nspawn.log"; die "the container exited"; }
    sleep 0.5
done
echo "container: $state, $(in_container systemctl --version | head -n1)"
in_container systemd-analyze verify fleetd-agent.service \
    && echo "systemd-analyze verify fleetd-agent.service: no complaints"
in_container systemctl start demo-app.service

say "systemctl start fleetd-agent: enrol, register, heartbeat inside the sandbox"
in_container systemctl start fleetd-agent.service
device_field() {
    operator GetDevice "{\"device_id\": \"$DEVICE_ID\"}" 2>/dev/null | "$PY" -c '
import json, sys
value = json.load(sys.stdin).get("device", {})
for key in sys.argv[1].split("."):
    value = value.get(key, "") if isinstance(value, dict) else ""
print(value)' "$1" || true
}
for _ in $(seq 1 120); do
    [ "$(device_field status)" = ONLINE ] && break
    sleep 0.5
done
in_container systemctl --no-pager status fleetd-agent.service | head -n 12 || true
[ "$(device_field status)" = ONLINE ] || die "device not ONLINE"
FIRST_SEEN=$(device_field lastSeen)
sleep $((HEARTBEAT * 3))
LAST_SEEN=$(device_field lastSeen)
echo "GetDevice: status=$(device_field status) tags=$(device_field tags); lastSeen $FIRST_SEEN -> $LAST_SEEN"
[ "$LAST_SEEN" != "$FIRST_SEEN" ] || die "lastSeen did not move: no heartbeats"
in_container ls -l /var/lib/fleetd-agent
echo "sandbox as systemd applied it:"
in_container systemctl show fleetd-agent.service -p ProtectSystem -p ProtectHome \
    -p PrivateTmp -p NoNewPrivileges -p CapabilityBoundingSet -p RestrictAddressFamilies \
    -p ReadWritePaths -p SystemCallErrorNumber

say "the sandbox probe (the agent unit's own settings)"
in_container systemctl start sandbox-probe.service
for _ in $(seq 1 120); do
    active=$(in_container systemctl is-active sandbox-probe.service || true)
    case $active in active | activating) sleep 0.5 ;; *) break ;; esac
done
in_container journalctl -b -u sandbox-probe.service -o cat --no-pager | grep -vE '^(Started|Starting|sandbox-probe)' || true
PROBE_STATUS=$(in_container systemctl show -p ExecMainStatus --value sandbox-probe.service)
[ "$PROBE_STATUS" = 0 ] || die "the sandbox probe found $PROBE_STATUS unexpected result(s)"

say "systemctl stop fleetd-agent: a clean exit"
in_container systemctl stop fleetd-agent.service
RESULT=$(in_container systemctl show -p Result --value fleetd-agent.service)
[ "$RESULT" = success ] || die "stop result: $RESULT"
say "PASS: the agent runs under its hardened unit; the sandbox allows its job and no more"
