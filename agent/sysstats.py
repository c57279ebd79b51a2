"""System statistics from /proc and statvfs — no psutil, so the agent stays small.

CPU usage is measured between two calls (the first call reports 0.0), like ``top``.
"""

from __future__ import annotations

import os
import platform
import socket
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Stats:
    cpu_percent: float
    memory_percent: float
    memory_used_mb: int
    memory_total_mb: int
    disk_percent: float
    disk_used_gb: float
    disk_total_gb: float
    uptime_seconds: int
    load_1: float
    load_5: float
    load_15: float


@dataclass(frozen=True, slots=True)
class Hardware:
    hostname: str
    os: str
    os_version: str
    kernel: str
    arch: str
    cpu_cores: int
    memory_mb: int
    disk_gb: float
    model: str


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def _cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies from the aggregate line of /proc/stat."""
    line = _read("/proc/stat").partition("\n")[0].split()
    if not line or line[0] != "cpu":
        return 0, 0
    values = [int(v) for v in line[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])  # guest time is already counted in user/nice
    return total - idle, total


def _meminfo() -> tuple[int, int]:
    """(total, available) in kB."""
    fields: dict[str, int] = {}
    for line in _read("/proc/meminfo").splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            fields[name] = int(parts[0])
    total = fields.get("MemTotal", 0)
    return total, fields.get("MemAvailable", fields.get("MemFree", 0))


class StatsSampler:
    """Samples Stats; keeps the previous CPU counters to compute usage between calls."""

    def __init__(self, disk_path: str = "/") -> None:
        self._disk_path = disk_path
        self._last_cpu = _cpu_times()

    def sample(self) -> Stats:
        busy, total = _cpu_times()
        last_busy, last_total = self._last_cpu
        self._last_cpu = (busy, total)
        elapsed = total - last_total
        cpu = 100.0 * (busy - last_busy) / elapsed if elapsed > 0 else 0.0
        mem_total, mem_available = _meminfo()
        mem_used = max(mem_total - mem_available, 0)
        st = os.statvfs(self._disk_path)
        disk_total = st.f_blocks * st.f_frsize
        disk_used = (st.f_blocks - st.f_bfree) * st.f_frsize
        uptime = _read("/proc/uptime").split()
        load = os.getloadavg()
        return Stats(
            cpu_percent=round(min(max(cpu, 0.0), 100.0), 2),
            memory_percent=round(100.0 * mem_used / mem_total, 2) if mem_total else 0.0,
            memory_used_mb=mem_used // 1024,
            memory_total_mb=mem_total // 1024,
            disk_percent=round(100.0 * disk_used / disk_total, 2) if disk_total else 0.0,
            disk_used_gb=round(disk_used / 1e9, 3),
            disk_total_gb=round(disk_total / 1e9, 3),
            uptime_seconds=int(float(uptime[0])) if uptime else 0,
            load_1=load[0],
            load_5=load[1],
            load_15=load[2],
        )


def _os_release() -> tuple[str, str]:
    fields: dict[str, str] = {}
    for line in _read("/etc/os-release").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields[key] = value.strip().strip('"')
    return fields.get("NAME", platform.system()), fields.get("VERSION_ID", "")


def hardware(disk_path: str = "/") -> Hardware:
    os_name, os_version = _os_release()
    mem_total, _ = _meminfo()
    st = os.statvfs(disk_path)
    model = _read("/proc/device-tree/model").rstrip("\x00\n") or platform.machine()
    return Hardware(
        hostname=socket.gethostname(),
        os=os_name,
        os_version=os_version,
        kernel=platform.release(),
        arch=platform.machine(),
        cpu_cores=os.cpu_count() or 1,
        memory_mb=mem_total // 1024,
        disk_gb=round(st.f_blocks * st.f_frsize / 1e9, 3),
        model=model,
    )
