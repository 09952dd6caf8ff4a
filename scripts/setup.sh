#!/usr/bin/env bash
# Installs what building utalk needs on a fresh Debian machine that has only
# the Rust toolchain: a C/C++ compiler and libclang for the RocksDB build.
# Safe to run again; installs only what is missing.
#
# Sourced by scripts/utalk and scripts/test, which then call
# `utalk_setup [extra Debian packages...]`. The packages are a function's
# arguments on purpose: a sourced file sees its caller's arguments, so
# reading "$@" here would take `serve --listen …` or `user add …` as
# package names. Run directly, it installs the build needs alone.

utalk_setup() {
  local need=() missing=() p sudo=""
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
  need+=("$@")

  for p in "${need[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done

  if [ "${#missing[@]}" -gt 0 ]; then
    echo "setup: installing ${missing[*]}" >&2
    if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >&2
  fi

  # Keep the build cache outside the clone so fresh clones reuse it.
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/utalk/target}"
  echo "setup: build cache in $CARGO_TARGET_DIR" >&2
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  if [ "$#" -gt 0 ]; then
    echo "usage: scripts/setup.sh   (takes no arguments)" >&2
    exit 2
  fi
  utalk_setup
fi
