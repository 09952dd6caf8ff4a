// jemalloc: measured against glibc malloc under the side-by-side socket
// load, 14% less server CPU per message at the same memory per idle socket
// (docs/benchmarks.md); mimalloc saved as much CPU but cost 40% more memory
// per socket.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = utalk::cli::Cli::parse();
    match utalk::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("utalk: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
