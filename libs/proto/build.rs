//! Compiles the CUDly protos with protox (pure Rust, no system protoc) into OUT_DIR:
//! prost messages, tonic clients and servers, and `cudly_descriptor.bin`, the encoded
//! file descriptor set (imports and source info included) served by gRPC reflection.

use std::error::Error;
use std::path::{Path, PathBuf};

use protox::prost::Message;

/// Proto files relative to the include root `protos/`.
const PROTO_FILES: &[&str] = &[
    "cudly/common/v1/common.proto",
    "cudly/audit/v1/audit.proto",
    "cudly/accounts/v1/accounts.proto",
    "cudly/planner/v1/planner.proto",
    "cudly/executor/v1/executor.proto",
    "cudly/sweeper/v1/sweeper.proto",
];

/// Messages that hold a secret or a token: their `Debug` is hand-written in `src/redact.rs`.
const REDACTED_MESSAGES: &[&str] = &[
    ".cudly.accounts.v1.Credentials",
    ".cudly.accounts.v1.ResolveCredentialsResponse",
    ".cudly.executor.v1.CreateExecutionResponse",
    ".cudly.executor.v1.ApproveExecutionRequest",
    ".cudly.executor.v1.CancelExecutionRequest",
    ".cudly.executor.v1.PreviewApprovalRequest",
    ".cudly.executor.v1.ResolvePurchaseAttemptRequest",
    ".cudly.planner.v1.StartExecutionResponse",
];

fn main() -> Result<(), Box<dyn Error>> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let include_root = manifest_dir.join("../../protos");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);

    println!("cargo:rerun-if-changed={}", include_root.display());
    for file in PROTO_FILES {
        println!(
            "cargo:rerun-if-changed={}",
            include_root.join(file).display()
        );
    }

    let file_descriptor_set = protox::compile(PROTO_FILES, [&include_root])?;
    std::fs::write(
        out_dir.join("cudly_descriptor.bin"),
        file_descriptor_set.encode_to_vec(),
    )?;

    // The well-known types stay in the set (prost needs them to resolve fields) and map
    // to prost-types through prost-build's default extern path.
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // No default stubs: a new RPC does not compile until its service implements it.
        .generate_default_stubs(false)
        .out_dir(Path::new(&out_dir))
        .skip_debug(REDACTED_MESSAGES.iter().copied())
        .compile_fds(file_descriptor_set)?;
    Ok(())
}
