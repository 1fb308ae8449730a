//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod cli;
pub mod consumers;
pub mod e2e;
pub mod lab;
pub mod netns;
