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
