//! A **fleet of simulated FUOTA devices** running against a real server through the LNS
//! station simulator: each device (the spec-written `lorawan_device` with its app-layer
//! packages, `lorawan_device::applayer`) joins by OTAA, sends an uplink every `interval`
//! (jittered) carrying its queued app-layer answers (or a plain payload on port 2), takes the
//! class A downlinks addressed to its DevEui (checked against the windows it opened), and hears
//! every multicast frame the gateways put on air on its session's frequency and DR while its
//! class C (or B) session lasts. Station's `dntxed` goes out as the simulator does it.
//!
//! One task per gateway owns its [`Session`]: it sends the devices' uplinks, routes class A
//! `dnmsg`s by DevEui, and every 20 ms hands the multicast frames that went on air to the
//! devices. One task per device runs its uplink clock. Device state sits behind a
//! `std::sync::Mutex` held only for short, await-free sections, so a test can read it at any
//! time ([`Fleet::state`]).
//!
//! The operator-side helpers at the end create the device profile and devices the way an
//! operator does (`OtaaV1_0_x` with a GenAppKey).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hyper::Method;
use serde_json::{json, Value};
use stationkeeper::cli::ApiClient;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::lns_station::downlink::Dnmsg;
use super::lns_station::session::{RadioMeta, ServerMessage, Session};
use super::lns_station::{LnsError, LnsStation};
use super::lorawan_device::applayer::{gps_now, AppLayer, Faults, McRx};
use super::lorawan_device::crypto::Key;
use super::lorawan_device::mac::encode_up;
use super::lorawan_device::{Device, MacVersion, Region, Rx, Uplink, UplinkMeta};
use super::server::{lns_gateway, LNS_URI};

const T: Duration = Duration::from_secs(10);

/// One device to simulate.
#[derive(Debug, Clone)]
pub struct DeviceSpec {
    pub name: String,
    pub dev_eui: u64,
    pub join_eui: u64,
    pub app_key: Key,
    pub gen_app_key: Key,
    /// Running firmware and hardware versions (TS006).
    pub fw: u32,
    pub hw: u32,
    /// Device clock − true GPS time, seconds (TS003 corrects it).
    pub clock_offset: f64,
    pub faults: Faults,
}

impl DeviceSpec {
    /// A well-behaved device numbered `n` (keys and DevEui derived from it).
    pub fn numbered(n: u32, fw: u32) -> DeviceSpec {
        let mut app_key = [0x2b; 16];
        app_key[12..].copy_from_slice(&n.to_be_bytes());
        let mut gen_app_key = [0x6e; 16];
        gen_app_key[12..].copy_from_slice(&n.to_be_bytes());
        DeviceSpec {
            name: format!("dev{n}"),
            dev_eui: 0x0080_e115_0f00_0000 | u64::from(n),
            join_eui: 0x70b3_d57e_d000_f000,
            app_key,
            gen_app_key,
            fw,
            hw: 0x0000_1a01,
            clock_offset: 0.0,
            faults: Faults::default(),
        }
    }

    pub fn with_faults(mut self, faults: Faults) -> DeviceSpec {
        self.faults = faults;
        self
    }
}

/// How the fleet runs.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// Uplink period of every device.
    pub interval: Duration,
    /// ± this fraction of `interval` at random on each uplink.
    pub jitter: f64,
    pub gateways: usize,
    /// Station's duty-cycle rule in the gateway simulators. Off by default: class A answers
    /// at 1 % in EU868's g band would make a test wait minutes between downlinks.
    pub duty_cycle: bool,
    /// The uplink data rate (EU868) and the GatewayEui of the first gateway.
    pub uplink_dr: u8,
    pub first_gateway_eui: u64,
    /// PPS gateways (GPS time; class B needs it).
    pub pps: bool,
    /// After a downlink with FPending, uplink again as soon as the receive windows closed
    /// (1.0.4 §4.3.1.4 encourages it) instead of waiting for the interval.
    pub answer_fpending: bool,
}

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig {
            interval: Duration::from_secs(2),
            jitter: 0.2,
            gateways: 1,
            duty_cycle: false,
            uplink_dr: 5,
            first_gateway_eui: 0x0016_c001_ff1f_0001,
            pps: false,
            answer_fpending: false,
        }
    }
}

/// What a test can read about one device while the fleet runs.
#[derive(Debug, Clone)]
pub struct DeviceState {
    pub spec: DeviceSpec,
    pub app: AppLayer,
    pub joined: bool,
    pub uplinks: u32,
    pub downlinks: u32,
    pub mc_accepted: u32,
    pub mc_lost: u32,
    pub mc_refused: u32,
    /// App-layer traffic and problems, with the time since the fleet started: `up 201 0200`,
    /// `down 200 04…`, `error …`.
    pub trace: Vec<String>,
}

impl DeviceState {
    fn note(&mut self, t0: Instant, what: String) {
        self.trace
            .push(format!("{:7.2}s {what}", t0.elapsed().as_secs_f64()));
    }

    /// The trace and the app-layer log, for a failure message.
    pub fn report(&self) -> String {
        format!(
            "{} (fw {:#010x}, joined {}, {} up / {} down, multicast {} ok {} lost {} refused)\n  \
             trace: {}\n  device log: {}",
            self.spec.name,
            self.app.firmware.running,
            self.joined,
            self.uplinks,
            self.downlinks,
            self.mc_accepted,
            self.mc_lost,
            self.mc_refused,
            self.trace.join("\n         "),
            self.app.log.join(" | ")
        )
    }
}

type Shared = Arc<Mutex<DeviceState>>;
type Routes = Arc<Mutex<HashMap<u64, mpsc::UnboundedSender<(usize, Dnmsg)>>>>;

enum GwCmd {
    Send(
        Vec<u8>,
        RadioMeta,
        oneshot::Sender<Result<UplinkMeta, LnsError>>,
    ),
    /// Connect again, to a (restarted) server's LNS address.
    Reconnect(SocketAddr, oneshot::Sender<Result<(), LnsError>>),
}

/// A simulated device in the fleet.
pub struct FleetDevice {
    /// The API's WirelessDeviceId.
    pub id: String,
    pub dev_eui: u64,
    pub state: Shared,
}

/// The running fleet.
pub struct Fleet {
    pub devices: Vec<FleetDevice>,
    pub started: Instant,
    gateways: Vec<mpsc::UnboundedSender<GwCmd>>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// The gateway sessions, returned by the pumps when the fleet stops.
    sessions: Vec<JoinHandle<Session>>,
}

impl Fleet {
    /// Connects `cfg.gateways` gateways to the server at `api`/`lns`, then starts one task
    /// per device of `devices` ((API id, spec)). Every device is heard by every gateway, best by
    /// its home gateway (device k: gateway k mod `cfg.gateways`).
    pub async fn start(
        api: &ApiClient,
        lns: SocketAddr,
        devices: Vec<(String, DeviceSpec)>,
        cfg: FleetConfig,
    ) -> Fleet {
        let started = Instant::now();
        let routes: Routes = Arc::default();
        let (stop, stop_rx) = watch::channel(false);
        let mut shared = Vec::new();
        for (id, spec) in &devices {
            let app = AppLayer::new(
                Region::Eu868,
                spec.gen_app_key,
                spec.fw,
                spec.hw,
                spec.clock_offset,
            )
            .with_faults(spec.faults.clone());
            let state = DeviceState {
                spec: spec.clone(),
                app,
                joined: false,
                uplinks: 0,
                downlinks: 0,
                mc_accepted: 0,
                mc_lost: 0,
                mc_refused: 0,
                trace: Vec::new(),
            };
            shared.push(FleetDevice {
                id: id.clone(),
                dev_eui: spec.dev_eui,
                state: Arc::new(Mutex::new(state)),
            });
        }
        let all: Vec<Shared> = shared.iter().map(|d| d.state.clone()).collect();
        let mut gateways = Vec::new();
        let mut sessions = Vec::new();
        for g in 0..cfg.gateways {
            let eui = cfg.first_gateway_eui + g as u64;
            let (_, mut st) = lns_gateway(api, lns, eui, json!({"RfRegion": "EU868"})).await;
            st.duty_cycle = cfg.duty_cycle;
            st.pps = cfg.pps;
            let s = connect(&st).await.unwrap();
            let (tx, rx) = mpsc::unbounded_channel();
            gateways.push(tx);
            sessions.push(tokio::spawn(pump(
                g,
                st,
                s,
                rx,
                routes.clone(),
                all.clone(),
                stop_rx.clone(),
                started,
            )));
        }
        let mut tasks = Vec::new();
        for (k, d) in shared.iter().enumerate() {
            let (tx, rx) = mpsc::unbounded_channel();
            routes.lock().unwrap().insert(d.dev_eui, tx);
            let spec = d.state.lock().unwrap().spec.clone();
            let dev = Device::otaa(
                Region::Eu868,
                MacVersion::V1_0_3,
                spec.dev_eui,
                spec.join_eui,
                spec.app_key,
            );
            // Spread the first uplinks over one interval.
            let first = cfg.interval.mul_f64(k as f64 / shared.len().max(1) as f64);
            tasks.push(tokio::spawn(run_device(
                dev,
                d.state.clone(),
                gateways.clone(),
                rx,
                cfg.clone(),
                first,
                k,
                stop_rx.clone(),
                started,
            )));
        }
        Fleet {
            devices: shared,
            started,
            gateways,
            stop,
            tasks,
            sessions,
        }
    }

    /// Device `i`'s state (locked: keep the guard short).
    pub fn state(&self, i: usize) -> MutexGuard<'_, DeviceState> {
        self.devices[i].state.lock().unwrap()
    }

    /// Every device's report, for failure messages.
    pub fn report(&self) -> String {
        (0..self.devices.len())
            .map(|i| self.state(i).report())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Waits until every device joined.
    pub async fn joined(&self, within: Duration) {
        let deadline = Instant::now() + within;
        while !(0..self.devices.len()).all(|i| self.state(i).joined) {
            assert!(
                Instant::now() < deadline,
                "not every device joined:\n{}",
                self.report()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Connects every gateway again, to `lns` (after the server restarted; a gateway whose
    /// session is still up gets a new one, as station does after a reconnect).
    pub async fn reconnect(&self, lns: SocketAddr) {
        for (g, gw) in self.gateways.iter().enumerate() {
            let (tx, rx) = oneshot::channel();
            gw.send(GwCmd::Reconnect(lns, tx)).unwrap();
            rx.await
                .unwrap()
                .unwrap_or_else(|e| panic!("gateway {g} cannot reconnect: {e:?}"));
        }
    }

    /// Stops the devices and the gateways; returns the gateway sessions (their downlinks).
    pub async fn stop(self) -> Vec<Session> {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        drop(self.gateways);
        let mut out = Vec::new();
        for s in self.sessions {
            out.push(s.await.unwrap());
        }
        out
    }
}

/// One gateway: sends uplinks, routes class A dnmsgs by DevEui, hands frames that went on
/// air with a multicast class (dC 1 or 2) to every device.
#[allow(clippy::too_many_arguments)]
async fn pump(
    gw: usize,
    mut st: LnsStation,
    mut s: Session,
    mut cmds: mpsc::UnboundedReceiver<GwCmd>,
    routes: Routes,
    devices: Vec<Shared>,
    mut stop: watch::Receiver<bool>,
    t0: Instant,
) -> Session {
    enum Ev {
        Cmd(Option<GwCmd>),
        Msg(Result<ServerMessage, LnsError>),
        Tick,
        Stop,
    }
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut delivered = 0usize; // downlinks before this index were all handled
    let mut done: Vec<bool> = Vec::new();
    let mut up = true;
    loop {
        let ev = tokio::select! {
            c = cmds.recv() => Ev::Cmd(c),
            m = s.next_message(Duration::from_secs(3600)), if up => Ev::Msg(m),
            _ = tick.tick() => Ev::Tick,
            _ = stop.changed() => Ev::Stop,
        };
        match ev {
            Ev::Cmd(None) | Ev::Stop => return s,
            Ev::Cmd(Some(GwCmd::Send(phy, meta, reply))) => {
                let r = s
                    .send_phy(&phy, &meta)
                    .await
                    .map(|u| UplinkMeta::from_sent(&u));
                let _ = reply.send(r);
            }
            Ev::Cmd(Some(GwCmd::Reconnect(lns, reply))) => {
                st.resolve = Some(lns);
                match connect(&st).await {
                    Ok(new) => {
                        s.abort().await;
                        s = new;
                        up = true;
                        (delivered, done) = (0, Vec::new());
                        let _ = reply.send(Ok(()));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
            Ev::Msg(Ok(ServerMessage::Dnmsg { msg, .. })) => {
                let tx = msg
                    .dev_eui
                    .and_then(|e| routes.lock().unwrap().get(&e).cloned());
                if let Some(tx) = tx.filter(|_| msg.dc == Some(0) || msg.dc.is_none()) {
                    let _ = tx.send((gw, *msg));
                }
            }
            Ev::Msg(Ok(_)) | Ev::Msg(Err(LnsError::Timeout)) => {}
            Ev::Msg(Err(e)) => {
                // Down until Fleet::reconnect; uplinks meanwhile fail (and are noted).
                for d in &devices {
                    d.lock()
                        .unwrap()
                        .note(t0, format!("gateway {gw} session ended: {e}"));
                }
                up = false;
            }
            Ev::Tick => {
                let dls = s.downlinks();
                done.resize(dls.len(), false);
                for (i, d) in dls.iter().enumerate().skip(delivered) {
                    if done[i] || !d.transmitted {
                        continue;
                    }
                    done[i] = true;
                    if d.dc == 0 {
                        continue;
                    }
                    let now = gps_now();
                    for dev in &devices {
                        let mut st = dev.lock().unwrap();
                        let rx = st.app.multicast(&d.pdu, d.freq as u32, d.dr as u8, now);
                        match rx {
                            McRx::NotListening | McRx::Duplicate => {}
                            McRx::Accepted { .. } => st.mc_accepted += 1,
                            McRx::Lost(_) => st.mc_lost += 1,
                            McRx::Refused(r) => {
                                st.mc_refused += 1;
                                st.note(t0, format!("multicast refused: {r}"));
                            }
                        }
                    }
                }
                while delivered < done.len() && done[delivered] {
                    delivered += 1;
                }
            }
        }
    }
}

/// Discovery, connect and router_config; a PPS gateway also starts its timesync.
async fn connect(st: &LnsStation) -> Result<Session, LnsError> {
    let (_, mut s) = st.discover_and_connect(LNS_URI).await?;
    s.recv_router_config(T).await?;
    if st.pps {
        s.send_timesync_request().await?;
    }
    Ok(s)
}

/// One device: join, then an uplink every interval; class A downlinks as they come.
#[allow(clippy::too_many_arguments)]
async fn run_device(
    mut dev: Device,
    state: Shared,
    gateways: Vec<mpsc::UnboundedSender<GwCmd>>,
    mut rx: mpsc::UnboundedReceiver<(usize, Dnmsg)>,
    cfg: FleetConfig,
    first: Duration,
    index: usize,
    mut stop: watch::Receiver<bool>,
    t0: Instant,
) {
    let mut next_up = Instant::now() + first;
    let mut windows_closed = Instant::now();
    // What each gateway reported with the last uplink (the class A answer echoes it).
    let mut metas: Vec<Option<UplinkMeta>> = vec![None; gateways.len()];
    let mut k = 0usize;
    let home = index % gateways.len();
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(next_up) => {
                let phy = build_uplink(&mut dev, &state, t0);
                let meta = RadioMeta {
                    dr: i64::from(cfg.uplink_dr),
                    freq: i64::from(dev.hop_freq(k)),
                    ..RadioMeta::default()
                };
                k += 1;
                for (g, gw) in gateways.iter().enumerate() {
                    let (tx, wait) = oneshot::channel();
                    // Every gateway hears the device; its home gateway best, so that the
                    // server's choice (best SNR) spreads the class A answers.
                    let meta = if g == home {
                        meta.clone()
                    } else {
                        RadioMeta { rssi: -95, snr: -3.0, ..meta.clone() }
                    };
                    if gw.send(GwCmd::Send(phy.clone(), meta, tx)).is_err() {
                        return;
                    }
                    metas[g] = match wait.await {
                        Ok(Ok(m)) => Some(m),
                        other => {
                            state.lock().unwrap().note(t0, format!("error: uplink via gateway {g}: {other:?}"));
                            None
                        }
                    };
                }
                // A device opens RX1 and RX2 before it sends again (RxDelay + 1 s).
                let rx_delay = dev.session.as_ref().map_or(5, |s| s.mac.rx_delay);
                let jitter = 1.0 + cfg.jitter * (2.0 * rand::random::<f64>() - 1.0);
                windows_closed = Instant::now() + Duration::from_millis(u64::from(rx_delay) * 1000 + 1200);
                let gap = cfg.interval.mul_f64(jitter.max(0.0));
                next_up = (Instant::now() + gap).max(windows_closed);
            }
            m = rx.recv() => {
                let Some((g, m)) = m else { return };
                let fpending = receive(&mut dev, &state, metas[g], &m, t0);
                if fpending && cfg.answer_fpending {
                    // The network has more for us: send as soon as the windows closed.
                    next_up = next_up.min(windows_closed);
                }
            }
            _ = stop.changed() => return,
        }
    }
}

/// The next frame: a join-request until joined; else the queued app-layer answers of one
/// port (or port 2 with a plain payload), MAC answers in FOpts (an empty frame first when
/// they do not fit).
fn build_uplink(dev: &mut Device, state: &Shared, t0: Instant) -> Vec<u8> {
    let mut st = state.lock().unwrap();
    if !st.joined {
        st.note(t0, "join-request".into());
        return dev.join_request();
    }
    st.uplinks += 1;
    if encode_up(&dev.queued_answers()).len() > 15 {
        st.note(t0, "up: MAC answers only (FPort 0)".into());
        return dev.uplink(&Uplink::empty()).expect("an empty uplink");
    }
    let (port, payload) = st
        .app
        .next_uplink(gps_now())
        .unwrap_or((2, b"status".to_vec()));
    if port != 2 {
        st.note(t0, format!("up {port} {}", hex::encode(&payload)));
    }
    dev.uplink(&Uplink::unconfirmed(port, &payload))
        .expect("an uplink")
}

/// A class A dnmsg for this device: checked against the windows of the last uplink through
/// that gateway, then opened (join-accept or data); app-layer payloads go to the packages.
fn receive(
    dev: &mut Device,
    state: &Shared,
    meta: Option<UplinkMeta>,
    m: &Dnmsg,
    t0: Instant,
) -> bool {
    let mut st = state.lock().unwrap();
    let Some(meta) = meta else {
        st.note(
            t0,
            "error: a dnmsg with no uplink through its gateway".into(),
        );
        return false;
    };
    if let Err(e) = dev.check_class_a_dnmsg(&meta, &m.raw) {
        st.note(t0, format!("error: dnmsg refused: {e}"));
        return false;
    }
    let Some(pdu) = m.pdu.as_deref() else {
        return false;
    };
    match dev.receive(pdu) {
        Ok(Rx::JoinAccept(_)) => {
            st.joined = true;
            st.note(t0, "joined".into());
            false
        }
        Ok(Rx::Data(r)) => {
            st.downlinks += 1;
            if let Some(port @ 200..=203) = r.frame.fport {
                st.note(t0, format!("down {port} {}", hex::encode(&r.frame.payload)));
                if let Err(e) = st.app.downlink(port, &r.frame.payload, gps_now()) {
                    st.note(t0, format!("error: {e}"));
                }
            } else if let Some(p) = r.frame.fport {
                st.note(t0, format!("down {p} (not app-layer)"));
            }
            r.fpending
        }
        Err(e) => {
            st.note(t0, format!("error: downlink refused: {e}"));
            false
        }
    }
}

// ---- operator side ------------------------------------------------------------------------

/// An EU868 1.0.3 OTAA device profile with `SupportsClassC` and our `UplinkIntervalSeconds`.
/// RX2 at DR5 (SF7) on 869.525 MHz: the server keeps station's duty cycle, and the default
/// DR0 RX2 (1 s and more on air, 10 %) would allow one class A answer per ~15 s per gateway
/// once RX1's 1 % band is spent.
pub async fn create_profile(api: &ApiClient, uplink_interval_secs: u32) -> String {
    create_profile_with(api, uplink_interval_secs, json!({})).await
}

/// `create_profile` with `extra` merged into its LoRaWAN object (e.g. SupportsClassB).
pub async fn create_profile_with(
    api: &ApiClient,
    uplink_interval_secs: u32,
    extra: Value,
) -> String {
    let mut l = json!({
        "MacVersion": "1.0.3", "RfRegion": "EU868", "SupportsJoin": true,
        "SupportsClassC": true, "RxDataRate2": 5,
        "UplinkIntervalSeconds": uplink_interval_secs});
    for (k, v) in extra.as_object().expect("an object") {
        l[k] = v.clone();
    }
    api.call(
        Method::POST,
        "/device-profiles",
        Some(json!({"Name": "fuota-fleet", "LoRaWAN": l})),
    )
    .await
    .unwrap()["Id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The CreateWirelessDevice body for a spec (OtaaV1_0_x with AppKey, JoinEui, GenAppKey).
pub fn device_body(profile: &str, spec: &DeviceSpec, gen_app_key: bool) -> Value {
    let mut otaa = json!({"AppKey": hex::encode(spec.app_key),
        "JoinEui": format!("{:016x}", spec.join_eui)});
    if gen_app_key {
        otaa["GenAppKey"] = json!(hex::encode(spec.gen_app_key));
    }
    json!({"Type": "LoRaWAN", "DestinationName": "fleet", "Name": spec.name,
        "LoRaWAN": {"DevEui": format!("{:016x}", spec.dev_eui), "DeviceProfileId": profile,
            "OtaaV1_0_x": otaa}})
}

/// Creates the device; its WirelessDeviceId.
pub async fn create_device(api: &ApiClient, profile: &str, spec: &DeviceSpec) -> String {
    api.call(
        Method::POST,
        "/wireless-devices",
        Some(device_body(profile, spec, true)),
    )
    .await
    .unwrap()["Id"]
        .as_str()
        .unwrap()
        .to_owned()
}
