//! Bearer tokens: verification, the [`Principal`] they name, scope and
//! organization checks, and minting (for `rolekeeper token` and tests).
//!
//! Accepted: HS256 with the configured secret, and RS256/ES256 with the
//! public keys of the key file (`ROLEKEEPER_JWT_KEYS`, a PEM public key or a
//! JWKS, re-read when it changes). `exp` and `sub` are required, `nbf` is
//! honoured, both with [`LEEWAY_SECONDS`] of clock skew; `iss`/`aud` are
//! required and checked when configured. Neither tokens nor key material
//! ever appear in errors or logs.

mod keys;
mod verified;

pub use keys::KEY_FILE_CHECK_INTERVAL;

use crate::error::{Error, TokenProblem};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use keys::KeyFile;
use serde::{Deserialize, Serialize};
use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};
use verified::{Verified, VerifiedTokens};

/// Tokens longer than this are refused before any parsing.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECONDS: u64 = 30;

/// What a scope allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `organization:read`: every read RPC.
    Read,
    /// `organization:write`: every mutation; implies read.
    Write,
    /// `admin`: organization create/list, every organization; implies all.
    Admin,
}

impl Scope {
    /// The scope string in tokens.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "organization:read",
            Self::Write => "organization:write",
            Self::Admin => "admin",
        }
    }
}

/// The claims rolekeeper reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The principal.
    pub sub: String,
    /// Space-separated scopes.
    #[serde(default)]
    pub scope: String,
    /// The organization the token acts on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Not before, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// Issued at, seconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
}

/// The verified caller of an RPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's `sub`.
    pub sub: String,
    /// The token's `org`, if any.
    pub org: Option<String>,
    read: bool,
    write: bool,
    admin: bool,
}

impl Principal {
    fn from_claims(claims: Claims) -> Self {
        let has = |s: Scope| claims.scope.split_whitespace().any(|t| t == s.as_str());
        let admin = has(Scope::Admin);
        let write = admin || has(Scope::Write);
        Self {
            read: write || has(Scope::Read),
            write,
            admin,
            sub: claims.sub,
            org: claims.org,
        }
    }

    /// Whether the token carries `scope` (directly or implied).
    pub fn has_scope(&self, scope: Scope) -> bool {
        match scope {
            Scope::Read => self.read,
            Scope::Write => self.write,
            Scope::Admin => self.admin,
        }
    }

    /// `SCOPE_MISSING` unless the token carries `scope`.
    pub fn require_scope(&self, scope: Scope) -> Result<(), Error> {
        if self.has_scope(scope) {
            Ok(())
        } else {
            Err(Error::ScopeMissing {
                required_scope: scope.as_str().to_owned(),
            })
        }
    }

    /// Whether the token may act on `organization_id` at all.
    pub fn may_access(&self, organization_id: &str) -> bool {
        self.admin || self.org.as_deref() == Some(organization_id)
    }

    /// The check every organization RPC starts with: scope first, then the
    /// organization, before anything about the request is validated.
    pub fn authorize(&self, scope: Scope, organization_id: &str) -> Result<(), Error> {
        self.require_scope(scope)?;
        if self.may_access(organization_id) {
            Ok(())
        } else {
            Err(Error::OrganizationForbidden {
                organization_id: organization_id.to_owned(),
            })
        }
    }

    /// The organization whose data this caller sees; `None` for admins (all).
    pub fn visible_organization(&self) -> Option<&str> {
        if self.admin {
            None
        } else {
            Some(self.org.as_deref().unwrap_or(""))
        }
    }
}

/// Where [`Authenticator::new`] takes its keys from and what it enforces.
#[derive(Clone, Default)]
pub struct AuthConfig {
    /// Secret that verifies HS256 tokens; without it HS256 tokens are refused.
    pub hs256_secret: Option<Vec<u8>>,
    /// File with the RS256/ES256 public keys: one PEM public key (RSA of at
    /// least 2048 bits, or EC P-256) or a JWKS document whose keys are
    /// selected by `kid`. Re-read when it changes; without it RS256 and
    /// ES256 tokens are refused.
    pub jwt_keys: Option<PathBuf>,
    /// Required `iss` of every token, if set.
    pub issuer: Option<String>,
    /// Required `aud` (one of the token's audiences) of every token, if set.
    pub audience: Option<String>,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field(
                "hs256_secret",
                &self.hs256_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("jwt_keys", &self.jwt_keys)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish()
    }
}

/// Verifies bearer tokens: HS256 with the configured secret, RS256/ES256
/// with the keys of the configured key file. Cheap to clone (shared).
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Verifier>,
}

struct Verifier {
    hmac: Option<DecodingKey>,
    key_file: Option<KeyFile>,
    hs256: Validation,
    rs256: Validation,
    es256: Validation,
    verified: VerifiedTokens,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("hs256", &self.inner.hmac.is_some())
            .field("jwt_keys", &self.inner.key_file.as_ref().map(KeyFile::path))
            .finish_non_exhaustive()
    }
}

/// What every token must satisfy besides its signature.
fn validation(algorithm: Algorithm, issuer: Option<&str>, audience: Option<&str>) -> Validation {
    let mut validation = Validation::new(algorithm);
    validation.leeway = LEEWAY_SECONDS;
    validation.validate_exp = true;
    validation.validate_nbf = true;
    let mut required = vec!["exp", "sub"];
    if let Some(issuer) = issuer {
        validation.set_issuer(&[issuer]);
        required.push("iss");
    }
    match audience {
        Some(audience) => {
            validation.set_audience(&[audience]);
            validation.validate_aud = true;
            required.push("aud");
        }
        None => validation.validate_aud = false,
    }
    validation.set_required_spec_claims(&required);
    validation
}

fn config_error(message: impl std::fmt::Display) -> Error {
    Error::internal(format!("authentication configuration: {message}"))
}

impl Authenticator {
    /// Verifies HS256 tokens signed with `secret` (and nothing else).
    pub fn hs256(secret: &[u8]) -> Self {
        Self {
            inner: Arc::new(Verifier {
                hmac: Some(DecodingKey::from_secret(secret)),
                key_file: None,
                hs256: validation(Algorithm::HS256, None, None),
                rs256: validation(Algorithm::RS256, None, None),
                es256: validation(Algorithm::ES256, None, None),
                verified: VerifiedTokens::default(),
            }),
        }
    }

    /// Builds the verifier of `config`: at least one of `hs256_secret` and
    /// `jwt_keys` is required, and the key file must hold at least one usable
    /// key now (later broken versions keep the previous keys). Errors name
    /// the problem, never key material.
    pub fn new(config: AuthConfig) -> Result<Self, Error> {
        if config.hs256_secret.is_none() && config.jwt_keys.is_none() {
            return Err(config_error(
                "configure an HS256 secret, a JWT key file (ROLEKEEPER_JWT_KEYS), or both",
            ));
        }
        if config.hs256_secret.as_ref().is_some_and(Vec::is_empty) {
            return Err(config_error("the HS256 secret is empty"));
        }
        if config.issuer.as_deref() == Some("") {
            return Err(config_error("the required issuer is empty"));
        }
        if config.audience.as_deref() == Some("") {
            return Err(config_error("the required audience is empty"));
        }
        let key_file = match config.jwt_keys {
            Some(path) => Some(
                KeyFile::open(path.clone(), KEY_FILE_CHECK_INTERVAL).map_err(|reason| {
                    config_error(format!("JWT key file {}: {reason}", path.display()))
                })?,
            ),
            None => None,
        };
        let (issuer, audience) = (config.issuer.as_deref(), config.audience.as_deref());
        Ok(Self {
            inner: Arc::new(Verifier {
                hmac: config.hs256_secret.as_deref().map(DecodingKey::from_secret),
                key_file,
                hs256: validation(Algorithm::HS256, issuer, audience),
                rs256: validation(Algorithm::RS256, issuer, audience),
                es256: validation(Algorithm::ES256, issuer, audience),
                verified: VerifiedTokens::default(),
            }),
        })
    }

    /// Verifies the value of an `authorization` metadata entry:
    /// `TOKEN_MISSING` without one, `TOKEN_EXPIRED` for a correctly signed
    /// token past its `exp`, `TOKEN_INVALID` for everything else.
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<Principal, Error> {
        let header = authorization.ok_or_else(|| unauthenticated(TokenProblem::Missing))?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| refused("not a bearer token"))?;
        if token.len() > MAX_TOKEN_BYTES {
            return Err(refused("token too long"));
        }
        let verifier = &*self.inner;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let current_keys = || verifier.key_file.as_ref().map(KeyFile::current);
        if let Some(principal) = verifier.verified.get(token, now, current_keys) {
            return Ok(principal);
        }
        // The header only chooses among the configured keys; each key (and
        // each validation) allows exactly one algorithm.
        let header = jsonwebtoken::decode_header(token).map_err(|_| refused("malformed"))?;
        let (claims, keys) = match header.alg {
            Algorithm::HS256 => {
                let key = verifier
                    .hmac
                    .as_ref()
                    .ok_or_else(|| refused("HS256 without a configured secret"))?;
                (verify(token, key, &verifier.hs256)?, None)
            }
            alg @ (Algorithm::RS256 | Algorithm::ES256) => {
                let file = verifier
                    .key_file
                    .as_ref()
                    .ok_or_else(|| refused("RS256/ES256 without a configured key file"))?;
                let keys = file.current();
                let key = keys
                    .select(alg, header.kid.as_deref())
                    .map_err(|no_key| refused(no_key.describe()))?;
                let validation = if alg == Algorithm::RS256 {
                    &verifier.rs256
                } else {
                    &verifier.es256
                };
                debug_assert_eq!(key.algorithm, alg);
                let claims = verify(token, &key.key, validation)?;
                (claims, Some(keys.clone()))
            }
            _ => return Err(refused("unsupported algorithm")),
        };
        let (exp, nbf) = (claims.exp, claims.nbf);
        let principal = Principal::from_claims(claims);
        verifier.verified.insert(
            token,
            Verified {
                principal: principal.clone(),
                exp,
                nbf,
                keys,
            },
        );
        Ok(principal)
    }
}

/// Checks signature and claims of `token` with `key`.
fn verify(token: &str, key: &DecodingKey, validation: &Validation) -> Result<Claims, Error> {
    let data = jsonwebtoken::decode::<Claims>(token, key, validation).map_err(|err| {
        let reason = match err.kind() {
            ErrorKind::ExpiredSignature => {
                tracing::debug!(reason = "expired", "bearer token refused");
                return unauthenticated(TokenProblem::Expired);
            }
            ErrorKind::InvalidSignature => "bad signature",
            ErrorKind::ImmatureSignature => "not yet valid (nbf)",
            ErrorKind::InvalidIssuer => "wrong issuer",
            ErrorKind::InvalidAudience => "wrong audience",
            ErrorKind::MissingRequiredClaim(_) => "a required claim is missing",
            ErrorKind::InvalidAlgorithm => "algorithm not allowed for the key",
            _ => "malformed",
        };
        refused(reason)
    })?;
    Ok(data.claims)
}

/// `TOKEN_INVALID`, with the (fixed, token-free) reason in the debug log.
fn refused(reason: &'static str) -> Error {
    tracing::debug!(reason, "bearer token refused");
    unauthenticated(TokenProblem::Invalid)
}

fn unauthenticated(problem: TokenProblem) -> Error {
    let message = match problem {
        TokenProblem::Missing => "missing `authorization: Bearer <token>` metadata",
        TokenProblem::Invalid => {
            "the bearer token is malformed, unsigned or not signed by a trusted key"
        }
        TokenProblem::Expired => "the bearer token has expired",
    };
    Error::Unauthenticated {
        problem,
        message: message.to_owned(),
    }
}

/// Signs an HS256 token for `sub` with `scope`, valid for `ttl`.
pub fn mint_hs256(
    secret: &[u8],
    sub: &str,
    org: Option<&str>,
    scope: &str,
    ttl: Duration,
) -> Result<String, Error> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(Error::internal)?
        .as_secs();
    let claims = Claims {
        sub: sub.to_owned(),
        scope: scope.to_owned(),
        org: org.map(str::to_owned),
        exp: now.saturating_add(ttl.as_secs()),
        nbf: None,
        iat: Some(now),
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .map_err(Error::internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"unit-test-secret";

    fn principal(scope: &str, org: Option<&str>) -> Principal {
        let token = mint_hs256(SECRET, "alice", org, scope, Duration::from_secs(60))
            .expect("minting works");
        Authenticator::hs256(SECRET)
            .authenticate(Some(&format!("Bearer {token}")))
            .expect("valid token")
    }

    #[test]
    fn write_implies_read_and_admin_implies_all() {
        let writer = principal("organization:write", Some("o1"));
        assert!(writer.has_scope(Scope::Read) && !writer.has_scope(Scope::Admin));
        let admin = principal("admin", None);
        assert!(admin.has_scope(Scope::Write) && admin.may_access("anything"));
    }

    #[test]
    fn scope_is_checked_before_organization() {
        let reader = principal("organization:read", Some("o1"));
        let err = reader.authorize(Scope::Write, "o2").expect_err("denied");
        assert_eq!(err.reason(), "SCOPE_MISSING");
        let err = reader.authorize(Scope::Read, "o2").expect_err("denied");
        assert_eq!(err.reason(), "ORGANIZATION_FORBIDDEN");
        assert!(reader.authorize(Scope::Read, "o1").is_ok());
    }

    #[test]
    fn refuses_bad_tokens_with_the_right_reason() {
        let auth = Authenticator::hs256(SECRET);
        let reason = |header: Option<&str>| {
            auth.authenticate(header)
                .expect_err("refused")
                .reason()
                .to_owned()
        };
        assert_eq!(reason(None), "TOKEN_MISSING");
        assert_eq!(reason(Some("Basic abc")), "TOKEN_INVALID");
        assert_eq!(reason(Some("Bearer not.a.jwt")), "TOKEN_INVALID");
        let foreign = mint_hs256(b"other", "x", None, "admin", Duration::from_secs(60))
            .expect("minting works");
        assert_eq!(reason(Some(&format!("Bearer {foreign}"))), "TOKEN_INVALID");
        let expired = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &Claims {
                sub: "x".into(),
                scope: "admin".into(),
                org: None,
                exp: 1,
                nbf: None,
                iat: None,
            },
            &EncodingKey::from_secret(SECRET),
        )
        .expect("encodes");
        assert_eq!(reason(Some(&format!("Bearer {expired}"))), "TOKEN_EXPIRED");
    }
}
