-- A gateway's last CUPS contact (when, from where, how it authenticated) moves
-- out of cups_reports into a table of its own. The contact write-behind
-- (cups::contacts) rewrites it for every polling gateway every few seconds; in the
-- wide report rows, with `at` in the version index, that dirtied most pages of
-- both B-trees per flush (100,000 gateways: ~28 µs of store-thread time per
-- contact). Narrow rows keyed by EUI (the rowid, so no index to keep) take ~5 µs
-- and touch a sixth of the pages (benches/README.md, issue 13).
CREATE TABLE cups_contacts (
    eui   INTEGER PRIMARY KEY REFERENCES gateways(eui) ON DELETE CASCADE,
    at    TEXT NOT NULL,
    peer  TEXT NOT NULL,
    auth  TEXT NOT NULL                 -- how it authenticated
);

INSERT INTO cups_contacts (eui, at, peer, auth)
    SELECT g.eui, r.at, r.peer, r.auth FROM cups_reports r JOIN gateways g ON g.id = r.gateway_id;

-- What the gateway last reported, as before but for the contact, plus the
-- gateway's EUI (copied once when the report is first written; EUIs never change)
-- so that GET /fleet counts online gateways per version from one covering index
-- and a rowid lookup per gateway in cups_contacts (~17 ms at 100,000).
CREATE TABLE cups_reports_new (
    gateway_id    TEXT PRIMARY KEY REFERENCES gateways(id) ON DELETE CASCADE,
    eui           INTEGER NOT NULL,
    station       TEXT NOT NULL,
    model         TEXT NOT NULL,
    package       TEXT,
    keys          TEXT NOT NULL,                -- JSON array of key CRCs
    cups_uri      TEXT,
    tc_uri        TEXT,
    cups_cred_crc INTEGER NOT NULL,
    tc_cred_crc   INTEGER NOT NULL
);

INSERT INTO cups_reports_new (gateway_id, eui, station, model, package, keys, cups_uri,
        tc_uri, cups_cred_crc, tc_cred_crc)
    SELECT r.gateway_id, g.eui, r.station, r.model, r.package, r.keys, r.cups_uri,
        r.tc_uri, r.cups_cred_crc, r.tc_cred_crc
    FROM cups_reports r JOIN gateways g ON g.id = r.gateway_id;

DROP TABLE cups_reports;
ALTER TABLE cups_reports_new RENAME TO cups_reports;

CREATE INDEX cups_reports_version ON cups_reports(station, package, model, eui);
