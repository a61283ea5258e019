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
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
