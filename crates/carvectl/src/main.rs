//! The `carvectl` binary: see `carvectl --help` and the library's [`carvectl::run`].

fn main() -> std::process::ExitCode {
    carvectl::main_with_process_args()
}
