//! Embeds the web console (`console/`): every file is gzip-compressed here, at build time, so the
//! daemon serves the compressed bytes as they are (no compression work at run time, no JS
//! toolchain: the files are hand-written ES modules and CSS). Generates `console_assets.rs`: one
//! row per file with its raw and gzip bytes, content type and ETag (a hash of the raw bytes).

use std::io::Write;
use std::path::Path;

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "json" => "application/json",
        _ => "application/octet-stream",
    }
}

/// FNV-1a, 64 bits: enough to tell two versions of a file apart in an ETag.
fn fnv(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &x| {
        (h ^ u64::from(x)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("console");
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("firmware/gateway/console")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    let mut table = String::from("&[\n");
    for name in &names {
        let src = dir.join(name);
        println!("cargo:rerun-if-changed={}", src.display());
        let raw = std::fs::read(&src).expect("read console file");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&raw).expect("gzip");
        let gz = gz.finish().expect("gzip");
        let gz_path = out.join(format!("{name}.gz"));
        std::fs::write(&gz_path, gz).expect("write gzip");
        table.push_str(&format!(
            "    Asset {{ name: {name:?}, content_type: {:?}, raw: include_bytes!({:?}), gzip: include_bytes!({:?}), etag: \"\\\"{:016x}\\\"\" }},\n",
            content_type(name),
            src.display().to_string(),
            gz_path.display().to_string(),
            fnv(&raw),
        ));
    }
    table.push(']');
    std::fs::write(out.join("console_assets.rs"), table).expect("write console_assets.rs");
}
