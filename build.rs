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
        .extern_path(".google.rpc", "::tonic_types::pb")
        .compile_fds_with_config(fds, config)?;
    Ok(())
}
