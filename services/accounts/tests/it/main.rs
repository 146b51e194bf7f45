//! Integration tests of the accounts service: through the gateway's REST API and the
//! internal gRPC API, against real Postgres (a fresh database per test) and the AWS
//! sandbox. Each test runs in its own process under nextest.

mod callers;
mod common;
mod credentials;
mod discovery;
mod logs;
mod rest;
mod storage;
