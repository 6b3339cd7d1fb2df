#include "clio/log/fleet.h"

#include "clio/middleware/instance.h"

namespace clio::log {

Result<std::unique_ptr<FleetPublisher>> FleetPublisher::create(FleetOptions options) {
  auto writer = make_redis_writer(options.log);
  if (!writer.ok()) return writer.status();
  return std::unique_ptr<FleetPublisher>(new FleetPublisher(std::move(options), std::move(*writer)));
}

FleetPublisher::FleetPublisher(FleetOptions options, std::unique_ptr<LogWriter> writer)
    : options_(std::move(options)),
      capture_(std::make_unique<Capture>(options_.capture)),
      writer_(std::move(writer)) {}

FleetPublisher::~FleetPublisher() { shutdown(); }

Status FleetPublisher::install(mg_callbacks* callbacks) { return capture_->install(callbacks); }

Status FleetPublisher::attach(mg_context* ctx) {
  if (publisher_) return Status::AlreadyExists("the fleet publisher is already attached");
  if (writer_ == nullptr) return Status::InvalidArgument("the fleet publisher was shut down");
  instance_ = options_.instance.empty() ? default_instance_name(ctx) : options_.instance;
  PublisherOptions po = options_.publisher;
  po.instance = instance_;
  publisher_ = std::make_unique<Publisher>(*capture_, std::move(writer_), std::move(po));
  return publisher_->start();
}

void FleetPublisher::shutdown() {
  if (publisher_) publisher_->stop();
}

PublisherStats FleetPublisher::stats() const {
  if (publisher_) return publisher_->stats();
  PublisherStats s;
  s.dropped_queue = capture_->stats().dropped_queue;
  return s;
}

std::string FleetPublisher::describe() const { return publisher_ ? publisher_->describe() : writer_->describe(); }

}  // namespace clio::log
