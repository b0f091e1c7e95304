#!/usr/bin/env bash
# gpu_ab (ctest, label cpu): ci/gpu-ab.sh refuses bad usage before it builds anything -- no
# snapshot named, a snapshot not exported, a bad --reps or name, an unknown option -- with exit
# status 2 and a line that says what to do. (Its device path is ci/gpu-suite.sh and ci/ab.py,
# each tested on its own; it needs a GPU.)
# usage: gpu_ab_test.sh SOURCE_DIR
set -uo pipefail
script=$1/ci/gpu-ab.sh
fail() { echo "gpu_ab: $*"; exit 1; }
expect2() {  # expect2 PATTERN ARGS...: exit status 2 and PATTERN in the output
  local pat=$1
  shift
  out=$(OUT=$(mktemp -d) bash "$script" "$@" 2>&1)
  [ $? = 2 ] || fail "'$*' did not exit 2: $out"
  grep -qE -- "$pat" <<<"$out" || fail "'$*' did not say /$pat/: $out"
  grep -q "usage: bash ci/gpu-ab.sh" <<<"$out" || fail "'$*' printed no usage line: $out"
}
missing="no-such-snapshot-$$"
expect2 "name at least one snapshot" --reps 3
expect2 "\.snap/$missing holds no snapshot: export it here with 'python3 ci/ab_bench.py --snapshot-only $missing'" "$missing"
expect2 "--reps wants a positive integer, not '0'" --reps 0 "$missing"
expect2 "--reps wants a positive integer, not 'x'" --reps x "$missing"
expect2 "--reps wants a value" "$missing" --reps
expect2 "'this' is not a snapshot name" this
expect2 "'a/b' is not a snapshot name" a/b
expect2 "unknown option '--bogus'" --bogus "$missing"
expect2 "\.snap/$missing holds no snapshot" --no-suite "$missing"  # --no-suite is an option, not a name
out=$(bash "$script" --help 2>&1) || fail "--help failed: $out"
grep -q "usage: bash ci/gpu-ab.sh" <<<"$out" || fail "--help printed no usage: $out"
echo "gpu_ab: ok"
