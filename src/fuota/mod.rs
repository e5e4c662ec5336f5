//! FUOTA (firmware update over the air to end devices through LoRaWAN multicast): the pure
//! building blocks, no I/O. `codec` holds the TS004 fragmentation side (padding, the v1
//! FragAlgo 0 parity encoder, DataFragment and session command bytes on FPort 201), `keys`
//! the TS005 multicast key derivation and the encrypted, MIC'd multicast downlink frame. Both
//! are thin layers over ChirpStack's `lrwn` crate (pinned 4.13.0) and are checked against the
//! vectors in `tests/vectors/fuota/` (spec: shared/spec/fuota.md §5–§8, §12). `plan`
//! computes a session's shape and duration against the gateway's duty cycle (§10).

pub mod codec;
pub mod keys;
pub mod plan;
