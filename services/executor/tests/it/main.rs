//! End-to-end tests of the executor through REST, with every service of the stack, real
//! Postgres and the AWS sandbox.

mod approval;
mod audit;
mod common;
mod fanout;
mod idempotency;
mod items;
mod leases;
mod lineage;
mod notify_key;
mod quotes;
mod races;
mod reports;
mod sessions;
mod shutdown;
mod stranded;
mod undocumented;
