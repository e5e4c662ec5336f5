//! `tls-handshake`: the server's CPU per TLS 1.2 handshake, in memory (no sockets,
//! no kernel), for the config the server really uses and for the alternatives it
//! was chosen against: the crypto provider (ring or aws-lc-rs), the key-exchange
//! group and the cipher suite. The client is rustls with ring, offering station
//! 2.0.6's group order (P-384, P-256, X25519 among the groups rustls has) and
//! rustls's own suite order (AES-256-GCM-SHA384 first), with no resumption, as
//! `cups-load` does. Only the server's calls are timed (see [`thread_cpu`]), and
//! the variants alternate over several rounds, so a busy machine moves the
//! figures less than it moves a socket benchmark.
//!
//! ```sh
//! cargo build --release --bin tls-handshake
//! target/release/tls-handshake                  # 2,000 handshakes x 5 rounds
//! target/release/tls-handshake --handshakes 500 --rounds 3
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use rustls::client::Resumption;
use rustls::crypto::{aws_lc_rs, ring, CryptoProvider, SupportedKxGroup};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{Acceptor, WebPkiClientVerifier};
use rustls::{
    ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection,
    SupportedCipherSuite,
};
use stationkeeper::tls::ServerConfigs;

#[derive(Debug, Parser)]
#[command(
    name = "tls-handshake",
    about = "Server CPU per TLS 1.2 handshake, in memory"
)]
struct Args {
    /// Handshakes per variant and round.
    #[arg(long, default_value_t = 2000)]
    handshakes: usize,
    /// Rounds; the variants alternate within each.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
}

/// How the server side of a variant makes a connection for a ClientHello.
enum Server {
    /// The server's own configs, chosen per ClientHello as the listeners do.
    Ours(Arc<ServerConfigs>),
    /// One fixed config.
    Fixed(Arc<ServerConfig>),
}

struct Variant {
    name: String,
    server: Server,
    /// Server CPU per handshake of each round, microseconds.
    rounds: Vec<f64>,
    suite: String,
    group: String,
}

fn main() {
    let args = Args::parse();
    let dir = std::env::temp_dir().join(format!("tls-handshake-{}", std::process::id()));
    let pki = stationkeeper::pki::DevPki::load_or_create(&dir, &["localhost".to_string()])
        .unwrap_or_else(|e| panic!("development PKI in {}: {e}", dir.display()));
    let _ = std::fs::remove_dir_all(&dir);
    let chain: Vec<CertificateDer<'static>> =
        rustls_pemfile::certs(&mut pki.server_cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .expect("server certificate PEM");
    let key = rustls_pemfile::private_key(&mut pki.server_key_pem.as_bytes())
        .expect("server key PEM")
        .expect("a server key");
    let ca = CertificateDer::from(pki.ca.cert_der.clone());
    let client = client_config(ca.clone());

    let ours = stationkeeper::tls::server_config(chain.clone(), key.clone_key(), vec![ca.clone()])
        .expect("the server's TLS config");
    let mut variants = vec![Variant::new("stationkeeper's config", Server::Ours(ours))];
    for name in ["ring", "aws-lc-rs"] {
        let (x25519, p256) = groups(name);
        for (group_name, group) in [("X25519", x25519), ("P-256", p256)] {
            for suite in suites(name) {
                let fixed = fixed_config(
                    provider(name),
                    group,
                    suite,
                    chain.clone(),
                    key.clone_key(),
                    ca.clone(),
                );
                variants.push(Variant::new(
                    &format!("{name} {group_name} {:?}", suite.suite()),
                    Server::Fixed(fixed),
                ));
            }
        }
    }

    for round in 0..args.rounds {
        // Alternate the order each round so no variant always runs first.
        let order: Vec<usize> = if round % 2 == 0 {
            (0..variants.len()).collect()
        } else {
            (0..variants.len()).rev().collect()
        };
        for i in order {
            let v = &mut variants[i];
            let mut total = Duration::ZERO;
            for _ in 0..args.handshakes {
                let (cpu, suite, group) = handshake(&client, &v.server);
                total += cpu;
                v.suite = suite;
                v.group = group;
            }
            v.rounds
                .push(total.as_secs_f64() * 1e6 / args.handshakes as f64);
        }
    }
    println!(
        "server CPU per TLS 1.2 handshake, microseconds ({} handshakes x {} rounds; client: ring, station's group order, rustls's suite order)",
        args.handshakes, args.rounds
    );
    println!(
        "{:<60} {:>8} {:>8} {:>8}  negotiated",
        "variant", "min", "median", "max"
    );
    for v in &variants {
        let mut r = v.rounds.clone();
        r.sort_by(f64::total_cmp);
        println!(
            "{:<60} {:>8.1} {:>8.1} {:>8.1}  {} {}",
            v.name,
            r[0],
            r[r.len() / 2],
            r[r.len() - 1],
            v.group,
            v.suite
        );
    }
}

impl Variant {
    fn new(name: &str, server: Server) -> Variant {
        Variant {
            name: name.to_string(),
            server,
            rounds: Vec::new(),
            suite: String::new(),
            group: String::new(),
        }
    }
}

fn provider(name: &str) -> CryptoProvider {
    match name {
        "ring" => ring::default_provider(),
        _ => aws_lc_rs::default_provider(),
    }
}

fn groups(provider: &str) -> (&'static dyn SupportedKxGroup, &'static dyn SupportedKxGroup) {
    match provider {
        "ring" => (ring::kx_group::X25519, ring::kx_group::SECP256R1),
        _ => (aws_lc_rs::kx_group::X25519, aws_lc_rs::kx_group::SECP256R1),
    }
}

/// The two TLS 1.2 ECDSA suites that differ in their hash: station's first AES
/// choice (SHA-384) and the SHA-256 one.
fn suites(provider: &str) -> [SupportedCipherSuite; 2] {
    match provider {
        "ring" => [
            ring::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            ring::cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        ],
        _ => [
            aws_lc_rs::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            aws_lc_rs::cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        ],
    }
}

/// A server config like the server's (client certificates asked for, not
/// required; TLS 1.2 and 1.3) with one group and one TLS 1.2 suite.
fn fixed_config(
    provider: CryptoProvider,
    group: &'static dyn SupportedKxGroup,
    suite: SupportedCipherSuite,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    ca: CertificateDer<'static>,
) -> Arc<ServerConfig> {
    let provider = Arc::new(CryptoProvider {
        kx_groups: vec![group],
        cipher_suites: vec![suite],
        ..provider
    });
    let mut roots = RootCertStore::empty();
    roots.add(ca).expect("CA certificate");
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .expect("client verifier");
    let mut c = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12])
        .expect("TLS 1.2")
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .expect("server certificate");
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(c)
}

fn client_config(ca: CertificateDer<'static>) -> Arc<ClientConfig> {
    let mut provider = ring::default_provider();
    provider.kx_groups = vec![
        ring::kx_group::SECP384R1,
        ring::kx_group::SECP256R1,
        ring::kx_group::X25519,
    ];
    let mut roots = RootCertStore::empty();
    roots.add(ca).expect("CA certificate");
    let mut c = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS12])
        .expect("TLS 1.2")
        .with_root_certificates(roots)
        .with_no_client_auth();
    c.resumption = Resumption::disabled();
    Arc::new(c)
}

/// One full handshake; returns the server's CPU time and what was negotiated.
fn handshake(client: &Arc<ClientConfig>, server: &Server) -> (Duration, String, String) {
    let name = ServerName::try_from("localhost").expect("server name");
    let mut c = ClientConnection::new(client.clone(), name).expect("client connection");
    let mut buf = Vec::with_capacity(8192);
    c.write_tls(&mut buf).expect("ClientHello");

    let start = thread_cpu();
    let mut acceptor = Acceptor::default();
    acceptor
        .read_tls(&mut &buf[..])
        .expect("server reads the hello");
    let accepted = acceptor
        .accept()
        .map_err(|(e, _)| e)
        .expect("a ClientHello")
        .expect("the whole ClientHello");
    let config = match server {
        Server::Ours(configs) => configs.for_hello(&accepted.client_hello()).clone(),
        Server::Fixed(c) => c.clone(),
    };
    let mut s: ServerConnection = accepted
        .into_connection(config)
        .map_err(|(e, _)| e)
        .expect("server connection");
    let mut server_cpu = thread_cpu() - start;

    while c.is_handshaking() || s.is_handshaking() {
        buf.clear();
        let start = thread_cpu();
        while s.wants_write() {
            s.write_tls(&mut buf).expect("server writes");
        }
        server_cpu += thread_cpu() - start;
        if !buf.is_empty() {
            c.read_tls(&mut &buf[..]).expect("client reads");
            c.process_new_packets().expect("client handshake");
        }
        buf.clear();
        while c.wants_write() {
            c.write_tls(&mut buf).expect("client writes");
        }
        if !buf.is_empty() {
            let start = thread_cpu();
            let mut rd = &buf[..];
            while !rd.is_empty() {
                s.read_tls(&mut rd).expect("server reads");
                s.process_new_packets().expect("server handshake");
            }
            server_cpu += thread_cpu() - start;
        }
    }
    let suite = format!("{:?}", s.negotiated_cipher_suite().map(|s| s.suite()));
    let group = format!("{:?}", s.negotiated_key_exchange_group().map(|g| g.name()));
    (server_cpu, suite, group)
}

/// The clock the server's calls are timed with. Wall time of calls on this one
/// thread (the vDSO clock, ~20 ns a read): a per-thread CPU clock needs a syscall
/// (or unsafe code) per read, which would cost more than the smallest interval
/// measured here. Preemption only adds to a round, so the minimum over rounds is
/// the figure to read on a busy machine.
fn thread_cpu() -> Instant {
    Instant::now()
}
