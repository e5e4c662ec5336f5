//! GPS time: microseconds since 1980-01-06T00:00:00Z, which runs ahead of UTC by
//! the leap seconds since then (18 s since 2017, with none announced after).

/// Unix time of the GPS epoch.
pub const GPS_EPOCH_UNIX: i64 = 315_964_800;
/// GPS − UTC in seconds.
pub const LEAP_SECONDS: i64 = 18;

/// GPS µs for a Unix time in µs.
pub fn gps_from_unix_us(unix_us: i64) -> i64 {
    unix_us - GPS_EPOCH_UNIX * 1_000_000 + LEAP_SECONDS * 1_000_000
}

/// Unix µs for a GPS time in µs.
pub fn unix_from_gps_us(gps_us: i64) -> i64 {
    gps_us + GPS_EPOCH_UNIX * 1_000_000 - LEAP_SECONDS * 1_000_000
}

/// Unix time now in µs.
pub fn unix_now_us() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    d.as_micros() as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_known_value() {
        // 2021-01-01T00:00:00Z is GPS second 1293494418.
        let unix = 1_609_459_200_000_000;
        assert_eq!(gps_from_unix_us(unix), 1_293_494_418_000_000);
        assert_eq!(unix_from_gps_us(gps_from_unix_us(unix)), unix);
    }
}
