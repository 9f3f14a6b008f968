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
    // The descriptor set lets the monitor serve gRPC reflection (grpcurl and the like need no .proto).
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("mmm_descriptor.bin"))
        .build_server(true)
        .build_client(true)
        .compile_with_config(config, &protos, &["proto"])?;
    Ok(())
}
