fn main() -> std::process::ExitCode {
    vnode::run(std::env::args_os())
}
