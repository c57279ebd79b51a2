"""fleetd's TUF repository (python-tuf Metadata API), stored in PostgreSQL.

``TufRepository`` is what the control API uses (add targets, refresh the timestamp,
serve metadata); ``admin`` creates the repository and rotates its offline roles. See
docs/tuf.md for roles, keys, expiry, rotation and URLs.
"""

from fleetd.domain.signed_target import TargetCustom
from fleetd.services.tuf_repo.keys import KeyDirs, MissingKeys
from fleetd.services.tuf_repo.repository import (
    NewTarget,
    RepositoryFull,
    RepositoryMissing,
    TargetConflict,
    TufRepository,
)

__all__ = [
    "KeyDirs",
    "MissingKeys",
    "NewTarget",
    "RepositoryFull",
    "RepositoryMissing",
    "TargetConflict",
    "TargetCustom",
    "TufRepository",
]
