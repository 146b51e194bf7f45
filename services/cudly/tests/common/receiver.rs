//! A local HTTP receiver of notifications that records every request, answering as a
//! test tells it (fail, hang, or 200).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode as AxumStatus, Uri};
use cudly_notify::sign;
use cudly_testkit::eventually;
use serde_json::Value;
use tokio::net::TcpListener;

/// How long a test waits for a delivery.
pub const WAIT: Duration = Duration::from_secs(30);

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// How the receiver answers.
#[derive(Debug, Default)]
pub struct Behaviour {
    /// Requests to answer 500 before answering 200.
    pub fail_next: usize,
    /// Requests to record and then never answer.
    pub hang_next: usize,
}

/// A local HTTP receiver of notifications that records every request.
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    received: Arc<Mutex<Vec<Received>>>,
    behaviour: Arc<Mutex<Behaviour>>,
}

impl Receiver {
    pub async fn start(behaviour: Behaviour) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let receiver = Receiver {
            url,
            received: Arc::default(),
            behaviour: Arc::new(Mutex::new(behaviour)),
        };
        let state = receiver.clone();
        let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap, body: Bytes| {
            let state = state.clone();
            async move {
                state.received.lock().unwrap().push(Received {
                    path: uri.path().to_owned(),
                    headers,
                    body,
                });
                let answer = {
                    let mut behaviour = state.behaviour.lock().unwrap();
                    if behaviour.hang_next > 0 {
                        behaviour.hang_next -= 1;
                        None
                    } else if behaviour.fail_next > 0 {
                        behaviour.fail_next -= 1;
                        Some(AxumStatus::INTERNAL_SERVER_ERROR)
                    } else {
                        Some(AxumStatus::OK)
                    }
                };
                match answer {
                    Some(status) => status,
                    None => {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        AxumStatus::OK
                    }
                }
            }
        });
        tokio::spawn(async move { axum::serve(listener, app).await });
        receiver
    }

    pub fn target(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until the requests to `path` of event `kind` number at least `count`.
    pub async fn wait_for(&self, path: &str, kind: &str, count: usize) -> Vec<Received> {
        let what = format!("{count} {kind} notification(s) at {path}");
        eventually(&what, WAIT, || async {
            let found: Vec<Received> = self
                .received()
                .into_iter()
                .filter(|request| request.path == path && event_kind(request) == kind)
                .collect();
            (found.len() >= count).then_some(found)
        })
        .await
        .unwrap()
    }
}

/// The event a request is about: the webhook's header, else found in the body.
pub fn event_kind(request: &Received) -> String {
    let header = request.header(sign::EVENT_HEADER);
    if !header.is_empty() {
        return header.to_owned();
    }
    // Slack and Teams: the title (libs/notify/src/render/text.rs) opens the message.
    let text = request.text();
    let titles = [
        ("Approval requested: ", "approval_requested"),
        ("Execution ", "execution_finished"),
        ("Spend limit ", "limit_refused"),
    ];
    titles
        .into_iter()
        .find(|(title, _)| text.contains(&format!("\"{title}")))
        .map(|(_, kind)| kind.to_owned())
        .unwrap_or_default()
}
