//! `actionbox` binary: see [`actionbox::cli`].

fn main() -> std::process::ExitCode {
    actionbox::cli::main()
}
