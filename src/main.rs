//! The `trumpet` binary: parses the command line and hands over to the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    trumpet::cli::run(trumpet::cli::Cli::parse())
}
