//! Compile-fail and pass cases of the bwx macros. The `.stderr` files are pinned to the
//! toolchain in `rust-toolchain.toml`; regenerate them with `TRYBUILD=overwrite`.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/fail/*.rs");
    t.pass("tests/ui/pass/*.rs");
}
