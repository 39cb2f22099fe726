#ifndef SEMSHARE_ROUTER_CLIENT_CLIENT_OUTPUT_H_
#define SEMSHARE_ROUTER_CLIENT_CLIENT_OUTPUT_H_

#include <string>

#include "common/json.h"
#include "router/client/semshare_client.h"

// How the SDK's results look to people and to scripts: one JSON object per result (every
// field, snake_case as in the proto) and a short readable summary.
namespace semshare::client {

Json GenerateStatsToJson(const GenerateStats& stats);
// {"text", "token_ids", "stats": {...}}
Json GenerateResultToJson(const GenerateResult& result);
Json RouterStatsToJson(const RouterStats& stats);

// A few lines: hit or miss, the reference, TTFT, latency, tokens and the stage times.
std::string FormatGenerateStats(const GenerateStats& stats);
std::string FormatRouterStats(const RouterStats& stats);

}  // namespace semshare::client

#endif  // SEMSHARE_ROUTER_CLIENT_CLIENT_OUTPUT_H_
