//! FUOTA (firmware update over the air to end devices through LoRaWAN multicast).
//! Pure building blocks: `codec` (TS004 fragmentation, the v1 parity encoder,
//! FPort 201 commands), `keys` (TS005 multicast keys, the encrypted and MIC'd
//! multicast frame), both thin layers over ChirpStack's `lrwn` (pinned 4.13.0) and
//! checked against `tests/vectors/fuota/`; `plan` (a session's shape and duration
//! against the duty cycle), `classb` (ping slots), `schedule` (who sends which
//! fragment when), `job` (the task's status machine) and `group` (multicast group
//! and session rules). The one part with I/O is `runner`: it turns stored tasks
//! into downlinks through the LNS and records progress (spec: fuota.md §5–§10).

pub mod classb;
pub mod codec;
pub mod control;
pub mod device;
pub mod group;
pub mod job;
pub mod keys;
pub mod plan;
pub mod runner;
pub mod schedule;
