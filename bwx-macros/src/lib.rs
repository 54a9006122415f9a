//! Procedural macros of bwx (the `dataflow!` macro arrives with its own issue).
