//! LoRa and FSK time on air, from Semtech's formula: explicit header, coding rate
//! 4/5, 8 preamble symbols, low-data-rate optimisation when a symbol lasts 16 ms
//! or more, and no payload CRC for downlinks (lns-protocol.md §5.7, fuota.md
//! §10.1). Pure arithmetic in microseconds.

/// A modulation: LoRa (spreading factor, bandwidth in Hz) or FSK 50 kbit/s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Modulation {
    Lora { sf: u8, bw_hz: u32 },
    Fsk,
}

/// Time on air in microseconds of a `payload_len`-byte PHYPayload.
pub fn time_on_air_us(m: Modulation, payload_len: usize, crc: bool) -> u64 {
    match m {
        // FSK at 50 kbit/s: payload plus 11 bytes of preamble, sync, length and CRC.
        Modulation::Fsk => ((payload_len as u64 + 11) * 8 * 1_000_000).div_ceil(50_000),
        Modulation::Lora { sf, bw_hz } => {
            let sf = i64::from(sf);
            // Symbol time in ns: 2^SF / BW.
            let tsym_ns = (1i64 << sf) * 1_000_000_000 / i64::from(bw_hz);
            let de = i64::from(tsym_ns >= 16_000_000);
            let pl = payload_len as i64;
            let num = 8 * pl - 4 * sf + 28 + if crc { 16 } else { 0 };
            let den = 4 * (sf - 2 * de);
            let blocks = if num > 0 { (num + den - 1) / den } else { 0 };
            let n_payload = 8 + blocks * 5;
            // (8 + 4.25) preamble symbols, expressed in quarter symbols.
            let quarter_symbols = 49 + 4 * n_payload;
            (quarter_symbols * tsym_ns / 4 / 1000) as u64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_airtime_vectors() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/vectors/fuota/airtime.json"
        ))
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let rows = v["rows"].as_array().unwrap();
        assert!(rows.len() >= 40);
        for r in rows {
            let m = Modulation::Lora {
                sf: r["sf"].as_u64().unwrap() as u8,
                bw_hz: r["bw_hz"].as_u64().unwrap() as u32,
            };
            let pl = r["phy_payload_len"].as_u64().unwrap() as usize;
            for (key, crc) in [("toa_ms_downlink_crc_off", false), ("toa_ms_crc_on", true)] {
                let want_us = (r[key].as_f64().unwrap() * 1000.0).round() as i64;
                let got = time_on_air_us(m, pl, crc) as i64;
                assert!((got - want_us).abs() <= 1, "{r} {key}: {got} µs");
            }
        }
    }

    #[test]
    fn spec_examples() {
        // lns-protocol.md §5.7: SF12/125 kHz, 50-byte PHYPayload ≈ 2.30 s.
        let t = time_on_air_us(
            Modulation::Lora {
                sf: 12,
                bw_hz: 125_000,
            },
            50,
            false,
        );
        assert!((2_290_000..2_310_000).contains(&t), "{t}");
        assert_eq!(time_on_air_us(Modulation::Fsk, 39, false), 8_000);
    }
}
