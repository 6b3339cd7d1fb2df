// `clio serve --redis URL ...`: runs the console hub alone (see serve.cc).
#pragma once

#include <string>
#include <vector>

// Runs until SIGINT or SIGTERM; returns the exit status (2: bad usage,
// 1: cannot start).
int cmd_serve(const std::vector<std::string>& args);
