//! Who a gateway is: the two services it holds credentials for (CUPS and LNS), the
//! kinds of credential (client certificate or token), the evidence a connection
//! presents, and the one pure rule that decides whether that evidence proves the
//! claimed EUI. Shared by the CUPS face and the LNS face; no I/O.

use sha2::{Digest, Sha256};

use crate::eui::Eui;
use crate::store::{CredState, Credential};

/// A gateway's service: CUPS or the LNS (`tc.*`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
pub enum Service {
    #[serde(rename = "CUPS")]
    Cups,
    #[serde(rename = "LNS")]
    Lns,
}

impl Service {
    pub fn as_str(self) -> &'static str {
        match self {
            Service::Cups => "CUPS",
            Service::Lns => "LNS",
        }
    }

    pub fn parse(s: &str) -> Option<Service> {
        match s {
            "CUPS" => Some(Service::Cups),
            "LNS" => Some(Service::Lns),
            _ => None,
        }
    }

    /// Basics Station's file prefix for this service (`cups.key`, `tc.key`).
    pub fn file_prefix(self) -> &'static str {
        match self {
            Service::Cups => "cups",
            Service::Lns => "tc",
        }
    }
}

/// A credential's kind: a client certificate (mutual TLS) or a token.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
pub enum CredKind {
    ClientCertificate,
    Token,
}

impl CredKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CredKind::ClientCertificate => "ClientCertificate",
            CredKind::Token => "Token",
        }
    }

    pub fn parse(s: &str) -> Option<CredKind> {
        match s {
            "ClientCertificate" => Some(CredKind::ClientCertificate),
            "Token" => Some(CredKind::Token),
            _ => None,
        }
    }
}

/// A verified client certificate (rustls already checked it chains to the client CA).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCert {
    pub sha256: String,
    /// The EUI in the certificate's subject CN, if it holds one.
    pub cn_eui: Option<Eui>,
}

/// What one connection presented.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evidence {
    pub cert: Option<PeerCert>,
    /// SHA-256 hex of the bearer token from the `Authorization` header.
    pub token_sha256: Option<String>,
}

/// How a connection proved its identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proof {
    /// A credential generation we issued.
    Generation { kind: CredKind, generation: u32 },
    /// A certificate from the client CA that we did not issue, bound by its CN.
    CertificateCn,
}

/// How a poll authenticated, as reports and log lines say it: `None` is a
/// gateway open registration admitted before it had credentials.
pub struct Auth<'a>(pub Option<&'a Proof>);

impl std::fmt::Display for Auth<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(Proof::Generation { kind, generation }) => {
                write!(f, "{} generation {generation}", kind.as_str())
            }
            Some(Proof::CertificateCn) => f.write_str("client certificate (CN)"),
            None => f.write_str("none (open registration)"),
        }
    }
}

/// The evidence in an `Authorization` header value: station sends its token file's
/// line as written (`Bearer <t>` canonically, or the bare secret as TTN writes it).
pub fn token_evidence(header: Option<&str>) -> Option<String> {
    let v = header?.trim();
    let t = v.strip_prefix("Bearer ").unwrap_or(v).trim();
    (!t.is_empty()).then(|| sha256_hex(t.as_bytes()))
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Decides whether `ev` proves that the peer is gateway `eui`, given that gateway's
/// credential generations for `service`. `cn_binding` admits client-CA
/// certificates we did not issue when their CN is the EUI; it is only for a
/// foreign client CA, because every certificate our own CA signs is recorded, so an
/// unrecorded one of ours is revoked (its gateway was deleted). `Err` carries the
/// reason for the log.
pub fn authenticate(
    service: Service,
    eui: Eui,
    ev: &Evidence,
    creds: &[Credential],
    cn_binding: bool,
) -> Result<Proof, String> {
    let mine = || creds.iter().filter(|c| c.service == service);
    let accept = |c: &Credential| -> Result<Proof, String> {
        if c.state == CredState::Retired && !c.backup {
            return Err(format!(
                "{} {} generation {} was retired after the gateway confirmed a newer one",
                service.as_str(),
                c.kind.as_str(),
                c.generation
            ));
        }
        Ok(Proof::Generation {
            kind: c.kind,
            generation: c.generation,
        })
    };
    let mut reasons = Vec::new();
    if let Some(cert) = &ev.cert {
        if let Some(c) = mine().find(|c| c.cert_sha256.as_deref() == Some(&cert.sha256)) {
            match accept(c) {
                Ok(p) => return Ok(p),
                Err(r) => reasons.push(r),
            }
        } else if creds
            .iter()
            .any(|c| c.cert_sha256.as_deref() == Some(&cert.sha256))
        {
            reasons.push(format!(
                "client certificate belongs to this gateway's {} credentials, not {}",
                if service == Service::Cups {
                    "LNS"
                } else {
                    "CUPS"
                },
                service.as_str()
            ));
        } else if !cn_binding {
            reasons.push(
                "client certificate is not a credential this server issued to the gateway (revoked, or issued for a deleted gateway)"
                    .to_string(),
            );
        } else {
            match cert.cn_eui {
                Some(cn) if cn == eui => return Ok(Proof::CertificateCn),
                Some(cn) => reasons.push(format!(
                    "client certificate is bound to EUI {cn}, not {eui}"
                )),
                None => reasons.push("client certificate CN is not an EUI".to_string()),
            }
        }
    }
    if let Some(token) = &ev.token_sha256 {
        match mine().find(|c| c.token_sha256.as_deref() == Some(token)) {
            Some(c) => match accept(c) {
                Ok(p) => return Ok(p),
                Err(r) => reasons.push(r),
            },
            None => reasons.push(format!(
                "token is not one of this gateway's {} tokens",
                service.as_str()
            )),
        }
    }
    if reasons.is_empty() {
        reasons.push("no client certificate or token presented".to_string());
    }
    Err(reasons.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cred(service: Service, generation: u32, state: CredState, backup: bool) -> Credential {
        Credential {
            gateway_id: "gw".into(),
            service,
            generation,
            kind: CredKind::Token,
            blob: vec![],
            blob_crc: 0,
            cert_sha256: Some(format!("cert-{}-{generation}", service.as_str())),
            token_sha256: Some(format!("tok-{}-{generation}", service.as_str())),
            state,
            backup,
            created_at: String::new(),
            confirmed_at: None,
        }
    }

    fn token(t: &str) -> Evidence {
        Evidence {
            cert: None,
            token_sha256: Some(t.into()),
        }
    }

    fn cert(sha: &str, cn: Option<u64>) -> Evidence {
        Evidence {
            cert: Some(PeerCert {
                sha256: sha.into(),
                cn_eui: cn.map(Eui),
            }),
            token_sha256: None,
        }
    }

    #[test]
    fn current_previous_and_backup_generations_are_accepted() {
        let creds = [
            cred(Service::Cups, 1, CredState::Retired, true),
            cred(Service::Cups, 2, CredState::Previous, false),
            cred(Service::Cups, 3, CredState::Current, false),
        ];
        for g in 1..=3 {
            let p = authenticate(
                Service::Cups,
                Eui(7),
                &token(&format!("tok-CUPS-{g}")),
                &creds,
                true,
            );
            assert!(matches!(p, Ok(Proof::Generation { generation, .. }) if generation == g));
        }
    }

    #[test]
    fn retired_wrong_service_and_foreign_evidence_are_refused() {
        let creds = [
            cred(Service::Cups, 1, CredState::Retired, false),
            cred(Service::Cups, 2, CredState::Current, false),
            cred(Service::Lns, 1, CredState::Current, false),
        ];
        let e =
            authenticate(Service::Cups, Eui(7), &token("tok-CUPS-1"), &creds, true).unwrap_err();
        assert!(e.contains("retired"), "{e}");
        let e = authenticate(Service::Cups, Eui(7), &token("tok-LNS-1"), &creds, true).unwrap_err();
        assert!(e.contains("not one of"), "{e}");
        let e = authenticate(
            Service::Cups,
            Eui(7),
            &cert("cert-LNS-1", Some(7)),
            &creds,
            true,
        )
        .unwrap_err();
        assert!(e.contains("LNS credentials"), "{e}");
        let e =
            authenticate(Service::Cups, Eui(7), &cert("other", Some(8)), &creds, true).unwrap_err();
        assert!(e.contains("bound to EUI 0000000000000008"), "{e}");
        let e =
            authenticate(Service::Cups, Eui(7), &Evidence::default(), &creds, true).unwrap_err();
        assert!(e.contains("no client certificate"), "{e}");
    }

    #[test]
    fn a_client_ca_certificate_we_did_not_issue_is_bound_by_cn() {
        assert_eq!(
            authenticate(Service::Cups, Eui(7), &cert("byo", Some(7)), &[], true),
            Ok(Proof::CertificateCn)
        );
        // With our own CA, an unrecorded certificate is a revoked one.
        let e = authenticate(Service::Cups, Eui(7), &cert("byo", Some(7)), &[], false).unwrap_err();
        assert!(e.contains("not a credential this server issued"), "{e}");
    }
}
