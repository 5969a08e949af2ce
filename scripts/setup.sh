#!/usr/bin/env bash
# Installs the system packages supamigrate's demo and tests need, when missing.
# Idempotent and quiet when everything is present. Debian/Ubuntu (apt-get).
#
#   PostgreSQL server binaries (initdb, pg_ctl, postgres) and clients (psql,
#   pg_dump, pg_restore): the sandbox and tests run real clusters.
#   A C compiler: the TLS crate (ring) and the SQL parser build C code.
#   libclang: the SQL parser's bindings are generated at build time.
#   s3s-fs: a local S3-compatible server (cargo install), for storage tests.
#   Chromium: the tests render the HTML report headless.
set -euo pipefail

need=()
have_server() { compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; }
have_server || need+=(postgresql)
command -v psql >/dev/null 2>&1 || need+=(postgresql-client)
command -v pg_dump >/dev/null 2>&1 || need+=(postgresql-client)
command -v cc >/dev/null 2>&1 || need+=(gcc libc6-dev)
# The SQL parser (pg_query, libpg_query) generates its bindings with bindgen.
have_libclang() {
  compgen -G "/usr/lib/llvm-*/lib/libclang.so*" >/dev/null ||
    compgen -G "/usr/lib/*/libclang-[0-9]*.so*" >/dev/null
}
have_libclang || need+=(libclang-dev)
# The tests render the HTML report in headless Chromium.
command -v chromium >/dev/null 2>&1 || need+=(chromium)

# Installs the missing system packages (root or sudo, apt-get).
install_packages() {
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
      sudo="sudo"
    else
      echo "setup: need root (or sudo) to install: ${need[*]}" >&2
      exit 1
    fi
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup: no apt-get here; install these yourself: ${need[*]}" >&2
    exit 1
  fi

  # The sandbox makes its own clusters: do not let the package create and start
  # a default one on port 5432.
  if [ ! -e /etc/postgresql-common/createcluster.conf ]; then
    $sudo mkdir -p /etc/postgresql-common
    echo "create_main_cluster = false" | $sudo tee /etc/postgresql-common/createcluster.conf >/dev/null
  fi

  echo "setup: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq >/dev/null
  $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  have_server || { echo "setup: PostgreSQL server binaries still missing after install" >&2; exit 1; }
}
((${#need[@]} == 0)) || install_packages

# A local S3-compatible server for the storage tests and the demo: s3s-fs
# (Rust, from crates.io; 0.14.1 is the last release that builds with Rust 1.95).
if ! command -v s3s-fs >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/s3s-fs" ]; then
  echo "setup: installing s3s-fs 0.14.1 (a local S3 server) with cargo" >&2
  cargo install --quiet --locked s3s-fs --version 0.14.1 --features binary
fi

# A second S3 implementation for the storage tests: moto's server (PyPI
# `moto[server]`), in a project-local virtualenv (.tools/moto).
moto_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.tools/moto"
if [ ! -x "$moto_dir/bin/moto_server" ]; then
  if ! python3 -m venv --help >/dev/null 2>&1; then
    need=(python3 python3-venv)
    install_packages
  fi
  echo "setup: installing moto's S3 server (PyPI moto[server]) into .tools/moto" >&2
  rm -rf "$moto_dir"
  python3 -m venv "$moto_dir"
  "$moto_dir/bin/pip" install --quiet --disable-pip-version-check 'moto[server]==5.2.1'
fi

# The Supabase platform kit (../shared/supabase-platform): the sandbox's
# source replays Supabase's own SQL with every platform extension. Its
# install.sh (root, idempotent, a second when done) adds Debian's PG 15
# extensions Supabase has, compiles supautils_lite (the RDS-like target uses
# it too: rds_superuser's CREATE EXTENSION) and installs the stand-in
# extensions.
kit="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/../shared/supabase-platform"
if [ -x "$kit/install.sh" ] || [ -f "$kit/install.sh" ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && sudo="sudo"
  if [ "$(id -u)" -eq 0 ] || [ -n "$sudo" ]; then
    $sudo bash "$kit/install.sh" >/dev/null 2>&1 || {
      echo "setup: the platform kit's install.sh failed; run it yourself: sudo bash $kit/install.sh" >&2
      exit 1
    }
  else
    echo "setup: not root and no sudo: the sandbox uses its hand-written source (the platform kit needs root)" >&2
  fi
else
  echo "setup: no platform kit at $kit: the sandbox uses its hand-written source" >&2
fi
