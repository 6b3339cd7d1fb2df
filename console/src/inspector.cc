// The Inspector: capture, the in-process log and a hub, in one process.
#include "clio/console/inspector.h"

#include <algorithm>
#include <thread>

#include "clio/log/in_process_log.h"
#include "clio/middleware/instance.h"

namespace clio::console {

using namespace std::chrono_literals;

Result<std::unique_ptr<Inspector>> Inspector::create(InspectorOptions options) {
  CaptureOptions co = options.capture;
  if (std::find(co.exclude_prefixes.begin(), co.exclude_prefixes.end(), options.prefix) == co.exclude_prefixes.end()) {
    co.exclude_prefixes.push_back(options.prefix);
  }
  // Behind a proxy, the hub's throttle needs the proxy's view of clients too.
  options.trust_x_forwarded_for = options.trust_x_forwarded_for || co.trust_x_forwarded_for;
  std::unique_ptr<Inspector> in(new Inspector());
  in->capture_ = std::make_unique<Capture>(std::move(co));
  auto log = std::make_unique<log::InProcessLog>(*in->capture_, options.instance);
  in->log_ = log.get();
  auto hub = Hub::create(std::move(static_cast<HubOptions&>(options)), std::move(log));
  if (!hub.ok()) return hub.status();
  in->hub_ = std::move(*hub);
  return in;
}

Inspector::~Inspector() { shutdown(); }

Status Inspector::install(mg_callbacks* callbacks) { return capture_->install(callbacks); }

Status Inspector::attach(mg_context* ctx) {
  if (log_->instance().empty()) log_->set_instance(default_instance_name(ctx));
  return hub_->attach(ctx);
}

void Inspector::shutdown() {
  if (hub_) hub_->shutdown();
}
std::string Inspector::new_login_code() { return hub_->new_login_code(); }
const std::string& Inspector::prefix() const { return hub_->prefix(); }
bool Inspector::admin_key_generated() const { return hub_->admin_key_generated(); }
Capture& Inspector::capture() { return *capture_; }
Hub& Inspector::hub() { return *hub_; }
void Inspector::pause_dispatcher_for_test(bool paused) { hub_->pause_dispatcher_for_test(paused); }

InspectorStats Inspector::stats() const {
  InspectorStats s;
  static_cast<HubStats&>(s) = hub_->stats();
  const Capture::Stats cs = capture_->stats();
  s.captured = cs.captured;
  s.dropped_queue = cs.dropped_queue;
  s.queue_depth = capture_->queue().depth();
  return s;
}

bool Inspector::drain_for_test(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    // Every request that began has its record pushed (or dropped): the
    // response reaches a client before CivetWeb runs log_access.
    const Capture::Stats cs = capture_->stats();
    if (cs.begun == cs.captured + cs.dropped_queue && hub_->stats().dispatched >= cs.captured &&
        capture_->queue().depth() == 0) {
      return true;
    }
    std::this_thread::sleep_for(2ms);
  }
  return false;
}

}  // namespace clio::console
