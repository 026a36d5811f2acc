#!/usr/bin/env bash
# One-step set-up on a fresh Debian machine (run as root, or with the packages already there):
# installs the Debian packages the build and tests need when missing, the npm packages from
# package-lock.json, and builds everything (TypeScript + the C capture/restore binaries).
set -euo pipefail
cd "$(dirname "$0")/.."

# gcc/make/libc6-dev + codec/checksum headers (lz4, libdeflate, zlib) build the C binaries; binutils (readelf/objdump) and gdb
# are test oracles (gcc-multilib builds the 32-bit ELF fixtures, elfutils gives eu-readelf to the bench); python3/perl are real interpreters the capture/restore tests freeze;
# redis-server is the real server whose established client connection the fd tests carry across capture → restore;
# tmux hosts the terminal test (a Python REPL captured in one pane, restored in another);
# zstd compresses the .tar.zst container checkpoint archives the CRIU reader tests;
# slurm-wlm + munge run the one-node Slurm cluster (scripts/slurm-local.sh) the `ckimg run` requeue tests use;
# nginx-light is the pre-fork server (master + 2 workers) the process-tree test captures and restores.
pkgs=(gcc gcc-multilib make libc6-dev liblz4-dev libdeflate-dev zlib1g-dev binutils elfutils gdb python3 perl redis-server tmux zstd slurm-wlm munge nginx-light)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing Debian packages: ${missing[*]} (run as root or install them)" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
npm run build
