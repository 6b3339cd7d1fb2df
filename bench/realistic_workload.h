// A generator of realistic admin queries and of the request records they are
// meant for: a multi-tenant API (1,000 tenants, 20,000 users) behind a few
// hosts, with browsers, scripts, probes and crawlers. Deterministic for a seed.
//
//   auto qs = clio::bench::realistic_queries(10000);      // seed 1
//   auto rs = clio::bench::realistic_records(20000);      // seed 2
//   for (auto& q : qs) matcher.subscribe(id++, q);
//
// Query shapes and their share (per mille in the .cc, with the exact texts):
//   16.2% path substrings (tenant prefixes, bare terms), some with a status class or method
//    8%  path regexes (anchored, with digits classes and optional groups)
//    4%  user-agent regexes (python-requests, curl, crawlers), with a second condition
//    8%  status classes and negated classes with a selective part (host, path, CIDR)
//    6%  negations with a selective part: -method:OPTIONS, not status < 500, not method = GET
//    6%  `in` lists with ranges: status in (429, 500..599), wall in (a..b, c..d)
//    8%  CIDR blocks of lengths /8 to /32, alone, in `in` lists, with a status class
//   12%  header and tag predicates: h.x-request-id = ..., h.x-tenant, h.x-debug:*, ~h, tag.user
//    9%  mitmproxy / DevTools shorthands: ~c ~d ~m ~u, status-code:, domain:, larger-than:, -method:
//    9%  ORs of 2-4 branches
//    3%  sampling: random < p with a host or path
//    5%  equalities on low-cardinality fields next to a selective substring (method = POST and path:...)
//    0.3% regexes with no literal text (path ~ "/[0-9]{7}$")
//    0.5% broad ones: status:5xx, wall > 1s, -method:OPTIONS, not status:2xx, ua ~ (?i)bot, ...
//    5%  repeats of 40 popular queries (several admins watching the same thing)
// Most queries match well under 1% of records; the broad ones match 1-80%.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "clio/middleware/record.h"

namespace clio::bench {

// `n` queries in the Clio query language, one per element.
std::vector<std::string> realistic_queries(size_t n, uint64_t seed = 1);

// `n` request records with ids 1..n.
std::vector<Record> realistic_records(size_t n, uint64_t seed = 2);

}  // namespace clio::bench
