//! Helpers shared by the `cudly` integration tests.

use std::io::Write;
use std::sync::{Arc, Mutex};

/// Every log line of the process, as the services write them.
#[derive(Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    /// Installs the global subscriber: every service at debug level (the crates that
    /// would only add transport noise at info), into the returned capture.
    pub fn install() -> Self {
        let capture = Self::default();
        let writer = capture.clone();
        tracing_subscriber::fmt()
            .with_env_filter(
                "debug,h2=info,hyper=info,tower=info,aws_smithy_runtime=info,aws_sigv4=info",
            )
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .init();
        capture
    }

    /// What was logged so far.
    pub fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl Write for LogCapture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
