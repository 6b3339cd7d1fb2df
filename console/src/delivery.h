// How matches reach a console: "matches" messages on the client's channel,
// each holding items {"subscriptions":[ids],"record":{...}} (one record and
// the ids of that client's subscriptions it matched), split so that one
// message carries about kMessageBudget bytes of items. Notices ("dropped",
// "subscription_removed") travel the same way. Every message goes out with
// ChannelService::send_json: the record's JSON is spliced in, never escaped
// again, and the browser parses each message once. A matches message weighs
// its (record, subscription) pairs and a notice nothing, so the channel's
// weight_* counters count pairs: delivered, and lost where the loss happened.
//
//   std::vector<MatchItem> items = {{match_item({7}, record_json), 1}};
//   send_matches(channel, "c-1", items, counters);
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "clio/channel/channel.h"

namespace clio::console {

// One item, covering `pairs` (record, subscription) matches. A plain value type.
struct MatchItem {
  std::string text;
  size_t pairs = 1;
};

// Safe for concurrent use by multiple threads. What happens after the
// channel accepted a message is counted by the channel (by weight).
struct DeliveryCounters {
  std::atomic<uint64_t> pairs{0};    // pairs handed to the channel
  std::atomic<uint64_t> refused{0};  // of those, pairs the channel refused at once
};

inline constexpr size_t kMessageBudget = 60 * 1024;

// {"subscriptions":[ids],"record":<record_json>}
std::string match_item(const std::vector<uint64_t>& ids, std::string_view record_json);
// Sends `items` to `client_id` as one or more "matches" messages, counting
// their pairs, and those refused. Never blocks. Thread-safe.
void send_matches(channel::ChannelService& channel, const std::string& client_id,
                  const std::vector<MatchItem>& items, DeliveryCounters& counters);
// Sends a notice object ({"kind": ...}). Thread-safe.
void send_notice(channel::ChannelService& channel, const std::string& client_id, const nlohmann::json& notice);

}  // namespace clio::console
