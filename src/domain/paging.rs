//! AIP-158 pagination: page sizes and opaque page tokens. A token carries
//! the last key of the previous page and a fingerprint of the list's
//! parameters, so reusing it with other filters is refused. It grants
//! nothing: every page is authorized like the first.

use super::model::Page;
use crate::error::Error;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};

/// Page size when the caller sends 0.
pub const DEFAULT_PAGE_SIZE: u64 = 50;
/// Larger page sizes are lowered to this.
pub const MAX_PAGE_SIZE: u64 = 1000;

/// Longest sort key a token may carry (ids are far shorter).
const MAX_KEY: usize = 256;

#[derive(Serialize, Deserialize)]
struct Token {
    /// Last key of the previous page.
    a: String,
    /// Fingerprint of the list parameters.
    f: u64,
}

/// A validated page request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// Items on this page.
    pub size: u64,
    /// Resume after this key.
    pub after: Option<String>,
    fingerprint: u64,
}

impl PageRequest {
    /// Parses `page_size` and `page_token` of a list whose parameters are
    /// `params` (the list's name, organization and filters).
    pub fn parse(page_size: i32, page_token: &str, params: &[&str]) -> Result<Self, Error> {
        let size = match u64::try_from(page_size) {
            Err(_) => return Err(Error::invalid("page_size", "must not be negative")),
            Ok(0) => DEFAULT_PAGE_SIZE,
            Ok(n) => n.min(MAX_PAGE_SIZE),
        };
        let fingerprint = fingerprint(params);
        let after = if page_token.is_empty() {
            None
        } else {
            let token = URL_SAFE_NO_PAD
                .decode(page_token)
                .ok()
                .and_then(|bytes| serde_json::from_slice::<Token>(&bytes).ok())
                .filter(|token| token.a.len() <= MAX_KEY && !token.a.contains('\0'))
                .ok_or_else(|| Error::invalid("page_token", "is not a token of this list"))?;
            if token.f != fingerprint {
                return Err(Error::invalid(
                    "page_token",
                    "was issued for a list with other parameters",
                ));
            }
            Some(token.a)
        };
        Ok(Self {
            size,
            after,
            fingerprint,
        })
    }

    /// How many rows to fetch: one more than the page, to learn if more follow.
    pub fn fetch_limit(&self) -> u64 {
        self.size + 1
    }

    /// Builds the page from up to `fetch_limit` rows; `key` gives an item's
    /// sort key.
    pub fn page<T>(&self, mut rows: Vec<T>, key: impl Fn(&T) -> String) -> Page<T> {
        let more = rows.len() as u64 > self.size;
        rows.truncate(usize::try_from(self.size).unwrap_or(usize::MAX));
        let next_page_token = match rows.last() {
            Some(last) if more => {
                let token = Token {
                    a: key(last),
                    f: self.fingerprint,
                };
                URL_SAFE_NO_PAD.encode(serde_json::to_vec(&token).unwrap_or_default())
            }
            _ => String::new(),
        };
        Page {
            items: rows,
            next_page_token,
        }
    }
}

/// FNV-1a over the parameters, separated so `("ab","c")` differs from `("a","bc")`.
fn fingerprint(params: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for param in params {
        for byte in param.bytes().chain(std::iter::once(0xff)) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(PageRequest::parse(0, "", &[]).map(|p| p.size), Ok(50));
        assert_eq!(PageRequest::parse(5000, "", &[]).map(|p| p.size), Ok(1000));
        assert!(PageRequest::parse(-1, "", &[]).is_err());
    }

    #[test]
    fn tokens_round_trip_and_bind_to_parameters() {
        let first = PageRequest::parse(2, "", &["users", "o1"]).expect("valid");
        let page = first.page(vec!["a", "b", "c"], |s| s.to_string());
        assert_eq!(page.items, ["a", "b"]);
        let next = PageRequest::parse(2, &page.next_page_token, &["users", "o1"]).expect("valid");
        assert_eq!(next.after.as_deref(), Some("b"));
        assert!(PageRequest::parse(2, &page.next_page_token, &["users", "o2"]).is_err());
        assert!(PageRequest::parse(2, "garbage!", &["users", "o1"]).is_err());
        let last = next.page(vec!["c"], |s| s.to_string());
        assert!(last.next_page_token.is_empty());
    }

    #[test]
    fn fingerprints_separate_parameters() {
        assert_ne!(fingerprint(&["ab", "c"]), fingerprint(&["a", "bc"]));
    }
}
