#!/usr/bin/env bash
# The fleetd agent on arm64, shown rather than assumed (issue 7; docs/agent.md, "arm64").
#
#   sudo make agent-arm64-e2e        # or: sudo scripts/arm64-agent-e2e.sh
#
# 1. An arm64 Debian root filesystem: debootstrap --arch=arm64 --foreign, then the second
#    stage inside it, with qemu-user-static registered through binfmt_misc (so every arm64
#    ELF started in the chroot, dpkg's maintainer scripts included, runs under emulation).
#    Kept in build/arm64-e2e/rootfs between runs; FRESH=1 rebuilds it.
# 2. The agent wheel (scripts/build_agent_wheel.py) and the arm64 (manylinux aarch64) binary
#    wheels of its dependencies, fetched on the host with --only-binary=:all: (nothing gets
#    compiled), installed inside the rootfs into /opt/fleetd-agent by the arm64 python3.
# 3. A fleetd deployment on the host (amd64; `fleetd serve` on embedded PostgreSQL and
#    Redis, free loopback ports, a fresh data directory), and an enrolment token.
# 4. The agent inside the rootfs (chroot: same network namespace, so it reaches the host's
#    loopback) configured like the systemd unit, by an environment file: it enrols (key
#    generated in the rootfs), registers and heartbeats. From the host, the operator API
#    (GetDevice, ListDevices over Connect JSON) must show the device ONLINE with arch
#    aarch64 and its last_seen moving. Then SIGTERM: the agent must exit 0.
#
# Needs: root, a Debian-like host with apt, the repository's .venv (make bootstrap), a
# kernel with binfmt_misc. Every process it starts is stopped on exit; the mounts it makes
# in the rootfs are undone. Not part of `make test`: the first run takes minutes.
#
# Environment: SUITE (default bookworm, what Raspberry Pi OS 64-bit is built on), MIRROR
# (default: the host's Debian mirror from its apt sources, else debootstrap's own),
# FRESH=1 (rebuild the rootfs), HEARTBEAT (server heartbeat interval, default 2 s).
set -euo pipefail

cd "$(dirname "$0")/.."
REPO=$PWD
WORK=$REPO/build/arm64-e2e
ROOTFS=$WORK/rootfs
WHEELS=$WORK/wheels
DATA=$WORK/fleetd
SUITE=${SUITE:-bookworm}
HEARTBEAT=${HEARTBEAT:-2}
PY=$REPO/.venv/bin/python
FLEETD=$REPO/.venv/bin/fleetd
DEVICE_ID=arm64-e2e
START=$SECONDS

say() { printf '\n== %s (%ss)\n' "$*" "$((SECONDS - START))"; }
die() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (debootstrap, chroot, binfmt_misc)"
[ -x "$FLEETD" ] || die "no $FLEETD: run make bootstrap first"

SERVER_PID=""
AGENT_PID=""
MOUNTS=()
cleanup() {
    status=$?
    if [ -n "$AGENT_PID" ] && kill -0 "$AGENT_PID" 2>/dev/null; then
        kill "$AGENT_PID" 2>/dev/null || true
        wait "$AGENT_PID" 2>/dev/null || true
    fi
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
        umount "${MOUNTS[$i]}" 2>/dev/null || umount -l "${MOUNTS[$i]}" 2>/dev/null || true
    done
    if [ "$status" != 0 ] && [ -f "$WORK/fleetd.log" ]; then
        echo "--- last lines of $WORK/fleetd.log"
        tail -n 30 "$WORK/fleetd.log"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- host tools and binfmt
say "host tools: debootstrap, qemu-user-static, binfmt-support"
need=()
for tool in debootstrap:debootstrap qemu-aarch64-static:qemu-user-static \
    update-binfmts:binfmt-support curl:curl; do
    command -v "${tool%%:*}" >/dev/null 2>&1 || need+=("${tool#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc \
        || die "cannot mount binfmt_misc: this script needs it for the debootstrap second stage"
fi
if ! grep -qx enabled /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null; then
    update-binfmts --enable qemu-aarch64 || true
fi
grep -qx enabled /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null \
    || die "qemu-aarch64 is not registered in binfmt_misc (update-binfmts --enable qemu-aarch64)"
# The F flag makes the kernel keep the interpreter open: no qemu copy needed in the rootfs.
grep '^flags:' /proc/sys/fs/binfmt_misc/qemu-aarch64

# ---------------------------------------------------------------- the arm64 root filesystem
mkdir -p "$WORK"
if [ "${FRESH:-0}" = 1 ] || [ ! -f "$ROOTFS/.fleetd-e2e-complete" ]; then
    say "debootstrap $SUITE arm64 (first stage on the host)"
    rm -rf "$ROOTFS"
    if [ -z "${MIRROR:-}" ]; then
        MIRROR=$(grep -hoE '^(URIs:|deb) +[^ ]+/debian/?( |$)' \
            /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
            | head -n1 | awk '{print $2}' || true)
    fi
    debootstrap --arch=arm64 --foreign --variant=minbase \
        --include=python3,python3-venv,ca-certificates \
        "$SUITE" "$ROOTFS" ${MIRROR:+"$MIRROR"} >"$WORK/debootstrap.log" 2>&1 \
        || { tail -n 20 "$WORK/debootstrap.log"; die "debootstrap (first stage)"; }
    say "debootstrap second stage (arm64 dpkg under qemu-user)"
    chroot "$ROOTFS" /debootstrap/debootstrap --second-stage >>"$WORK/debootstrap.log" 2>&1 \
        || { tail -n 20 "$WORK/debootstrap.log"; die "debootstrap (second stage)"; }
    touch "$ROOTFS/.fleetd-e2e-complete"
else
    say "reusing $ROOTFS (FRESH=1 rebuilds it)"
fi
# The python3 of the rootfs is an aarch64 ELF (e_machine 183), run by qemu on this host.
"$PY" - "$ROOTFS/usr/bin/python3" <<'EOF'
import os, struct, sys
path = os.path.realpath(sys.argv[1])
with open(path, "rb") as f:
    header = f.read(20)
machine = struct.unpack_from("<H", header, 18)[0]
print(f"{path}: ELF e_machine={machine} ({'aarch64' if machine == 183 else 'NOT aarch64'})")
sys.exit(0 if header[:4] == b"\x7fELF" and machine == 183 else 1)
EOF
# debootstrap writes no /etc/hosts; a device has one.
[ -f "$ROOTFS/etc/hosts" ] || printf '127.0.0.1 localhost\n::1 localhost ip6-localhost\n' \
    >"$ROOTFS/etc/hosts"
mount -t proc proc "$ROOTFS/proc" && MOUNTS+=("$ROOTFS/proc")
mount --bind /dev "$ROOTFS/dev" && MOUNTS+=("$ROOTFS/dev")
in_rootfs() {  # a clean environment: nothing of the host's (PYTHONPATH, PIP_*, venv) leaks in
    chroot "$ROOTFS" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
        LANG=C.UTF-8 "$@"
}
echo "rootfs: $(in_rootfs uname -m) $(in_rootfs python3 --version) \
$(in_rootfs sh -c '. /etc/os-release; echo "$PRETTY_NAME"')"
ROOTFS_PY=$(in_rootfs python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')

# ---------------------------------------------------------------- the agent and its wheels
say "agent wheel, and arm64 binary wheels of its dependencies (python $ROOTFS_PY)"
rm -rf "$WHEELS" && mkdir -p "$WHEELS"
AGENT_WHEEL=$("$PY" scripts/build_agent_wheel.py --out "$WHEELS")
# Binary wheels only (no sdist, so nothing to compile), for every manylinux tag the rootfs's
# glibc accepts (pip does not widen an explicit --platform to the older ones by itself).
GLIBC_MINOR=$(in_rootfs python3 -c 'import platform; print(platform.libc_ver()[1].split(".")[1])')
PLATFORMS=(--platform manylinux2014_aarch64)
for minor in $(seq 17 "$GLIBC_MINOR"); do PLATFORMS+=(--platform "manylinux_2_${minor}_aarch64"); done
"$PY" -m pip download --quiet --disable-pip-version-check --only-binary=:all: \
    "${PLATFORMS[@]}" --python-version "$ROOTFS_PY" --implementation cp \
    --dest "$WHEELS" "$AGENT_WHEEL"
ls "$WHEELS"
say "install into the rootfs: python3 -m venv /opt/fleetd-agent; pip install --no-index"
rm -rf "$ROOTFS/opt/fleetd-agent" "$ROOTFS/tmp/wheels"
cp -r "$WHEELS" "$ROOTFS/tmp/wheels"
in_rootfs python3 -m venv /opt/fleetd-agent
in_rootfs /opt/fleetd-agent/bin/pip install --quiet --disable-pip-version-check --no-index \
    --find-links /tmp/wheels fleetd-agent
in_rootfs /opt/fleetd-agent/bin/pip list --disable-pip-version-check --format=freeze
in_rootfs /opt/fleetd-agent/bin/fleetd-agent --help >/dev/null
in_rootfs /opt/fleetd-agent/bin/python -I -c '
import platform, agent.runner, grpc, cryptography
bad = [m for m in ("asyncpg", "redis", "uvloop", "core_ext", "fleetd_native", "connectrpc")
       if __import__("importlib.util").util.find_spec(m)]
assert not bad, bad
print("imports agent.runner on", platform.machine(), "grpcio", grpc.__version__,
      "cryptography", cryptography.__version__)'

# ---------------------------------------------------------------- fleetd on the host
say "fleetd on the host (amd64, embedded stores)"
read -r API_PORT GATEWAY_PORT < <("$PY" -c '
import socket
socks = [socket.socket() for _ in range(2)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')
export FLEETD_DATA_DIR=$DATA FLEETD_API_ADDR=127.0.0.1:$API_PORT
export FLEETD_GATEWAY_ADDR=127.0.0.1:$GATEWAY_PORT FLEETD_HEARTBEAT_INTERVAL=$HEARTBEAT
rm -rf "$DATA"
"$FLEETD" init >/dev/null
TOKEN=$("$FLEETD" token create --uses 1 --ttl 30m --description arm64-e2e 2>/dev/null)
API_KEY=$(cat "$DATA/admin-api-key")
"$FLEETD" serve >"$WORK/fleetd.log" 2>&1 &
SERVER_PID=$!
ENDPOINT=https://127.0.0.1:$API_PORT
operator() {  # METHOD JSON: a Connect JSON call to the operator API, as the README does it
    curl -sS --fail-with-body --cacert "$DATA/pki/ca.pem" -H "X-API-Key: $API_KEY" \
        -H 'content-type: application/json' -d "$2" "$ENDPOINT/fleetd.v1.DeviceService/$1"
}
for _ in $(seq 1 120); do
    operator ListDevices '{}' >/dev/null 2>&1 && break
    kill -0 "$SERVER_PID" 2>/dev/null || die "fleetd serve exited"
    sleep 0.5
done
operator ListDevices '{}' >/dev/null || die "the control API did not come up"
echo "control API $ENDPOINT, gateway 127.0.0.1:$GATEWAY_PORT, heartbeat ${HEARTBEAT}s"

# ---------------------------------------------------------------- the agent, inside the rootfs
say "agent in the arm64 rootfs: enrol, register, heartbeat"
mkdir -p "$ROOTFS/etc/fleetd-agent"
cp "$DATA/pki/ca.pem" "$ROOTFS/etc/fleetd-agent/ca.pem"
rm -rf "$ROOTFS/var/lib/fleetd-agent"
# The same file the systemd unit reads (EnvironmentFile=/etc/fleetd-agent/agent.env).
cat >"$ROOTFS/etc/fleetd-agent/agent.env" <<EOF
FLEETD_API_ENDPOINT=$ENDPOINT
FLEETD_CA_CERT=/etc/fleetd-agent/ca.pem
FLEETD_AGENT_DATA_DIR=/var/lib/fleetd-agent
FLEETD_DEVICE_ID=$DEVICE_ID
FLEETD_DEVICE_TYPE=raspberry-pi
FLEETD_AGENT_TAGS=arm64,qemu
FLEETD_ENROLLMENT_TOKEN_FILE=/var/lib/fleetd-agent/enrollment-token
FLEETD_AGENT_CONFIG=/etc/fleetd-agent/agent.toml
FLEETD_CONTAINER_RUNTIME=none
EOF
chmod 600 "$ROOTFS/etc/fleetd-agent/agent.env"
cat >"$ROOTFS/etc/fleetd-agent/agent.toml" <<EOF
tuf_url = "$ENDPOINT/tuf"
allowed_dirs = ["/opt/e2e"]
EOF
install -d -m 0755 "$ROOTFS/opt/e2e"
rm -f "$ROOTFS/opt/e2e/model.bin"
install -d -m 0700 "$ROOTFS/var/lib/fleetd-agent"
printf '%s\n' "$TOKEN" >"$ROOTFS/var/lib/fleetd-agent/enrollment-token"
chmod 0600 "$ROOTFS/var/lib/fleetd-agent/enrollment-token"
# exec all the way down (subshell -> chroot -> env -> sh -> the agent): $! is the agent.
(exec chroot "$ROOTFS" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
    LANG=C.UTF-8 /bin/sh -c 'set -a; . /etc/fleetd-agent/agent.env; set +a;
    exec /opt/fleetd-agent/bin/fleetd-agent') >"$WORK/agent.log" 2>&1 &
AGENT_PID=$!

device_field() {  # PATH.IN.JSON: one field of GetDevice's device, "" when absent
    operator GetDevice "{\"device_id\": \"$DEVICE_ID\"}" 2>/dev/null | "$PY" -c '
import json, sys
value = json.load(sys.stdin).get("device", {})
for key in sys.argv[1].split("."):
    value = value.get(key, "") if isinstance(value, dict) else ""
print(value)' "$1" || true
}
for _ in $(seq 1 240); do
    [ "$(device_field status)" = ONLINE ] && break
    kill -0 "$AGENT_PID" 2>/dev/null || { cat "$WORK/agent.log"; die "the agent exited"; }
    sleep 0.5
done
[ "$(device_field status)" = ONLINE ] || { cat "$WORK/agent.log"; die "device not ONLINE"; }
ENROLLED_AT=$((SECONDS - START))
FIRST_SEEN=$(device_field lastSeen)
sleep $((HEARTBEAT * 3))
LAST_SEEN=$(device_field lastSeen)
ARCH=$(device_field systemInfo.arch)
echo "GetDevice: status=$(device_field status) arch=$ARCH os=$(device_field systemInfo.os)" \
    "kernel=$(device_field systemInfo.kernel) agentVersion=$(device_field agentVersion)" \
    "tags=$(device_field tags)"
echo "lastSeen $FIRST_SEEN -> $LAST_SEEN"
[ "$ARCH" = aarch64 ] || die "arch is '$ARCH', expected aarch64"
[ "$LAST_SEEN" != "$FIRST_SEEN" ] || die "lastSeen did not move: no heartbeats"
operator ListDevices '{"page_size": 10}' | "$PY" -c '
import json, sys
devices = json.load(sys.stdin)["devices"]
print("ListDevices:", [(d["id"], d["status"], d["systemInfo"]["arch"]) for d in devices])
assert any(d["id"] == sys.argv[1] and d["status"] == "ONLINE" for d in devices)' "$DEVICE_ID"
echo "the device's data directory (key generated in the rootfs, never sent):"
ls -l "$ROOTFS/var/lib/fleetd-agent"
[ -s "$ROOTFS/var/lib/fleetd-agent/device.key" ] || die "no device key in the rootfs"

# ---------------------------------------------------------------- converge on a deployment
# Issue 7's end to end, on arm64: an update created and deployed over the operator API is
# downloaded through TUF (verified from the root pinned at enrolment), swapped in, probed
# and reported; GetDeploymentStatus shows the device HEALTHY and the file in the rootfs is
# the artifact, byte for byte.
say "converge: CreateUpdate + DeployUpdate from the host, the arm64 agent applies it"
ARTIFACT_DIR=$WORK/artifact
rm -rf "$ARTIFACT_DIR" && mkdir -p "$ARTIFACT_DIR"
head -c 300000 /dev/urandom >"$ARTIFACT_DIR/model.bin"
SHA=$(sha256sum "$ARTIFACT_DIR/model.bin" | cut -d' ' -f1)
SIZE=$(stat -c %s "$ARTIFACT_DIR/model.bin")
read -r FILE_PORT < <("$PY" -c '
import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$PY" -m http.server --bind 127.0.0.1 --directory "$ARTIFACT_DIR" "$FILE_PORT" \
    >"$WORK/artifact-server.log" 2>&1 &
FILE_PID=$!
updates() {  # METHOD JSON: UpdateService over Connect JSON
    curl -sS --fail-with-body --cacert "$DATA/pki/ca.pem" -H "X-API-Key: $API_KEY" \
        -H 'content-type: application/json' -d "$2" "$ENDPOINT/fleetd.v1.UpdateService/$1"
}
json_field() { "$PY" -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
for _ in $(seq 1 20); do
    curl -sf "http://127.0.0.1:$FILE_PORT/model.bin" -o /dev/null && break
    sleep 0.2
done
UPDATE_ID=$(updates CreateUpdate "{\"name\": \"arm64-e2e\", \"version\": \"1.0.0\",
  \"artifacts\": [{\"name\": \"e2e-model\", \"platform\": \"raspberry-pi\", \"kind\": \"MODEL\",
    \"url\": \"http://127.0.0.1:$FILE_PORT/model.bin\", \"checksum\": \"sha256:$SHA\",
    \"sizeBytes\": \"$SIZE\", \"config\": {\"destinationPath\": \"/opt/e2e/model.bin\"},
    \"healthProbe\": {\"file\": {\"path\": \"/opt/e2e/model.bin\"}}}]}" | json_field updateId)
kill "$FILE_PID" 2>/dev/null || true
echo "update $UPDATE_ID (TUF-signed at creation)"
DEPLOYMENT_ID=$(updates DeployUpdate "{\"updateId\": \"$UPDATE_ID\",
  \"deviceIds\": [\"$DEVICE_ID\"], \"config\": {\"strategy\": \"ALL_AT_ONCE\"}}" \
    | json_field deploymentId)
echo "deployment $DEPLOYMENT_ID"
STATE=""
for _ in $(seq 1 240); do
    STATE=$(updates GetDeploymentStatus "{\"deploymentId\": \"$DEPLOYMENT_ID\"}" \
        | "$PY" -c 'import json, sys; print(json.load(sys.stdin)["status"]["state"])')
    case $STATE in COMPLETED|FAILED|CANCELLED|ROLLED_BACK) break ;; esac
    kill -0 "$AGENT_PID" 2>/dev/null || { cat "$WORK/agent.log"; die "the agent exited"; }
    sleep 0.5
done
updates GetDeploymentStatus \
    "{\"deploymentId\": \"$DEPLOYMENT_ID\", \"includeDeviceDetails\": true}" | "$PY" -c '
import json, sys
status = json.load(sys.stdin)
devices = [(d["deviceId"], d["state"], d.get("installedVersion"))
           for d in status["deviceStatuses"]]
print("GetDeploymentStatus:", status["status"]["state"], devices)
assert devices == [(sys.argv[1], "HEALTHY", "1.0.0")], devices' "$DEVICE_ID" \
    || { cat "$WORK/agent.log"; die "the deployment did not complete healthy ($STATE)"; }
cmp "$ARTIFACT_DIR/model.bin" "$ROOTFS/opt/e2e/model.bin" || die "applied file differs"
echo "applied in the rootfs: /opt/e2e/model.bin ($SIZE bytes, sha256 $SHA)"

say "SIGTERM: the agent stops cleanly"
kill -TERM "$AGENT_PID"
wait "$AGENT_PID" && AGENT_STATUS=0 || AGENT_STATUS=$?
AGENT_PID=""
[ "$AGENT_STATUS" = 0 ] || { cat "$WORK/agent.log"; die "agent exited with $AGENT_STATUS"; }
echo "--- agent log (inside the rootfs)"
cat "$WORK/agent.log"
say "PASS: arm64 agent enrolled (${ENROLLED_AT}s into the run), registered, heartbeat, arch=$ARCH, converged on a TUF-verified deployment"
