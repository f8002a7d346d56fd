//! Compiles `proto/voltage/plugin/v1/plugin.proto` with protox (a protobuf compiler in Rust), so
//! building the firmware needs no system `protoc`.

fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let file = root.join("voltage/plugin/v1/plugin.proto");
    println!("cargo:rerun-if-changed={}", file.display());
    let fds = match protox::compile([&file], [&root]) {
        Ok(fds) => fds,
        Err(e) => panic!("{}: {e}", file.display()),
    };
    if let Err(e) = tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .build_transport(false)
        .compile_fds(fds)
    {
        panic!("generating code for {}: {e}", file.display());
    }
}
