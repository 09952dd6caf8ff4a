#!/usr/bin/env bash
# Prints the path of the previous release's `utalk` binary, building it once
# from its commit (tests/upgrade/previous-release: "<version> <commit>") into
# ~/.cache/utalk/releases. The upgrade test runs it beside this build.
#
# It builds in the same build cache, so the dependencies (RocksDB among them)
# are reused and only utalk's own crates compile. Cargo names the artifacts of
# a workspace's own crates by their path inside the workspace and their
# version, not by where the workspace is: the release's version must differ
# from this build's, and its files are extracted with the current time, so
# that no artifact of another checkout at that version passes for its own.
# That build links its binary to $CARGO_TARGET_DIR/debug/utalk; this build's
# binary is put back after.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
read -r version commit <"$repo/tests/upgrade/previous-release"
releases="$HOME/.cache/utalk/releases"
bin="$releases/$version-$commit/utalk"
if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi

target="${CARGO_TARGET_DIR:-$HOME/.cache/utalk/target}"
current_version="$(sed -n 's/^version = "\(.*\)"$/\1/p' "$repo/Cargo.toml" | head -n 1)"
if [ "$current_version" = "$version" ]; then
  echo "upgrade: the previous release ($version) has this build's version; bump the version in Cargo.toml" >&2
  exit 1
fi
if ! git -C "$repo" cat-file -e "$commit^{commit}" 2>/dev/null; then
  echo "upgrade: release $version ($commit) is not in this clone; fetching it" >&2
  git -C "$repo" fetch --quiet origin "$commit" >&2 || {
    echo "upgrade: cannot get commit $commit of release $version (a shallow clone without a remote?); clone with full history" >&2
    exit 1
  }
fi

# A fixed source directory, so repeated builds reuse their own artifacts.
src="$releases/src-$version"
rm -rf "$src"
mkdir -p "$src"
git -C "$repo" archive "$commit" | tar -x -m -C "$src"

current="$target/debug/utalk"
saved=""
if [ -e "$current" ]; then
  saved="$target/debug/.utalk-current-$$"
  ln -f "$current" "$saved"
fi
restore() {
  if [ -n "$saved" ] && [ -e "$saved" ]; then
    ln -f "$saved" "$current"
    rm -f "$saved"
  fi
}
trap restore EXIT

echo "upgrade: building release $version ($commit) in $src (dependencies from $target)" >&2
(cd "$src" && CARGO_TARGET_DIR="$target" cargo build --locked --workspace >&2)
mkdir -p "$(dirname "$bin")"
# Stripped: the debug binary is large and only its behaviour matters here.
strip -o "$bin.tmp" "$target/debug/utalk"
mv "$bin.tmp" "$bin"
rm -rf "$src"
echo "$bin"
