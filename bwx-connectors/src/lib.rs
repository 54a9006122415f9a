//! Connectors of bwx: files, stdio and more.

#[cfg(feature = "kafka")]
pub mod kafka;
