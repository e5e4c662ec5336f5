-- Uploaded files (update.bin, FUOTA images), content-addressed: id = "sha256:<hex>".
-- The bytes live in state_dir/blobs/sha256-<hex>; a row exists only once the file is durable.
CREATE TABLE blobs (
    id         TEXT PRIMARY KEY,
    size       INTEGER NOT NULL,
    created_at TEXT NOT NULL
);

-- Firmware signing public keys, as gateways hold them in sig-N.key (64 raw bytes X||Y).
CREATE TABLE signing_keys (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    key_crc    INTEGER NOT NULL,
    public_key BLOB NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX signing_keys_crc ON signing_keys(key_crc);

-- "Gateways reporting CurrentVersion get this signed update.blob" (AWS task definitions).
CREATE TABLE task_definitions (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT, -- creation order: the tie-break between matches
    id           TEXT NOT NULL UNIQUE,
    name         TEXT,
    auto_create  INTEGER NOT NULL,
    blob_id      TEXT NOT NULL REFERENCES blobs(id),
    sig_key_crc  INTEGER NOT NULL,
    signature    BLOB NOT NULL,                      -- DER ECDSA signature
    verified     INTEGER NOT NULL,                   -- checked against a registered key at creation
    cur_station  TEXT NOT NULL,
    cur_package  TEXT NOT NULL,
    cur_model    TEXT NOT NULL,
    upd_station  TEXT,
    upd_package  TEXT,
    upd_model    TEXT,
    created_at   TEXT NOT NULL
);
CREATE INDEX task_definitions_current ON task_definitions(cur_station, cur_package, cur_model);

-- One task per gateway and definition run; at most one open task per gateway.
CREATE TABLE tasks (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    gateway_id    TEXT NOT NULL REFERENCES gateways(id) ON DELETE CASCADE,
    definition_id TEXT NOT NULL REFERENCES task_definitions(id) ON DELETE CASCADE,
    status        TEXT NOT NULL CHECK (status IN ('PENDING', 'IN_PROGRESS', 'FIRST_RETRY',
                                                  'SECOND_RETRY', 'COMPLETED', 'FAILED')),
    status_reason TEXT NOT NULL,
    -- Deleted by the operator: kept so auto-create does not start it again.
    deleted       INTEGER NOT NULL DEFAULT 0,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
CREATE UNIQUE INDEX tasks_one_open ON tasks(gateway_id)
    WHERE deleted = 0 AND status IN ('PENDING', 'IN_PROGRESS', 'FIRST_RETRY', 'SECOND_RETRY');
CREATE INDEX tasks_definition ON tasks(definition_id, status);

-- Every delivery of an update: InFlight while streaming, then Delivered or Interrupted.
CREATE TABLE task_attempts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id     INTEGER NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    at          TEXT NOT NULL,
    bytes_total INTEGER NOT NULL,
    bytes_sent  INTEGER NOT NULL DEFAULT 0,
    outcome     TEXT NOT NULL CHECK (outcome IN ('InFlight', 'Delivered', 'Interrupted'))
);
CREATE INDEX task_attempts_task ON task_attempts(task_id);
