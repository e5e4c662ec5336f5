//! Gateway firmware updates: signatures and keys as station checks them
//! (`signature`), and the task state machine with definition matching (`task`).
//! Both are pure; the CUPS handler and the operator API do the I/O around them.

pub mod signature;
pub mod task;
