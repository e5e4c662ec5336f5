-- Multicast groups: the devices' shared address and keys, the session the devices
-- were told (DR, frequency, window), which gateways carry it, and the next
-- multicast frame counter. fcnt_next only ever grows: a FUOTA task reserves its
-- whole range of counters when it starts, so no counter is used twice, across
-- restarts too.
CREATE TABLE multicast_groups (
    id               TEXT PRIMARY KEY,
    name             TEXT,
    description      TEXT,
    rf_region        TEXT NOT NULL,
    dl_class         TEXT NOT NULL CHECK (dl_class IN ('ClassB', 'ClassC')),
    mc_addr          INTEGER NOT NULL,
    mc_app_s_key     BLOB NOT NULL,
    mc_nwk_s_key     BLOB NOT NULL,
    fcnt_next        INTEGER NOT NULL DEFAULT 0,
    -- The session (PUT /multicast-groups/{Id}/session); all NULL until set.
    dl_dr            INTEGER,
    dl_freq          INTEGER,
    session_start    TEXT,
    session_timeout  INTEGER,
    ping_slot_period INTEGER,
    -- 1: only the gateways listed below carry it (even when deletions emptied the
    -- list); 0: every gateway of its region.
    gateways_explicit INTEGER NOT NULL DEFAULT 0,
    created_at       TEXT NOT NULL
);

-- The gateways chosen for a group (see gateways_explicit).
CREATE TABLE multicast_group_gateways (
    group_id   TEXT NOT NULL REFERENCES multicast_groups(id) ON DELETE CASCADE,
    gateway_id TEXT NOT NULL REFERENCES gateways(id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, gateway_id)
);

-- FUOTA tasks (AWS's fields) and their job state: the scheduler picks up every
-- task in FuotaSession_Waiting or In_FuotaSession, so a restart resumes them.
CREATE TABLE fuota_tasks (
    id                 TEXT PRIMARY KEY,
    name               TEXT,
    description        TEXT,
    rf_region          TEXT NOT NULL,
    blob_id            TEXT NOT NULL REFERENCES blobs(id),
    redundancy_percent INTEGER NOT NULL,
    frag_size          INTEGER NOT NULL,
    interval_ms        INTEGER NOT NULL,
    descriptor         BLOB NOT NULL,
    group_id           TEXT REFERENCES multicast_groups(id),
    status             TEXT NOT NULL,
    status_reason      TEXT,
    start_time         TEXT,
    -- First multicast FCnt of this task: fragment N goes out with fcnt_base + N - 1.
    fcnt_base          INTEGER,
    total_frags        INTEGER,
    started_at         TEXT,
    finished_at        TEXT,
    created_at         TEXT NOT NULL
);
CREATE INDEX fuota_tasks_status ON fuota_tasks(status);

-- Per gateway progress of a running task. next_n is written before a fragment is
-- handed to the gateway (write-ahead), so a restart never sends a counter twice.
CREATE TABLE fuota_progress (
    task_id    TEXT NOT NULL REFERENCES fuota_tasks(id) ON DELETE CASCADE,
    gateway_id TEXT NOT NULL REFERENCES gateways(id) ON DELETE CASCADE,
    next_n     INTEGER NOT NULL DEFAULT 1,
    sent       INTEGER NOT NULL DEFAULT 0,
    confirmed  INTEGER NOT NULL DEFAULT 0,
    failed     INTEGER NOT NULL DEFAULT 0,
    last_sent_at TEXT,
    PRIMARY KEY (task_id, gateway_id)
);
