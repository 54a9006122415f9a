//! Compile-fail and pass cases for the bwx macros live in `tests/ui/`:
//! `fail/*.rs` with the exact compiler output in `fail/*.stderr` (pinned to the toolchain
//! of `rust-toolchain.toml`), and `pass/*.rs`, which must compile and run. Run them with
//! `cargo test -p bwx-ui-tests`; after a deliberate change of a message, regenerate the
//! `.stderr` files with `TRYBUILD=overwrite` and review the diff.
