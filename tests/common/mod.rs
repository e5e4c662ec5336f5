#![allow(dead_code)]
pub mod firmware;
pub mod lns_station;
pub mod process;
pub mod server;
pub mod station;
