"""The rollout engine: deployments of an update to devices, in waves.

The rules are IO-free, in ``fleetd.domain.rollout``:

- :mod:`fleetd.domain.rollout.policy` resolves and validates a deployment's configuration
  (request over the update's strategy over server defaults);
- :mod:`fleetd.domain.rollout.waves` sizes the waves;
- :mod:`fleetd.domain.rollout.decide` decides what a deployment does next from its
  counters and timings (assign, settle, promote, await approval, halt, complete);
- :mod:`fleetd.domain.rollout.assign`, :mod:`fleetd.domain.rollout.rollback` and
  :mod:`fleetd.domain.rollout.gates` decide what devices get and whether a wave passes.

This package composes them with storage (``fleetd.storage.deployment*``, the only SQL):

- :mod:`fleetd.services.rollout.engine` is the adapter: one active instance across control
  API replicas (a PostgreSQL advisory lock), all state in PostgreSQL;
- :mod:`fleetd.services.rollout.operations`: the operator actions (pause, resume, approve,
  cancel, rollback);
- :mod:`fleetd.services.rollout.rollback`: one batch of a rollback;
- :mod:`fleetd.services.rollout.rollback_targets`: previous versions re-signed for agents.

docs/rollouts.md describes the state machine and the choices made.
"""
