//! `stationkeeper multicast-groups` and `fuota-tasks`: create a multicast group
//! and its session (AWS's JSON with `--cli-input-json file://...`, or flags),
//! choose the gateways that carry it, create a FUOTA task with its image uploaded
//! in the same command, associate and start it, and read its plan and progress
//! in plain words (or as the API's JSON with `--json`).

use std::path::PathBuf;

use clap::{Args, Subcommand};
use hyper::Method;
use serde_json::{json, Value};

use super::firmware::upload;
use super::{print_json, ApiClient, ApiOpts, CliResult};

#[derive(Args)]
pub struct GroupsArgs {
    #[command(subcommand)]
    command: GroupsCommand,
    #[command(flatten)]
    api: ApiOpts,
}

#[derive(Subcommand)]
enum GroupsCommand {
    /// Create from AWS's CreateMulticastGroup JSON and/or flags (flags win).
    /// Without --mc-key the server generates one and shows it this once.
    Create {
        /// `file://group.json` (or a plain path).
        #[arg(long)]
        cli_input_json: Option<String>,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        description: Option<String>,
        /// LoRaWAN.RfRegion: EU868, US915, AU915, AS923-1..4, KR920, IN865, EU433.
        #[arg(long)]
        region: Option<String>,
        /// LoRaWAN.DlClass: ClassC or ClassB (C and B work too).
        #[arg(long)]
        class: Option<String>,
        /// LoRaWAN.McAddr: 8 hex digits, like a DevAddr.
        #[arg(long)]
        mc_addr: Option<String>,
        /// LoRaWAN.McKey: 32 hex digits.
        #[arg(long)]
        mc_key: Option<String>,
    },
    /// One group: address, session, frame counter and carrying gateways.
    Get {
        id: String,
    },
    List,
    /// Delete a group no FUOTA task refers to.
    Delete {
        id: String,
    },
    /// Set the group's session (StartMulticastGroupSession JSON and/or flags).
    Session {
        id: String,
        /// `file://session.json`: {"LoRaWAN": {"DlDr", "DlFreq", "SessionStartTime", "SessionTimeout", "PingSlotPeriod"?}}.
        #[arg(long)]
        cli_input_json: Option<String>,
        /// LoRaWAN.DlDr: the region's data rate number.
        #[arg(long)]
        dr: Option<u8>,
        /// LoRaWAN.DlFreq in Hz, e.g. 869525000.
        #[arg(long)]
        freq: Option<u32>,
        /// LoRaWAN.SessionStartTime, RFC 3339.
        #[arg(long)]
        start: Option<String>,
        /// LoRaWAN.SessionTimeout in seconds (60..=172800).
        #[arg(long)]
        timeout: Option<u32>,
        /// LoRaWAN.PingSlotPeriod (ClassB only): 32, 64, ..., 4096.
        #[arg(long)]
        ping_slot_period: Option<u32>,
    },
    /// Choose the gateways (Id or EUI) that carry the group; none = every gateway
    /// of the group's region again. Prints the resulting selection.
    Gateways {
        id: String,
        #[arg(value_name = "GATEWAY")]
        gateways: Vec<String>,
    },
    /// Add wireless devices (Ids) to the group, or with --device-profile every
    /// device of that profile (StartBulkAssociateWirelessDeviceWithMulticastGroup).
    AddDevices {
        id: String,
        #[arg(value_name = "DEVICE")]
        devices: Vec<String>,
        #[arg(long)]
        device_profile: Option<String>,
    },
    /// Remove a wireless device from the group.
    RemoveDevice {
        id: String,
        device: String,
    },
    /// The group's devices.
    Devices {
        id: String,
    },
}

#[derive(Args)]
pub struct FuotaArgs {
    #[command(subcommand)]
    command: FuotaCommand,
    #[command(flatten)]
    api: ApiOpts,
}

#[derive(Subcommand)]
enum FuotaCommand {
    /// Create from AWS's CreateFuotaTask JSON.
    Create {
        /// `file://task.json` (or a plain path).
        #[arg(long)]
        cli_input_json: String,
        /// Upload this image first and use it as FirmwareUpdateImage.
        #[arg(long)]
        image: Option<PathBuf>,
    },
    /// The task's plan, status and progress in plain words.
    Get {
        id: String,
        /// Print the API's JSON instead.
        #[arg(long)]
        json: bool,
    },
    List,
    /// Delete a task; a running one stops sending at once.
    Delete {
        id: String,
    },
    /// Associate the task with a multicast group of its region.
    Associate {
        id: String,
        #[arg(long)]
        multicast_group: String,
    },
    /// Add wireless devices (Ids) to a Pending task: the task sets each one up,
    /// sends the image and checks the firmware it runs afterwards.
    AddDevices {
        id: String,
        #[arg(value_name = "DEVICE", required = true)]
        devices: Vec<String>,
    },
    /// Remove a wireless device from a Pending task.
    RemoveDevice {
        id: String,
        device: String,
    },
    /// The task's devices: FuotaDeviceStatus, step and reason of each.
    Devices {
        id: String,
        /// Print the API's JSON instead.
        #[arg(long)]
        json: bool,
    },
    /// Start the task, then print it as `get` does.
    Start {
        id: String,
        /// RFC 3339; default: as soon as the group's session allows.
        #[arg(long)]
        start_time: Option<String>,
        /// Print the API's JSON instead.
        #[arg(long)]
        json: bool,
    },
}

/// Reads `--cli-input-json` (`file://` prefix optional); it must be an object.
pub(super) fn read_input_json(arg: &str) -> Result<Value, String> {
    let file = arg.strip_prefix("file://").unwrap_or(arg);
    let text = std::fs::read_to_string(file).map_err(|e| format!("{file}: {e}"))?;
    let v: Value = serde_json::from_str(&text).map_err(|e| format!("{file}: {e}"))?;
    if !v.is_object() {
        return Err(format!("{file}: the input must be a JSON object"));
    }
    Ok(v)
}

/// Sets `body.LoRaWAN.<key>` for each given flag.
fn set_lorawan(body: &mut Value, fields: Vec<(&str, Option<Value>)>) -> Result<(), String> {
    let fields: Vec<_> = fields
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect();
    if fields.is_empty() {
        return Ok(());
    }
    let obj = body
        .as_object_mut()
        .ok_or("the input must be a JSON object")?;
    let lorawan = obj.entry("LoRaWAN").or_insert_with(|| json!({}));
    let lorawan = lorawan
        .as_object_mut()
        .ok_or("LoRaWAN in the input must be a JSON object")?;
    for (k, v) in fields {
        lorawan.insert(k.to_string(), v);
    }
    Ok(())
}

pub async fn groups(a: GroupsArgs) -> CliResult {
    let c = ApiClient::from_opts(&a.api)?;
    let group = |id: &str| format!("/multicast-groups/{id}");
    match a.command {
        GroupsCommand::Create {
            cli_input_json,
            name,
            description,
            region,
            class,
            mc_addr,
            mc_key,
        } => {
            let mut body = match cli_input_json {
                Some(f) => read_input_json(&f)?,
                None => json!({}),
            };
            for (k, v) in [("Name", name), ("Description", description)] {
                if let Some(v) = v {
                    body[k] = json!(v);
                }
            }
            let class = class.map(|c| match c.as_str() {
                "C" | "c" => "ClassC".to_string(),
                "B" | "b" => "ClassB".to_string(),
                _ => c,
            });
            set_lorawan(
                &mut body,
                vec![
                    ("RfRegion", region.map(Value::from)),
                    ("DlClass", class.map(Value::from)),
                    ("McAddr", mc_addr.map(Value::from)),
                    ("McKey", mc_key.map(Value::from)),
                ],
            )?;
            let created = c
                .call(Method::POST, "/multicast-groups", Some(body))
                .await?;
            print_json(&created);
            if created["LoRaWAN"]["McKey"].is_string() {
                eprintln!(
                    "note: the server generated this McKey and will never show it again; keep it for your devices' McGroupSetupReq"
                );
            }
        }
        GroupsCommand::Get { id } => print_json(&c.call(Method::GET, &group(&id), None).await?),
        GroupsCommand::List => print_json(
            &c.list_all("/multicast-groups", "MulticastGroupList")
                .await?,
        ),
        GroupsCommand::Delete { id } => {
            c.call(Method::DELETE, &group(&id), None).await?;
        }
        GroupsCommand::Session {
            id,
            cli_input_json,
            dr,
            freq,
            start,
            timeout,
            ping_slot_period,
        } => {
            let mut body = match cli_input_json {
                Some(f) => read_input_json(&f)?,
                None => json!({}),
            };
            set_lorawan(
                &mut body,
                vec![
                    ("DlDr", dr.map(Value::from)),
                    ("DlFreq", freq.map(Value::from)),
                    ("SessionStartTime", start.map(Value::from)),
                    ("SessionTimeout", timeout.map(Value::from)),
                    ("PingSlotPeriod", ping_slot_period.map(Value::from)),
                ],
            )?;
            c.call(Method::PUT, &format!("{}/session", group(&id)), Some(body))
                .await?;
            // What devices will be told (TimeOut) and when the session ends.
            print_json(&c.call(Method::GET, &group(&id), None).await?["Session"]);
        }
        GroupsCommand::Gateways { id, gateways } => {
            let mut ids = Vec::new();
            for g in gateways {
                let gw = c
                    .call(Method::GET, &format!("/wireless-gateways/{g}"), None)
                    .await?;
                ids.push(gw["Id"].as_str().unwrap_or(&g).to_string());
            }
            let path = format!("{}/gateways", group(&id));
            c.call(Method::PUT, &path, Some(json!({"WirelessGatewayIds": ids})))
                .await?;
            print_json(&c.call(Method::GET, &path, None).await?);
        }
        GroupsCommand::AddDevices {
            id,
            devices,
            device_profile,
        } => {
            for d in devices {
                c.call(
                    Method::PUT,
                    &format!("{}/wireless-device", group(&id)),
                    Some(json!({"WirelessDeviceId": d})),
                )
                .await?;
            }
            if let Some(p) = device_profile {
                c.call(
                    Method::PATCH,
                    &format!("{}/bulk", group(&id)),
                    Some(json!({"QueryString": format!("deviceProfileId={p}")})),
                )
                .await?;
            }
        }
        GroupsCommand::RemoveDevice { id, device } => {
            c.call(
                Method::DELETE,
                &format!("{}/wireless-devices/{device}", group(&id)),
                None,
            )
            .await?;
        }
        GroupsCommand::Devices { id } => print_json(
            &c.list_all(
                &format!("/wireless-devices?multicastGroupId={id}"),
                "WirelessDeviceList",
            )
            .await?,
        ),
    }
    Ok(())
}

pub async fn tasks(a: FuotaArgs) -> CliResult {
    let c = ApiClient::from_opts(&a.api)?;
    let task = |id: &str| format!("/fuota-tasks/{id}");
    match a.command {
        FuotaCommand::Create {
            cli_input_json,
            image,
        } => {
            let mut body = read_input_json(&cli_input_json)?;
            if let Some(image) = image {
                let id = upload(&c, &image).await?;
                body["FirmwareUpdateImage"] = json!(id);
            } else if body["FirmwareUpdateImage"]
                .as_str()
                .is_some_and(|s| s.starts_with("s3://"))
            {
                return Err("FirmwareUpdateImage is an S3 URI; pass the file with --image firmware.bin (it is uploaded first)".into());
            }
            print_json(&c.call(Method::POST, "/fuota-tasks", Some(body)).await?);
        }
        FuotaCommand::Get { id, json } => {
            show(&c.call(Method::GET, &task(&id), None).await?, json);
        }
        FuotaCommand::List => print_json(&c.list_all("/fuota-tasks", "FuotaTaskList").await?),
        FuotaCommand::Delete { id } => {
            c.call(Method::DELETE, &task(&id), None).await?;
        }
        FuotaCommand::Associate {
            id,
            multicast_group,
        } => {
            c.call(
                Method::PUT,
                &format!("{}/multicast-group", task(&id)),
                Some(json!({"MulticastGroupId": multicast_group})),
            )
            .await?;
        }
        FuotaCommand::AddDevices { id, devices } => {
            for d in devices {
                c.call(
                    Method::PUT,
                    &format!("{}/wireless-device", task(&id)),
                    Some(json!({"WirelessDeviceId": d})),
                )
                .await?;
            }
        }
        FuotaCommand::RemoveDevice { id, device } => {
            c.call(
                Method::DELETE,
                &format!("{}/wireless-devices/{device}", task(&id)),
                None,
            )
            .await?;
        }
        FuotaCommand::Devices { id, json } => {
            let list = c
                .list_all(
                    &format!("/wireless-devices?fuotaTaskId={id}"),
                    "WirelessDeviceList",
                )
                .await?;
            if json {
                print_json(&list);
            } else {
                print!("{}", describe_devices(&list));
            }
        }
        FuotaCommand::Start {
            id,
            start_time,
            json,
        } => {
            let body = match start_time {
                Some(t) => json!({"LoRaWAN": {"StartTime": t}}),
                None => json!({}),
            };
            c.call(Method::PUT, &task(&id), Some(body)).await?;
            show(&c.call(Method::GET, &task(&id), None).await?, json);
        }
    }
    Ok(())
}

fn show(task: &Value, raw: bool) {
    if raw {
        print_json(task);
    } else {
        print!("{}", describe_task(task));
    }
}

/// A value for a sentence: the string itself, a number as JSON writes it, `?` if absent.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "?".into(),
        other => other.to_string(),
    }
}

/// A number with `decimals` places, `?` if absent.
fn num(v: &Value, decimals: usize) -> String {
    v.as_f64()
        .map_or_else(|| "?".into(), |f| format!("{f:.decimals$}"))
}

/// A `GET /fuota-tasks/{Id}` answer in plain words: what it is, its plan (or why
/// there is none), its status and, once started, its progress per gateway.
fn describe_task(t: &Value) -> String {
    let mut out = String::new();
    let mut line = |s: String| {
        out.push_str(&s);
        out.push('\n');
    };
    let name = t["Name"]
        .as_str()
        .map_or_else(String::new, |n| format!(" {n:?}"));
    let group = t["MulticastGroupId"].as_str().map_or_else(
        || "no multicast group yet".into(),
        |g| format!("multicast group {g}"),
    );
    line(format!(
        "task: {}{name} in {}, image {}, {group}",
        text(&t["Id"]),
        text(&t["LoRaWAN"]["RfRegion"]),
        text(&t["FirmwareUpdateImage"]),
    ));

    let p = &t["Plan"];
    if p.is_object() {
        line(format!(
            "plan: {} uncoded + {} coded fragments of {} bytes ({}-byte frames)",
            text(&p["UncodedFragments"]),
            text(&p["CodedFragments"]),
            text(&p["FragmentSizeBytes"]),
            text(&p["BytesPerFrame"]),
        ));
        let duty = match p["DutyCyclePercent"].as_f64() {
            Some(d) if d >= 100.0 => format!("no duty cycle on {} Hz", text(&p["DlFreq"])),
            Some(d) => format!("duty cycle {d}% on {} Hz", text(&p["DlFreq"])),
            None => format!("on {} Hz", text(&p["DlFreq"])),
        };
        let spacing = p["FrameSpacingMs"].as_f64().map(|ms| ms / 1000.0);
        line(format!(
            "      DR{}: {} ms on air each, {} s in total; {duty} → one frame every {} s per gateway",
            text(&p["DlDr"]),
            num(&p["TimeOnAirMs"], 1),
            num(&p["TotalAirTimeS"], 1),
            spacing.map_or_else(|| "?".into(), |s| format!("{s:.3}")),
        ));
        let wall = p["WallTimeS"].as_f64();
        line(format!(
            "      {} gateway(s), {} slot(s) per round: {} s ({} h) from {} to {}",
            text(&p["Gateways"]),
            text(&p["SlotsPerRound"]),
            num(&p["WallTimeS"], 1),
            wall.map_or_else(|| "?".into(), |w| format!("{:.2}", w / 3600.0)),
            text(&p["EstimatedStart"]),
            text(&p["EstimatedFinish"]),
        ));
        let fits = match p["FitsSession"].as_bool() {
            Some(true) => "fits".to_string(),
            Some(false) => format!(
                "does NOT fit: the session ends at {}",
                text(&p["SessionEndTime"])
            ),
            None => "?".into(),
        };
        let needed = |k: &str| match &p[k] {
            Value::Null => "more than 15".to_string(),
            v => text(v),
        };
        if p.get("ClassBTimeOutNeeded").is_some() {
            line(format!(
                "      class B session: {} ping slot(s) per beacon, {} beacon period(s); TimeOut needed: {} (group has {}) — {fits}",
                text(&p["ClassBPingSlotsPerBeacon"]),
                text(&p["ClassBBeaconPeriods"]),
                needed("ClassBTimeOutNeeded"),
                text(&p["SessionTimeOut"]),
            ));
        } else {
            line(format!(
                "      class C session TimeOut needed: {} (group has {}) — {fits}",
                needed("ClassCTimeOutNeeded"),
                text(&p["SessionTimeOut"]),
            ));
        }
    } else {
        line(format!("plan: none yet: {}", text(&t["PlanProblem"])));
    }

    let mut status = format!("status: {}", text(&t["Status"]));
    if let Some(r) = t["StatusReason"].as_str() {
        status.push_str(&format!(" ({r})"));
    }
    for (k, what) in [("StartedAt", "started"), ("FinishedAt", "finished")] {
        if let Some(at) = t[k].as_str() {
            status.push_str(&format!("; {what} {at}"));
        }
    }
    if let Some(at) = t["LoRaWAN"]["StartTime"].as_str() {
        status.push_str(&format!("; first fragment at {at}"));
    }
    line(status);

    let cp = &t["ControlPlan"];
    if cp.is_object() {
        line(format!(
            "devices: {} ({}); uplink interval {} s, {} tries per request; SessionTime {}; estimated FuotaDone {}",
            text(&t["WirelessDevices"]),
            match t["DeviceStatusCounts"].as_object() {
                Some(m) => m
                    .iter()
                    .map(|(k, v)| format!("{v} {k}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                None => "not started".into(),
            },
            text(&cp["UplinkIntervalSeconds"]),
            text(&cp["UnicastAttempts"]),
            match cp["SessionTime"].as_str() {
                Some(s) => s.to_string(),
                None => format!("not fixed yet (estimated {})", text(&cp["EstimatedSessionTime"])),
            },
            text(&cp["EstimatedFuotaDone"]),
        ));
    }

    let pr = &t["Progress"];
    if pr.is_object() {
        let total = text(&pr["FragmentsPerGateway"]);
        let mut s = format!(
            "progress: {} sent, {} confirmed, {} failed ({total} fragments per gateway)",
            text(&pr["Sent"]),
            text(&pr["Confirmed"]),
            text(&pr["Failed"]),
        );
        if let Some(eta) = pr["EstimatedFinish"].as_str() {
            s.push_str(&format!("; estimated finish {eta}"));
        }
        line(s);
        for g in pr["Gateways"].as_array().into_iter().flatten() {
            let next = if g["Done"].as_bool() == Some(true) {
                "done".to_string()
            } else {
                format!("next fragment {} of {total}", text(&g["NextFragment"]))
            };
            line(format!(
                "      {} ({}, {}): {next}; sent {}, confirmed {}, failed {}",
                text(&g["GatewayEui"]),
                text(&g["WirelessGatewayId"]),
                text(&g["ConnectionStatus"]),
                text(&g["Sent"]),
                text(&g["Confirmed"]),
                text(&g["Failed"]),
            ));
        }
    }
    out
}

/// One line per device: DevEui, status, step and the reason.
fn describe_devices(list: &Value) -> String {
    let mut out = String::new();
    for d in list["WirelessDeviceList"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "{} {}: {} at {}",
            text(&d["LoRaWAN"]["DevEui"]),
            text(&d["Id"]),
            text(&d["FuotaDeviceStatus"]),
            text(&d["FuotaStep"]),
        ));
        if let Some(r) = d["FuotaDeviceStatusReason"].as_str() {
            out.push_str(&format!(" ({r})"));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// fuota.md §10.4: 1 MiB, EU868 DR5 on 869.525 MHz, 10 % redundancy.
    fn worked_example() -> Value {
        json!({
            "Id": "t1", "Name": "fw", "Status": "Pending",
            "LoRaWAN": {"RfRegion": "EU868", "StartTime": null},
            "FirmwareUpdateImage": "sha256:ab", "MulticastGroupId": "g1",
            "Plan": {
                "UncodedFragments": 4388, "CodedFragments": 439, "TotalFragments": 4827,
                "FragmentSizeBytes": 239, "PaddingBytes": 156, "BytesPerFrame": 255,
                "TimeOnAirMs": 394.496, "TotalAirTimeS": 1904.232, "DutyCyclePercent": 10.0,
                "FrameSpacingMs": 3944.96, "MinWallTimeS": 19039.7, "Gateways": 1,
                "SlotsPerRound": 1, "WallTimeS": 19040.7, "DlDr": 5, "DlFreq": 869525000,
                "DlClass": "ClassC", "SessionStartTime": "2026-01-01T00:00:00.000Z",
                "SessionEndTime": "2026-01-01T09:06:08.000Z", "SessionTimeOut": 15,
                "EstimatedStart": "2026-01-01T00:00:00.000Z",
                "EstimatedFinish": "2026-01-01T05:17:20.700Z", "FitsSession": true,
                "ClassCTimeOutNeeded": 15
            }
        })
    }

    #[test]
    fn the_plan_in_plain_words() {
        let s = describe_task(&worked_example());
        let want = [
            "task: t1 \"fw\" in EU868, image sha256:ab, multicast group g1",
            "plan: 4388 uncoded + 439 coded fragments of 239 bytes (255-byte frames)",
            "      DR5: 394.5 ms on air each, 1904.2 s in total; duty cycle 10% on 869525000 Hz → one frame every 3.945 s per gateway",
            "      1 gateway(s), 1 slot(s) per round: 19040.7 s (5.29 h) from 2026-01-01T00:00:00.000Z to 2026-01-01T05:17:20.700Z",
            "      class C session TimeOut needed: 15 (group has 15) — fits",
            "status: Pending",
        ];
        assert_eq!(s, want.join("\n") + "\n");
    }

    #[test]
    fn no_plan_says_why_and_progress_is_per_gateway() {
        let mut t = worked_example();
        t["Plan"] = Value::Null;
        t["PlanProblem"] = json!("multicast group g1 has no session yet");
        t["Status"] = json!("In_FuotaSession");
        t["StartedAt"] = json!("2026-01-01T00:00:01.000Z");
        t["Progress"] = json!({
            "FragmentsPerGateway": 6, "Sent": 4, "Confirmed": 3, "Failed": 1,
            "EstimatedFinish": "2026-01-01T00:01:00.000Z",
            "Gateways": [
                {"WirelessGatewayId": "gw1", "GatewayEui": "0016c001ff10a235", "NextFragment": 5,
                 "Done": false, "Sent": 4, "Confirmed": 3, "Failed": 1, "ConnectionStatus": "Connected"}
            ]
        });
        let s = describe_task(&t);
        assert!(
            s.contains("plan: none yet: multicast group g1 has no session yet\n"),
            "{s}"
        );
        assert!(
            s.contains("status: In_FuotaSession; started 2026-01-01T00:00:01.000Z\n"),
            "{s}"
        );
        assert!(s.contains("progress: 4 sent, 3 confirmed, 1 failed (6 fragments per gateway); estimated finish 2026-01-01T00:01:00.000Z\n"), "{s}");
        assert!(s.contains("      0016c001ff10a235 (gw1, Connected): next fragment 5 of 6; sent 4, confirmed 3, failed 1\n"), "{s}");
    }

    #[test]
    fn class_b_and_a_session_too_short() {
        let mut t = worked_example();
        let p = &mut t["Plan"];
        p.as_object_mut().unwrap().remove("ClassCTimeOutNeeded");
        p["ClassBPingSlotsPerBeacon"] = json!(32);
        p["ClassBBeaconPeriods"] = json!(150);
        p["ClassBTimeOutNeeded"] = json!(8);
        p["SessionTimeOut"] = json!(7);
        p["FitsSession"] = json!(false);
        let s = describe_task(&t);
        assert!(s.contains("      class B session: 32 ping slot(s) per beacon, 150 beacon period(s); TimeOut needed: 8 (group has 7) — does NOT fit: the session ends at 2026-01-01T09:06:08.000Z\n"), "{s}");
    }

    #[test]
    fn flags_go_into_the_lorawan_object() {
        let mut b = json!({"LoRaWAN": {"DlDr": 0, "DlFreq": 1}});
        set_lorawan(
            &mut b,
            vec![("DlDr", Some(json!(5))), ("SessionTimeout", None)],
        )
        .unwrap();
        assert_eq!(b, json!({"LoRaWAN": {"DlDr": 5, "DlFreq": 1}}));
        let mut bad = json!({"LoRaWAN": 3});
        assert!(set_lorawan(&mut bad, vec![("DlDr", Some(json!(5)))]).is_err());
    }
}
