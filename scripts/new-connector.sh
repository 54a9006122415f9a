#!/usr/bin/env bash
# Makes a new connector crate from template/: copies it to DEST, renames the crate to NAME
# and points its `bwx` dependency at this checkout (or, with --published, at the released
# bwx). The result builds and passes its tests as it is (`cd DEST && ./ci.sh`).
#
#   scripts/new-connector.sh [--published] NAME DEST
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
published=false
if [[ "${1:-}" == "--published" ]]; then
  published=true
  shift
fi
if [[ $# -ne 2 ]]; then
  echo "usage: $0 [--published] NAME DEST" >&2
  exit 2
fi
name=$1
dest=$2
if ! [[ "$name" =~ ^[a-z][a-z0-9_-]*$ ]]; then
  echo "new-connector: $name is not a crate name (lowercase letters, digits, - and _)" >&2
  exit 2
fi
if [[ -e "$dest" ]]; then
  echo "new-connector: $dest exists" >&2
  exit 1
fi
crate=${name//-/_}
mkdir -p "$dest"
cp -R "$ROOT/template/." "$dest/"
rm -rf "$dest/target"
# The versions the bwx workspace was tested with.
cp "$ROOT/Cargo.lock" "$dest/Cargo.lock"
find "$dest" -type f \( -name '*.rs' -o -name '*.toml' -o -name '*.md' -o -name '*.sh' \) -print0 |
  xargs -0 sed -i -e "s/bwx-connector-template/$name/g" -e "s/bwx_connector_template/$crate/g"
if $published; then
  sed -i -e 's|^bwx = { version = "0.1", path = ".." }|bwx = "0.1"|' "$dest/Cargo.toml"
else
  sed -i -e "s|^bwx = { version = \"0.1\", path = \"..\" }|bwx = { version = \"0.1\", path = \"$ROOT\" }|" "$dest/Cargo.toml"
fi
echo "new-connector: $name in $dest"
