"""The repository's roles, which keys sign them, and how long each signature lasts.

Offline roles (root, top-level targets) are signed by keys that may live away from the
server (``fleetd tuf`` re-signs them); online roles are signed by the control API as it
goes. Online signatures are renewed at half their lifetime (``refresh_if_due``), so a
client sees an expired online role only after the repository has been down for that long.

========== ======== ======= ==============================================
role        lifetime  keys    re-signed
========== ======== ======= ==============================================
root        1 year    offline ``fleetd tuf rotate-root`` (``--keep-keys``)
targets     1 year    offline ``fleetd tuf rotate-targets`` (``--keep-keys``)
artifacts   30 days   online  each added target; at half-life
snapshot    7 days    online  each change of a targets role; at half-life
timestamp   1 day     online  each snapshot; at half-life
========== ======== ======= ==============================================
"""

from __future__ import annotations

import datetime as dt

ROOT = "root"
TARGETS = "targets"
SNAPSHOT = "snapshot"
TIMESTAMP = "timestamp"
ARTIFACTS = "artifacts"
"""The delegated role that signs every artifact target (all paths, terminating)."""

OFFLINE_ROLES = (ROOT, TARGETS)
ONLINE_ROLES = (ARTIFACTS, SNAPSHOT, TIMESTAMP)
ALL_ROLES = (ROOT, TARGETS, ARTIFACTS, SNAPSHOT, TIMESTAMP)

LIFETIMES: dict[str, dt.timedelta] = {
    ROOT: dt.timedelta(days=365),
    TARGETS: dt.timedelta(days=365),
    ARTIFACTS: dt.timedelta(days=30),
    SNAPSHOT: dt.timedelta(days=7),
    TIMESTAMP: dt.timedelta(days=1),
}

OFFLINE_WARNING = dt.timedelta(days=30)
"""``fleetd tuf status`` warns when an offline role expires sooner than this."""


def utcnow() -> dt.datetime:
    """Now, in UTC, to the second (TUF's date format has no fractions)."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def expiry(role: str, now: dt.datetime) -> dt.datetime:
    """When a signature of ``role`` made at ``now`` should expire."""
    return (now + LIFETIMES[role]).replace(microsecond=0)


def resign_due(role: str, expires: dt.datetime, now: dt.datetime) -> bool:
    """Whether an online role signed until ``expires`` should be re-signed at ``now``:
    when less than half of its lifetime is left."""
    return expires - now < LIFETIMES[role] / 2
