# Compiler flags shared by every kiln target (kiln_flags), and the numerics flags the oracle
# contract depends on (DESIGN.md §4): no implicit FMA contraction on either side, so a float
# reference can follow a kernel bit for bit. Explicit fmaf() is used where an FMA is wanted.
add_library(kiln_flags INTERFACE)
target_compile_options(kiln_flags INTERFACE
  $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wno-unused-parameter -ffp-contract=off>
  $<$<COMPILE_LANGUAGE:CUDA>:--fmad=false -Xcompiler=-Wall,-Wextra,-Wno-unused-parameter,-ffp-contract=off
                             --expt-relaxed-constexpr -lineinfo>)
if(KILN_WERROR)
  target_compile_options(kiln_flags INTERFACE
    $<$<COMPILE_LANGUAGE:CXX>:-Werror>
    $<$<COMPILE_LANGUAGE:CUDA>:-Werror=all-warnings -Xcompiler=-Werror>)
endif()
if(KILN_SANITIZE)
  target_compile_options(kiln_flags INTERFACE
    $<$<COMPILE_LANGUAGE:CXX>:-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all>)
  target_link_options(kiln_flags INTERFACE -fsanitize=address,undefined)
endif()
