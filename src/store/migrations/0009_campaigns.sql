-- Version ranges on task definitions (LoRaWAN.CurrentVersionRange): when
-- range_package is set, the definition matches by range and its cur_* columns are ''.
ALTER TABLE task_definitions ADD COLUMN range_package TEXT;
ALTER TABLE task_definitions ADD COLUMN range_station TEXT;
ALTER TABLE task_definitions ADD COLUMN range_model TEXT;
CREATE INDEX task_definitions_ranged ON task_definitions(range_package) WHERE range_package IS NOT NULL;

-- Rollout campaigns: a stored job that rolls definitions out in waves.
CREATE TABLE campaigns (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    id             TEXT NOT NULL UNIQUE,
    name           TEXT,
    spec           TEXT NOT NULL,                -- the checked create body (JSON)
    state          TEXT NOT NULL CHECK (state IN ('Scheduled', 'Running', 'Paused',
                                                  'Completed', 'Cancelled', 'Aborted')),
    state_reason   TEXT NOT NULL,
    waves          INTEGER NOT NULL,             -- how many waves exist (retry-failed adds one)
    open_wave      INTEGER NOT NULL DEFAULT -1,  -- the highest wave opened; -1 before the first
    waived_wave    INTEGER NOT NULL DEFAULT -1,  -- a wave whose gate the operator waived (resume)
    wave_opened_at TEXT,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);

-- The definitions a campaign rolls out, in hop order; a definition is in at most
-- one campaign that is not finished (checked when a campaign is created).
CREATE TABLE campaign_hops (
    campaign_id   TEXT NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    hop           INTEGER NOT NULL,
    definition_id TEXT NOT NULL REFERENCES task_definitions(id),
    PRIMARY KEY (campaign_id, hop)
);
CREATE INDEX campaign_hops_definition ON campaign_hops(definition_id);

-- Every gateway of a campaign with its wave and where it stands.
CREATE TABLE campaign_gateways (
    campaign_id  TEXT NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    gateway_id   TEXT NOT NULL REFERENCES gateways(id) ON DELETE CASCADE,
    wave         INTEGER NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('Waiting', 'Queued', 'InProgress', 'Succeeded',
                                                 'Failed', 'Mismatch', 'Cancelled')),
    reason       TEXT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,  -- tasks the campaign created for it
    task_id      INTEGER,                     -- the open task, while InProgress
    started_at   TEXT,                        -- when its latest task was created
    finished_at  TEXT,
    PRIMARY KEY (campaign_id, gateway_id)
);
CREATE INDEX campaign_gateways_status ON campaign_gateways(campaign_id, status, wave);
-- The job's counts per wave and status and its starts in the last minute read
-- these instead of the rows: one tick stays cheap at 100,000 gateways.
CREATE INDEX campaign_gateways_wave ON campaign_gateways(campaign_id, wave, status);
CREATE INDEX campaign_gateways_started ON campaign_gateways(campaign_id, started_at);
CREATE INDEX campaign_gateways_gateway ON campaign_gateways(gateway_id);

-- GET /fleet groups every gateway by its reported version: a covering index
-- makes that one index scan (100,000 gateways: ~15 ms instead of ~70-120 ms).
CREATE INDEX cups_reports_version ON cups_reports(station, package, model, at);
