// Both WebSocket sessions' frame readers (gateway/json_codec): the storefront's
// subscription frames and the warehouse's push frames, item by item. Oracle:
// nothing crashes; a read item is within the contract's bounds.
#include "gateway/json_codec.hpp"

#include <cstdint>
#include <cstdlib>
#include <string>

using namespace emporium::gateway;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text{reinterpret_cast<const char*>(data), size};
  if (auto r = read_storefront_frame(text); auto* sub = std::get_if<subscription>(&r))
    if (sub->id.empty())
      std::abort();
  auto r = read_warehouse_frame(text, 16);
  auto* frame = std::get_if<warehouse_frame>(&r);
  if (frame == nullptr)
    return 0;
  if (frame->items.size() > 16 || (!frame->batch && frame->items.size() != 1))
    std::abort();
  for (size_t i = 0; i < frame->items.size(); ++i) {
    json::object where;
    auto item = read_push_item(std::move(frame->items[i]), frame->batch ? int64_t(i) : -1, where);
    if (auto* p = std::get_if<push_item>(&item))
      if (p->sku.empty() || p->on_hand < 0 || p->seq < 0 || (p->threshold && *p->threshold < 0))
        std::abort();
  }
  return 0;
}
