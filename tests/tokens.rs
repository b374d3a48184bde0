//! Token verification against `rolekeeper::auth`: HS256, RS256 via a PEM
//! key, ES256/RS256 via a JWKS selected by `kid`, key rotation by rewriting
//! the key file, and the attacks each of them must refuse with
//! UNAUTHENTICATED and the right reason. One end-to-end check goes through a
//! real server.
//!
//! The keys in `tests/fixtures/` are test-only (see its README).

#[macro_use]
mod common;

use base64::Engine as _;
use common::{Backend, Bearer, RpcResult as _, TestServer, assert_error};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::{
    elliptic_curve::sec1::ToEncodedPoint as _,
    pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _},
};
use rolekeeper::{
    auth::{
        AuthConfig, Authenticator, KEY_FILE_CHECK_INTERVAL, LEEWAY_SECONDS, MAX_TOKEN_BYTES,
        Principal, Scope,
    },
    pb::v1::{ListOrganizationsRequest, organization_service_client::OrganizationServiceClient},
};
use rsa::{
    RsaPrivateKey, RsaPublicKey, pkcs1::EncodeRsaPrivateKey as _, pkcs8::DecodePublicKey as _,
    traits::PublicKeyParts as _,
};
use serde::Serialize;
use serde_json::json;
use std::{
    path::{Path, PathBuf},
    time::{Duration, SystemTime, UNIX_EPOCH},
};
use tonic::Code;

const HS_SECRET: &[u8] = b"tokens-test-hs256-secret-of-32-bytes!";

// ----- fixtures -----

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn read_fixture(name: &str) -> String {
    std::fs::read_to_string(fixture(name)).expect("read a fixture")
}

const RSA_PUBLIC: &str = "test-only-rsa-public.pem";
const RSA_PRIVATE: &str = "test-only-rsa-private.pem";
const RSA_OTHER_PUBLIC: &str = "test-only-rsa-other-public.pem";
const RSA_OTHER_PRIVATE: &str = "test-only-rsa-other-private.pem";
const EC_PUBLIC: &str = "test-only-ec-p256-public.pem";
const EC_PRIVATE: &str = "test-only-ec-p256-private.pem";
const EC_OTHER_PRIVATE: &str = "test-only-ec-p256-other-private.pem";

/// An RS256 signing key from a PKCS#8 PEM fixture.
fn rsa_signer(private_pem: &str) -> EncodingKey {
    let key = RsaPrivateKey::from_pkcs8_pem(&read_fixture(private_pem)).expect("RSA private key");
    EncodingKey::from_rsa_der(key.to_pkcs1_der().expect("PKCS#1 DER").as_bytes())
}

/// An ES256 signing key from a PKCS#8 PEM fixture.
fn ec_signer(private_pem: &str) -> EncodingKey {
    let key = p256::SecretKey::from_pkcs8_pem(&read_fixture(private_pem)).expect("EC private key");
    EncodingKey::from_ec_der(key.to_pkcs8_der().expect("PKCS#8 DER").as_bytes())
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The public JWK of an RSA PEM fixture.
fn rsa_jwk(public_pem: &str, kid: &str) -> serde_json::Value {
    let key = RsaPublicKey::from_public_key_pem(&read_fixture(public_pem)).expect("RSA public");
    json!({
        "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
        "n": b64(&key.n().to_bytes_be()), "e": b64(&key.e().to_bytes_be()),
    })
}

/// The public JWK of an EC P-256 key (from its private PEM fixture).
fn ec_jwk(private_pem: &str, kid: &str) -> serde_json::Value {
    let key = p256::SecretKey::from_pkcs8_pem(&read_fixture(private_pem)).expect("EC private");
    let point = key.public_key().to_encoded_point(false);
    json!({
        "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
        "x": b64(point.x().expect("x")), "y": b64(point.y().expect("y")),
    })
}

fn jwks(keys: &[serde_json::Value]) -> String {
    json!({ "keys": keys }).to_string()
}

/// A temporary directory holding `keys.json` with `contents`.
fn key_file(contents: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("keys.json");
    std::fs::write(&path, contents).expect("write the key file");
    (dir, path)
}

/// Replaces the key file the way deployments do: write aside, rename over.
fn replace_key_file(path: &Path, contents: &str) {
    let aside = path.with_extension("new");
    std::fs::write(&aside, contents).expect("write the new key file");
    std::fs::rename(&aside, path).expect("rename over the key file");
}

// ----- tokens -----

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after the epoch")
        .as_secs()
}

/// Claims including `iss`/`aud`, which `rolekeeper::auth::Claims` ignores.
#[derive(Debug, Clone, Serialize)]
struct TestClaims {
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<String>,
    scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    org: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exp: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    nbf: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<serde_json::Value>,
}

fn claims() -> TestClaims {
    TestClaims {
        sub: Some("alice".into()),
        scope: "organization:write".into(),
        org: Some("acme".into()),
        exp: Some(now() + 600),
        nbf: None,
        iss: None,
        aud: None,
    }
}

fn sign(alg: Algorithm, kid: Option<&str>, claims: &TestClaims, key: &EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).expect("sign a token")
}

fn rs256(kid: Option<&str>, claims: &TestClaims) -> String {
    sign(Algorithm::RS256, kid, claims, &rsa_signer(RSA_PRIVATE))
}

fn es256(kid: Option<&str>, claims: &TestClaims) -> String {
    sign(Algorithm::ES256, kid, claims, &ec_signer(EC_PRIVATE))
}

fn hs256(claims: &TestClaims, secret: &[u8]) -> String {
    sign(
        Algorithm::HS256,
        None,
        claims,
        &EncodingKey::from_secret(secret),
    )
}

/// `header.payload.` with a hand-made header (no signature).
fn unsigned(header: serde_json::Value, claims: &TestClaims) -> String {
    let header = b64(header.to_string().as_bytes());
    let payload = b64(&serde_json::to_vec(claims).expect("claims JSON"));
    format!("{header}.{payload}.")
}

// ----- authenticators -----

fn config() -> AuthConfig {
    AuthConfig::default()
}

fn with_pem(pem: &str) -> Authenticator {
    Authenticator::new(AuthConfig {
        jwt_keys: Some(fixture(pem)),
        ..config()
    })
    .expect("an authenticator with a PEM key")
}

/// JWKS with `rsa-1` (RSA) and `ec-1` (EC P-256).
fn standard_jwks() -> String {
    jwks(&[rsa_jwk(RSA_PUBLIC, "rsa-1"), ec_jwk(EC_PRIVATE, "ec-1")])
}

// ----- assertions -----

#[track_caller]
fn accepted(auth: &Authenticator, token: &str) -> Principal {
    auth.authenticate(Some(&format!("Bearer {token}")))
        .unwrap_or_else(|err| panic!("expected the token to be accepted, got {err:?}"))
}

/// Asserts UNAUTHENTICATED with `reason` for the `authorization` value, and
/// that neither the value nor any part of a token appears in the message.
#[track_caller]
fn refused(auth: &Authenticator, authorization: Option<&str>, reason: &str, what: &str) {
    let err = auth
        .authenticate(authorization)
        .err()
        .unwrap_or_else(|| panic!("{what}: expected a refusal"));
    assert_eq!(err.code(), Code::Unauthenticated, "{what}: {err:?}");
    assert_eq!(err.reason(), reason, "{what}: {err:?}");
    let message = err.to_string();
    for part in authorization
        .unwrap_or_default()
        .split(['.', ' '])
        .filter(|p| p.len() >= 8)
    {
        assert!(
            !message.contains(part),
            "{what}: the message `{message}` contains token text"
        );
    }
}

#[track_caller]
fn refused_token(auth: &Authenticator, token: &str, reason: &str, what: &str) {
    refused(auth, Some(&format!("Bearer {token}")), reason, what);
}

// ----- positive cases -----

#[test]
fn rs256_via_pem_is_accepted() {
    let auth = with_pem(RSA_PUBLIC);
    let principal = accepted(&auth, &rs256(None, &claims()));
    assert_eq!(principal.sub, "alice");
    assert_eq!(principal.org.as_deref(), Some("acme"));
    assert!(principal.has_scope(Scope::Write) && !principal.has_scope(Scope::Admin));
    // A PEM key has no kid; it verifies tokens naming any kid (issuers
    // usually send one).
    accepted(&auth, &rs256(Some("issuer-kid"), &claims()));
}

#[test]
fn es256_via_pem_is_accepted() {
    let auth = with_pem(EC_PUBLIC);
    assert_eq!(accepted(&auth, &es256(None, &claims())).sub, "alice");
}

#[test]
fn jwks_selects_the_key_by_kid() {
    let (_dir, path) = key_file(&standard_jwks());
    let auth = Authenticator::new(AuthConfig {
        jwt_keys: Some(path),
        ..config()
    })
    .expect("authenticator");
    assert_eq!(
        accepted(&auth, &es256(Some("ec-1"), &claims())).sub,
        "alice"
    );
    assert_eq!(
        accepted(&auth, &rs256(Some("rsa-1"), &claims())).sub,
        "alice"
    );
    // Without a kid the only key of the token's algorithm is used.
    accepted(&auth, &es256(None, &claims()));
}

#[test]
fn hs256_and_key_file_together() {
    let auth = Authenticator::new(AuthConfig {
        hs256_secret: Some(HS_SECRET.to_vec()),
        jwt_keys: Some(fixture(RSA_PUBLIC)),
        ..config()
    })
    .expect("authenticator");
    accepted(&auth, &hs256(&claims(), HS_SECRET));
    accepted(&auth, &rs256(None, &claims()));
    // The old constructor and minting still work.
    let minted =
        rolekeeper::auth::mint_hs256(HS_SECRET, "bob", None, "admin", Duration::from_secs(60))
            .expect("mint");
    assert!(accepted(&auth, &minted).has_scope(Scope::Admin));
    assert!(
        accepted(&Authenticator::hs256(HS_SECRET), &minted).has_scope(Scope::Admin),
        "Authenticator::hs256"
    );
}

#[test]
fn leeway_is_small_but_present() {
    let auth = with_pem(RSA_PUBLIC);
    let just_expired = TestClaims {
        exp: Some(now() - LEEWAY_SECONDS / 2),
        ..claims()
    };
    accepted(&auth, &rs256(None, &just_expired));
    let almost_valid = TestClaims {
        nbf: Some(now() + LEEWAY_SECONDS / 2),
        ..claims()
    };
    accepted(&auth, &rs256(None, &almost_valid));
}

#[test]
fn issuer_and_audience_are_enforced_when_configured() {
    let auth = Authenticator::new(AuthConfig {
        hs256_secret: Some(HS_SECRET.to_vec()),
        jwt_keys: Some(fixture(RSA_PUBLIC)),
        issuer: Some("https://issuer.test".into()),
        audience: Some("rolekeeper".into()),
    })
    .expect("authenticator");
    let good = TestClaims {
        iss: Some("https://issuer.test".into()),
        aud: Some(json!("rolekeeper")),
        ..claims()
    };
    accepted(&auth, &rs256(None, &good));
    accepted(&auth, &hs256(&good, HS_SECRET));
    let several_audiences = TestClaims {
        aud: Some(json!(["other", "rolekeeper"])),
        ..good.clone()
    };
    accepted(&auth, &rs256(None, &several_audiences));

    let cases = [
        (
            "wrong issuer",
            TestClaims {
                iss: Some("https://evil.test".into()),
                ..good.clone()
            },
        ),
        (
            "no issuer",
            TestClaims {
                iss: None,
                ..good.clone()
            },
        ),
        (
            "wrong audience",
            TestClaims {
                aud: Some(json!("someone-else")),
                ..good.clone()
            },
        ),
        (
            "wrong audiences",
            TestClaims {
                aud: Some(json!(["a", "b"])),
                ..good.clone()
            },
        ),
        (
            "no audience",
            TestClaims {
                aud: None,
                ..good.clone()
            },
        ),
    ];
    for (what, claims) in cases {
        refused_token(&auth, &rs256(None, &claims), "TOKEN_INVALID", what);
        refused_token(&auth, &hs256(&claims, HS_SECRET), "TOKEN_INVALID", what);
    }

    // Without configuration, iss and aud are not checked.
    let open = with_pem(RSA_PUBLIC);
    accepted(
        &open,
        &rs256(
            None,
            &TestClaims {
                iss: Some("https://anyone.test".into()),
                aud: Some(json!("anything")),
                ..claims()
            },
        ),
    );
}

#[test]
fn key_rotation_by_rewriting_the_jwks() {
    let (_dir, path) = key_file(&jwks(&[rsa_jwk(RSA_PUBLIC, "old")]));
    let auth = Authenticator::new(AuthConfig {
        jwt_keys: Some(path.clone()),
        ..config()
    })
    .expect("authenticator");
    let old = rs256(Some("old"), &claims());
    let new = sign(
        Algorithm::RS256,
        Some("new"),
        &claims(),
        &rsa_signer(RSA_OTHER_PRIVATE),
    );
    let ec = sign(
        Algorithm::ES256,
        Some("ec-new"),
        &claims(),
        &ec_signer(EC_PRIVATE),
    );
    accepted(&auth, &old);
    refused_token(&auth, &new, "TOKEN_INVALID", "new kid before rotation");

    // Rotation, overlapping: old and new.
    replace_key_file(
        &path,
        &jwks(&[rsa_jwk(RSA_PUBLIC, "old"), rsa_jwk(RSA_OTHER_PUBLIC, "new")]),
    );
    std::thread::sleep(KEY_FILE_CHECK_INTERVAL + Duration::from_millis(200));
    accepted(&auth, &new);
    accepted(&auth, &old);

    // The old key is withdrawn, rewriting the file in place this time.
    std::fs::write(
        &path,
        jwks(&[
            rsa_jwk(RSA_OTHER_PUBLIC, "new"),
            ec_jwk(EC_PRIVATE, "ec-new"),
        ]),
    )
    .expect("rewrite the key file");
    std::thread::sleep(KEY_FILE_CHECK_INTERVAL + Duration::from_millis(200));
    refused_token(&auth, &old, "TOKEN_INVALID", "removed kid");
    accepted(&auth, &new);
    accepted(&auth, &ec);

    // A broken new version keeps the previous keys...
    for broken in [
        "{\"keys\": [",
        "",
        &jwks(&[json!({"kty": "oct", "k": "c2VjcmV0", "kid": "h"})]),
    ] {
        replace_key_file(&path, broken);
        std::thread::sleep(KEY_FILE_CHECK_INTERVAL + Duration::from_millis(200));
        accepted(&auth, &new);
        refused_token(&auth, &old, "TOKEN_INVALID", "removed kid, broken file");
    }
    // ...so does a vanished file...
    std::fs::remove_file(&path).expect("remove the key file");
    std::thread::sleep(KEY_FILE_CHECK_INTERVAL + Duration::from_millis(200));
    accepted(&auth, &new);
    // ...and the next good version is picked up.
    replace_key_file(&path, &jwks(&[rsa_jwk(RSA_PUBLIC, "old")]));
    std::thread::sleep(KEY_FILE_CHECK_INTERVAL + Duration::from_millis(200));
    accepted(&auth, &old);
    refused_token(&auth, &new, "TOKEN_INVALID", "kid removed again");
}

// ----- attacks -----

#[test]
fn missing_and_non_bearer_headers() {
    let auth = with_pem(RSA_PUBLIC);
    let token = rs256(None, &claims());
    refused(&auth, None, "TOKEN_MISSING", "no header");
    for (what, value) in [
        ("basic", "Basic dXNlcjpwYXNzd29yZA==".to_owned()),
        ("no scheme", token.clone()),
        ("other scheme", format!("Token {token}")),
        ("empty bearer", "Bearer ".to_owned()),
        ("blank bearer", "Bearer    ".to_owned()),
        ("empty", String::new()),
    ] {
        refused(&auth, Some(&value), "TOKEN_INVALID", what);
    }
}

#[test]
fn malformed_tokens() {
    let auth = Authenticator::new(AuthConfig {
        hs256_secret: Some(HS_SECRET.to_vec()),
        jwt_keys: Some(fixture(RSA_PUBLIC)),
        ..config()
    })
    .expect("authenticator");
    let good = rs256(None, &claims());
    let (head, rest) = good.split_once('.').expect("three parts");
    let (payload, signature) = rest.split_once('.').expect("three parts");
    for (what, token) in [
        ("not a JWT", "not-a-jwt".to_owned()),
        ("garbage segments", "a.b.c".to_owned()),
        ("two segments", format!("{head}.{payload}")),
        ("four segments", format!("{good}.{signature}")),
        ("bad base64 header", format!("!!!.{payload}.{signature}")),
        ("bad base64 payload", format!("{head}.%%%.{signature}")),
        ("no signature", format!("{head}.{payload}.")),
        (
            "tampered signature",
            format!("{head}.{payload}.{signature}x"),
        ),
        (
            "json header is not an object",
            format!("{}.{payload}.{signature}", b64(b"[1]")),
        ),
        (
            "claims not JSON",
            format!("{head}.{}.{signature}", b64(b"nope")),
        ),
    ] {
        refused_token(&auth, &token, "TOKEN_INVALID", what);
    }
    // Claims that do not fit: no exp, no sub, exp not a number.
    for (what, claims) in [
        (
            "no exp",
            TestClaims {
                exp: None,
                ..claims()
            },
        ),
        (
            "no sub",
            TestClaims {
                sub: None,
                ..claims()
            },
        ),
    ] {
        refused_token(&auth, &rs256(None, &claims), "TOKEN_INVALID", what);
    }
    let string_exp = jsonwebtoken::encode(
        &Header::new(Algorithm::RS256),
        &json!({"sub": "alice", "exp": "tomorrow"}),
        &rsa_signer(RSA_PRIVATE),
    )
    .expect("sign");
    refused_token(&auth, &string_exp, "TOKEN_INVALID", "exp is a string");
}

#[test]
fn alg_none_is_refused() {
    let auth = Authenticator::new(AuthConfig {
        hs256_secret: Some(HS_SECRET.to_vec()),
        jwt_keys: Some(fixture(RSA_PUBLIC)),
        ..config()
    })
    .expect("authenticator");
    for header in [
        json!({"alg": "none", "typ": "JWT"}),
        json!({"alg": "None"}),
        json!({"alg": "NONE", "kid": "rsa-1"}),
        json!({"typ": "JWT"}),
        json!({"alg": ""}),
    ] {
        let token = unsigned(header.clone(), &claims());
        refused_token(&auth, &token, "TOKEN_INVALID", &header.to_string());
        // Also with a signature part copied from a valid token.
        let good = rs256(None, &claims());
        let signature = good.rsplit('.').next().expect("signature");
        refused_token(
            &auth,
            &format!("{token}{signature}"),
            "TOKEN_INVALID",
            &header.to_string(),
        );
    }
}

#[test]
fn algorithm_confusion_is_refused() {
    // The classic: HS256, HMAC keyed with the RSA public key's PEM bytes.
    let public_pem = read_fixture(RSA_PUBLIC);
    let confused = hs256(&claims(), public_pem.as_bytes());
    let confused_kid = sign(
        Algorithm::HS256,
        Some("rsa-1"),
        &claims(),
        &EncodingKey::from_secret(public_pem.as_bytes()),
    );
    // Keys only: HS256 is not accepted at all.
    let keys_only = with_pem(RSA_PUBLIC);
    refused_token(
        &keys_only,
        &confused,
        "TOKEN_INVALID",
        "HS256 with PEM, keys only",
    );
    // Secret and keys: HS256 is checked with the secret, never the key file.
    let both = Authenticator::new(AuthConfig {
        hs256_secret: Some(HS_SECRET.to_vec()),
        jwt_keys: Some(fixture(RSA_PUBLIC)),
        ..config()
    })
    .expect("authenticator");
    refused_token(&both, &confused, "TOKEN_INVALID", "HS256 with PEM, both");
    let (_dir, path) = key_file(&standard_jwks());
    let jwks_and_secret = Authenticator::new(AuthConfig {
        hs256_secret: Some(HS_SECRET.to_vec()),
        jwt_keys: Some(path),
        ..config()
    })
    .expect("authenticator");
    refused_token(
        &jwks_and_secret,
        &confused_kid,
        "TOKEN_INVALID",
        "HS256 naming an RSA kid",
    );
    // Also HMAC keyed with the DER bytes of the public key.
    let der = base64::engine::general_purpose::STANDARD
        .decode(
            public_pem
                .lines()
                .filter(|l| !l.starts_with("-----"))
                .collect::<String>(),
        )
        .expect("PEM body");
    refused_token(
        &both,
        &hs256(&claims(), &der),
        "TOKEN_INVALID",
        "HS256 with DER",
    );

    // Secret only: RS256/ES256 are not accepted, whatever the signature.
    let secret_only = Authenticator::hs256(HS_SECRET);
    refused_token(
        &secret_only,
        &rs256(None, &claims()),
        "TOKEN_INVALID",
        "RS256 with no keys",
    );
    refused_token(
        &secret_only,
        &es256(None, &claims()),
        "TOKEN_INVALID",
        "ES256 with no keys",
    );

    // A key allows one algorithm: an ES256 token naming the RSA kid, and
    // the RSA key used with other RSA algorithms, are refused.
    refused_token(
        &jwks_and_secret,
        &es256(Some("rsa-1"), &claims()),
        "TOKEN_INVALID",
        "ES256 naming an RSA kid",
    );
    for alg in [Algorithm::RS384, Algorithm::RS512, Algorithm::PS256] {
        let token = sign(alg, Some("rsa-1"), &claims(), &rsa_signer(RSA_PRIVATE));
        refused_token(
            &jwks_and_secret,
            &token,
            "TOKEN_INVALID",
            &format!("{alg:?}"),
        );
        let token = sign(alg, None, &claims(), &rsa_signer(RSA_PRIVATE));
        refused_token(
            &keys_only,
            &token,
            "TOKEN_INVALID",
            &format!("{alg:?}, PEM"),
        );
    }
    // HS384/HS512 with the right secret are not HS256.
    for alg in [Algorithm::HS384, Algorithm::HS512] {
        let token = sign(alg, None, &claims(), &EncodingKey::from_secret(HS_SECRET));
        refused_token(&both, &token, "TOKEN_INVALID", &format!("{alg:?}"));
    }
}

#[test]
fn embedded_keys_in_the_header_are_ignored() {
    // The attacker signs with their own key and ships it in `jwk`/`jku`.
    let auth = with_pem(RSA_PUBLIC);
    let attacker = rsa_signer(RSA_OTHER_PRIVATE);
    let mut header = Header::new(Algorithm::RS256);
    header.jwk = Some(serde_json::from_value(rsa_jwk(RSA_OTHER_PUBLIC, "attacker")).expect("JWK"));
    header.jku = Some("https://attacker.test/jwks.json".into());
    let token = jsonwebtoken::encode(&header, &claims(), &attacker).expect("sign");
    refused_token(&auth, &token, "TOKEN_INVALID", "embedded jwk");
}

#[test]
fn wrong_key_and_unknown_kid_are_refused() {
    let pem = with_pem(RSA_PUBLIC);
    let other_rsa = sign(
        Algorithm::RS256,
        None,
        &claims(),
        &rsa_signer(RSA_OTHER_PRIVATE),
    );
    refused_token(&pem, &other_rsa, "TOKEN_INVALID", "other RSA key, PEM");
    let ec_pem = with_pem(EC_PUBLIC);
    let other_ec = sign(
        Algorithm::ES256,
        None,
        &claims(),
        &ec_signer(EC_OTHER_PRIVATE),
    );
    refused_token(&ec_pem, &other_ec, "TOKEN_INVALID", "other EC key, PEM");
    refused_token(
        &ec_pem,
        &rs256(None, &claims()),
        "TOKEN_INVALID",
        "RS256 at an EC key",
    );

    let (_dir, path) = key_file(&standard_jwks());
    let auth = Authenticator::new(AuthConfig {
        jwt_keys: Some(path),
        ..config()
    })
    .expect("authenticator");
    let forged = sign(
        Algorithm::RS256,
        Some("rsa-1"),
        &claims(),
        &rsa_signer(RSA_OTHER_PRIVATE),
    );
    refused_token(&auth, &forged, "TOKEN_INVALID", "other RSA key, known kid");
    let forged = sign(
        Algorithm::ES256,
        Some("ec-1"),
        &claims(),
        &ec_signer(EC_OTHER_PRIVATE),
    );
    refused_token(&auth, &forged, "TOKEN_INVALID", "other EC key, known kid");
    refused_token(
        &auth,
        &rs256(Some("rsa-2"), &claims()),
        "TOKEN_INVALID",
        "unknown kid (right key)",
    );
    refused_token(
        &auth,
        &rs256(Some(""), &claims()),
        "TOKEN_INVALID",
        "empty kid",
    );
}

#[test]
fn expired_and_not_yet_valid() {
    let auth = with_pem(RSA_PUBLIC);
    let expired = TestClaims {
        exp: Some(now() - LEEWAY_SECONDS - 60),
        ..claims()
    };
    refused_token(&auth, &rs256(None, &expired), "TOKEN_EXPIRED", "expired");
    // Expired and signed by someone else: invalid, not expired.
    let forged = sign(
        Algorithm::RS256,
        None,
        &expired,
        &rsa_signer(RSA_OTHER_PRIVATE),
    );
    refused_token(&auth, &forged, "TOKEN_INVALID", "expired and forged");
    let early = TestClaims {
        nbf: Some(now() + LEEWAY_SECONDS + 300),
        ..claims()
    };
    refused_token(
        &auth,
        &rs256(None, &early),
        "TOKEN_INVALID",
        "not yet valid",
    );
    let ec = with_pem(EC_PUBLIC);
    refused_token(
        &ec,
        &es256(None, &expired),
        "TOKEN_EXPIRED",
        "expired ES256",
    );
}

#[test]
fn oversized_tokens_are_refused() {
    let auth = with_pem(RSA_PUBLIC);
    let big = TestClaims {
        scope: format!("organization:write {}", "x".repeat(MAX_TOKEN_BYTES)),
        ..claims()
    };
    let token = rs256(None, &big);
    assert!(token.len() > MAX_TOKEN_BYTES);
    refused_token(&auth, &token, "TOKEN_INVALID", "oversized");
    // Just below the limit is fine.
    let mut scope = "organization:write ".to_owned();
    let base = rs256(None, &claims()).len();
    scope.push_str(&"y".repeat((MAX_TOKEN_BYTES - base) * 3 / 4 - 64));
    let fits = rs256(None, &TestClaims { scope, ..claims() });
    assert!(fits.len() <= MAX_TOKEN_BYTES, "{}", fits.len());
    accepted(&auth, &fits);
}

// ----- configuration -----

#[test]
fn configuration_errors_are_reported_without_key_material() {
    let err = |config: AuthConfig| {
        Authenticator::new(config)
            .expect_err("refused configuration")
            .to_string()
    };
    assert!(err(config()).contains("ROLEKEEPER_JWT_KEYS"));
    let missing = err(AuthConfig {
        jwt_keys: Some(fixture("no-such-file.pem")),
        ..config()
    });
    assert!(missing.contains("no-such-file.pem"), "{missing}");

    // A private key is not a verification key, and its text never shows.
    let private = err(AuthConfig {
        jwt_keys: Some(fixture(RSA_PRIVATE)),
        ..config()
    });
    assert!(private.contains("private key"), "{private}");
    let body: Vec<String> = read_fixture(RSA_PRIVATE)
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(str::to_owned)
        .collect();
    assert!(body.iter().all(|line| !private.contains(line.as_str())));

    // A JWKS with a private JWK and a symmetric key: nothing usable, and
    // the key values are not echoed.
    let secretive = jwks(&[
        json!({"kty": "oct", "k": "dG9wLXNlY3JldC12YWx1ZQ", "kid": "h"}),
        json!({"kty": "EC", "crv": "P-256", "kid": "p", "x": "AAAA", "y": "BBBB",
               "d": "cHJpdmF0ZS1zY2FsYXI"}),
    ]);
    let (_dir, path) = key_file(&secretive);
    let message = err(AuthConfig {
        jwt_keys: Some(path),
        ..config()
    });
    assert!(message.contains("no usable"), "{message}");
    assert!(
        !message.contains("dG9wLXNlY3JldC12YWx1ZQ") && !message.contains("cHJpdmF0ZS1zY2FsYXI"),
        "{message}"
    );

    // Empty strings are mistakes, not "unchecked".
    assert!(
        err(AuthConfig {
            hs256_secret: Some(HS_SECRET.to_vec()),
            issuer: Some(String::new()),
            ..config()
        })
        .contains("issuer")
    );
    assert!(
        err(AuthConfig {
            hs256_secret: Some(Vec::new()),
            ..config()
        })
        .contains("empty")
    );
    // Debug output hides the secret.
    let debug = format!(
        "{:?}",
        AuthConfig {
            hs256_secret: Some(HS_SECRET.to_vec()),
            ..config()
        }
    );
    assert!(!debug.contains("tokens-test"), "{debug}");
}

// ----- end to end -----

/// Through a real server (HS256 only, as the harness configures it): the
/// status carries UNAUTHENTICATED with the reason, and public-key tokens are
/// refused when no key file is configured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_reach_the_client_through_a_real_server() {
    let Some(server) = TestServer::start(Backend::Sqlite).await else {
        return;
    };
    let list = |bearer: Bearer| {
        let mut client = OrganizationServiceClient::new(server.with(bearer));
        async move {
            client
                .list_organizations(ListOrganizationsRequest::default())
                .await
        }
    };
    let status = list(Bearer::none()).await.fails();
    assert_error(&status, Code::Unauthenticated, "TOKEN_MISSING");

    let admin = TestClaims {
        scope: "admin".into(),
        org: None,
        ..claims()
    };
    let public_pem = read_fixture(RSA_PUBLIC);
    for (what, token) in [
        ("RS256 without a key file", rs256(None, &admin)),
        (
            "HS256 keyed with the public key",
            hs256(&admin, public_pem.as_bytes()),
        ),
        ("alg none", unsigned(json!({"alg": "none"}), &admin)),
    ] {
        let status = list(Bearer::token(&token)).await.fails();
        assert_error(&status, Code::Unauthenticated, "TOKEN_INVALID");
        assert!(!status.message().contains(&token), "{what}");
    }
    let expired = TestClaims {
        exp: Some(now() - 3600),
        ..admin.clone()
    };
    let status = list(Bearer::token(&hs256(&expired, common::SECRET)))
        .await
        .fails();
    assert_error(&status, Code::Unauthenticated, "TOKEN_EXPIRED");
    list(Bearer::token(&hs256(&admin, common::SECRET)))
        .await
        .must();
}

// ----- logs -----

/// A `MakeWriter` collecting everything logged into one buffer.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Self;

    fn make_writer(&'a self) -> Self {
        self.clone()
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(
            &self
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
        .into_owned()
    }
}

#[test]
fn logs_name_reasons_but_never_tokens_or_keys() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(logs.clone())
        .finish();
    let secret_jwk = json!({"kty": "oct", "k": "dG9wLXNlY3JldC12YWx1ZQ", "kid": "h"});
    let mut tokens = Vec::new();
    tracing::subscriber::with_default(subscriber, || {
        // Tests running in parallel without a subscriber may have cached
        // "never" as the interest of the auth callsites; recompute it now
        // that this thread has a subscriber.
        tracing::callsite::rebuild_interest_cache();
        let (_dir, path) = key_file(&jwks(&[rsa_jwk(RSA_PUBLIC, "rsa-1"), secret_jwk.clone()]));
        let auth = Authenticator::new(AuthConfig {
            hs256_secret: Some(HS_SECRET.to_vec()),
            jwt_keys: Some(path.clone()),
            issuer: Some("https://issuer.test".into()),
            ..config()
        })
        .expect("authenticator");
        let public_pem = read_fixture(RSA_PUBLIC);
        let issued = TestClaims {
            iss: Some("https://issuer.test".into()),
            ..claims()
        };
        tokens = vec![
            rs256(Some("rsa-1"), &issued),
            rs256(Some("nope"), &issued),
            hs256(&issued, public_pem.as_bytes()),
            hs256(&issued, b"wrong-secret-wrong-secret-wrong!!"),
            unsigned(json!({"alg": "none"}), &issued),
            rs256(
                Some("rsa-1"),
                &TestClaims {
                    exp: Some(1),
                    ..issued.clone()
                },
            ),
            rs256(Some("rsa-1"), &claims()),
            rs256(
                Some("rsa-1"),
                &TestClaims {
                    iss: Some("https://evil.test".into()),
                    ..claims()
                },
            ),
        ];
        // Every refusal goes through one callsite. Register it, then have its
        // interest recomputed while this thread's subscriber is live: a
        // parallel test may have registered it first, without one.
        let _ = auth.authenticate(Some("Bearer not-a-token"));
        tracing::callsite::rebuild_interest_cache();
        for token in &tokens {
            let _ = auth.authenticate(Some(&format!("Bearer {token}")));
        }
        // A broken reload is logged, too.
        replace_key_file(
            &path,
            "{\"keys\": [{\"kty\": \"RSA\", \"n\": \"AQAB\", \"e\": \"AQAB\"}",
        );
        std::thread::sleep(KEY_FILE_CHECK_INTERVAL + Duration::from_millis(200));
        let _ = auth.authenticate(Some(&format!("Bearer {}", tokens[0])));
    });
    let text = logs.text();
    for expected in [
        "loaded JWT verification keys",
        "symmetric keys are never taken from the key file",
        "unknown kid",
        "bad signature",
        "reason=\"malformed\"",
        "reason=\"expired\"",
        "a required claim is missing",
        "wrong issuer",
        "changed JWT key file is unusable",
    ] {
        assert!(text.contains(expected), "`{expected}` not logged:\n{text}");
    }
    let mut forbidden: Vec<String> = tokens
        .iter()
        .flat_map(|t| t.split('.').map(str::to_owned).collect::<Vec<_>>())
        .filter(|part| part.len() >= 8)
        .collect();
    forbidden.push("dG9wLXNlY3JldC12YWx1ZQ".into());
    forbidden.push(String::from_utf8_lossy(HS_SECRET).into_owned());
    forbidden.extend(
        read_fixture(RSA_PUBLIC)
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .map(str::to_owned),
    );
    let n = rsa_jwk(RSA_PUBLIC, "x")["n"]
        .as_str()
        .expect("n")
        .to_owned();
    forbidden.push(n[..32].to_owned());
    for part in forbidden {
        assert!(
            !text.contains(&part),
            "logged secret material `{part}`:\n{text}"
        );
    }
}
