#!/usr/bin/env bash
# The connector's CI: formatting, lints, and every test (the conformance kit included).
# Tests that need a server read its address from an environment variable: start the server
# first (see the README).
set -euo pipefail
cd "$(dirname "$0")"
cargo fmt --check
cargo clippy --all-targets -- -D warnings
cargo test
