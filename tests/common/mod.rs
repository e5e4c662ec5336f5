#![allow(dead_code)]
pub mod server;
pub mod station;
