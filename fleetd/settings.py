"""Runtime settings, read once from the environment (``FLEETD_*``) with documented defaults.

Every process of a deployment (supervisor, gateway workers, control API, CLI) builds its
``Settings`` the same way, so a child process inherits its configuration through its
environment. The README's configuration reference lists every variable.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

_FLEET_NAME = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$")


class ConfigError(ValueError):
    """A setting has a value fleetd cannot use; the message names the variable."""


def _split_addr(name: str, value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{name}={value!r}: expected HOST:PORT, for example 127.0.0.1:8443")
    return host.strip("[]"), int(port)


def _int(env: dict[str, str], name: str, default: int, minimum: int) -> int:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: expected a whole number") from None
    if value < minimum:
        raise ConfigError(f"{name}={raw!r}: must be at least {minimum}")
    return value


def _float(env: dict[str, str], name: str, default: float, minimum: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: expected a number") from None
    if value < minimum:
        raise ConfigError(f"{name}={raw!r}: must be at least {minimum}")
    return value


@dataclass(frozen=True, slots=True)
class Paths:
    """Where a deployment keeps its files, all under one data directory."""

    root: Path

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def ca_cert(self) -> Path:
        return self.pki / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.pki / "ca.key"

    @property
    def server_cert(self) -> Path:
        return self.pki / "server.pem"

    @property
    def server_key(self) -> Path:
        return self.pki / "server.key"

    @property
    def admin_api_key(self) -> Path:
        return self.root / "admin-api-key"

    @property
    def postgres(self) -> Path:
        return self.root / "postgres"

    @property
    def redis(self) -> Path:
        return self.root / "redis"

    @property
    def blobs(self) -> Path:
        return self.root / "blobs"

    @property
    def agents(self) -> Path:
        return self.root / "agents"

    @property
    def demo_env(self) -> Path:
        return self.root / "demo.env"


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a fleetd process needs to know about its deployment."""

    data_dir: Path
    fleet: str = "default"
    database_url: str | None = None
    redis_url: str | None = None
    api_host: str = "127.0.0.1"
    api_port: int = 8443
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 9443
    server_names: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")
    heartbeat_interval: float = 30.0
    offline_after: float = 90.0
    redis_flush_interval: float = 0.05
    postgres_flush_interval: float = 1.0
    rate_anonymous: str = "10/s"
    rate_authenticated: str = "100/s"
    rate_device: str = "10/m"
    exact_count_limit: int = 10_000
    """ListDevices counts total_count exactly up to this many devices, then estimates
    (fleetd.storage.devices.total_devices); 0 always counts exactly."""
    rollout_tick: float = 1.0
    """Seconds between two rounds of the rollout engine (fleetd.services.rollout.engine)."""
    max_binary_bytes: int = 2 << 30
    """BinaryService.UploadBinary refuses content longer than this (RESOURCE_EXHAUSTED)."""
    blob_grace_period: float = 3600.0
    """The blob collector never removes a blob file, index row or temporary file younger
    than this many seconds (fleetd/services/blob_collection.py)."""
    blob_collect_interval: float = 3600.0
    """Seconds between the control API's blob collection rounds."""
    gateway_device_rate: str = ""
    """Per-device Heartbeat/Register limit in the gateway: ``COUNT/s|m|h`` (burst COUNT),
    ``off``, or empty for the default, derived from the heartbeat interval."""
    insecure_registries: tuple[str, ...] = ()
    """Container registries (``host[:port]``) CreateUpdate reaches over plain http to
    resolve image tags; every other registry is reached over https
    (``FLEETD_INSECURE_REGISTRIES``, comma-separated)."""
    outbound_allow: tuple[str, ...] = ()
    """Internal destinations server-side fetches (update URLs, registries) may reach
    although they are loopback, private, link-local...: ``host[:port]``, ``IP[:port]`` or
    ``CIDR[:port]`` (``FLEETD_OUTBOUND_ALLOW``, comma-separated; see
    :func:`parse_outbound_rule` and fleetd/services/outbound.py)."""
    sample_interval: float = 300.0
    """Seconds between two per-device samples kept in ``device_samples`` (GCRA in the
    batcher; 0 keeps every heartbeat). docs/analytics.md, 2.3."""
    raw_retention: float = 86400.0
    """Seconds per-device samples are kept (``FLEETD_RAW_RETENTION``)."""
    device_hourly_retention: float = 30 * 86400.0
    """Seconds per-device hourly aggregates are kept (``FLEETD_DEVICE_HOURLY_RETENTION``)."""
    rollup_retention: float = 90 * 86400.0
    """Seconds per-minute group rollups and the minute census are kept."""
    rollup_hourly_retention: float = 400 * 86400.0
    """Seconds hourly group rollups and the hourly census are kept."""
    rollup_flush_interval: float = 10.0
    """Seconds between a gateway worker's writes of its rollup partials."""
    export_ttl: float = 86400.0
    """Seconds an export file (and its signed URL) lives (``FLEETD_EXPORT_TTL``)."""
    min_agent_version: str = ""
    """Agents older than this are DEGRADED in COMPREHENSIVE health checks; empty: skipped."""

    def gateway_device_limit(self) -> tuple[float, int] | None:
        """``(calls per second, burst)`` for one device at the gateway; None when off.

        The default allows four times the nominal heartbeat rate sustained, and a burst of
        ten (restarts, retries after an outage)."""
        if self.gateway_device_rate == "off":
            return None
        if self.gateway_device_rate:
            count, period = parse_rate(self.gateway_device_rate)
            return count / period, count
        return 4.0 / self.heartbeat_interval, 10

    @property
    def paths(self) -> Paths:
        return Paths(self.data_dir)

    @property
    def api_endpoint(self) -> str:
        return f"https://{_url_host(self.api_host)}:{self.api_port}"

    @property
    def gateway_endpoint(self) -> str:
        return f"{_url_host(self.gateway_host)}:{self.gateway_port}"

    def with_storage(self, database_url: str, redis_url: str) -> Settings:
        return replace(self, database_url=database_url, redis_url=redis_url)

    def to_env(self) -> dict[str, str]:
        """The environment that makes a child process build these same settings."""
        env = {
            "FLEETD_DATA_DIR": str(self.data_dir),
            "FLEETD_FLEET": self.fleet,
            "FLEETD_API_ADDR": f"{self.api_host}:{self.api_port}",
            "FLEETD_GATEWAY_ADDR": f"{self.gateway_host}:{self.gateway_port}",
            "FLEETD_SERVER_NAMES": ",".join(self.server_names),
            "FLEETD_HEARTBEAT_INTERVAL": repr(self.heartbeat_interval),
            "FLEETD_OFFLINE_AFTER": repr(self.offline_after),
            "FLEETD_RATE_ANONYMOUS": self.rate_anonymous,
            "FLEETD_RATE_AUTHENTICATED": self.rate_authenticated,
            "FLEETD_RATE_DEVICE": self.rate_device,
            "FLEETD_GATEWAY_DEVICE_RATE": self.gateway_device_rate,
            "FLEETD_EXACT_COUNT_LIMIT": str(self.exact_count_limit),
            "FLEETD_ROLLOUT_TICK": repr(self.rollout_tick),
            "FLEETD_INSECURE_REGISTRIES": ",".join(self.insecure_registries),
            "FLEETD_OUTBOUND_ALLOW": ",".join(self.outbound_allow),
            "FLEETD_MAX_BINARY_BYTES": str(self.max_binary_bytes),
            "FLEETD_BLOB_GRACE_PERIOD": repr(self.blob_grace_period),
            "FLEETD_BLOB_COLLECT_INTERVAL": repr(self.blob_collect_interval),
            "FLEETD_SAMPLE_INTERVAL": repr(self.sample_interval),
            "FLEETD_RAW_RETENTION": repr(self.raw_retention),
            "FLEETD_DEVICE_HOURLY_RETENTION": repr(self.device_hourly_retention),
            "FLEETD_ROLLUP_RETENTION": repr(self.rollup_retention),
            "FLEETD_ROLLUP_HOURLY_RETENTION": repr(self.rollup_hourly_retention),
            "FLEETD_ROLLUP_FLUSH_INTERVAL": repr(self.rollup_flush_interval),
            "FLEETD_EXPORT_TTL": repr(self.export_ttl),
            "FLEETD_MIN_AGENT_VERSION": self.min_agent_version,
        }
        if self.database_url:
            env["FLEETD_DATABASE_URL"] = self.database_url
        if self.redis_url:
            env["FLEETD_REDIS_URL"] = self.redis_url
        return env

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if environ is None else environ)
        data_dir = Path(env.get("FLEETD_DATA_DIR") or ".fleetd").absolute()
        fleet = env.get("FLEETD_FLEET") or "default"
        if not _FLEET_NAME.match(fleet):
            raise ConfigError(
                f"FLEETD_FLEET={fleet!r}: use lowercase letters, digits, '.' and '-' (max 63)"
            )
        api_host, api_port = _split_addr(
            "FLEETD_API_ADDR", env.get("FLEETD_API_ADDR") or "127.0.0.1:8443"
        )
        gw_host, gw_port = _split_addr(
            "FLEETD_GATEWAY_ADDR", env.get("FLEETD_GATEWAY_ADDR") or "127.0.0.1:9443"
        )
        names = tuple(
            n.strip()
            for n in (env.get("FLEETD_SERVER_NAMES") or "localhost,127.0.0.1,::1").split(",")
            if n.strip()
        )
        return cls(
            data_dir=data_dir,
            fleet=fleet,
            database_url=env.get("FLEETD_DATABASE_URL") or None,
            redis_url=env.get("FLEETD_REDIS_URL") or None,
            api_host=api_host,
            api_port=api_port,
            gateway_host=gw_host,
            gateway_port=gw_port,
            server_names=names,
            heartbeat_interval=_float(env, "FLEETD_HEARTBEAT_INTERVAL", 30.0, 1.0),
            offline_after=_float(env, "FLEETD_OFFLINE_AFTER", 90.0, 3.0),
            redis_flush_interval=_float(env, "FLEETD_REDIS_FLUSH_INTERVAL", 0.05, 0.001),
            postgres_flush_interval=_float(env, "FLEETD_POSTGRES_FLUSH_INTERVAL", 1.0, 0.01),
            rate_anonymous=_rate(env, "FLEETD_RATE_ANONYMOUS", "10/s"),
            rate_authenticated=_rate(env, "FLEETD_RATE_AUTHENTICATED", "100/s"),
            rate_device=_rate(env, "FLEETD_RATE_DEVICE", "10/m"),
            gateway_device_rate=_gateway_rate(env),
            exact_count_limit=_int(env, "FLEETD_EXACT_COUNT_LIMIT", 10_000, 0),
            rollout_tick=_float(env, "FLEETD_ROLLOUT_TICK", 1.0, 0.01),
            insecure_registries=tuple(
                r.strip()
                for r in (env.get("FLEETD_INSECURE_REGISTRIES") or "").split(",")
                if r.strip()
            ),
            outbound_allow=_outbound_allow(env),
            max_binary_bytes=_int(env, "FLEETD_MAX_BINARY_BYTES", 2 << 30, 1),
            blob_grace_period=_float(env, "FLEETD_BLOB_GRACE_PERIOD", 3600.0, 1.0),
            blob_collect_interval=_float(env, "FLEETD_BLOB_COLLECT_INTERVAL", 3600.0, 0.01),
            sample_interval=_float(env, "FLEETD_SAMPLE_INTERVAL", 300.0, 0.0),
            raw_retention=_float(env, "FLEETD_RAW_RETENTION", 86400.0, 3600.0),
            device_hourly_retention=_float(
                env, "FLEETD_DEVICE_HOURLY_RETENTION", 30 * 86400.0, 86400.0
            ),
            rollup_retention=_float(env, "FLEETD_ROLLUP_RETENTION", 90 * 86400.0, 86400.0),
            rollup_hourly_retention=_float(
                env, "FLEETD_ROLLUP_HOURLY_RETENTION", 400 * 86400.0, 86400.0
            ),
            rollup_flush_interval=_float(env, "FLEETD_ROLLUP_FLUSH_INTERVAL", 10.0, 0.01),
            export_ttl=_float(env, "FLEETD_EXPORT_TTL", 86400.0, 60.0),
            min_agent_version=env.get("FLEETD_MIN_AGENT_VERSION", "").strip(),
        )


@dataclass(frozen=True, slots=True)
class OutboundRule:
    """One entry of ``FLEETD_OUTBOUND_ALLOW``: a host name or a network, and a port (None:
    any port). A name matches a URL naming that host (whatever it resolves to); a network
    matches the addresses in it, however the URL spells them."""

    name: str | None = None
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    port: int | None = None


_RULE_LABEL = r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?"
_RULE_NAME = re.compile(rf"^{_RULE_LABEL}(\.{_RULE_LABEL})*$")
_NUMERIC_LABEL = re.compile(r"^([0-9]+|0x[0-9a-f]*)$")


def parse_outbound_rule(text: str) -> OutboundRule:
    """One ``FLEETD_OUTBOUND_ALLOW`` entry: ``registry.lan``, ``registry.lan:5000``,
    ``10.1.2.3``, ``10.1.2.3:8080``, ``10.0.0.0/8``, ``10.0.0.0/8:443``, ``::1``,
    ``fd00::/8``, ``[::1]:8080``, ``[fd00::/8]:443``. IPv4 is written as four decimal
    numbers; an IPv4-mapped IPv6 address or network is taken as its IPv4 form."""
    entry = text.strip()
    problem = ConfigError(
        f"FLEETD_OUTBOUND_ALLOW entry {text!r}: expected HOST, HOST:PORT, IP, IP:PORT, "
        "CIDR or CIDR:PORT (an IPv6 address in brackets when a port follows; IPv4 as four "
        "decimal numbers)"
    )
    bracketed = entry.startswith("[")
    if bracketed:
        address, bracket, rest = entry[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise problem
        port_text = rest[1:] if rest else None
    elif entry.count(":") > 1:  # a bare IPv6 address or network: no port
        address, port_text = entry, None
    else:
        address, colon, port_text_or_empty = entry.partition(":")
        port_text = port_text_or_empty if colon else None
    port: int | None = None
    if port_text is not None:
        if not (port_text.isascii() and port_text.isdigit()) or not 1 <= int(port_text) <= 65535:
            raise problem
        port = int(port_text)
    try:
        network = ipaddress.ip_network(address, strict=False)
    except ValueError:
        network = None
    if network is not None:
        if isinstance(network, ipaddress.IPv6Network) and network.prefixlen >= 96:
            mapped = network.network_address.ipv4_mapped
            if mapped is not None:
                network = ipaddress.IPv4Network((mapped, network.prefixlen - 96))
        return OutboundRule(network=network, port=port)
    name = address.lower().removesuffix(".")
    if (
        bracketed
        or len(name) > 253
        or not _RULE_NAME.match(name)
        or _NUMERIC_LABEL.match(name.rpartition(".")[2])
    ):
        raise problem
    return OutboundRule(name=name, port=port)


def _outbound_allow(env: dict[str, str]) -> tuple[str, ...]:
    entries = tuple(
        e.strip() for e in (env.get("FLEETD_OUTBOUND_ALLOW") or "").split(",") if e.strip()
    )
    for entry in entries:
        parse_outbound_rule(entry)
    return entries


_RATE = re.compile(r"^([1-9][0-9]{0,6})/([smh])$")


def parse_rate(text: str) -> tuple[int, float]:
    """``"100/s"`` -> (100, 1.0): a count per second, minute or hour."""
    match = _RATE.match(text.strip())
    if match is None:
        raise ConfigError(f"rate {text!r}: expected COUNT/s, COUNT/m or COUNT/h, e.g. 100/s")
    return int(match[1]), {"s": 1.0, "m": 60.0, "h": 3600.0}[match[2]]


def _gateway_rate(env: dict[str, str]) -> str:
    raw = (env.get("FLEETD_GATEWAY_DEVICE_RATE") or "").strip()
    if raw in ("", "off"):
        return raw
    return _rate(env, "FLEETD_GATEWAY_DEVICE_RATE", "")


def _rate(env: dict[str, str], name: str, default: str) -> str:
    value = env.get(name) or default
    try:
        parse_rate(value)
    except ConfigError as exc:
        raise ConfigError(f"{name}: {exc}") from None
    return value


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
