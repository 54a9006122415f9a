//! Where a connector's tests find the real server they run against.

/// The environment variable that turns a missing server address into a failure of the
/// tests that need the server instead of a skip; `.ci/run` sets it.
pub const REQUIRE_SERVERS: &str = "BWX_REQUIRE_SERVERS";

/// The address of a test's server, from the environment variable `var` (as
/// `scripts/servers.sh env` or `.ci/run` set it), or `None` when it is not set: the test
/// then skips, and says so on stderr.
///
/// A test that skips passes, so CI must not let one skip: with [`REQUIRE_SERVERS`] set
/// (to anything but `0`), a missing address panics, naming the variable.
///
/// ```
/// use bwx::testing::conformance::server_address;
///
/// if let Some(url) = server_address("BWX_REDIS_URL") {
///     assert!(url.starts_with("redis://"), "{url}");
/// }
/// ```
pub fn server_address(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(address) if !address.trim().is_empty() => Some(address),
        _ if servers_required() => panic!(
            "{var} is not set, and {REQUIRE_SERVERS} says that the tests needing its server must run: \
             start the servers (scripts/servers.sh start && eval \"$(scripts/servers.sh env)\") or unset {REQUIRE_SERVERS}"
        ),
        _ => {
            eprintln!("{var} is not set: skipping (with {REQUIRE_SERVERS}=1 this fails)");
            None
        }
    }
}

/// Whether [`REQUIRE_SERVERS`] is set to anything but `0`.
pub fn servers_required() -> bool {
    std::env::var(REQUIRE_SERVERS).is_ok_and(|v| !v.is_empty() && v != "0")
}
