// Fuzz target: the fast readers of bindings files (core/binding_fast.h: simdjson for JSON, a
// line reader for TOML) against the full parsers (nlohmann's SAX, toml++), differentially.
//
// Input: the first byte mod 3 picks the format (0: Detect; 1: Toml; 2: Json), the rest is the
// file's text.
//
// Invariants (a violation is __builtin_trap(), a finding): parse_bindings gives what the full
// parser gives, the same bindings in the same order or the same error (code and message); and
// a set either fast reader returns, for any text, is the one its format's full parser returns
// (tests/fuzz/bindings_differential.h).
#include <cstddef>
#include <cstdint>
#include <cstdio>

#include "bindings_differential.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  using steer::core::BindingsFormat;
  static constexpr BindingsFormat kFormats[] = {BindingsFormat::Detect, BindingsFormat::Toml,
                                                BindingsFormat::Json};
  std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  auto difference = steer::core::testing::bindings_difference(text, kFormats[data[0] % 3]);
  if (!difference.empty()) {
    std::fprintf(stderr, "%s\n", difference.c_str());
    __builtin_trap();
  }
  return 0;
}
