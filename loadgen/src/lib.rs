//! The load generator (see issue 3): the many-connection client, the server sampler and the recorders.

pub mod clock;
pub mod hist;
pub mod peers;
pub mod publisher;
pub mod results;
pub mod run;
pub mod sampler;
pub mod scenario;
pub mod worker;
