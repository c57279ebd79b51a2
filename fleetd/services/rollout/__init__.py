"""The rollout engine: deployments of an update to devices, in waves.

- :mod:`fleetd.domain.rollout.policy` resolves and validates a deployment's configuration
  (request over the update's strategy over server defaults) and plans its waves;
- :mod:`fleetd.domain.rollout.decide` decides, without IO, what a deployment does next from its
  counters and timings (assign, settle, promote, await approval, halt, complete);
- :mod:`fleetd.services.rollout.engine` is the adapter: one active instance across control API
  replicas (a PostgreSQL advisory lock), all state in PostgreSQL.

docs/rollouts.md describes the state machine and the choices made.
"""
