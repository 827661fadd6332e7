//! JSON bodies, read without building a document: the one path type ([`JsonPointer`]) that
//! names a field everywhere, the scanner that reads a few fields on the request path (`peek`),
//! and the [payload checks](payload), which walk a body with serde_json.
//!
//! Self-contained (it names nothing else in the crate outside its docs), so that the benches can
//! compile it as a module of their own.

pub mod payload;
pub(crate) mod peek;
mod pointer;

pub use pointer::{IntoPointer, InvalidPointer, JsonPointer};

/// Iterates over the indices of the set bits of `mask`: the paths a walk still follows.
pub(crate) fn bits(mut mask: u64) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        if mask == 0 {
            return None;
        }
        let i = mask.trailing_zeros() as usize;
        mask &= mask - 1;
        Some(i)
    })
}
