//! Compiles the Fabric proto subset under proto/fabric with protox (pure Rust,
//! no system protoc) and generates the tonic service code.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = "proto/fabric";
    let files = [
        "peer/chaincode_shim.proto",
        "peer/chaincode.proto",
        "peer/chaincode_event.proto",
        "peer/proposal.proto",
        "peer/proposal_response.proto",
        "common/common.proto",
        "msp/identities.proto",
        "ledger/queryresult/kv_query_result.proto",
    ];
    let descriptors = protox::compile(files.map(|f| format!("{root}/{f}")), [root])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;

    // The sidecar's own API, with a descriptor set for gRPC reflection.
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    let api = protox::compile(["proto/cclaunch/v1/launcher.proto"], ["proto"])?;
    std::fs::write(
        out.join("cclaunch_v1_descriptor.bin"),
        prost::Message::encode_to_vec(&api),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(api)?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
