//! Messages the server answers with already encoded: a cached `Role` or
//! `UserRoles` is encoded once and its bytes reused for every answer,
//! instead of being copied into a new message and encoded per call. The
//! servers are generated with [`Encoded`] in place of those two messages;
//! clients still decode the messages themselves.

#![warn(clippy::all, missing_docs)]

use crate::domain::model::Memo;
use bytes::{Buf, BufMut, Bytes};
use prost::{
    DecodeError, Message,
    encoding::{DecodeContext, WireType, skip_field},
};
use std::{fmt, marker::PhantomData};

/// A message of type `M`, encoded.
pub struct Encoded<M> {
    bytes: Bytes,
    message: PhantomData<fn() -> M>,
}

impl<M: Message> Encoded<M> {
    /// The encoding kept in `memo`, made by encoding `make()` the first time.
    pub fn memoized(memo: &Memo, make: impl FnOnce() -> M) -> Self {
        Self {
            bytes: memo.get_or_init(|| make().encode_to_vec().into()),
            message: PhantomData,
        }
    }
}

impl<M> fmt::Debug for Encoded<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Encoded({} bytes)", self.bytes.len())
    }
}

/// The server only encodes these; decoding one (which nothing does) keeps
/// no fields.
impl<M> Message for Encoded<M> {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        buf.put_slice(&self.bytes);
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        skip_field(wire_type, tag, buf, ctx)
    }

    fn encoded_len(&self) -> usize {
        self.bytes.len()
    }

    fn clear(&mut self) {
        self.bytes = Bytes::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::v1;

    fn decoded(encoded: &Encoded<v1::Role>) -> v1::Role {
        v1::Role::decode(encoded.encode_to_vec().as_slice()).expect("decodes")
    }

    fn role(name: &str) -> v1::Role {
        v1::Role {
            role_id: "r".into(),
            name: name.into(),
            permissions: vec![v1::Permission {
                name: "documents.read".into(),
                description: "Read".into(),
                access: Some(false),
            }],
            ..Default::default()
        }
    }

    #[test]
    fn encodes_exactly_as_the_message() {
        let message = role("Reader");
        let encoded = Encoded::memoized(&Memo::default(), || message.clone());
        assert_eq!(encoded.encode_to_vec(), message.encode_to_vec());
        assert_eq!(encoded.encoded_len(), message.encoded_len());
        assert_eq!(decoded(&encoded), message);
    }

    #[test]
    fn a_memo_encodes_once() {
        let memo = Memo::default();
        let first = Encoded::memoized(&memo, || role("Reader"));
        let second = Encoded::memoized(&memo, || role("changed, but not asked for"));
        assert_eq!(decoded(&second).name, "Reader");
        assert_eq!(first.encode_to_vec(), second.encode_to_vec());
        assert_eq!(memo.clone(), memo);
        let fresh = Encoded::memoized(&memo.clone(), || role("Writer"));
        assert_eq!(decoded(&fresh).name, "Writer");
    }
}
