// The files of templates/ (console page, its JS and CSS, the channel JS
// client), embedded in the binary at build time.
//
//   if (const clio::templates::Asset* a = clio::templates::find_asset("channel.js")) {
//     send(a->content_type, a->data);
//   }
#pragma once

#include <span>
#include <string_view>

namespace clio::templates {

// Immutable data with static storage; safe for concurrent use by multiple threads.
struct Asset {
  std::string_view name;          // path relative to templates/, e.g. "console.html"
  std::string_view content_type;  // e.g. "text/javascript; charset=utf-8"
  std::string_view data;          // the file's bytes
};

// Every embedded file.
std::span<const Asset> all_assets();
// The file named `name`, or null.
const Asset* find_asset(std::string_view name);

}  // namespace clio::templates
