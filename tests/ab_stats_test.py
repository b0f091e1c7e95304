"""ab_stats (ctest, label cpu): ci/ab.py's Welch 95 % confidence interval against values worked
out by hand from the textbook formulas (Welch-Satterthwaite degrees of freedom, rounded down;
Student's t from a printed table).
usage: python3 ab_stats_test.py SOURCE_DIR"""
import importlib.util
import math
import sys

spec = importlib.util.spec_from_file_location("ab", sys.argv[1] + "/ci/ab.py")
ab = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ab)
failures = []


def check(name, got, want, tol=1e-3):
    if got is None or want is None:
        ok = got is want
    else:
        ok = all(math.isclose(g, w, abs_tol=tol) for g, w in zip(got, want))
    print(f"{name}: got {got}, want {want}: {'ok' if ok else 'FAIL'}")
    if not ok:
        failures.append(name)


# Equal variances (1 each), n = 3 + 3: se = sqrt(1/3 + 1/3) = 0.81650, df = 4 exactly, t = 2.776.
check("equal variances", ab.welch_ci95([1, 2, 3], [4, 5, 6]), (3.0, 2.776 * 0.81650))
# Unequal: a = 10, 12 (var 2, n 2), b = 20..23 (var 5/3, n 4): va = 1, vb = 5/12, se^2 = 17/12,
# df = (17/12)^2 / (1/1 + (5/12)^2 / 3) = 1.897 -> 1, t = 12.706; se = 1.19024.
check("unequal variances, df rounded down", ab.welch_ci95([10, 12], [20, 21, 22, 23]), (10.5, 12.706 * 1.19024))
# Large samples use the normal quantile: 40 runs each of +-1 around 0 and 1 (sd 1.01274 each),
# se = sqrt(2 * 1.01274^2 / 40) = 0.22646, df = 78.
a = [(-1) ** i for i in range(40)]
check("large samples", ab.welch_ci95(a, [x + 1 for x in a]), (1.0, 1.960 * 0.22646))
check("identical runs", ab.welch_ci95([5, 5, 5], [6, 6]), (1.0, 0.0))
check("one run is not enough", ab.welch_ci95([5], [6, 7]), None)

if failures:
    print("ab_stats: FAILED:", ", ".join(failures))
    sys.exit(1)
print("ab_stats: ok")
