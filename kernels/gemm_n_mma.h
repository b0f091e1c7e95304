// The block-diagonal int8 MMA tiling of gemm_n's Q4_K path (kernels/gemm_n_imma.cuh, mma_chunk): which
// (row, column, unit) entry of each m16n8k32 tile a thread keeps, and its butterfly partners.
// CUDA-free so that a CPU test (tests/gemm_n_test.cpp, GemmNMma) checks the tables against the
// PTX fragment layout of mma.m16n8k32 (.s8/.u8): thread (g = lane / 4, t = lane % 4) holds
// A rows g, g + 8 at k 4t.. and 16 + 4t..; B column g at k 4t.. and 16 + 4t..; and D (row g,
// cols 2t, 2t + 1) in registers 0, 1 and (row g + 8, cols 2t, 2t + 1) in registers 2, 3.
//
// A group covers 4 consecutive units v of R = 4 rows r and 2 activation columns n' (per column
// pair): A row i = (v, r) with v = a_unit(i); B column j = (v, n') with v = b_unit(j),
// n' = j / 4. A D entry is used only where the two units agree.
#pragma once

#include "kernels/common/hd.h"

namespace kiln::gemm_n_mma {

// A row i (0..15): unit (0, 1, 3, 2 for rows 0-3, 4-7, 8-11, 12-15); its row r = i % 4. Thread
// group g (0..7) loads rows g and g + 8: units a_unit_lo(g) and a_unit_hi(g).
KILN_HD constexpr int a_unit_lo(int g) { return g < 4 ? 0 : 1; }
KILN_HD constexpr int a_unit_hi(int g) { return g < 4 ? 3 : 2; }
KILN_HD constexpr int a_unit(int i) { return i < 8 ? a_unit_lo(i) : a_unit_hi(i - 8); }
// B column j (0..7): unit; its column n' = j / 4.
KILN_HD constexpr int b_unit(int j) { return (0x31203210 >> (4 * j)) & 15; }
// The used entry of thread (g, t): its unit (row g % 4, column n' = t / 2) and D register.
KILN_HD constexpr int used_unit(int g, int t) { return g < 4 ? ((t & 1) ? 3 : 0) : ((t == 0 || t == 3) ? 1 : 2); }
KILN_HD constexpr int used_reg(int g, int t) { return g < 4 ? ((t & 1) ? 3 : 0) : ((t + 1) & 3); }
// The lanes holding unit v ^ 2 and v ^ 1 of the same (row, column): the plan's butterfly steps
// o = 2 and o = 1 on virtual lanes 4 * group + v (o = 16, 8, 4 pair groups inside a thread).
KILN_HD constexpr int partner2(int lane) { return lane ^ ((lane & 3) < 2 ? 17 : 16); }
KILN_HD constexpr int partner1(int lane) { return lane ^ ((lane & 3) < 2 ? 16 : 17); }

}  // namespace kiln::gemm_n_mma
