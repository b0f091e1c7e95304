#!/usr/bin/env bash
# Makes sure kiln's build dependencies are present. As root with apt, installs what is missing
# (Debian/Ubuntu package names); otherwise prints what to install and fails. Safe to re-run.
set -euo pipefail

missing=()
have_cmake_pkg() {  # name of a CMake package config file
  # find exits non-zero for search roots that do not exist; only its output matters here
  # (under pipefail its status would otherwise decide the pipeline).
  local hits
  hits=$(find /usr/lib/cmake /usr/lib/*/cmake /usr/share /usr/local/lib/cmake /usr/local/share -maxdepth 4 \
         -name "$1" 2>/dev/null || true)
  [ -n "$hits" ]
}
command -v cmake >/dev/null || missing+=(cmake)
command -v ninja >/dev/null || missing+=(ninja-build)
command -v g++ >/dev/null || missing+=(g++)
have_cmake_pkg Eigen3Config.cmake || missing+=(libeigen3-dev)
have_cmake_pkg GTestConfig.cmake || missing+=(libgtest-dev libgmock-dev)
have_cmake_pkg benchmarkConfig.cmake || missing+=(libbenchmark-dev)

if ! command -v nvcc >/dev/null && [ ! -x /usr/local/cuda/bin/nvcc ]; then
  echo "kiln: nvcc (CUDA toolkit >= 12) not found; install the CUDA toolkit and put nvcc on PATH" >&2
  exit 1
fi

# ccache only speeds rebuilds up: install it when we can, never fail without it.
if ! command -v ccache >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  missing_optional=(ccache)
else
  missing_optional=()
fi

if [ ${#missing[@]} -eq 0 ]; then
  if [ ${#missing_optional[@]} -gt 0 ]; then
    (export DEBIAN_FRONTEND=noninteractive; apt-get update -qq && apt-get install -y -qq ccache) >/dev/null 2>&1 || true
  fi
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "kiln: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq "${missing[@]}" "${missing_optional[@]}" >/dev/null
  exit 0
fi
echo "kiln: missing build dependencies: ${missing[*]}" >&2
echo "      install them, e.g.: sudo apt-get install -y ${missing[*]}" >&2
exit 1
