//! Who makes an operator call: the auth layer puts a `Caller` into the request's
//! extensions once it has accepted the credentials, and whatever needs a name (the
//! audit log) reads it from there. Only names travel, never secrets. Today the
//! callers are the configured bearer tokens and console sessions; SigV4 access
//! keys insert a `Caller` named after the key the same way.

/// The authenticated caller of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// What the audit log shows as `Actor`: `api-token` (or `api-token#N` for the
    /// N-th of several configured tokens), an access key's name, or
    /// `console:<name>` for a console session signed in with one of those.
    pub name: String,
    /// The AccessKeyId for SigV4 callers (verified by `auth::front`).
    pub access_key_id: Option<String>,
}

impl Caller {
    /// The configured bearer token at `index` of `count`.
    pub fn token(index: usize, count: usize) -> Caller {
        let name = if count <= 1 || index == 0 {
            "api-token".to_string()
        } else {
            format!("api-token#{}", index + 1)
        };
        Caller {
            name,
            access_key_id: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_named_by_position_never_by_value() {
        assert_eq!(Caller::token(0, 1).name, "api-token");
        assert_eq!(Caller::token(0, 3).name, "api-token");
        assert_eq!(Caller::token(2, 3).name, "api-token#3");
    }
}
