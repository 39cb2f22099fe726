#include "tools/bench/interference_bench.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "tools/bench/local_cluster.h"

ABSL_DECLARE_FLAG(std::string, model);
ABSL_DECLARE_FLAG(std::string, cluster_dir);
ABSL_DECLARE_FLAG(std::string, cluster_script);
ABSL_DECLARE_FLAG(std::string, device);
ABSL_DECLARE_FLAG(std::string, worker_args);
ABSL_DECLARE_FLAG(uint64_t, seed);

ABSL_FLAG(std::string, chunk_tokens, "64,128,256,512",
          "worker --prefill-chunk-tokens values to measure, comma-separated");
ABSL_FLAG(int32_t, decoders, 8, "requests decoding when the long prompt arrives");
ABSL_FLAG(int64_t, decode_prompt_tokens, 128, "prompt length of each decoding request");
ABSL_FLAG(int32_t, decode_tokens, 400, "tokens each decoding request generates");
ABSL_FLAG(int64_t, long_prompt_tokens, 4096, "the prompt that arrives while they decode");
ABSL_FLAG(double, arrive_after_s, 6, "when the long prompt arrives, after the decoders start");
ABSL_FLAG(double, baseline_window_s, 2,
          "the window before the long prompt whose token gaps are the baseline");

namespace semshare::bench {
namespace {

using Clock = std::chrono::steady_clock;

double MsBetween(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

absl::StatusOr<std::vector<int64_t>> ParseChunks(const std::string& text) {
  std::vector<int64_t> chunks;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    int64_t chunk = 0;
    if (!absl::SimpleAtoi(part, &chunk) || chunk <= 0)
      return absl::InvalidArgumentError(absl::StrCat("bad value '", part, "' in --chunk-tokens"));
    chunks.push_back(chunk);
  }
  if (chunks.empty()) return absl::InvalidArgumentError("--chunk-tokens names no value");
  return chunks;
}

std::vector<int32_t> RandomPrompt(int64_t length, int32_t vocab, int32_t bos,
                                  std::mt19937_64* rng) {
  const int32_t low = std::min<int32_t>(16, vocab - 1);
  std::vector<int32_t> ids(static_cast<size_t>(length));
  for (int32_t& t : ids) t = low + static_cast<int32_t>((*rng)() % (vocab - low));
  if (bos >= 0) ids[0] = bos;
  return ids;
}

// One --prefill-chunk-tokens value on its own cluster.
absl::StatusOr<Json> MeasureChunk(const std::string& dir, const std::string& model,
                                  int64_t chunk_tokens, int32_t vocab, int32_t bos,
                                  std::mt19937_64* rng) {
  LocalClusterArgs args;
  args.script = absl::GetFlag(FLAGS_cluster_script);
  args.model = model;
  args.device = absl::GetFlag(FLAGS_device);
  args.worker_args = absl::StrCat("--max-queue 512 --prefill-chunk-tokens ", chunk_tokens, " ",
                                  absl::GetFlag(FLAGS_worker_args));
  args.router_args = "--reuse=false";  // full prefills, nothing stored
  SEMSHARE_RETURN_IF_ERROR(RunCommand(absl::StrCat("mkdir -p '", dir, "'")));
  SEMSHARE_ASSIGN_OR_RETURN(std::unique_ptr<LocalCluster> cluster, LocalCluster::Start(dir, args));
  const ClientCall warm =
      StreamGenerate(cluster->stub(), cluster->key(0), RandomPrompt(256, vocab, bos, rng), 8);
  if (!warm.ok) return absl::InternalError(absl::StrCat("warm-up failed: ", warm.error));

  const int32_t decoders = std::max(1, absl::GetFlag(FLAGS_decoders));
  std::vector<std::vector<int32_t>> prompts;
  prompts.reserve(decoders);
  for (int32_t i = 0; i < decoders; ++i)
    prompts.push_back(RandomPrompt(absl::GetFlag(FLAGS_decode_prompt_tokens), vocab, bos, rng));
  const std::vector<int32_t> long_prompt =
      RandomPrompt(absl::GetFlag(FLAGS_long_prompt_tokens), vocab, bos, rng);

  std::vector<ClientCall> calls(decoders);
  std::vector<double> call_start_ms(decoders);
  const Clock::time_point start = Clock::now();
  std::vector<std::thread> clients;
  clients.reserve(decoders);
  for (int32_t i = 0; i < decoders; ++i) {
    clients.emplace_back([&, i] {
      call_start_ms[i] = MsBetween(start, Clock::now());
      calls[i] = StreamGenerate(cluster->stub(), cluster->key(i % 2), prompts[i],
                                absl::GetFlag(FLAGS_decode_tokens));
    });
  }
  std::this_thread::sleep_until(
      start + std::chrono::duration_cast<Clock::duration>(
                  std::chrono::duration<double>(absl::GetFlag(FLAGS_arrive_after_s))));
  const double long_start_ms = MsBetween(start, Clock::now());
  const ClientCall long_call = StreamGenerate(cluster->stub(), cluster->key(0), long_prompt, 1);
  const double long_first_ms = long_start_ms + long_call.ttft_ms;
  for (std::thread& client : clients) client.join();
  if (!long_call.ok)
    return absl::InternalError(absl::StrCat("the long prompt failed: ", long_call.error));

  // Gaps between a decoder's consecutive tokens, by when the later token arrived.
  const double baseline_from = long_start_ms - 1e3 * absl::GetFlag(FLAGS_baseline_window_s);
  std::vector<double> before, during;
  int32_t finished_early = 0;
  for (int32_t i = 0; i < decoders; ++i) {
    if (!calls[i].ok)
      return absl::InternalError(absl::StrCat("a decoder failed: ", calls[i].error));
    const std::vector<double>& t = calls[i].token_ms;
    if (t.empty() || call_start_ms[i] + t.back() < long_first_ms) ++finished_early;
    for (size_t k = 1; k < t.size(); ++k) {
      const double end = call_start_ms[i] + t[k];
      const double gap = t[k] - t[k - 1];
      if (end >= baseline_from && end < long_start_ms) before.push_back(gap);
      if (end > long_start_ms && end <= long_first_ms + gap) during.push_back(gap);
    }
  }
  Json r;
  r["prefill_chunk_tokens"] = chunk_tokens;
  r["tpot_before_p50_ms"] = Percentile(before, 0.5);
  r["tpot_before_p99_ms"] = Percentile(before, 0.99);
  r["tpot_during_p50_ms"] = Percentile(during, 0.5);
  r["tpot_during_p99_ms"] = Percentile(during, 0.99);
  const double base = Percentile(before, 0.99);
  r["tpot_p99_ratio"] = base > 0 ? Percentile(during, 0.99) / base : 0.0;
  r["gaps_before"] = static_cast<int64_t>(before.size());
  r["gaps_during"] = static_cast<int64_t>(during.size());
  r["decoders_done_before_the_long_prompt"] = static_cast<int64_t>(finished_early);
  r["long_prompt_ttft_ms"] = long_call.ttft_ms;
  r["long_prompt_queue_ms"] = long_call.reported_queue_ms;
  return r;
}

}  // namespace

absl::StatusOr<Json> RunInterferenceBench(std::string* table) {
  SEMSHARE_ASSIGN_OR_RETURN(const std::string base,
                            ClusterDir(absl::GetFlag(FLAGS_cluster_dir), "semshare_interference"));
  SEMSHARE_ASSIGN_OR_RETURN(const std::string model, BenchModel(absl::GetFlag(FLAGS_model), base));
  SEMSHARE_ASSIGN_OR_RETURN(const std::vector<int64_t> chunks,
                            ParseChunks(absl::GetFlag(FLAGS_chunk_tokens)));
  SEMSHARE_ASSIGN_OR_RETURN(const int32_t vocab, ConfigInt(model, "vocab_size"));
  const int32_t bos = ConfigInt(model, "bos_token_id").value_or(-1);
  std::mt19937_64 rng(absl::GetFlag(FLAGS_seed));

  Json out;
  out["bench"] = "interference";
  out["model"] = model;
  out["device"] = absl::GetFlag(FLAGS_device);
  out["decoders"] = absl::GetFlag(FLAGS_decoders);
  out["decode_prompt_tokens"] = absl::GetFlag(FLAGS_decode_prompt_tokens);
  out["long_prompt_tokens"] = absl::GetFlag(FLAGS_long_prompt_tokens);
  out["measured_at"] = "clients: time between tokens read; the long prompt's call to its token";
  Json results = Json::MakeArray();
  absl::StrAppendFormat(table,
                        "%d requests decoding, one %d-token prompt arrives (times between tokens "
                        "at the clients, ms)\n"
                        "| chunk | before p50 | before p99 | during p50 | during p99 | p99 ratio "
                        "| long prompt TTFT |\n|---|---|---|---|---|---|---|\n",
                        absl::GetFlag(FLAGS_decoders),
                        static_cast<int>(absl::GetFlag(FLAGS_long_prompt_tokens)));
  int64_t recommended = 0;
  double recommended_ttft = 0;
  for (size_t i = 0; i < chunks.size(); ++i) {
    SEMSHARE_ASSIGN_OR_RETURN(Json r, MeasureChunk(JoinPath(base, absl::StrCat("cluster", i)),
                                                   model, chunks[i], vocab, bos, &rng));
    absl::StrAppendFormat(
        table, "| %d | %.1f | %.1f | %.1f | %.1f | %.2fx | %.0f |\n", static_cast<int>(chunks[i]),
        r["tpot_before_p50_ms"].number_value(), r["tpot_before_p99_ms"].number_value(),
        r["tpot_during_p50_ms"].number_value(), r["tpot_during_p99_ms"].number_value(),
        r["tpot_p99_ratio"].number_value(), r["long_prompt_ttft_ms"].number_value());
    const double ttft = r["long_prompt_ttft_ms"].number_value();
    if (r["tpot_p99_ratio"].number_value() <= 3 && (recommended == 0 || ttft < recommended_ttft)) {
      recommended = chunks[i];
      recommended_ttft = ttft;
    }
    results.push_back(std::move(r));
  }
  out["chunks"] = std::move(results);
  out["fastest_chunk_within_3x_tpot"] = recommended;
  if (recommended > 0) {
    absl::StrAppendFormat(table,
                          "fastest long prompt with decoders' TPOT p99 within 3x: chunk %d\n",
                          static_cast<int>(recommended));
  } else {
    absl::StrAppend(table, "no chunk keeps the decoders' TPOT p99 within 3x\n");
  }
  return out;
}

}  // namespace semshare::bench
