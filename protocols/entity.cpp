#include "protocols/entity.hpp"

namespace emporium::protocols {

std::string_view kind_name(entity_kind k) noexcept {
  switch (k) {
    case entity_kind::sku: return "sku";
    case entity_kind::product: return "product";
    case entity_kind::cart: return "cart";
    case entity_kind::order: return "order";
    case entity_kind::reservation: return "reservation";
  }
  return "unknown";
}

std::string entity_key::str() const {
  std::string out{kind_name(kind)};
  out += ':';
  out += id;
  return out;
}

} // namespace emporium::protocols
