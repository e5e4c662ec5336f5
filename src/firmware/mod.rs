//! Gateway firmware updates: signatures and keys as station checks them
//! (`signature`), the task state machine with definition matching (`task`) and
//! version ranges (`range`).
//! All are pure; the CUPS handler and the operator API do the I/O around them.

pub mod range;
pub mod signature;
pub mod task;
