#include "tools/bench/serve_bench.h"

#include <grpcpp/client_context.h>
#include <grpcpp/create_channel.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "common/synthetic_pair.h"
#include "semshare/v1/router.grpc.pb.h"
#include "tools/bench/local_cluster.h"

ABSL_DECLARE_FLAG(std::string, model);
ABSL_DECLARE_FLAG(std::string, cluster_dir);
ABSL_DECLARE_FLAG(std::string, cluster_script);
ABSL_DECLARE_FLAG(std::string, device);
ABSL_DECLARE_FLAG(std::string, worker_args);
ABSL_DECLARE_FLAG(double, edit_share);

ABSL_FLAG(std::string, rates, "0.1,0.2,0.4,0.8",
          "offered request rates (requests/s), comma-separated; Poisson arrivals");
ABSL_FLAG(std::string, mixes, "paraphrase-heavy,prefix-heavy,novel",
          "workload mixes: paraphrase-heavy | prefix-heavy | novel");
ABSL_FLAG(std::string, modes, "full,semshare", "how each mix is served: full | semshare");
ABSL_FLAG(int32_t, requests_per_rate, 24, "requests offered at each rate");
ABSL_FLAG(int64_t, min_prompt_tokens, 512, "shortest document");
ABSL_FLAG(int64_t, max_prompt_tokens, 4096, "longest document (and longest prompt)");
ABSL_FLAG(int32_t, output_tokens, 32, "tokens generated a request");
ABSL_FLAG(double, ttft_slo_ms, 0,
          "TTFT p99 a rate must meet; 0: 4x the TTFT of a 2,048-token full prefill alone, "
          "measured first");
ABSL_FLAG(uint64_t, seed, 1, "workload seed");
ABSL_FLAG(int32_t, documents, 20, "documents the paraphrase-heavy mix draws from");
ABSL_FLAG(std::string, plot, "",
          "write TTFT p99 against offered rate here (PNG, with gnuplot; its .dat and .gp beside)");

namespace semshare::bench {
namespace {

// One request of the workload, as generated before the run.
struct Offered {
  double arrival_s = 0;  // after the rate's start
  int tenant = 0;        // 0 or 1: the cluster's two API keys
  std::string kind;      // repeat | paraphrase | reorder | extension | novel
  std::vector<int32_t> prompt;
};

using Served = ClientCall;

// Token ids of the benchmark model, avoiding the first (control) ids.
class TokenSource {
 public:
  TokenSource(int32_t vocab, int32_t bos, uint64_t seed) : vocab_(vocab), bos_(bos), rng_(seed) {}

  std::vector<int32_t> Random(int64_t length) {
    const int32_t low = std::min<int32_t>(16, vocab_ - 1);
    std::vector<int32_t> ids(static_cast<size_t>(length));
    for (int32_t& t : ids) t = low + static_cast<int32_t>(rng_() % (vocab_ - low));
    return ids;
  }
  std::vector<int32_t> Document(int64_t min_tokens, int64_t max_tokens) {
    const int64_t length =
        min_tokens +
        static_cast<int64_t>(rng_() % static_cast<uint64_t>(max_tokens - min_tokens + 1));
    std::vector<int32_t> ids = Random(length);
    if (bos_ >= 0) ids[0] = bos_;
    return ids;
  }
  // The document with a share of its tokens substituted (and nearby spans swapped), as a
  // paraphrase is (common/synthetic_pair.h).
  std::vector<int32_t> Paraphrase(const std::vector<int32_t>& doc, double edit_share) {
    SyntheticPair pair =
        MakeSyntheticPair(static_cast<int64_t>(doc.size()), edit_share, vocab_, rng_(), bos_);
    // Same edits, applied to this document: positions where the pair's target differs.
    std::vector<int32_t> out = doc;
    for (size_t i = 1; i < doc.size(); ++i) {
      if (pair.target[i] != pair.reference[i]) out[i] = pair.target[i];
    }
    return out;
  }
  // The document cut into 8 sections with two adjacent sections swapped.
  std::vector<int32_t> Reorder(const std::vector<int32_t>& doc) {
    const size_t n = doc.size() - 1;  // the BOS stays first
    const size_t section = std::max<size_t>(1, n / 8);
    const size_t first = 1 + section * (rng_() % 7);
    std::vector<int32_t> out = doc;
    const size_t end = std::min(doc.size(), first + 2 * section);
    std::rotate(out.begin() + static_cast<std::ptrdiff_t>(first),
                out.begin() + static_cast<std::ptrdiff_t>(std::min(end, first + section)),
                out.begin() + static_cast<std::ptrdiff_t>(end));
    return out;
  }
  double Uniform() { return std::uniform_real_distribution<double>(0, 1)(rng_); }
  uint64_t Next() { return rng_(); }
  double Exponential(double rate) { return std::exponential_distribution<double>(rate)(rng_); }

 private:
  const int32_t vocab_;
  const int32_t bos_;
  std::mt19937_64 rng_;
};

// The mix's workload state across rates: the document pool and the conversations.
class Workload {
 public:
  Workload(std::string mix, TokenSource* tokens) : mix_(std::move(mix)), tokens_(tokens) {
    const int64_t min = absl::GetFlag(FLAGS_min_prompt_tokens);
    const int64_t max = absl::GetFlag(FLAGS_max_prompt_tokens);
    if (mix_ == "paraphrase-heavy") {
      for (int32_t d = 0; d < absl::GetFlag(FLAGS_documents); ++d)
        documents_.push_back(tokens_->Document(min, max));
    }
  }

  // Served once before the timed rates, one at a time: the documents a paraphrase-heavy
  // workload keeps coming back to, each by the tenant that owns it.
  std::vector<Offered> Warmup() const {
    std::vector<Offered> out;
    for (size_t d = 0; d < documents_.size(); ++d)
      out.push_back(Offered{0, static_cast<int>(d % 2), "warmup", documents_[d]});
    return out;
  }

  Offered Next() {
    const int64_t min = absl::GetFlag(FLAGS_min_prompt_tokens);
    const int64_t max = absl::GetFlag(FLAGS_max_prompt_tokens);
    Offered offered;
    offered.tenant = static_cast<int>(tokens_->Next() % 2);
    if (mix_ == "paraphrase-heavy") {
      const double u = tokens_->Uniform();
      if (u < 0.3) {
        offered.kind = "novel";
        offered.prompt = tokens_->Document(min, max);
        return offered;
      }
      const size_t d = tokens_->Next() % documents_.size();
      offered.tenant = static_cast<int>(d % 2);
      if (u < 0.4) {
        offered.kind = "repeat";
        offered.prompt = documents_[d];
      } else if (u < 0.75) {
        offered.kind = "paraphrase";
        offered.prompt = tokens_->Paraphrase(documents_[d], absl::GetFlag(FLAGS_edit_share));
      } else {
        offered.kind = "reorder";
        offered.prompt = tokens_->Reorder(documents_[d]);
      }
      return offered;
    }
    if (mix_ == "prefix-heavy") {
      // Multi-turn: 4 conversations a tenant; each request is the conversation so far plus a
      // new turn of 128-384 tokens; one past the longest prompt starts over.
      std::vector<int32_t>& conversation =
          conversations_[offered.tenant * 4 + static_cast<int>(tokens_->Next() % 4)];
      const int64_t turn = 128 + static_cast<int64_t>(tokens_->Next() % 257);
      if (conversation.empty() || static_cast<int64_t>(conversation.size()) + turn > max) {
        conversation = tokens_->Document(min, std::min(max, 2 * min));
        offered.kind = "novel";
      } else {
        const std::vector<int32_t> more = tokens_->Random(turn);
        conversation.insert(conversation.end(), more.begin(), more.end());
        offered.kind = "extension";
      }
      offered.prompt = conversation;
      return offered;
    }
    offered.kind = "novel";
    offered.prompt = tokens_->Document(min, max);
    return offered;
  }

 private:
  const std::string mix_;
  TokenSource* const tokens_;
  std::vector<std::vector<int32_t>> documents_;
  std::map<int, std::vector<int32_t>> conversations_;
};

// Offers `requests` at `rate` (Poisson) and measures each at the client.
Json RunRate(LocalCluster* cluster, int32_t max_tokens, const std::vector<Offered>& requests,
             double rate) {
  std::vector<Served> served(requests.size());
  std::vector<std::thread> clients;
  clients.reserve(requests.size());
  const auto start = std::chrono::steady_clock::now();
  for (size_t i = 0; i < requests.size(); ++i) {
    std::this_thread::sleep_until(start +
                                  std::chrono::duration_cast<std::chrono::nanoseconds>(
                                      std::chrono::duration<double>(requests[i].arrival_s)));
    clients.emplace_back([&, i] {
      served[i] = StreamGenerate(cluster->stub(), cluster->key(requests[i].tenant),
                                 requests[i].prompt, max_tokens);
    });
  }
  for (std::thread& client : clients) client.join();
  const double wall_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::vector<double> ttft, tpot;
  int64_t ok = 0, hits = 0, failures = 0, tokens = 0;
  std::string first_failure;
  for (const Served& s : served) {
    if (!s.ok) {
      ++failures;
      if (first_failure.empty()) first_failure = s.error;
      continue;
    }
    ++ok;
    hits += s.hit ? 1 : 0;
    tokens += s.tokens;
    ttft.push_back(s.ttft_ms);
    if (s.tokens > 1)
      tpot.push_back((s.latency_ms - s.ttft_ms) / static_cast<double>(s.tokens - 1));
  }
  Json out;
  out["rate"] = rate;
  out["requests"] = static_cast<int64_t>(requests.size());
  out["failures"] = failures;
  out["first_failure"] = first_failure;
  out["ttft_p50_ms"] = Percentile(ttft, 0.5);
  out["ttft_p90_ms"] = Percentile(ttft, 0.9);
  out["ttft_p99_ms"] = Percentile(ttft, 0.99);
  out["tpot_p50_ms"] = Percentile(tpot, 0.5);
  out["tpot_p99_ms"] = Percentile(tpot, 0.99);
  out["throughput_rps"] = wall_s > 0 ? static_cast<double>(ok) / wall_s : 0.0;
  out["output_tokens_per_s"] = wall_s > 0 ? static_cast<double>(tokens) / wall_s : 0.0;
  out["hit_rate"] = ok > 0 ? static_cast<double>(hits) / static_cast<double>(ok) : 0.0;
  out["wall_s"] = wall_s;
  return out;
}

LocalClusterArgs ClusterArgs(const std::string& model, const std::string& mode) {
  LocalClusterArgs args;
  args.script = absl::GetFlag(FLAGS_cluster_script);
  args.model = model;
  args.device = absl::GetFlag(FLAGS_device);
  args.worker_args = absl::StrCat("--max-queue 512 ", absl::GetFlag(FLAGS_worker_args));
  args.router_args = absl::StrCat("--reuse=", mode == "full" ? "false" : "true");
  return args;
}

absl::StatusOr<std::vector<double>> ParseRates(const std::string& text) {
  std::vector<double> rates;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    double rate = 0;
    if (!absl::SimpleAtod(part, &rate) || rate <= 0)
      return absl::InvalidArgumentError(absl::StrCat("bad rate '", part, "' in --rates"));
    rates.push_back(rate);
  }
  if (rates.empty()) return absl::InvalidArgumentError("--rates names no rate");
  std::sort(rates.begin(), rates.end());
  return rates;
}

// TTFT p99 against offered rate, one panel per mix, one line per mode.
void Plot(const Json& mixes, const std::vector<std::string>& mix_names,
          const std::vector<std::string>& modes, double slo_ms, const std::string& png,
          std::string* table) {
  const std::string dat = png + ".dat";
  const std::string gp = png + ".gp";
  std::string data;
  for (const std::string& mix : mix_names) {
    for (const std::string& mode : modes) {
      absl::StrAppend(&data, "# ", mix, " ", mode, "\n");
      for (const Json& r : mixes[mix][mode]["rates"].array_items()) {
        absl::StrAppendFormat(&data, "%g %g\n", r["rate"].number_value(),
                              r["ttft_p99_ms"].number_value());
      }
      absl::StrAppend(&data, "\n\n");
    }
  }
  std::string script = absl::StrFormat(
      "set terminal pngcairo size %d,420\nset output '%s'\nset multiplot layout 1,%d\n"
      "set logscale y\nset xlabel 'offered rate (requests/s)'\nset ylabel 'TTFT p99 (ms)'\n"
      "set key top left\n",
      420 * static_cast<int>(mix_names.size()), png, static_cast<int>(mix_names.size()));
  int block = 0;
  for (const std::string& mix : mix_names) {
    absl::StrAppendFormat(&script, "set title '%s'\nplot ", mix);
    for (size_t m = 0; m < modes.size(); ++m, ++block) {
      absl::StrAppendFormat(&script, "'%s' index %d with linespoints title '%s', ", dat, block,
                            modes[m]);
    }
    absl::StrAppendFormat(&script, "%g with lines dashtype 2 title 'SLO'\n", slo_ms);
  }
  absl::StrAppend(&script, "unset multiplot\n");
  if (!WriteStringToFile(dat, data).ok() || !WriteStringToFile(gp, script).ok()) return;
  if (RunCommand(absl::StrCat("gnuplot '", gp, "' 2>&1")).ok()) {
    absl::StrAppend(table, "plot: ", png, "\n");
  } else {
    absl::StrAppend(table, "plot: gnuplot failed or is missing (apt-get install gnuplot-nox); ", gp,
                    " and ", dat, " are written\n");
  }
}

}  // namespace

absl::StatusOr<Json> RunServeBench(std::string* table) {
  SEMSHARE_ASSIGN_OR_RETURN(const std::string base,
                            ClusterDir(absl::GetFlag(FLAGS_cluster_dir), "semshare_serve_bench"));
  SEMSHARE_ASSIGN_OR_RETURN(const std::string model, BenchModel(absl::GetFlag(FLAGS_model), base));
  SEMSHARE_ASSIGN_OR_RETURN(const std::vector<double> rates,
                            ParseRates(absl::GetFlag(FLAGS_rates)));
  const std::vector<std::string> mixes =
      absl::StrSplit(absl::GetFlag(FLAGS_mixes), ',', absl::SkipEmpty());
  const std::vector<std::string> modes =
      absl::StrSplit(absl::GetFlag(FLAGS_modes), ',', absl::SkipEmpty());
  for (const std::string& mix : mixes) {
    if (mix != "paraphrase-heavy" && mix != "prefix-heavy" && mix != "novel")
      return absl::InvalidArgumentError(absl::StrCat("unknown mix '", mix, "'"));
  }
  for (const std::string& mode : modes) {
    if (mode == "prefix") {
      return absl::UnimplementedError(
          "mode prefix (exact-prefix reuse only) is not available: the worker serves semshare "
          "reuse only");
    }
    if (mode != "full" && mode != "semshare")
      return absl::InvalidArgumentError(absl::StrCat("unknown mode '", mode, "'"));
  }
  const int64_t min_tokens = absl::GetFlag(FLAGS_min_prompt_tokens);
  const int64_t max_tokens = absl::GetFlag(FLAGS_max_prompt_tokens);
  if (min_tokens < 16 || max_tokens < min_tokens)
    return absl::InvalidArgumentError("need 16 <= --min-prompt-tokens <= --max-prompt-tokens");
  SEMSHARE_ASSIGN_OR_RETURN(const int32_t vocab, ConfigInt(model, "vocab_size"));
  const int32_t bos = ConfigInt(model, "bos_token_id").value_or(-1);
  const int32_t per_rate = std::max(1, absl::GetFlag(FLAGS_requests_per_rate));

  Json out;
  out["bench"] = "serve";
  out["model"] = model;
  out["device"] = absl::GetFlag(FLAGS_device);
  out["seed"] = static_cast<int64_t>(absl::GetFlag(FLAGS_seed));
  out["requests_per_rate"] = per_rate;
  out["prompt_tokens"] = absl::StrCat(min_tokens, "-", max_tokens);
  out["output_tokens"] = absl::GetFlag(FLAGS_output_tokens);
  out["ttft_measured_at"] = "client: the call to the first token read (queueing included)";
  double slo_ms = absl::GetFlag(FLAGS_ttft_slo_ms);
  Json results = Json::MakeObject();
  int cluster_index = 0;
  for (const std::string& mix : mixes) {
    for (const std::string& mode : modes) {
      const std::string dir = JoinPath(base, absl::StrCat("cluster", cluster_index++));
      SEMSHARE_RETURN_IF_ERROR(RunCommand(absl::StrCat("mkdir -p '", dir, "'")));
      SEMSHARE_ASSIGN_OR_RETURN(std::unique_ptr<LocalCluster> cluster,
                                LocalCluster::Start(dir, ClusterArgs(model, mode)));
      const int32_t output_tokens = absl::GetFlag(FLAGS_output_tokens);
      const auto serve = [&cluster, output_tokens](const Offered& offered) {
        return StreamGenerate(cluster->stub(), cluster->key(offered.tenant), offered.prompt,
                              output_tokens);
      };
      // The same workload for every mode of a mix.
      TokenSource tokens(vocab, bos, absl::GetFlag(FLAGS_seed));
      Workload workload(mix, &tokens);
      if (slo_ms <= 0) {
        // A 2,048-token novel prompt alone, twice (the first warms the worker up).
        Offered alone{0, 0, "novel", tokens.Document(2048, 2048)};
        serve(alone);
        alone.prompt = tokens.Document(2048, 2048);
        const Served timed = serve(alone);
        if (!timed.ok) return absl::InternalError(absl::StrCat("SLO probe failed: ", timed.error));
        slo_ms = 4 * timed.ttft_ms;
        out["full_prefill_2048_ttft_ms"] = timed.ttft_ms;
        absl::StrAppendFormat(table, "SLO: TTFT p99 <= %.0f ms (4x a 2,048-token prefill alone)\n",
                              slo_ms);
      }
      for (const Offered& warm : workload.Warmup()) {
        const Served s = serve(warm);
        if (!s.ok) return absl::InternalError(absl::StrCat("warm-up failed: ", s.error));
      }
      cluster->WaitForStores();
      Json rate_results = Json::MakeArray();
      double best = 0;
      for (double rate : rates) {
        std::vector<Offered> requests;
        double t = 0;
        for (int32_t i = 0; i < per_rate; ++i) {
          t += tokens.Exponential(rate);
          Offered offered = workload.Next();
          offered.arrival_s = t;
          requests.push_back(std::move(offered));
        }
        Json r = RunRate(cluster.get(), output_tokens, requests, rate);
        cluster->WaitForStores();
        const bool meets =
            r["failures"].number_value() == 0 && r["ttft_p99_ms"].number_value() <= slo_ms;
        if (meets) best = std::max(best, rate);
        r["meets_slo"] = meets;
        absl::StrAppendFormat(
            table,
            "%-16s %-8s rate %5.2f/s: TTFT p50 %7.0f p90 %7.0f p99 %7.0f ms | TPOT p50 %5.1f "
            "p99 %6.1f ms | %.2f req/s %.1f tok/s | hits %3.0f%% | failures %d%s\n",
            mix, mode, rate, r["ttft_p50_ms"].number_value(), r["ttft_p90_ms"].number_value(),
            r["ttft_p99_ms"].number_value(), r["tpot_p50_ms"].number_value(),
            r["tpot_p99_ms"].number_value(), r["throughput_rps"].number_value(),
            r["output_tokens_per_s"].number_value(), 100 * r["hit_rate"].number_value(),
            static_cast<int>(r["failures"].number_value()), meets ? "" : "  (misses the SLO)");
        rate_results.push_back(std::move(r));
      }
      results[mix][mode]["rates"] = std::move(rate_results);
      results[mix][mode]["max_rate_at_slo"] = best;
      absl::StrAppendFormat(table, "%-16s %-8s highest rate at the SLO: %.2f/s\n", mix, mode, best);
    }
  }
  out["ttft_slo_ms"] = slo_ms;
  out["mixes"] = results;
  for (const std::string& mix : mixes) {
    if (results[mix]["full"].is_object() && results[mix]["semshare"].is_object()) {
      const double full = results[mix]["full"]["max_rate_at_slo"].number_value();
      const double semshare = results[mix]["semshare"]["max_rate_at_slo"].number_value();
      absl::StrAppendFormat(table, "%-16s semshare / full at the SLO: %s\n", mix,
                            full > 0 ? absl::StrFormat("%.2fx", semshare / full)
                                     : std::string("full meets the SLO at no rate tried"));
    }
  }
  if (!absl::GetFlag(FLAGS_plot).empty())
    Plot(results, mixes, modes, slo_ms, absl::GetFlag(FLAGS_plot), table);
  return out;
}

}  // namespace semshare::bench
