// KILN_SKIP_OPS: a timing-study knob. `KILN_SKIP_OPS=rmsnorm,silu_mul kiln run ...` leaves every
// launch of the named op families out of the forward passes (prefill, the captured decode graph
// and the profiled step alike), so the decode time it prints, next to a normal run's, is what
// those launches cost inside the graph -- a figure the per-kernel event split (which times each
// launch in isolation, launch gaps included) cannot give. The outputs are then not the model's:
// the run report says so (left out, softcap_argmax no longer advances decode's position either:
// every step reruns one position). Names are the ones the per-kernel table prints.
#pragma once

#include <set>
#include <string>

namespace kiln {

// Every op name the runner's launch wrapper (Engine::op) uses.
const std::set<std::string>& runner_op_names();
// "a,b,c" -> {a, b, c}; null or empty -> {}. An unknown name throws kiln::Error naming the
// valid ones; empty items (",,", trailing comma) are ignored.
std::set<std::string> parse_skip_ops(const char* spec);

}  // namespace kiln
