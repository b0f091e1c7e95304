#!/usr/bin/env bash
# ab_script (ctest, label cpu): ci/ab.py, the interleaved A/B timer of `kiln run`
# configurations, run against the built kiln on the CPU reference backend (tiny preset): the
# table has every configuration with its run count and token check, a failing run exits 1 with
# kiln's error, a malformed configuration exits 2.
# usage: ab_script_test.sh PYTHON KILN SOURCE_DIR
set -uo pipefail
py=$1
kiln=$2
ab=$3/ci/ab.py
fail() { echo "ab_script: $*"; exit 1; }
args="--backend cpu --prompt-tokens 6 --gen 3"

out=$("$py" "$ab" --kiln "$kiln" --preset qwen3-tiny --reps 2 --args "$args" \
      base: skip:KILN_SKIP_OPS=rmsnorm,silu_mul,KILN_X=1 2>&1) || fail "two configurations failed: $out"
echo "$out"
grep -q "2 runs per configuration" <<<"$out" || fail "no run count in the header"
for label in base skip; do
  grep -qE "^$label +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+ +[+-][0-9.]+% .* yes$" <<<"$out" ||
    fail "no row for '$label' with identical tokens"
done
grep -qE "^base .* \+0\.00% +-- " <<<"$out" || fail "the first configuration is not its own reference"
grep -qE "^skip .* \[[+-][0-9.]+, [+-][0-9.]+\][* ] " <<<"$out" || fail "no confidence interval for 'skip'"

# KILN=PATH in a configuration runs another binary (a second build): here a wrapper that marks
# each run and then runs the same kiln.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '#!/usr/bin/env bash\necho run >>"%s/marks"\nexec "%s" "$@"\n' "$tmp" "$kiln" >"$tmp/other-kiln"
chmod +x "$tmp/other-kiln"
out=$("$py" "$ab" --kiln "$kiln" --preset qwen3-tiny --reps 2 --args "$args" \
      base: other:KILN="$tmp/other-kiln" 2>&1) || fail "a configuration with its own binary failed: $out"
[ "$(wc -l <"$tmp/marks")" = 2 ] || fail "KILN=PATH did not run that binary once per run: $out"
grep -qE "^other .* yes$" <<<"$out" || fail "no row for 'other' with identical tokens: $out"
out=$("$py" "$ab" --kiln "$kiln" --preset qwen3-tiny a: b:KILN="$tmp/missing" 2>&1)
[ $? = 2 ] || fail "a missing KILN binary was accepted: $out"
grep -q "configuration 'b': KILN=$tmp/missing is not an executable" <<<"$out" || fail "no error naming the binary: $out"

out=$("$py" "$ab" --kiln "$kiln" --preset no-such-preset --reps 1 --args "$args" a: 2>&1)
rc=$?
[ $rc = 1 ] || fail "a failing run exited $rc, not 1: $out"
grep -q "unknown preset 'no-such-preset'" <<<"$out" || fail "kiln's error is not shown: $out"

out=$("$py" "$ab" --kiln "$kiln" --preset qwen3-tiny a:=1 2>&1)
rc=$?
[ $rc = 2 ] || fail "a malformed configuration exited $rc, not 2: $out"
out=$("$py" "$ab" --kiln "$kiln" --preset qwen3-tiny a: a: 2>&1)
[ $? = 2 ] || fail "duplicate labels were accepted: $out"
echo "ab_script: ok"
