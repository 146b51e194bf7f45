//! Integration tests: every emulated operation through the real aws-sdk clients over
//! HTTP, with each fault and error code.

mod common;

mod behaviour;
mod cli;
mod concurrency;
mod control;
mod costexplorer;
mod ec2;
mod elasticache;
mod faults;
mod memorydb;
mod opensearch;
mod organizations;
mod persistence;
mod prices;
mod purchase_concurrency;
mod rds;
mod redshift;
mod savingsplans;
mod sts;
