//! Integration tests of the planner: its gRPC contract next to fake dependencies, and the
//! plan routes of the REST contract through the whole stack.

mod end_to_end;
mod grpc;
mod notifications;
mod recommendations;
mod rest;
mod support;
