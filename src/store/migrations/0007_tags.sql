-- Tags: AWS's {Key, Value} pairs on any resource. Gateways carry them first
-- (campaign targets, list filters); the Tags API calls name the others.
CREATE TABLE tags (
    resource_type TEXT NOT NULL,   -- 'WirelessGateway', 'WirelessDevice', 'FuotaTask', ...
    resource_id   TEXT NOT NULL,
    key           TEXT NOT NULL,
    value         TEXT NOT NULL,
    PRIMARY KEY (resource_type, resource_id, key)
) WITHOUT ROWID;

-- "Every gateway with Key = Value": the list filter and campaign targets.
CREATE INDEX tags_by_pair ON tags (resource_type, key, value, resource_id);
