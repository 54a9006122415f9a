//! Compile-fail and pass cases for the bwx macros live in `tests/`.
