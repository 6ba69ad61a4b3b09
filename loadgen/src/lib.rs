//! The load generator: the many-connection client, the server sampler and the recorders.

pub mod balancer;
pub mod broker;
pub mod child;
pub mod clock;
pub mod cluster;
pub mod hist;
pub mod netns;
pub mod peers;
pub mod publisher;
pub mod results;
pub mod run;
pub mod sampler;
pub mod scenario;
pub mod script;
pub mod worker;
