//! The `tollgate` binary: parses the command line and hands off.

fn main() -> std::process::ExitCode {
    tollgate::cli::main()
}
