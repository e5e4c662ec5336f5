-- FUOTA with end devices (end-devices.md §6–§8): the group's McKey (each device
-- gets it encrypted under its own McKEKey), the devices of groups and tasks, and
-- each device's step through a started task, so a restart resumes it.

-- NULL for groups created before this migration or from session keys alone:
-- such a group cannot set devices up.
ALTER TABLE multicast_groups ADD COLUMN mc_key BLOB;

-- TS006 version the devices must report after the reboot (ours, operator-api.md).
ALTER TABLE fuota_tasks ADD COLUMN expected_fw_version INTEGER;
-- What the control plane sends every device (fuota::control::Control, JSON); set
-- at start for tasks with devices.
ALTER TABLE fuota_tasks ADD COLUMN control TEXT;
-- When the last fragment went out: the status and verification steps begin.
ALTER TABLE fuota_tasks ADD COLUMN frags_done_at TEXT;

CREATE TABLE multicast_group_devices (
    group_id  TEXT NOT NULL REFERENCES multicast_groups(id) ON DELETE CASCADE,
    device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, device_id)
);
CREATE INDEX multicast_group_devices_by_device ON multicast_group_devices(device_id);

-- Devices of a task. Associated while Pending; at start the group's devices are
-- added, and every row gets its step state (fuota::device::State).
CREATE TABLE fuota_devices (
    task_id    TEXT NOT NULL REFERENCES fuota_tasks(id) ON DELETE CASCADE,
    device_id  TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    status     TEXT NOT NULL DEFAULT 'Initial',
    reason     TEXT,
    status_at  TEXT NOT NULL,
    step       TEXT NOT NULL DEFAULT 'Clock',
    step_at    TEXT NOT NULL,
    -- Tries of the step's request that reached a gateway, and whether the last
    -- one still waits for the device's next uplink.
    attempts   INTEGER NOT NULL DEFAULT 0,
    awaiting   INTEGER NOT NULL DEFAULT 0,
    final      INTEGER NOT NULL DEFAULT 0,
    reboot_at  TEXT,
    PRIMARY KEY (task_id, device_id)
);
CREATE INDEX fuota_devices_by_device ON fuota_devices(device_id);
