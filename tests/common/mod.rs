#![allow(dead_code)]
pub mod firmware;
pub mod process;
pub mod server;
pub mod station;
