//! What can go wrong while driving a relay; every workload returns these, and
//! `main` prints them and exits non-zero.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum BenchError {
    #[error("usage: {0}")]
    Usage(String),
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
    #[error("websocket {context}: {source}")]
    Ws {
        context: String,
        source: Box<tokio_tungstenite::tungstenite::Error>,
    },
    #[error("{context}: {source}")]
    Json { context: String, source: serde_json::Error },
    #[error("relay {0}")]
    Relay(String),
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("plot: {0}")]
    Plot(String),
}

impl BenchError {
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> BenchError {
        let context = context.into();
        move |source| BenchError::Io { context, source }
    }

    pub fn ws(context: impl Into<String>) -> impl FnOnce(tokio_tungstenite::tungstenite::Error) -> BenchError {
        let context = context.into();
        move |source| BenchError::Ws {
            context,
            source: Box::new(source),
        }
    }

    pub fn json(context: impl Into<String>) -> impl FnOnce(serde_json::Error) -> BenchError {
        let context = context.into();
        move |source| BenchError::Json { context, source }
    }
}
