//! The load generator: the many-connection client, the server sampler and the recorders.

pub mod child;
pub mod clock;
pub mod hist;
pub mod netns;
pub mod peers;
pub mod publisher;
pub mod results;
pub mod run;
pub mod sampler;
pub mod scenario;
pub mod worker;
