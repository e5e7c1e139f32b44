//! `rdco`: the user-mode tool.
fn main() {
    eprintln!("rdco: no subcommands yet");
    std::process::exit(2);
}
