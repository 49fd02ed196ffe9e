//! `gateway --listen ADDR --database-url URL [--config FILE]`: serves until
//! SIGTERM or SIGINT. The first line on stdout is `listening on ws://ADDR`
//! with the real bound address (useful with port 0).

use std::io::Write;
use std::process::ExitCode;

use gateway::Config;
use tokio::net::TcpListener;

fn main() -> ExitCode {
    let config = match Config::from_process() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("gateway: {e}");
            return ExitCode::from(2);
        }
    };
    let level = config.log_level.parse().unwrap_or(tracing::Level::INFO);
    let Some(runtime) = gateway::process::start("gateway", level) else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gateway: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind(config.listen_addr()?).await?;
    let url = gateway::ws_url(listener.local_addr()?);
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on {url}")?;
    stdout.flush()?;
    drop(stdout);
    gateway::run(config, listener, shutdown_signal()).await?;
    Ok(())
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(e) => {
                tracing::warn!("cannot watch SIGTERM ({e}); only SIGINT stops the gateway");
                if let Err(e) = tokio::signal::ctrl_c().await {
                    tracing::warn!("cannot watch SIGINT either: {e}");
                    std::future::pending::<()>().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
    tracing::info!("signal received, shutting down");
}
