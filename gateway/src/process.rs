//! What both binaries (`gateway`, `nostr-pg-admin`) do before their work:
//! logs on stderr (colour only on a terminal) and a multi-threaded runtime.

use tokio::runtime::Runtime;

/// Sets up logging at `level` and builds the runtime; `None` (after saying
/// why on stderr, prefixed with `program`) when the runtime cannot start.
pub fn start(program: &str, level: tracing::Level) -> Option<Runtime> {
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .init();
    match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => Some(rt),
        Err(e) => {
            eprintln!("{program}: cannot start runtime: {e}");
            None
        }
    }
}
