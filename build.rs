//! Compiles `proto/` with the pure-Rust `protox` compiler (no system `protoc`)
//! and writes the encoded descriptor set that server reflection serves.

use prost::Message;
use std::{env, fs, path::PathBuf};

const PROTOS: &[&str] = &[
    "rolekeeper/v1/resources.proto",
    "rolekeeper/v1/organization_service.proto",
    "rolekeeper/v1/role_service.proto",
    "rolekeeper/v1/workspace_membership_service.proto",
    "google/longrunning/operations.proto",
    "google/rpc/status.proto",
    "google/rpc/error_details.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(PROTOS, ["proto"])?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(
        out_dir.join("rolekeeper_descriptor.bin"),
        fds.encode_to_vec(),
    )?;

    let mut config = tonic_prost_build::Config::new();
    config
        .enable_type_names()
        .type_name_domain(["."], "type.googleapis.com");
    tonic_prost_build::configure()
        .build_server(false)
        .extern_path(".google.rpc", "::tonic_types::pb")
        .compile_fds_with_config(fds.clone(), config)?;

    // The servers again, on their own: with the messages above, except
    // that they answer with `Role` and `UserRoles` already encoded (the
    // server caches their encoding; clients still see the messages).
    let servers = out_dir.join("servers");
    fs::create_dir_all(&servers)?;
    tonic_prost_build::configure()
        .build_client(false)
        .out_dir(servers)
        .extern_path(".google.rpc", "::tonic_types::pb")
        .extern_path(".google.longrunning", "crate::pb::longrunning")
        .extern_path(".rolekeeper.v1", "crate::pb::v1")
        .extern_path(".rolekeeper.v1.Role", ENCODED_ROLE)
        .extern_path(".rolekeeper.v1.UserRoles", ENCODED_USER_ROLES)
        .compile_fds(fds)?;
    Ok(())
}

/// The server's answer types for `Role` and `UserRoles`.
const ENCODED_ROLE: &str = "crate::pb::encoded::Encoded<crate::pb::v1::Role>";
const ENCODED_USER_ROLES: &str = "crate::pb::encoded::Encoded<crate::pb::v1::UserRoles>";
