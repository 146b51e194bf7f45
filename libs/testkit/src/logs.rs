//! Log capture for the tests that scan what the services print for secrets and tokens
//! (docs/design/STYLE.md "Messages and names"): the whole stack runs in the test's process, so one
//! global subscriber writing into memory sees every line every service writes.

use std::io::Write;
use std::sync::{Arc, Mutex};

use tracing_subscriber::fmt::format::FmtSpan;

/// The filter of the whole-stack scans: every service at debug level, and the transport
/// crates (HTTP/2, hyper, tower, the AWS SDK's runtime and signer) at info, since their
/// debug lines only add noise.
pub const SERVICES_AT_DEBUG: &str =
    "debug,h2=info,hyper=info,tower=info,aws_smithy_runtime=info,aws_sigv4=info";

/// Every log line of the process, as the services write them.
#[derive(Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    /// Installs the global subscriber, filtered by `filter` (`RUST_LOG` directives such
    /// as `debug` or [`SERVICES_AT_DEBUG`]), writing into the returned capture. Panics
    /// when the process already has a global subscriber: its lines would escape the
    /// capture.
    pub fn install(filter: &str) -> Self {
        Self::install_with(filter, FmtSpan::NONE)
    }

    /// As [`LogCapture::install`], and writes a line whenever a span is created,
    /// entered, exited or closed, so the scan covers the fields of spans as well.
    pub fn install_with_spans(filter: &str) -> Self {
        Self::install_with(filter, FmtSpan::FULL)
    }

    fn install_with(filter: &str, span_events: FmtSpan) -> Self {
        let capture = Self::default();
        let writer = capture.clone();
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_span_events(span_events)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .try_init()
            .expect("the only subscriber of this test process");
        capture
    }

    /// Returns what was logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
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
