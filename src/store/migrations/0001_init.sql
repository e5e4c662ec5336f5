-- Gateways the operator registered (or CUPS registered, with [gateways] unknown = "register").
CREATE TABLE gateways (
    id               TEXT PRIMARY KEY,
    eui              INTEGER NOT NULL UNIQUE,   -- u64 stored as its i64 bit pattern
    name             TEXT NOT NULL,
    description      TEXT,
    rf_region        TEXT,
    sub_bands        TEXT,                      -- JSON array, or NULL for the default
    join_eui_filters TEXT,                      -- JSON [[start,end],...]
    net_id_filters   TEXT,                      -- JSON ["000013",...]
    cups_uri         TEXT,                      -- per-gateway override of [cups] public_uri
    tc_uri           TEXT,                      -- per-gateway override of [lns] public_uri
    origin           TEXT NOT NULL DEFAULT 'operator' CHECK (origin IN ('operator', 'cups')),
    created_at       TEXT NOT NULL
);

-- The last CUPS poll of each gateway: what it reported, when and from where.
CREATE TABLE cups_reports (
    gateway_id    TEXT PRIMARY KEY REFERENCES gateways(id) ON DELETE CASCADE,
    at            TEXT NOT NULL,
    peer          TEXT NOT NULL,
    station       TEXT NOT NULL,
    model         TEXT NOT NULL,
    package       TEXT,
    keys          TEXT NOT NULL,                -- JSON array of key CRCs
    cups_uri      TEXT,
    tc_uri        TEXT,
    cups_cred_crc INTEGER NOT NULL,
    tc_cred_crc   INTEGER NOT NULL,
    auth          TEXT NOT NULL                 -- how it authenticated
);

-- Credential generations per gateway and service (CUPS or LNS). At most one is
-- `current`; older ones stay `previous` (still accepted) until the gateway confirms
-- the current one, then become `retired`, except the generation the gateway's
-- cups-bak set holds, which stays accepted so its fallback still gets in.
CREATE TABLE credentials (
    gateway_id   TEXT NOT NULL REFERENCES gateways(id) ON DELETE CASCADE,
    service      TEXT NOT NULL CHECK (service IN ('CUPS', 'LNS')),
    generation   INTEGER NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('ClientCertificate', 'Token')),
    blob         BLOB NOT NULL,                 -- exactly what CUPS sends
    blob_crc     INTEGER NOT NULL,
    cert_sha256  TEXT,                          -- client certificate fingerprint
    token_sha256 TEXT,                          -- token hash; the token itself is only in blob
    state        TEXT NOT NULL CHECK (state IN ('current', 'previous', 'retired')),
    backup       INTEGER NOT NULL DEFAULT 0,
    created_at   TEXT NOT NULL,
    confirmed_at TEXT,
    PRIMARY KEY (gateway_id, service, generation)
);
CREATE INDEX credentials_cert ON credentials(cert_sha256) WHERE cert_sha256 IS NOT NULL;
CREATE INDEX credentials_token ON credentials(token_sha256) WHERE token_sha256 IS NOT NULL;
