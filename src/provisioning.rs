//! Issuing credential generations: a new client certificate (signed by our CA) or
//! token for a gateway's CUPS or LNS service, stored as the CUPS blob station will
//! install, plus the gateway-side files (`cups.uri`, `cups.trust`, `cups.crt`,
//! `cups.key`, or `tc.*`) an operator copies onto a gateway by hand.

use std::collections::BTreeMap;

use crate::app::{new_secret, AppState};
use crate::cups::credentials::{self, token_header, ClientPart};
use crate::identity::{sha256_hex, CredKind, Service};
use crate::store::{Gateway, NewCredential, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("client certificates cannot be issued: [tls] client_ca names a CA whose key this server does not hold; issue the certificate with that CA (CN = the gateway EUI) or use Kind \"Token\"")]
    NoIssuer,
    #[error("{0}")]
    Pki(#[from] crate::pki::PkiError),
    #[error("{0}")]
    Blob(#[from] credentials::CredError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A new generation and the files that carry it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "PascalCase")]
#[schema(as = IssuedCredentials)]
pub struct Provisioned {
    pub service: Service,
    pub kind: CredKind,
    pub generation: u32,
    /// The gateway-side files by their Basics Station names (`cups.uri`,
    /// `cups.trust`, `cups.crt`, `cups.key`, or `tc.*`), ready to copy.
    pub files: BTreeMap<String, String>,
}

/// The URI a gateway should hold for `service`; `None` for LNS when neither the
/// gateway nor `[lns] public_uri` names one.
pub fn target_uri(app: &AppState, gw: &Gateway, service: Service) -> Option<String> {
    match service {
        Service::Cups => Some(gw.cups_uri.clone().unwrap_or_else(|| app.cups_uri.clone())),
        Service::Lns => gw.tc_uri.clone().or_else(|| app.tc_uri.clone()),
    }
}

pub async fn issue(
    app: &AppState,
    gw: &Gateway,
    service: Service,
    kind: CredKind,
) -> Result<Provisioned, ProvisionError> {
    let p = service.file_prefix();
    let mut files = BTreeMap::new();
    if let Some(uri) = target_uri(app, gw, service) {
        files.insert(format!("{p}.uri"), format!("{uri}\n"));
    }
    files.insert(format!("{p}.trust"), app.tls.trust_pem.clone());
    let trust = &app.tls.trust_der;
    let (blob, cert_sha256, token_sha256) = match kind {
        CredKind::ClientCertificate => {
            let ca = app.tls.issuer.clone().ok_or(ProvisionError::NoIssuer)?;
            let eui = gw.gw.eui;
            // Key generation and signing are CPU work: keep them off the reactor.
            let issued = tokio::task::spawn_blocking(move || ca.issue_gateway(eui))
                .await
                .map_err(|e| {
                    ProvisionError::Store(StoreError::Db(format!("issuing task failed: {e}")))
                })??;
            let blob = credentials::build(
                trust,
                &ClientPart::Certificate {
                    cert_der: &issued.cert_der,
                    key_der: &issued.key_sec1_der,
                },
            )?;
            files.insert(format!("{p}.crt"), issued.cert_pem);
            files.insert(format!("{p}.key"), issued.key_sec1_pem);
            (blob, Some(sha256_hex(&issued.cert_der)), None)
        }
        CredKind::Token => {
            let token = new_secret();
            let blob = credentials::build(trust, &ClientPart::Token(&token))?;
            files.insert(format!("{p}.key"), token_header(&token));
            (blob, None, Some(sha256_hex(token.as_bytes())))
        }
    };
    let generation = app
        .store
        .issue_credential(NewCredential {
            gateway_id: gw.gw.id.clone(),
            service,
            kind,
            blob,
            cert_sha256,
            token_sha256,
            created_at: crate::app::now(),
        })
        .await?;
    tracing::info!(gateway = %gw.gw.eui, service = service.as_str(), kind = kind.as_str(), generation, "issued credentials");
    Ok(Provisioned {
        service,
        kind,
        generation,
        files,
    })
}
