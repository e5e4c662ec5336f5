-- End devices: profiles, devices with their root keys, sessions, the join
-- server's DevNonce memory, the downlink queue and a bounded event log.

CREATE TABLE device_profiles (
    id         TEXT PRIMARY KEY,
    name       TEXT,
    created_at TEXT NOT NULL,
    -- The validated `LoRaWAN` object as the operator gave it (AWS shape).
    lorawan    TEXT NOT NULL
);

CREATE TABLE service_profiles (
    id         TEXT PRIMARY KEY,
    name       TEXT,
    created_at TEXT NOT NULL,
    lorawan    TEXT NOT NULL
);

CREATE TABLE devices (
    id                 TEXT PRIMARY KEY,
    dev_eui            INTEGER NOT NULL UNIQUE,
    name               TEXT,
    description        TEXT,
    destination        TEXT NOT NULL,
    device_profile_id  TEXT NOT NULL REFERENCES device_profiles(id),
    service_profile_id TEXT REFERENCES service_profiles(id),
    created_at         TEXT NOT NULL,
    -- OTAA root keys (NULL for ABP devices). Never shown again.
    join_eui           INTEGER,
    app_key            BLOB,
    gen_app_key        BLOB,
    -- The join server's JoinNonce counter (+1 per accepted join).
    join_nonce         INTEGER NOT NULL DEFAULT 0,
    -- Last uplink, as GetWirelessDeviceStatistics shows it (JSON).
    last_uplink_at     TEXT,
    last_uplink        TEXT
);

-- DevNonces a device used (1.0.2/1.0.3: never again; 1.0.4: must increase).
CREATE TABLE dev_nonces (
    device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    join_eui  INTEGER NOT NULL,
    dev_nonce INTEGER NOT NULL,
    at        TEXT NOT NULL,
    PRIMARY KEY (device_id, join_eui, dev_nonce)
);

-- slot 0: the active session; slot 1: a join's session not yet confirmed by an uplink.
CREATE TABLE device_sessions (
    device_id  TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    slot       INTEGER NOT NULL,
    dev_addr   INTEGER NOT NULL,
    nwk_s_key  BLOB NOT NULL,
    app_s_key  BLOB NOT NULL,
    -- Next expected FCntUp and next FCntDown to use (32 bits).
    fcnt_up    INTEGER NOT NULL,
    fcnt_down  INTEGER NOT NULL,
    -- MAC state (JSON of devices::session::MacState).
    mac        TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (device_id, slot)
);
CREATE INDEX device_sessions_dev_addr ON device_sessions(dev_addr);

CREATE TABLE device_queue (
    id         TEXT PRIMARY KEY,
    seq        INTEGER NOT NULL,
    device_id  TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    f_port     INTEGER NOT NULL,
    data       BLOB NOT NULL,
    confirmed  INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    -- A confirmed item that went out waits here for the device's ACK.
    sent_fcnt  INTEGER,
    attempts   INTEGER NOT NULL DEFAULT 0,
    sent_at    TEXT
);
CREATE INDEX device_queue_order ON device_queue(device_id, seq);

CREATE TABLE device_events (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    at        TEXT NOT NULL,
    kind      TEXT NOT NULL,
    body      TEXT NOT NULL
);
CREATE INDEX device_events_by_device ON device_events(device_id, seq);
