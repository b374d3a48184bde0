//! The RS256/ES256 verification keys of `ROLEKEEPER_JWT_KEYS`: parsing a PEM
//! public key or a JWKS document, and picking up changes of the file.
//!
//! Every key allows exactly one algorithm, decided here from the key itself
//! (RSA: RS256, EC P-256: ES256, or the JWK's own `alg` if it agrees); a
//! token's header only selects among keys, it never widens what a key allows.
//! Symmetric (`oct`) keys are never taken from the file: HS256 is only
//! accepted with the configured secret.
//!
//! No message produced here contains key material: parse errors name the
//! problem and at most a `kid`, a line/column, or a label.

use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey};
use p256::elliptic_curve::sec1::ToEncodedPoint as _;
use rsa::{
    BigUint, RsaPublicKey, pkcs1::DecodeRsaPublicKey as _, pkcs8::DecodePublicKey as _,
    traits::PublicKeyParts as _,
};
use serde::Deserialize;
use std::{
    collections::HashSet,
    fs,
    io::Read as _,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, PoisonError, RwLock, TryLockError},
    time::{Duration, Instant, SystemTime},
};

/// How often (at most) the key file is checked for changes, on use.
pub const KEY_FILE_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Key files larger than this are refused.
const MAX_KEY_FILE_BYTES: u64 = 1024 * 1024;

/// Smallest RSA modulus accepted.
const MIN_RSA_BITS: usize = 2048;

/// At most this many keys in one file (bounds the work of a lookup).
const MAX_KEYS: usize = 64;

/// One public key and the single algorithm it verifies.
pub(crate) struct VerificationKey {
    /// The JWK `kid`; `None` for a PEM key or a JWK without one.
    pub(crate) kid: Option<String>,
    /// RS256 or ES256.
    pub(crate) algorithm: Algorithm,
    /// The key in the form jsonwebtoken verifies with.
    pub(crate) key: DecodingKey,
}

/// The keys of one version of the key file.
pub(crate) struct KeySet {
    keys: Vec<VerificationKey>,
}

/// Why no key of a [`KeySet`] may verify a token (for the debug log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NoKey {
    /// The token names a `kid` the file does not have.
    UnknownKid,
    /// The `kid` exists, but its key is for another algorithm.
    AlgorithmMismatch,
    /// No `kid`, and not exactly one key for the algorithm.
    Ambiguous,
}

impl NoKey {
    /// A fixed description, free of anything the token said.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Self::UnknownKid => "unknown kid (and no single key without a kid)",
            Self::AlgorithmMismatch => "the key of this kid is for another algorithm",
            Self::Ambiguous => "no kid, and not exactly one key for the algorithm",
        }
    }
}

impl KeySet {
    /// A set without keys.
    #[cfg(test)]
    pub(crate) fn empty() -> Self {
        Self { keys: Vec::new() }
    }

    /// The key that verifies a token with header `alg` and `kid`:
    ///
    /// - with a `kid`, the key of that `kid`, which must allow `alg`; if no
    ///   key has that `kid`, the only key without a `kid` for `alg` (a PEM
    ///   file, or a JWK published without `kid`), if there is exactly one;
    /// - without a `kid`, the only key without a `kid` for `alg`, else the
    ///   only key for `alg` at all.
    pub(crate) fn select(
        &self,
        alg: Algorithm,
        kid: Option<&str>,
    ) -> Result<&VerificationKey, NoKey> {
        if let Some(kid) = kid
            && let Some(key) = self.keys.iter().find(|k| k.kid.as_deref() == Some(kid))
        {
            return if key.algorithm == alg {
                Ok(key)
            } else {
                Err(NoKey::AlgorithmMismatch)
            };
        }
        let for_alg = || self.keys.iter().filter(move |k| k.algorithm == alg);
        if let Some(key) = only(for_alg().filter(|k| k.kid.is_none())) {
            return Ok(key);
        }
        match kid {
            Some(_) => Err(NoKey::UnknownKid),
            None => only(for_alg()).ok_or(NoKey::Ambiguous),
        }
    }

    /// How many keys the set holds.
    pub(crate) fn len(&self) -> usize {
        self.keys.len()
    }

    /// The `kid`s of the set, for log lines (never secret).
    fn kids(&self) -> Vec<&str> {
        self.keys.iter().filter_map(|k| k.kid.as_deref()).collect()
    }
}

/// The single item of `items`, if there is exactly one.
fn only<T>(mut items: impl Iterator<Item = T>) -> Option<T> {
    match (items.next(), items.next()) {
        (Some(item), None) => Some(item),
        _ => None,
    }
}

/// A parsed key file: its keys, plus the entries that were skipped and why.
pub(crate) struct Parsed {
    pub(crate) keys: KeySet,
    pub(crate) skipped: Vec<String>,
}

/// Parses a key file: one PEM public key (RSA or EC P-256) or a JWKS
/// document (`{"keys": [...]}`).
pub(crate) fn parse(bytes: &[u8]) -> Result<Parsed, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "the file is not UTF-8 text".to_owned())?;
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') {
        parse_jwks(trimmed)
    } else if trimmed.starts_with("-----BEGIN ") {
        let key = parse_pem(trimmed)?;
        Ok(Parsed {
            keys: KeySet { keys: vec![key] },
            skipped: Vec::new(),
        })
    } else {
        Err("neither a PEM public key nor a JWKS document".to_owned())
    }
}

fn parse_pem(text: &str) -> Result<VerificationKey, String> {
    let labels: Vec<&str> = text
        .lines()
        .filter_map(|line| line.trim().strip_prefix("-----BEGIN "))
        .filter_map(|rest| rest.strip_suffix("-----"))
        .collect();
    let label = match labels.as_slice() {
        [label] => *label,
        [] => return Err("no complete PEM block".to_owned()),
        _ => {
            return Err(
                "more than one PEM block; put several keys into a JWKS file instead".to_owned(),
            );
        }
    };
    let (algorithm, key) = match label {
        "PUBLIC KEY" => {
            if let Ok(rsa) = RsaPublicKey::from_public_key_pem(text) {
                rsa_key(&rsa)?
            } else if let Ok(ec) = p256::PublicKey::from_public_key_pem(text) {
                ec_key(&ec)
            } else {
                return Err(
                    "the PEM public key is neither RSA (2048 to 4096 bits) nor EC P-256".to_owned(),
                );
            }
        }
        "RSA PUBLIC KEY" => {
            let rsa = RsaPublicKey::from_pkcs1_pem(text)
                .map_err(|_| "the PEM `RSA PUBLIC KEY` block does not decode".to_owned())?;
            rsa_key(&rsa)?
        }
        label if label.contains("PRIVATE KEY") => {
            return Err("the file holds a private key; configure the public key only".to_owned());
        }
        _ => {
            return Err("unsupported PEM block; expected `PUBLIC KEY`".to_owned());
        }
    };
    Ok(VerificationKey {
        kid: None,
        algorithm,
        key,
    })
}

fn rsa_key(rsa: &RsaPublicKey) -> Result<(Algorithm, DecodingKey), String> {
    let bits = rsa.n().bits();
    if bits < MIN_RSA_BITS {
        return Err(format!(
            "the RSA key has {bits} bits; at least {MIN_RSA_BITS} are required"
        ));
    }
    Ok((
        Algorithm::RS256,
        DecodingKey::from_rsa_raw_components(&rsa.n().to_bytes_be(), &rsa.e().to_bytes_be()),
    ))
}

fn ec_key(ec: &p256::PublicKey) -> (Algorithm, DecodingKey) {
    let point = ec.to_encoded_point(false);
    (Algorithm::ES256, DecodingKey::from_ec_der(point.as_bytes()))
}

#[derive(Deserialize)]
struct JwksDocument {
    keys: Vec<serde_json::Value>,
}

/// The JWK members rolekeeper reads; everything else is ignored.
#[derive(Deserialize)]
struct JwkDocument {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default, rename = "use")]
    public_key_use: Option<String>,
    #[serde(default)]
    key_ops: Option<Vec<String>>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
    #[serde(default)]
    d: Option<serde_json::Value>,
}

fn parse_jwks(text: &str) -> Result<Parsed, String> {
    let document: JwksDocument = serde_json::from_str(text).map_err(|err| {
        let what = match err.classify() {
            serde_json::error::Category::Data => "not a JWKS document (`{\"keys\": [...]}`)",
            _ => "invalid JSON",
        };
        // Only the position: serde's own message may quote file content.
        format!("{what} at line {} column {}", err.line(), err.column())
    })?;
    if document.keys.len() > MAX_KEYS {
        return Err(format!("more than {MAX_KEYS} keys"));
    }
    let mut keys = Vec::new();
    let mut skipped = Vec::new();
    let mut kids = HashSet::new();
    for (index, value) in document.keys.into_iter().enumerate() {
        let Ok(jwk) = serde_json::from_value::<JwkDocument>(value) else {
            skipped.push(format!("keys[{index}]: not a JWK with a string `kty`"));
            continue;
        };
        if let Some(kid) = &jwk.kid
            && !kids.insert(kid.clone())
        {
            return Err(format!("keys[{index}]: duplicate kid `{kid}`"));
        }
        match jwk_key(&jwk) {
            Ok((algorithm, key)) => keys.push(VerificationKey {
                kid: jwk.kid,
                algorithm,
                key,
            }),
            Err(reason) => {
                let kid = jwk.kid.as_deref().unwrap_or("");
                skipped.push(format!("keys[{index}] (kid `{kid}`): {reason}"));
            }
        }
    }
    if keys.is_empty() {
        return Err(format!(
            "no usable RS256/ES256 signature key{}",
            if skipped.is_empty() {
                String::new()
            } else {
                format!(" ({})", skipped.join("; "))
            }
        ));
    }
    Ok(Parsed {
        keys: KeySet { keys },
        skipped,
    })
}

fn jwk_key(jwk: &JwkDocument) -> Result<(Algorithm, DecodingKey), &'static str> {
    if jwk.d.is_some() {
        return Err("holds private key parameters; publish the public key only");
    }
    if jwk.public_key_use.as_deref().is_some_and(|u| u != "sig") {
        return Err("not a signature key (`use`)");
    }
    if jwk
        .key_ops
        .as_ref()
        .is_some_and(|ops| !ops.iter().any(|op| op == "verify"))
    {
        return Err("`key_ops` does not allow `verify`");
    }
    let (algorithm, key) = match jwk.kty.as_str() {
        "RSA" => {
            let n = b64url(jwk.n.as_deref()).ok_or("missing or malformed `n`")?;
            let e = b64url(jwk.e.as_deref()).ok_or("missing or malformed `e`")?;
            let rsa = RsaPublicKey::new(BigUint::from_bytes_be(&n), BigUint::from_bytes_be(&e))
                .map_err(|_| "not a valid RSA public key (at most 4096 bits)")?;
            if rsa.n().bits() < MIN_RSA_BITS {
                return Err("RSA key shorter than 2048 bits");
            }
            (
                Algorithm::RS256,
                DecodingKey::from_rsa_raw_components(&n, &e),
            )
        }
        "EC" => {
            if jwk.crv.as_deref() != Some("P-256") {
                return Err("only the EC curve P-256 is supported");
            }
            let x = b64url(jwk.x.as_deref()).ok_or("missing or malformed `x`")?;
            let y = b64url(jwk.y.as_deref()).ok_or("missing or malformed `y`")?;
            if x.len() != 32 || y.len() != 32 {
                return Err("`x` and `y` must be 32 bytes each");
            }
            let mut point = Vec::with_capacity(65);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            let ec = p256::PublicKey::from_sec1_bytes(&point)
                .map_err(|_| "the point is not on the curve P-256")?;
            ec_key(&ec)
        }
        "oct" => return Err("symmetric keys are never taken from the key file"),
        _ => return Err("unsupported key type (RSA and EC only)"),
    };
    match jwk.alg.as_deref() {
        None => {}
        Some("RS256") if algorithm == Algorithm::RS256 => {}
        Some("ES256") if algorithm == Algorithm::ES256 => {}
        Some(_) => return Err("`alg` is not RS256 (RSA) or ES256 (EC P-256)"),
    }
    Ok((algorithm, key))
}

/// Decodes base64url (padding tolerated).
fn b64url(value: Option<&str>) -> Option<Vec<u8>> {
    let value = value?.trim_end_matches('=');
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(value)
        .ok()
        .filter(|bytes| !bytes.is_empty())
}

/// What identifies one version of the file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    #[cfg(unix)]
    inode: (u64, u64),
}

impl Stamp {
    fn of(metadata: &fs::Metadata) -> Self {
        #[cfg(unix)]
        use std::os::unix::fs::MetadataExt as _;
        Self {
            modified: metadata.modified().ok(),
            len: metadata.len(),
            #[cfg(unix)]
            inode: (metadata.dev(), metadata.ino()),
        }
    }
}

/// Reads and parses the file; the stamp is taken before reading, so a
/// concurrent write at worst causes one more reload later.
fn load(path: &Path) -> Result<(Parsed, Stamp), String> {
    let mut file = fs::File::open(path).map_err(|e| format!("cannot open: {}", e.kind()))?;
    let metadata = file
        .metadata()
        .map_err(|e| format!("cannot stat: {}", e.kind()))?;
    let stamp = Stamp::of(&metadata);
    if metadata.len() > MAX_KEY_FILE_BYTES {
        return Err(format!("larger than {MAX_KEY_FILE_BYTES} bytes"));
    }
    let mut bytes = Vec::new();
    file.by_ref()
        .take(MAX_KEY_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read: {}", e.kind()))?;
    if bytes.len() as u64 > MAX_KEY_FILE_BYTES {
        return Err(format!("larger than {MAX_KEY_FILE_BYTES} bytes"));
    }
    Ok((parse(&bytes)?, stamp))
}

fn log_skipped(path: &Path, skipped: &[String]) {
    for entry in skipped {
        tracing::warn!(path = %path.display(), entry = %entry, "JWT key file: key skipped");
    }
}

struct Check {
    at: Instant,
    seen: Option<Stamp>,
}

/// The key file and its current keys. On use, at most every
/// [`KEY_FILE_CHECK_INTERVAL`], the file's modification time, length and
/// inode are compared with the version last read; a changed file is read
/// again. A file that does not parse (or vanished) keeps the previous keys
/// and logs one warning per version.
pub(crate) struct KeyFile {
    path: PathBuf,
    interval: Duration,
    keys: RwLock<Arc<KeySet>>,
    check: Mutex<Check>,
}

impl KeyFile {
    /// Loads `path`; fails unless it holds at least one usable key.
    pub(crate) fn open(path: PathBuf, interval: Duration) -> Result<Self, String> {
        let (parsed, stamp) = load(&path)?;
        log_skipped(&path, &parsed.skipped);
        tracing::info!(
            path = %path.display(),
            keys = parsed.keys.len(),
            kids = ?parsed.keys.kids(),
            "loaded JWT verification keys"
        );
        Ok(Self {
            path,
            interval,
            keys: RwLock::new(Arc::new(parsed.keys)),
            check: Mutex::new(Check {
                at: Instant::now(),
                seen: Some(stamp),
            }),
        })
    }

    /// The file this reads.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The current keys, after re-reading the file if it is due and changed.
    pub(crate) fn current(&self) -> Arc<KeySet> {
        self.refresh_if_due();
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn refresh_if_due(&self) {
        // Whoever holds the lock is already checking; the others go on with
        // the current keys instead of waiting.
        let mut check = match self.check.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return,
        };
        if check.at.elapsed() < self.interval {
            return;
        }
        check.at = Instant::now();
        let current = match fs::metadata(&self.path) {
            Ok(metadata) => Stamp::of(&metadata),
            Err(err) => {
                if check.seen.take().is_some() {
                    tracing::warn!(
                        path = %self.path.display(),
                        error = %err.kind(),
                        "JWT key file unreadable; keeping the previous keys"
                    );
                }
                return;
            }
        };
        if check.seen == Some(current) {
            return;
        }
        match load(&self.path) {
            Ok((parsed, stamp)) => {
                log_skipped(&self.path, &parsed.skipped);
                tracing::info!(
                    path = %self.path.display(),
                    keys = parsed.keys.len(),
                    kids = ?parsed.keys.kids(),
                    "reloaded JWT verification keys"
                );
                *self.keys.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(parsed.keys);
                check.seen = Some(stamp);
            }
            Err(reason) => {
                tracing::warn!(
                    path = %self.path.display(),
                    error = %reason,
                    "changed JWT key file is unusable; keeping the previous keys"
                );
                check.seen = Some(current);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_is_not_a_public_key() {
        let err = |bytes: &[u8]| parse(bytes).err().expect("refused");
        assert!(err(b"").contains("neither"));
        assert!(err(b"{\"keys\": 5}").contains("not a JWKS"));
        assert!(err(b"{\"keys\": [").contains("invalid JSON"));
        assert!(err(b"{\"keys\": []}").contains("no usable"));
        assert!(
            err(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
                .contains("private key")
        );
        let symmetric = br#"{"keys":[{"kty":"oct","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQ","kid":"h"}]}"#;
        let message = err(symmetric);
        assert!(message.contains("symmetric"), "{message}");
        assert!(!message.contains("c2VjcmV0"), "{message}");
    }
}
