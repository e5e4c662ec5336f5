-- What each gateway told the LNS face (its `version` message), when it was
-- connected, and its uplink counters, persisted at every ping and at disconnect.
CREATE TABLE lns_state (
    gateway_id      TEXT PRIMARY KEY REFERENCES gateways(id) ON DELETE CASCADE,
    station         TEXT,
    firmware        TEXT,
    package         TEXT,
    model           TEXT,
    protocol        INTEGER,
    features        TEXT,
    region_warning  TEXT,
    connected_at    TEXT,
    disconnected_at TEXT,
    last_uplink_at  TEXT,
    uplinks         INTEGER NOT NULL DEFAULT 0,
    last_rssi       REAL,
    last_snr        REAL
);
