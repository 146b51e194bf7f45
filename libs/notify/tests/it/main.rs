//! Notification tests against the shared Postgres (`CUDLY_TEST_POSTGRES_URL`) and a
//! local HTTP receiver on 127.0.0.1, where private targets are allowed as in dev mode.

mod channels;
mod common;
mod delivery;
mod email;
mod relay;
