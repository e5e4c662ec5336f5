-- The AWS drop-in (issue 12): access keys for SigV4, ClientRequestToken
-- idempotency records, and the S3-compatible names of uploaded blobs.

-- SigV4 needs the secret itself (the signing key is an HMAC chain over it and the
-- request's date, region and service), so it is kept as issued, in this 0600 file.
CREATE TABLE access_keys (
    id           TEXT PRIMARY KEY,          -- AccessKeyId, e.g. SKAK...
    name         TEXT NOT NULL UNIQUE,
    secret       TEXT NOT NULL,
    enabled      INTEGER NOT NULL DEFAULT 1,
    created_at   TEXT NOT NULL,
    last_used_at TEXT
);

-- One record per (operation, ClientRequestToken): the body's hash and the first
-- answer, replayed for the same body and refused (ConflictException) for another.
CREATE TABLE idempotency (
    operation   TEXT NOT NULL,
    token       TEXT NOT NULL,
    body_sha256 TEXT NOT NULL,
    status      INTEGER NOT NULL,
    answer      TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (operation, token)
) WITHOUT ROWID;

CREATE TABLE s3_buckets (
    name       TEXT PRIMARY KEY,
    created_at TEXT NOT NULL
) WITHOUT ROWID;

-- An object is a name for a blob: s3://bucket/key resolves to blob_id. Deleting
-- the blob deletes the names that point at it.
CREATE TABLE s3_objects (
    bucket     TEXT NOT NULL REFERENCES s3_buckets (name) ON DELETE CASCADE,
    key        TEXT NOT NULL,
    blob_id    TEXT NOT NULL REFERENCES blobs (id) ON DELETE CASCADE,
    size       INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (bucket, key)
) WITHOUT ROWID;
CREATE INDEX s3_objects_by_blob ON s3_objects (blob_id);

-- TagResource reaches every resource kind; their tags go when they are deleted
-- (gateways already drop theirs in Store::delete_gateway).
CREATE TRIGGER task_definitions_untag AFTER DELETE ON task_definitions BEGIN
    DELETE FROM tags WHERE resource_type = 'WirelessGatewayTaskDefinition' AND resource_id = OLD.id;
END;
CREATE TRIGGER multicast_groups_untag AFTER DELETE ON multicast_groups BEGIN
    DELETE FROM tags WHERE resource_type = 'MulticastGroup' AND resource_id = OLD.id;
END;
CREATE TRIGGER fuota_tasks_untag AFTER DELETE ON fuota_tasks BEGIN
    DELETE FROM tags WHERE resource_type = 'FuotaTask' AND resource_id = OLD.id;
END;
CREATE TRIGGER devices_untag AFTER DELETE ON devices BEGIN
    DELETE FROM tags WHERE resource_type = 'WirelessDevice' AND resource_id = OLD.id;
END;
CREATE TRIGGER device_profiles_untag AFTER DELETE ON device_profiles BEGIN
    DELETE FROM tags WHERE resource_type = 'DeviceProfile' AND resource_id = OLD.id;
END;
CREATE TRIGGER service_profiles_untag AFTER DELETE ON service_profiles BEGIN
    DELETE FROM tags WHERE resource_type = 'ServiceProfile' AND resource_id = OLD.id;
END;
