//! The `tetriserve` binary: parse the command line, run it, report errors.

use clap::Parser;

fn main() {
    let cli = tetriserve::cli::Cli::parse();
    tetriserve::files::install_cleanup();
    if let Err(e) = tetriserve::cli::run(cli) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
