//! LoRa and LoRaWAN facts the faces share and that no crate in our stack
//! provides: time on air (Semtech's formula, as Basics Station computes it for
//! its duty-cycle checks) and GPS time.

pub mod airtime;
pub mod gps;
