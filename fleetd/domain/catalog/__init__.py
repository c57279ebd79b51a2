"""The update catalogue: what CreateUpdate checks and gathers before an update is stored.

- ``spec`` — validation of a CreateUpdateRequest into an ``UpdatePlan`` (pure; every
  violation is an ``InvalidSpec`` naming the field).
- ``image_ref`` — container image references (pure).
- ``fetch`` — fetching an artifact's content from its URL into the blob store.
- ``registry`` — resolving a container image tag to its manifest digest (OCI
  distribution API).
- ``targets`` — TUF target paths and the device assignment template of an artifact (pure).

The control API's ``control_api/update_catalog.py`` puts them together; the tables are in
``fleetd/storage/updates.py``. See docs/updates.md.
"""
