#include "delivery.h"

namespace clio::console {

std::string match_item(const std::vector<uint64_t>& ids, std::string_view record_json) {
  std::string s = "{\"subscriptions\":[";
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) s.push_back(',');
    s += std::to_string(ids[i]);
  }
  s += "],\"record\":";
  s += record_json;
  s.push_back('}');
  return s;
}

void send_matches(channel::ChannelService& channel, const std::string& client_id,
                  const std::vector<MatchItem>& items, DeliveryCounters& counters) {
  size_t i = 0;
  while (i < items.size()) {
    std::string msg = "{\"kind\":\"matches\",\"items\":[";
    const size_t first = i;
    size_t pairs = 0;
    while (i < items.size() && (i == first || msg.size() + items[i].text.size() < kMessageBudget)) {
      if (i > first) msg.push_back(',');
      msg += items[i].text;
      pairs += items[i].pairs;
      ++i;
    }
    msg += "]}";
    counters.pairs.fetch_add(pairs, std::memory_order_relaxed);
    if (!channel::accepted(channel.send_json(client_id, std::move(msg), pairs))) {
      counters.refused.fetch_add(pairs, std::memory_order_relaxed);
    }
  }
}

void send_notice(channel::ChannelService& channel, const std::string& client_id, const nlohmann::json& notice) {
  channel.send_json(client_id, notice.dump(), /*weight=*/0);
}

}  // namespace clio::console
