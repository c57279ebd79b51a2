"""IO-free rules shared by every part of fleetd: validation limits, decisions, contracts.

Nothing here touches a store, the network or the filesystem (import-linter checks it), so
each rule can be read and tested on its own. This ``__init__`` imports nothing: the agent's
wheel ships ``fleetd.domain.signed_target`` with it.
"""
