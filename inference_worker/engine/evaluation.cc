#include "inference_worker/engine/evaluation.h"

#include <ATen/ATen.h>
#include <sys/resource.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/file_util.h"
#include "common/status_macros.h"
#include "inference_worker/engine/device_memory.h"
#include "inference_worker/engine/kv_rearrange.h"

namespace semshare {
namespace {

double Median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const size_t mid = values.size() / 2;
  return values.size() % 2 ? values[mid] : 0.5 * (values[mid - 1] + values[mid]);
}

double PeakRssMb() {
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;
}

double Mean(const std::vector<double>& values) {
  if (values.empty()) return 0;
  double sum = 0;
  for (double v : values) sum += v;
  return sum / static_cast<double>(values.size());
}

}  // namespace

double RougeLF1(const std::vector<int32_t>& candidate, const std::vector<int32_t>& reference) {
  if (candidate.empty() && reference.empty()) return 1.0;
  if (candidate.empty() || reference.empty()) return 0.0;
  std::vector<int32_t> previous(reference.size() + 1, 0);
  std::vector<int32_t> row(reference.size() + 1, 0);
  for (int32_t c : candidate) {
    for (size_t j = 1; j <= reference.size(); ++j) {
      row[j] = c == reference[j - 1] ? previous[j - 1] + 1 : std::max(previous[j], row[j - 1]);
    }
    std::swap(previous, row);
  }
  const double lcs = previous[reference.size()];
  if (lcs == 0) return 0.0;
  const double precision = lcs / static_cast<double>(candidate.size());
  const double recall = lcs / static_cast<double>(reference.size());
  return 2 * precision * recall / (precision + recall);
}

int64_t SamePrefixTokens(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  const size_t limit = std::min(a.size(), b.size());
  size_t same = 0;
  while (same < limit && a[same] == b[same]) ++same;
  return static_cast<int64_t>(same);
}

absl::StatusOr<double> TeacherForcedAgreement(const Engine& engine, PrefillOutcome prefill,
                                              const std::vector<int32_t>& tokens,
                                              const ReuseOptions& options) {
  if (tokens.empty()) return 1.0;
  std::vector<int32_t> top1;
  SEMSHARE_RETURN_IF_ERROR(engine.ContinuationNll(&prefill, tokens, options, &top1).status());
  int64_t same = 0;
  for (size_t t = 0; t < top1.size(); ++t) same += top1[t] == tokens[t] ? 1 : 0;
  return static_cast<double>(same) / static_cast<double>(tokens.size());
}

absl::StatusOr<std::vector<EvalPair>> ReadEvalPairs(const std::string& path) {
  SEMSHARE_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  std::vector<EvalPair> pairs;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    if (line.find_first_not_of(" \t\r") == absl::string_view::npos) continue;
    absl::StatusOr<Json> doc = ParseJson(line);
    if (!doc.ok())
      return absl::InvalidArgumentError(
          absl::StrCat(path, ":", line_number, ": ", doc.status().message()));
    EvalPair pair;
    for (auto [field, out] : {std::pair<const char*, std::string*>{"reference", &pair.reference},
                              {"target", &pair.target},
                              {"continuation", &pair.continuation}}) {
      absl::StatusOr<std::string> value = GetString(*doc, field);
      if (!value.ok())
        return absl::InvalidArgumentError(
            absl::StrCat(path, ":", line_number, ": ", value.status().message()));
      *out = *value;
    }
    pair.id =
        (*doc)["id"].is_string() ? (*doc)["id"].string_value() : absl::StrCat("line", line_number);
    pairs.push_back(std::move(pair));
  }
  if (pairs.empty()) return absl::InvalidArgumentError(absl::StrCat(path, ": no pairs"));
  return pairs;
}

namespace {

// max_pairs of fidelity and rope-ablation: 0 means every pair.
absl::Status ValidateMaxPairs(int64_t max_pairs) {
  if (max_pairs < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_pairs must be >= 0 (0: all), not ", max_pairs));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status FidelityOptions::Validate() const {
  if (generate_tokens < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("generate_tokens must be >= 1, not ", generate_tokens));
  }
  if (continuation_tokens < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("continuation_tokens must be >= 1, not ", continuation_tokens));
  }
  return ValidateMaxPairs(max_pairs);
}

absl::Status TtftOptions::Validate() const {
  if (lengths.empty()) return absl::InvalidArgumentError("no prompt lengths");
  for (int64_t length : lengths) {
    if (length < 2) {
      return absl::InvalidArgumentError(absl::StrCat("prompt length ", length, " is not >= 2"));
    }
  }
  if (repeats < 1) return absl::InvalidArgumentError("repeats must be >= 1");
  if (!(edit_share >= 0 && edit_share < 1)) {
    return absl::InvalidArgumentError("edit_share must be in [0, 1)");
  }
  return absl::OkStatus();
}

absl::StatusOr<Json> RunFidelity(const Engine& engine, const std::vector<EvalPair>& pairs,
                                 const ReuseOptions& reuse, const FidelityOptions& options) {
  SEMSHARE_RETURN_IF_ERROR(options.Validate());
  const Model& model = engine.model();
  SamplingOptions greedy;
  greedy.max_tokens = options.generate_tokens;
  ReuseOptions full = reuse;
  full.method = ReuseMethod::kFull;
  full.retention = RetentionOptions{};

  Json rows = Json::MakeArray();
  std::vector<double> rouge, ppl, top1, recompute, kept, rouge_all, ppl_all, top1_all;
  int64_t hits = 0;
  int64_t count = 0;
  for (const EvalPair& pair : pairs) {
    if (options.max_pairs > 0 && count >= options.max_pairs) break;
    ++count;
    SEMSHARE_ASSIGN_OR_RETURN(std::vector<int32_t> ref_ids, model.Tokenize(pair.reference, true));
    SEMSHARE_ASSIGN_OR_RETURN(std::vector<int32_t> target_ids, model.Tokenize(pair.target, true));
    SEMSHARE_ASSIGN_OR_RETURN(std::vector<int32_t> continuation,
                              model.Tokenize(pair.continuation, false));
    if (static_cast<int32_t>(continuation.size()) > options.continuation_tokens) {
      continuation.resize(static_cast<size_t>(options.continuation_tokens));
    }
    SEMSHARE_ASSIGN_OR_RETURN(Reference reference, engine.BuildReference(ref_ids, reuse.ecache));

    // One prefill per method; decoding changes a cache, so each use after the first gets a copy.
    SEMSHARE_ASSIGN_OR_RETURN(PrefillOutcome full_prefill,
                              engine.Prefill(target_ids, nullptr, full));
    SEMSHARE_ASSIGN_OR_RETURN(GenerateResult baseline,
                              engine.GenerateFrom(full_prefill.Clone(), full, greedy));
    SEMSHARE_ASSIGN_OR_RETURN(double full_nll,
                              engine.ContinuationNll(&full_prefill, continuation, full));
    SEMSHARE_ASSIGN_OR_RETURN(PrefillOutcome method_prefill,
                              engine.Prefill(target_ids, &reference, reuse));
    SEMSHARE_ASSIGN_OR_RETURN(GenerateResult served,
                              engine.GenerateFrom(method_prefill.Clone(), reuse, greedy));

    SEMSHARE_ASSIGN_OR_RETURN(
        const double top1_agree,
        TeacherForcedAgreement(engine, method_prefill.Clone(), baseline.tokens, reuse));
    SEMSHARE_ASSIGN_OR_RETURN(double method_nll,
                              engine.ContinuationNll(&method_prefill, continuation, reuse));
    const double rouge_l = RougeLF1(served.tokens, baseline.tokens);
    const double ppl_ratio = std::exp(method_nll - full_nll);
    const bool hit = served.prefill.hit;
    Json row;
    row["id"] = pair.id;
    row["reference_tokens"] = static_cast<int64_t>(ref_ids.size());
    row["target_tokens"] = static_cast<int64_t>(target_ids.size());
    row["similarity"] = served.prefill.similarity;
    row["hit"] = hit;
    row["rouge_l"] = rouge_l;
    row["same_prefix_tokens"] = SamePrefixTokens(served.tokens, baseline.tokens);
    row["ppl_ratio"] = ppl_ratio;
    row["top1_agree"] = top1_agree;
    row["first_token_agree"] = !served.tokens.empty() && !baseline.tokens.empty() &&
                               served.tokens.front() == baseline.tokens.front();
    row["recompute_share"] = served.prefill.recompute_share;
    row["compute_share"] = served.prefill.compute_share;
    row["unmatched_tokens"] = served.prefill.unmatched_tokens;
    row["kv_kept_share"] = served.kv_kept_share;
    row["kv_kept_share_prefill"] = served.prefill.kv_kept_share;
    rows.push_back(row);
    rouge_all.push_back(rouge_l);
    ppl_all.push_back(ppl_ratio);
    top1_all.push_back(top1_agree);
    if (hit) {
      ++hits;
      rouge.push_back(rouge_l);
      ppl.push_back(ppl_ratio);
      top1.push_back(top1_agree);
      recompute.push_back(served.prefill.recompute_share);
      kept.push_back(served.kv_kept_share);
    }
  }
  Json summary;
  summary["pairs"] = count;
  summary["hits"] = hits;
  summary["hit_rate"] = count ? static_cast<double>(hits) / static_cast<double>(count) : 0.0;
  summary["means_over"] = "hits";
  summary["rouge_l_mean"] = Mean(rouge);
  summary["ppl_ratio_mean"] = Mean(ppl);
  summary["top1_agree_mean"] = Mean(top1);
  summary["recompute_share_mean"] = Mean(recompute);
  summary["kv_kept_share_mean"] = Mean(kept);
  summary["rouge_l_mean_all_pairs"] = Mean(rouge_all);
  summary["ppl_ratio_mean_all_pairs"] = Mean(ppl_all);
  summary["top1_agree_mean_all_pairs"] = Mean(top1_all);
  Json out;
  out["pairs"] = rows;
  out["summary"] = summary;
  return out;
}

absl::StatusOr<Json> RunTtftSweep(const Engine& engine, const ReuseOptions& reuse,
                                  const TtftOptions& options) {
  SEMSHARE_RETURN_IF_ERROR(options.Validate());
  const Model& model = engine.model();
  const ModelConfig& c = model.config();
  SamplingOptions one;
  one.max_tokens = 1;
  Json rows = Json::MakeArray();
  for (int64_t length : options.lengths) {
    const SyntheticPair pair = MakeSyntheticPair(
        length, options.edit_share, static_cast<int32_t>(c.vocab_size),
        options.seed + static_cast<uint64_t>(length), static_cast<int32_t>(c.bos_token_id));
    SEMSHARE_ASSIGN_OR_RETURN(Reference reference,
                              engine.BuildReference(pair.reference, reuse.ecache));
    Json row;
    row["tokens"] = length;
    // What the bypass predicts, to check its cost model against the measured times (asked
    // first, so that measuring its fixed costs, when it does, is not timed).
    const ReusePrediction p = engine.Predict(length, length, reuse);
    row["predicted_ms"]["full"] = p.full_ms;
    row["predicted_ms"]["semshare"] = p.reuse_ms;
    row["predicted_ms"]["full_fixed"] = p.full_fixed_ms;
    row["predicted_ms"]["semshare_fixed"] = p.reuse_fixed_ms;
    row["predicted_ms"]["full_work"] = p.full_work_ms;
    row["predicted_ms"]["semshare_work"] = p.reuse_work_ms;
    double full_ms = 0;
    for (ReuseMethod method : {ReuseMethod::kFull, ReuseMethod::kPrefix, ReuseMethod::kSemShare}) {
      ReuseOptions options_for_method = reuse;
      options_for_method.method = method;
      std::vector<double> ttfts;
      GenerateResult last;
      // A GPU's first runs pay for kernel selection and allocator growth; time what a warm
      // server sees. The CPU needs no warm-up (and a 5,120-token prefill takes seconds there).
      if (model.device().is_cuda()) {
        SEMSHARE_ASSIGN_OR_RETURN(
            last, engine.Generate(pair.target, &reference, options_for_method, one));
      }
      ResetPeakDeviceMemory(model.device());
      for (int32_t r = 0; r < options.repeats; ++r) {
        SEMSHARE_ASSIGN_OR_RETURN(
            last, engine.Generate(pair.target, &reference, options_for_method, one));
        ttfts.push_back(last.ttft_ms);
      }
      const std::string name = ReuseMethodName(method);
      const double median = Median(ttfts);
      Json m;
      m["ttft_ms"] = median;
      m["kv_bytes"] = last.kv_bytes;
      m["hit"] = last.prefill.hit;
      m["bypassed"] = last.prefill.bypassed;
      m["similarity"] = last.prefill.similarity;
      m["recompute_share"] = last.prefill.recompute_share;
      m["compute_share"] = last.prefill.compute_share;
      m["stages_ms"]["encode"] = last.prefill.times.encode_ms;
      m["stages_ms"]["match"] = last.prefill.times.match_ms;
      m["stages_ms"]["rearrange"] = last.prefill.times.rearrange_ms;
      m["stages_ms"]["prefill"] = last.prefill.times.prefill_ms;
      m["stages_ms"]["retention"] = last.prefill.times.retention_ms;
      m["peak_rss_mb"] = PeakRssMb();
      m["peak_device_mb"] = PeakDeviceMemoryMb(model.device());
      row[name] = m;
      if (method == ReuseMethod::kFull) full_ms = median;
      if (method == ReuseMethod::kSemShare) row["speedup"] = median > 0 ? full_ms / median : 0.0;
      if (method == ReuseMethod::kPrefix)
        row["prefix_speedup"] = median > 0 ? full_ms / median : 0.0;
    }
    rows.push_back(row);
  }
  Json out;
  out["rows"] = rows;
  out["dtype"] = std::string(c10::toString(model.dtype()));
  out["edit_share"] = options.edit_share;
  out["repeats"] = options.repeats;
  return out;
}

absl::StatusOr<Json> RunRopeAblation(const Engine& engine, const std::vector<EvalPair>& pairs,
                                     const ReuseOptions& reuse, int64_t max_pairs) {
  SEMSHARE_RETURN_IF_ERROR(ValidateMaxPairs(max_pairs));
  const Model& model = engine.model();
  struct Config {
    const char* name;
    bool ecache_rope;
    bool rerotate;
  };
  const Config configs[] = {{"ecache_rope+rerotate", true, true},
                            {"no_ecache_rope", false, true},
                            {"no_rerotate", true, false},
                            {"neither", false, false}};
  std::vector<std::vector<double>> deviations(4);
  std::vector<std::vector<double>> similarities(4);
  int64_t count = 0;
  for (const EvalPair& pair : pairs) {
    if (max_pairs > 0 && count >= max_pairs) break;
    ++count;
    SEMSHARE_ASSIGN_OR_RETURN(std::vector<int32_t> ref_ids, model.Tokenize(pair.reference, true));
    SEMSHARE_ASSIGN_OR_RETURN(std::vector<int32_t> target_ids, model.Tokenize(pair.target, true));
    SEMSHARE_ASSIGN_OR_RETURN(Reference reference, engine.BuildReference(ref_ids, reuse.ecache));
    KVCache truth = model.NewCache(static_cast<int64_t>(target_ids.size()));
    model.Prefill(target_ids, &truth);
    const int64_t n = static_cast<int64_t>(target_ids.size());
    for (size_t k = 0; k < 4; ++k) {
      ECacheOptions ecache = reuse.ecache;
      ecache.use_rope = configs[k].ecache_rope;
      SEMSHARE_ASSIGN_OR_RETURN(TokenCodes target_codes, engine.EncodeCodes(target_ids, ecache));
      SEMSHARE_ASSIGN_OR_RETURN(TokenCodes ref_codes, engine.EncodeCodes(ref_ids, ecache));
      SEMSHARE_ASSIGN_OR_RETURN(TokenMapping mapping,
                                MapTokens(target_codes, ref_codes, reuse.mapping));
      const at::Tensor source =
          at::tensor(std::vector<int64_t>(mapping.source.begin(), mapping.source.end()), at::kLong)
              .to(model.device());
      const at::Tensor positions =
          at::arange(n, at::TensorOptions().dtype(at::kLong).device(model.device()));
      const KVCache rearranged =
          RearrangeKV(reference.kv, source, positions, model.rope(), configs[k].rerotate);
      double total = 0;
      for (size_t l = 0; l < truth.layers.size(); ++l) {
        const at::Tensor true_kv =
            at::cat({truth.layers[l].k(), truth.layers[l].v()}, 0).to(at::kFloat);
        const at::Tensor got =
            at::cat({rearranged.layers[l].k(), rearranged.layers[l].v()}, 0).to(at::kFloat);
        total += ((got - true_kv).norm() / true_kv.norm().clamp_min(1e-12)).item<double>();
      }
      deviations[k].push_back(total / static_cast<double>(truth.layers.size()));
      similarities[k].push_back(mapping.similarity);
    }
  }
  Json rows = Json::MakeArray();
  for (size_t k = 0; k < 4; ++k) {
    Json row;
    row["config"] = configs[k].name;
    row["ecache_rope"] = configs[k].ecache_rope;
    row["rerotate_keys"] = configs[k].rerotate;
    row["relative_l2_deviation_mean"] = Mean(deviations[k]);
    row["similarity_mean"] = Mean(similarities[k]);
    rows.push_back(row);
  }
  Json out;
  out["pairs"] = count;
  out["rows"] = rows;
  return out;
}

absl::Status DecodeSweepOptions::Validate() const {
  if (batch_sizes.empty()) return absl::InvalidArgumentError("no batch sizes");
  for (int64_t b : batch_sizes) {
    if (b < 1) return absl::InvalidArgumentError("batch sizes must be >= 1");
  }
  if (prompt_tokens < 1) return absl::InvalidArgumentError("prompt tokens must be >= 1");
  if (decode_tokens < 2) return absl::InvalidArgumentError("decode tokens must be >= 2");
  if (repeats < 1) return absl::InvalidArgumentError("repeats must be >= 1");
  return absl::OkStatus();
}

absl::StatusOr<Json> RunDecodeSweep(const Engine& engine, const ReuseOptions& reuse,
                                    const DecodeSweepOptions& options) {
  SEMSHARE_RETURN_IF_ERROR(options.Validate());
  const ModelConfig& c = engine.model().config();
  const int64_t largest = *std::max_element(options.batch_sizes.begin(), options.batch_sizes.end());
  std::mt19937 rng(static_cast<uint32_t>(options.seed));
  std::uniform_int_distribution<int32_t> token(0, static_cast<int32_t>(c.vocab_size) - 1);
  std::vector<std::vector<int32_t>> prompts(static_cast<size_t>(largest));
  std::vector<PrefillOutcome> prefills;
  ReuseOptions full = reuse;
  full.method = ReuseMethod::kFull;
  for (auto& prompt : prompts) {
    prompt.resize(static_cast<size_t>(options.prompt_tokens));
    for (int32_t& id : prompt) id = token(rng);
    SEMSHARE_ASSIGN_OR_RETURN(PrefillOutcome prefill, engine.Prefill(prompt, nullptr, full));
    prefills.push_back(std::move(prefill));
  }
  SamplingOptions sampling;
  sampling.max_tokens = options.decode_tokens;  // no stop tokens: every sequence runs its length
  // Decodes the first b prompts together; returns the median time and each one's tokens.
  const auto decode = [&](int64_t b,
                          std::vector<std::vector<int32_t>>* tokens) -> absl::StatusOr<double> {
    std::vector<double> times;
    for (int32_t r = 0; r < options.repeats; ++r) {
      std::vector<DecodeSequence> sequences;
      for (int64_t i = 0; i < b; ++i) {
        SEMSHARE_ASSIGN_OR_RETURN(
            DecodeSequence s, engine.StartDecode(prefills[static_cast<size_t>(i)].Clone(), reuse,
                                                 sampling, SteadyClock::now()));
        sequences.push_back(std::move(s));
      }
      std::vector<DecodeSequence*> batch;
      batch.reserve(sequences.size());
      for (DecodeSequence& s : sequences) batch.push_back(&s);
      const auto start = SteadyClock::now();
      while (std::any_of(batch.begin(), batch.end(),
                         [](const DecodeSequence* s) { return !s->finished; })) {
        SEMSHARE_RETURN_IF_ERROR(engine.DecodeStep(batch));
      }
      times.push_back(MillisSince(start));
      tokens->clear();
      for (DecodeSequence& s : sequences) tokens->push_back(s.tokens);
    }
    return Median(times);
  };
  std::vector<std::vector<int32_t>> alone(static_cast<size_t>(largest));
  for (int64_t i = 0; i < largest; ++i) {
    std::vector<std::vector<int32_t>> one;
    std::swap(prompts[0], prompts[static_cast<size_t>(i)]);
    std::swap(prefills[0], prefills[static_cast<size_t>(i)]);
    absl::StatusOr<double> ms = decode(1, &one);
    std::swap(prompts[0], prompts[static_cast<size_t>(i)]);
    std::swap(prefills[0], prefills[static_cast<size_t>(i)]);
    if (!ms.ok()) return ms.status();
    alone[static_cast<size_t>(i)] = one.front();
  }
  Json rows = Json::MakeArray();
  double single_rate = 0;
  for (int64_t b : options.batch_sizes) {
    std::vector<std::vector<int32_t>> tokens;
    SEMSHARE_ASSIGN_OR_RETURN(const double ms, decode(b, &tokens));
    // The first token comes from the prefill's logits; the steps make the other ones.
    const double steps = static_cast<double>(options.decode_tokens - 1);
    const double rate = static_cast<double>(b) * steps / (ms / 1e3);
    if (b == 1) single_rate = rate;
    bool same = true;
    for (int64_t i = 0; i < b; ++i)
      same = same && tokens[static_cast<size_t>(i)] == alone[static_cast<size_t>(i)];
    Json row;
    row["batch"] = b;
    row["decode_ms"] = ms;
    row["step_ms"] = ms / steps;
    row["tokens_per_second"] = rate;
    row["same_tokens_as_alone"] = same;
    rows.push_back(row);
  }
  for (Json& row : rows.array_items()) {
    row["speedup_over_one"] =
        single_rate > 0 ? row["tokens_per_second"].number_value() / single_rate : 0.0;
  }
  Json result;
  result["rows"] = rows;
  result["prompt_tokens"] = options.prompt_tokens;
  result["decode_tokens"] = options.decode_tokens;
  result["repeats"] = options.repeats;
  return result;
}

}  // namespace semshare
