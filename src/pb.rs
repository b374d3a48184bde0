//! Generated protobuf and gRPC code, plus the descriptor set served by
//! reflection. Modules mirror the proto packages so generated cross-package
//! paths resolve; `v1` and `longrunning` are the short names to use.

#![allow(clippy::all, missing_docs)]

pub mod encoded;

/// The generated servers, of the package `$package`.
macro_rules! include_servers {
    ($package:literal) => {
        include!(concat!(env!("OUT_DIR"), "/servers/", $package, ".rs"));
    };
}

/// `rolekeeper.*` packages.
pub mod rolekeeper {
    /// `rolekeeper.v1`: resources, requests and the three services.
    pub mod v1 {
        tonic::include_proto!("rolekeeper.v1");
        include_servers!("rolekeeper.v1");
    }
}

/// `google.*` packages served by this crate.
pub mod google {
    /// `google.longrunning`: `Operation` and the `Operations` service.
    pub mod longrunning {
        tonic::include_proto!("google.longrunning");
        include_servers!("google.longrunning");
    }
}

pub use self::google::longrunning;
pub use self::rolekeeper::v1;

/// `google.rpc` comes from `tonic_types`, which generated the same messages.
pub use tonic_types::pb as rpc;

/// Encoded `FileDescriptorSet` of every served proto file and its imports.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/rolekeeper_descriptor.bin"));
