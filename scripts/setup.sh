#!/usr/bin/env bash
# Installs what building utalk needs on a fresh Debian machine that has only
# the Rust toolchain: a C/C++ compiler and libclang for the RocksDB build.
# Safe to run again; installs only what is missing.
set -euo pipefail

need=()
command -v cc >/dev/null 2>&1 || need+=(gcc)
command -v c++ >/dev/null 2>&1 || need+=(g++)
command -v make >/dev/null 2>&1 || need+=(make)
# libclang itself, not libclang-cpp, which other packages bring and the
# RocksDB bindings cannot use.
if [ -z "${LIBCLANG_PATH:-}" ] \
  && ! ls /usr/lib/llvm-*/lib/libclang.so* >/dev/null 2>&1 \
  && ! ls /usr/lib/*-linux-gnu/libclang-[0-9]*.so* >/dev/null 2>&1; then
  need+=(libclang-dev)
fi
if [ "$#" -gt 0 ]; then
  need+=("$@")
fi

missing=()
for p in "${need[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done

if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >&2
fi

# Keep the build cache outside the clone so fresh clones reuse it.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/utalk/target}"
echo "setup: build cache in $CARGO_TARGET_DIR" >&2
