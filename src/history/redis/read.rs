//! The reading side of [`RedisHistory`](super::RedisHistory): the [`History`](crate::history::History) a dashboard reads.
