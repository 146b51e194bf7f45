//! cudly-aws
