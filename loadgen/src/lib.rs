//! The load generator (see issue 3): the many-connection client, the server sampler and the recorders.
