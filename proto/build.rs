//! Compiles the `.proto` files with a vendored protoc, so no system protoc is needed.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = [
        "proto/mmm/v1/common.proto",
        "proto/mmm/v1/agent.proto",
        "proto/mmm/v1/raft.proto",
        "proto/mmm/v1/monitor.proto",
    ];
    for p in &protos {
        println!("cargo:rerun-if-changed={p}");
    }
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_with_config(config, &protos, &["proto"])?;
    Ok(())
}
