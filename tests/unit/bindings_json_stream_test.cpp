// `steer --json bindings` streams its document (report::BindingsJsonStream): the bytes must be
// those of the document built whole, as it was before, whatever the labels hold.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "report/render.h"

namespace steer::report {
namespace {

std::string streamed(const std::vector<core::BoundBinding>& bindings) {
  char* data = nullptr;
  size_t size = 0;
  std::FILE* out = ::open_memstream(&data, &size);
  BindingsJsonStream stream(out);
  for (const auto& bound : bindings) stream.add(bound);
  EXPECT_TRUE(stream.finish());
  std::fclose(out);
  std::string text(data, size);
  std::free(data);
  return text;
}

std::string built_whole(const std::vector<core::BoundBinding>& bindings) {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& bound : bindings) list.push_back(to_json(bound));
  return json_text({{"bindings", list}}) + "\n";
}

core::BoundBinding bound(std::string label, const char* protocol, const char* prefix,
                         const char* ports, uint32_t destination) {
  auto binding = core::Binding::parse("x", protocol, prefix, ports);
  binding->label = std::move(label);  // as old state may hold it: not validated
  return {*binding, destination};
}

TEST(BindingsJsonStream, WritesWhatTheWholeDocumentWas) {
  EXPECT_EQ(streamed({}), built_whole({}));
  std::vector<core::BoundBinding> bindings = {
      bound("web", "tcp", "192.0.2.0/24", "80", 1),
      bound("dns", "udp", "2001:db8::/64", "0", 4095),
      bound("api", "tcp", "10.0.0.0/8", "8000-8999", 0),
      bound("caf\xc3\xa9 \xe2\x80\xae", "tcp", "::1", "1", 7),
      bound("q\"uote\\back", "tcp", "10.0.0.1", "2", 8),
      bound(std::string("ctl\x01\x1b\n\t\x7f", 8), "udp", "10.0.0.2", "3", 9),
      bound("bad\xff\xc3(", "udp", "10.0.0.3", "4", 10),
      bound(std::string(255, 'l'), "udp", "10.0.0.4", "65535", 11)};
  EXPECT_EQ(streamed({bindings[0]}), built_whole({bindings[0]}));
  EXPECT_EQ(streamed(bindings), built_whole(bindings));
  // Past the stream's buffer: flushed in pieces, the same bytes.
  std::vector<core::BoundBinding> many;
  for (uint32_t i = 0; i < 3000; ++i)
    many.push_back(bound(i % 2 ? "web" : "caf\xc3\xa9", "tcp",
                         fmt::format("10.{}.{}.0/24", i / 256, i % 256).c_str(), "80", i));
  EXPECT_EQ(streamed(many), built_whole(many));
}

}  // namespace
}  // namespace steer::report
