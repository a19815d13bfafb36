//! The `trumpet` binary: parses the command line and hands over to the library.

use clap::Parser;

/// mimalloc instead of the system allocator: the request path allocates and frees many small
/// buffers across threads, where glibc's malloc cost a measurable share of throughput
/// (docs/decisions.md). Without the `mimalloc` feature the system allocator is used, for heap
/// profilers that only see it (heaptrack).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    trumpet::cli::run(trumpet::cli::Cli::parse())
}
