"""The analytics roles' PostgreSQL advisory lock keys (taken with
``fleetd.storage.advisory_locks.session_lock``): one holder of each role at a time.

Each key is "fleetd" plus a byte, as the other locks of fleetd (``storage/migrate.py``,
``storage/blob_index.py``...), so they never collide with one another.
"""

from __future__ import annotations

from typing import Final

PARTITIONS: Final = 0x666C656574640050  # "fleetd" + "P": partition DDL, one process at a time
ROLLUP_COMPACTOR: Final = 0x666C656574640052  # "fleetd" + "R"
DEVICE_DOWNSAMPLER: Final = 0x666C656574640044  # "fleetd" + "D"
CENSUS: Final = 0x666C656574640053  # "fleetd" + "S"
