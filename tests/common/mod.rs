#![allow(dead_code)]
pub mod firmware;
pub mod server;
pub mod station;
