-- GetDeviceHealth (docs/analytics.md section 4): each device's newest unrevoked
-- certificate expiry, denormalised onto devices so that a fleet-wide health summary is
-- one scan of devices. Looking it up per device (an index probe into device_certificates
-- for each of 1,000,000 devices) cost ~4 us a device, four times the 1 s budget
-- (bench/analytics/device_health.py).
--
-- Kept by triggers on device_certificates rather than by each writer (issuance, reissue,
-- revocation at offboarding, a deleted device's cascade), so no writer can forget it:
-- one statement-level trigger per event, over the statement's changed rows.

ALTER TABLE devices ADD COLUMN cert_not_after timestamptz;

UPDATE devices d SET cert_not_after = c.not_after
FROM (SELECT device_id, max(not_after) AS not_after FROM device_certificates
      WHERE revoked_at IS NULL GROUP BY device_id) c
WHERE c.device_id = d.device_id;

CREATE FUNCTION devices_refresh_cert_not_after() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE devices d
    SET cert_not_after = (SELECT max(c.not_after) FROM device_certificates c
                          WHERE c.device_id = d.device_id AND c.revoked_at IS NULL)
    WHERE d.device_id IN (SELECT DISTINCT device_id FROM changed_certificates);
    RETURN NULL;
END
$$;

CREATE TRIGGER device_certificates_inserted AFTER INSERT ON device_certificates
    REFERENCING NEW TABLE AS changed_certificates
    FOR EACH STATEMENT EXECUTE FUNCTION devices_refresh_cert_not_after();
CREATE TRIGGER device_certificates_updated AFTER UPDATE ON device_certificates
    REFERENCING NEW TABLE AS changed_certificates
    FOR EACH STATEMENT EXECUTE FUNCTION devices_refresh_cert_not_after();
CREATE TRIGGER device_certificates_deleted AFTER DELETE ON device_certificates
    REFERENCING OLD TABLE AS changed_certificates
    FOR EACH STATEMENT EXECUTE FUNCTION devices_refresh_cert_not_after();

-- The agent version as a sort key for the agent_version check, computed once per write
-- instead of by a regular expression per device per summary (~2.5 us a device, as much as
-- the rest of the summary). fleetd.domain.device_health.parse_version is the rule;
-- AGENT_VERSION_PATTERN there is this pattern (tests/fleetd/storage/analytics/
-- test_health.py holds them equal and compares both over generated versions). NULL: the
-- version does not start like one.
--
-- The key is text compared bytewise (COLLATE "C": a memcmp), not a numeric[] (whose
-- element-wise numeric comparison cost ~150 ms per 1,000,000 devices, a sixth of the
-- summary's budget): for each of major, minor, patch, its decimal digits without leading
-- zeros (0: none) preceded by their count as 10 digits. The count orders numbers of
-- different lengths, the digits numbers of the same length, and each part's encoding is
-- self-delimiting, so the byte order is the (major, minor, patch) order, for numbers of
-- any size. fleetd.storage.analytics.health.version_key is the same encoding in Python.
CREATE FUNCTION fleetd_agent_version_key(version text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT lpad(length(major)::text, 10, '0') || major
        || lpad(length(minor)::text, 10, '0') || minor
        || lpad(length(patch)::text, 10, '0') || patch
    FROM regexp_match(version, '^v?([0-9]+)(?:\.([0-9]+))?(?:\.([0-9]+))?') AS m,
         LATERAL (SELECT ltrim(m[1], '0'), ltrim(coalesce(m[2], ''), '0'),
                         ltrim(coalesce(m[3], ''), '0')) AS p(major, minor, patch)
    WHERE m IS NOT NULL
$$;

ALTER TABLE devices ADD COLUMN agent_version_key text COLLATE "C"
    GENERATED ALWAYS AS (fleetd_agent_version_key(agent_version)) STORED;
