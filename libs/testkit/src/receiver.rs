//! A local HTTP receiver on 127.0.0.1 for the notification tests: it records every
//! request (path, headers, body) and answers as a script says, then 200; a path under
//! `/broken` always answers 500.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use tokio::task::JoinHandle;

/// What the receiver answers to one request.
#[derive(Debug, Clone, Copy)]
pub enum Reply {
    Status(u16),
    /// Answers 200 after this long (a receiver stuck mid-request).
    Hang(Duration),
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("a utf-8 body")
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a json body")
    }
}

#[derive(Default)]
struct ReceiverState {
    received: Mutex<Vec<Received>>,
    /// Replies to the next requests, in order; then 200.
    script: Mutex<VecDeque<Reply>>,
}

/// A local HTTP receiver on 127.0.0.1, stopped when dropped.
pub struct Receiver {
    pub base_url: String,
    state: Arc<ReceiverState>,
    task: JoinHandle<()>,
}

impl Receiver {
    /// Starts a receiver answering the first requests with `script`, the rest 200.
    pub async fn start(script: impl IntoIterator<Item = Reply>) -> Receiver {
        let state = Arc::new(ReceiverState {
            received: Mutex::default(),
            script: Mutex::new(script.into_iter().collect()),
        });
        let router = Router::new()
            .fallback(receive)
            .with_state(Arc::clone(&state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, router)
                .await
                .expect("the receiver serves");
        });
        Receiver {
            base_url,
            state,
            task,
        }
    }

    /// Returns the URL of `path` on this receiver.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    /// Waits until at least `count` requests came in, and returns them all.
    pub async fn wait_for(&self, count: usize) -> Vec<Received> {
        crate::eventually(
            &format!("{count} requests"),
            Duration::from_secs(20),
            || async {
                let received = self.received();
                (received.len() >= count).then_some(received)
            },
        )
        .await
        .unwrap()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receive(
    State(state): State<Arc<ReceiverState>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let path = uri.path().to_owned();
    state.received.lock().unwrap().push(Received {
        path: path.clone(),
        headers,
        body: body.to_vec(),
    });
    if path.starts_with("/broken") {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    let reply = state.script.lock().unwrap().pop_front();
    match reply {
        Some(Reply::Status(code)) => StatusCode::from_u16(code).unwrap(),
        Some(Reply::Hang(duration)) => {
            tokio::time::sleep(duration).await;
            StatusCode::OK
        }
        None => StatusCode::OK,
    }
}
