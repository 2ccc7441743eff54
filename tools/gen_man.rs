//! Writes the rstatsd(8) man page, generated from the CLI definition, to the given path
//! (default `target/man/rstatsd.8`). Used by the packaging scripts.
//!
//! `cargo run --example gen_man -- [PATH]`

fn main() -> std::io::Result<()> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "target/man/rstatsd.8".into());
    if let Some(dir) = std::path::Path::new(&path).parent() {
        std::fs::create_dir_all(dir)?;
    }
    let command = rstatsd::cli::command();
    let man = clap_mangen::Man::new(command).section("8");
    let mut out = Vec::new();
    man.render(&mut out)?;
    std::fs::write(&path, out)?;
    println!("{path}");
    Ok(())
}
