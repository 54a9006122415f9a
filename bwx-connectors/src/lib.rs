//! Connectors of bwx: files, stdio and more.
