//! The PHYPayload bytes of an uplink, rebuilt from the fields station splits it
//! into (end-devices.md §1.6), so that copies from several gateways compare equal
//! and lrwn can check the MIC. Pure.

use crate::lns::msg::Frame;

/// The frame as it was on air.
pub fn rebuild(frame: &Frame) -> Vec<u8> {
    match frame {
        Frame::Data {
            mhdr,
            dev_addr,
            fctrl,
            fcnt,
            fopts,
            fport,
            payload,
            mic,
        } => {
            let mut b = Vec::with_capacity(13 + fopts.len() + payload.len());
            b.push(*mhdr);
            b.extend_from_slice(&dev_addr.to_le_bytes());
            b.push(*fctrl);
            b.extend_from_slice(&fcnt.to_le_bytes());
            b.extend_from_slice(fopts);
            if let Some(port) = fport {
                b.push(*port);
                b.extend_from_slice(payload);
            }
            b.extend_from_slice(&mic.to_le_bytes());
            b
        }
        Frame::Join {
            mhdr,
            join_eui,
            dev_eui,
            dev_nonce,
            mic,
        } => {
            let mut b = Vec::with_capacity(23);
            b.push(*mhdr);
            b.extend_from_slice(&join_eui.to_le_bytes());
            b.extend_from_slice(&dev_eui.to_le_bytes());
            b.extend_from_slice(&dev_nonce.to_le_bytes());
            b.extend_from_slice(&mic.to_le_bytes());
            b
        }
        Frame::Proprietary { phy_payload } => phy_payload.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lns::msg::{parse, Incoming};

    fn station_form(v: &serde_json::Value) -> Vec<u8> {
        let mut m = v.clone();
        // The vectors carry only the frame fields; add the radio part station sends.
        m["DR"] = 5.into();
        m["Freq"] = 868_100_000.into();
        m["upinfo"] = serde_json::json!({"rctx":0,"xtime":1,"rssi":-50,"snr":9});
        let Incoming::Uplink(u) = parse(&m.to_string()).unwrap() else {
            panic!("not an uplink: {m}")
        };
        rebuild(&u.frame)
    }

    #[test]
    fn station_forms_of_the_vectors_rebuild_byte_for_byte() {
        let mut seen = 0;
        for file in [
            include_str!("../../tests/vectors/lorawan/join.json"),
            include_str!("../../tests/vectors/lorawan/data_frames.json"),
        ] {
            let v: serde_json::Value = serde_json::from_str(file).unwrap();
            walk(&v, &mut |o| {
                for (form, phy) in [
                    ("station_jreq", "phy_payload"),
                    ("station_updf", "phy_payload"),
                ] {
                    if let (Some(s), Some(p)) = (o.get(form), o.get(phy)) {
                        let s: serde_json::Value = match s {
                            serde_json::Value::String(t) => serde_json::from_str(t).unwrap(),
                            other => other.clone(),
                        };
                        assert_eq!(hex::encode(station_form(&s)), p.as_str().unwrap());
                        seen += 1;
                    }
                }
            });
        }
        assert!(seen >= 5, "only {seen} station forms found");
    }

    fn walk(v: &serde_json::Value, f: &mut dyn FnMut(&serde_json::Map<String, serde_json::Value>)) {
        match v {
            serde_json::Value::Object(o) => {
                f(o);
                o.values().for_each(|x| walk(x, f));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, f)),
            _ => {}
        }
    }
}
