use clap::Parser;

// jemalloc measured 13–16% less CPU per message than glibc malloc at the
// same memory per idle socket (docs/benchmarks.md, "The allocator").
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
