-- The audit log (issue 11): one row per state-changing operator call, API or
-- console. Written by one middleware (src/audit.rs); pruned by [audit] retention_days.
CREATE TABLE audit_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          TEXT NOT NULL,
    -- Unix microseconds of `at`, for since/until filters and pruning.
    at_us       INTEGER NOT NULL,
    -- The name of the token or access key (never the secret), or the console user's.
    actor       TEXT NOT NULL,
    method      TEXT NOT NULL,
    path        TEXT NOT NULL,
    -- The route's first segment: wireless-gateways, blobs, fuota-tasks...
    resource    TEXT NOT NULL,
    resource_id TEXT,
    status      INTEGER NOT NULL,
    summary     TEXT NOT NULL
);
CREATE INDEX audit_log_at ON audit_log(at_us);
CREATE INDEX audit_log_resource_id ON audit_log(resource_id, id);
CREATE INDEX audit_log_actor ON audit_log(actor, id);

-- The console's Fleet page counts gateways by reported version through
-- cups_reports_version (station, package, model, at), made by 0009 for GET /fleet.
