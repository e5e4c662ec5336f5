//! The CUPS face: `POST /update-info` over HTTPS, as Basics Station polls it
//! (spec/cups-protocol.md). `request` parses what the gateway reports, `decide` is
//! the pure decision of what it gets, `answer` encodes the binary body byte for
//! byte, `credentials` builds the blobs, `throttle` rate-limits open registration, `memo` answers settled polls again
//! without the database, and `handler` is the thin I/O shell that
//! authenticates, loads, decides, records and writes.

pub mod answer;
pub mod contacts;
pub mod credentials;
pub mod decide;
pub mod handler;
pub mod memo;
pub mod refused;
pub mod request;
pub mod throttle;

pub use handler::router;
