//! Every log line the code under test writes, captured for a test to search (for example, that
//! no secret reaches one: CSI spec.md, "Secrets Requirements").

use std::{
    io::Write,
    sync::{Arc, Mutex, PoisonError},
};
use tracing::subscriber::DefaultGuard;

/// The text of every tracing event at TRACE and above (tonic and h2 included), from code
/// running on this thread while the guard [`CapturedLogs::start`] returned lives. With a
/// `current_thread` runtime, servers spawned by the test run on this thread too.
#[derive(Debug, Clone, Default)]
pub struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl CapturedLogs {
    /// Starts capturing; it stops when the guard drops.
    #[must_use]
    pub fn start() -> (Self, DefaultGuard) {
        let captured = Self::default();
        let sink = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || sink.clone())
            .finish();
        (captured, tracing::subscriber::set_default(subscriber))
    }

    /// What was written so far (lossy UTF-8).
    pub fn text(&self) -> String {
        let bytes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
