#include <gtest/gtest.h>

#include "models/quant.h"
#include "tests/testing.h"

namespace kiln {
namespace {

TEST(Half, RoundTripsEveryHalf) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = f16_to_f32(uint16_t(h));
    if (f != f) continue;  // NaN payloads need not round-trip
    ASSERT_EQ(f32_to_f16(f), uint16_t(h)) << "h=" << h;
  }
}

}  // namespace
}  // namespace kiln
