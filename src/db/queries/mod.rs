//! Being split into parts; this commit only moves the file so history follows it.

mod batch;
pub use batch::*;
