//! `stationkeeper keys` and `stationkeeper sign`: make a firmware signing key pair
//! (the private key, PEM 0600, and the gateway's `sig-0.key`), register the
//! public half with the server, and sign an update file the way station verifies
//! it, printing what a task definition needs (base64 DER signature, key CRC).

use std::path::PathBuf;

use clap::{Args, Subcommand};
use hyper::Method;
use serde_json::json;

use super::{print_json, ApiClient, ApiOpts, CliResult};
use crate::firmware::signature;
use crate::fsutil::{create_private_dir, write_atomic};

#[derive(Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    command: KeysCommand,
    #[command(flatten)]
    api: ApiOpts,
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Make a new key pair: DIR/signing-key.pem (private, 0600), DIR/sig-0.key
    /// (for the gateway's station home) and DIR/signing-key.pub.pem.
    Generate {
        #[arg(long)]
        out: PathBuf,
        /// Name the gateway file sig-N.key (station tries sig-0, sig-1, ...).
        #[arg(long, default_value_t = 0)]
        index: u32,
    },
    /// Register a public key (a sig-N.key file or a PEM public key) with the server.
    Register {
        #[arg(long)]
        name: String,
        #[arg(long)]
        file: PathBuf,
    },
    /// List registered signing keys.
    List,
}

#[derive(Args)]
pub struct SignArgs {
    /// Private key (PEM, PKCS#8 or SEC1).
    #[arg(long)]
    key: PathBuf,
    /// The update file to sign.
    #[arg(long)]
    file: PathBuf,
}

fn read(p: &PathBuf) -> Result<Vec<u8>, String> {
    std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))
}

pub async fn run(a: KeysArgs) -> CliResult {
    match a.command {
        KeysCommand::Generate { out, index } => {
            create_private_dir(&out).map_err(|e| format!("{}: {e}", out.display()))?;
            let private = out.join("signing-key.pem");
            if private.exists() {
                return Err(format!(
                    "{} exists; refusing to overwrite a signing key",
                    private.display()
                ));
            }
            let (pem, raw) = signature::generate();
            let gateway_file = out.join(format!("sig-{index}.key"));
            let public = out.join("signing-key.pub.pem");
            for (path, bytes, mode) in [
                (&private, pem.as_bytes(), 0o600),
                (&gateway_file, &raw[..], 0o644),
                (&public, signature::public_pem(&raw).as_bytes(), 0o644),
            ] {
                write_atomic(path, bytes, mode).map_err(|e| format!("{}: {e}", path.display()))?;
            }
            println!(
                "private key   {} (keep it off the gateways)",
                private.display()
            );
            println!(
                "gateway key   {} (copy into each gateway's station home)",
                gateway_file.display()
            );
            println!("public key    {}", public.display());
            println!("key CRC       {}", signature::key_crc(&raw));
            Ok(())
        }
        KeysCommand::Register { name, file } => {
            let bytes = read(&file)?;
            let public = match std::str::from_utf8(&bytes) {
                Ok(text) if text.contains("-----BEGIN") => text.to_string(),
                _ => {
                    use base64::Engine;
                    base64::engine::general_purpose::STANDARD.encode(&bytes)
                }
            };
            let c = ApiClient::from_opts(&a.api)?;
            print_json(
                &c.call(
                    Method::POST,
                    "/signing-keys",
                    Some(json!({"Name": name, "PublicKey": public})),
                )
                .await?,
            );
            Ok(())
        }
        KeysCommand::List => {
            let c = ApiClient::from_opts(&a.api)?;
            print_json(&c.list_all("/signing-keys", "SigningKeys").await?);
            Ok(())
        }
    }
}

pub async fn sign(a: SignArgs) -> CliResult {
    let pem =
        String::from_utf8(read(&a.key)?).map_err(|_| format!("{} is not PEM", a.key.display()))?;
    let sk = signature::parse_private_key(&pem).map_err(|e| e.to_string())?;
    let file = a.file.clone();
    let digest = tokio::task::spawn_blocking(move || signature::sha512_file(&file))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let (der, crc) = signature::sign_digest(&sk, &digest);
    use base64::Engine;
    println!(
        "UpdateSignature {}",
        base64::engine::general_purpose::STANDARD.encode(&der)
    );
    println!("SigKeyCrc       {crc}");
    Ok(())
}
