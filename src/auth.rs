//! Bearer tokens: verification, the [`Principal`] they name, scope and
//! organization checks, and minting (for `rolekeeper token` and tests).

use crate::error::{Error, TokenProblem};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Tokens longer than this are refused before any parsing.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Clock skew tolerated on `exp` and `nbf`.
const LEEWAY_SECONDS: u64 = 30;

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

/// Verifies bearer tokens.
#[derive(Clone)]
pub struct Authenticator {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator").finish_non_exhaustive()
    }
}

impl Authenticator {
    /// Verifies HS256 tokens signed with `secret`.
    pub fn hs256(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_nbf = true;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            key: DecodingKey::from_secret(secret),
            validation,
        }
    }

    /// Verifies the value of an `authorization` metadata entry.
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<Principal, Error> {
        let header = authorization.ok_or_else(|| unauthenticated(TokenProblem::Missing))?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| unauthenticated(TokenProblem::Invalid))?;
        if token.len() > MAX_TOKEN_BYTES {
            return Err(unauthenticated(TokenProblem::Invalid));
        }
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation).map_err(
            |err| match err.kind() {
                ErrorKind::ExpiredSignature => unauthenticated(TokenProblem::Expired),
                _ => unauthenticated(TokenProblem::Invalid),
            },
        )?;
        Ok(Principal::from_claims(data.claims))
    }
}

fn unauthenticated(problem: TokenProblem) -> Error {
    let message = match problem {
        TokenProblem::Missing => "missing `authorization: Bearer <token>` metadata",
        TokenProblem::Invalid => "the bearer token is malformed, unsigned or not signed by a trusted key",
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
