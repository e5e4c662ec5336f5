#![allow(dead_code)]
pub mod aws;
pub mod campaign;
pub mod firmware;
pub mod form;
pub mod fuota;
pub mod fuota_device;
pub mod fuota_fleet;
pub mod integration;
pub mod lns_station;
pub mod lorawan_device;
pub mod process;
pub mod server;
pub mod station;
