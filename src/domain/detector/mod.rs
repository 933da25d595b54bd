//! Being split into parts; this commit only moves the file so history follows it.

mod observe;
pub use observe::*;
