#include "cache_node/reference_index.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <exception>
#include <limits>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "faiss/IndexIDMap.h"
#include "faiss/IndexLSH.h"
#include "faiss/impl/IDSelector.h"

namespace semshare::cache_node {
namespace {

using FaissId = faiss::Index::idx_t;

absl::Status FaissError(absl::string_view what, const std::exception& e) {
  return absl::InternalError(absl::StrCat("faiss ", what, ": ", e.what()));
}

// One query is too little work for a thread team, and idle OpenMP workers spin for a while
// after each region, taking cores from concurrent searches: run single-query FAISS calls on
// the calling thread. (The setting is per thread; it is restored on exit.)
class SingleThreadedOmp {
 public:
  SingleThreadedOmp() : previous_(omp_get_max_threads()) { omp_set_num_threads(1); }
  ~SingleThreadedOmp() { omp_set_num_threads(previous_); }

 private:
  const int previous_;
};

absl::Status CheckCodes(const TokenCodes& codes, int32_t bits, absl::string_view what) {
  if (codes.nbits != bits) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " codes are ", codes.nbits, " bits, the model's are ", bits));
  }
  if (codes.size() == 0 ||
      codes.words.size() != static_cast<size_t>(codes.size() * codes.words_per_code())) {
    return absl::InvalidArgumentError(absl::StrCat(what, " codes are empty or ragged"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ReferenceIndexOptions::Validate() const {
  if (sketch_dim <= 0 || code_bits <= 0 || lsh_bits <= 0 || sample_tokens <= 0 ||
      max_exact_mappings <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("reference index: sketch_dim (", sketch_dim, "), code_bits (", code_bits,
                     "), lsh_bits (", lsh_bits, "), sample_tokens (", sample_tokens,
                     ") and max_exact_mappings (", max_exact_mappings, ") must all be > 0"));
  }
  return mapping.Validate();
}

double SampledSimilarity(const TokenCodes& target, absl::Span<const int32_t> positions,
                         const TokenCodes& reference, const MappingOptions& options) {
  // MapTokens over the sampled target tokens alone: its similarity is the same formula,
  // averaged over the sample. One thread: the work is small and searches run in parallel.
  TokenCodes sample;
  sample.nbits = target.nbits;
  const int32_t words = target.words_per_code();
  sample.words.reserve(positions.size() * words);
  for (int32_t p : positions) {
    sample.words.insert(sample.words.end(), target.code(p), target.code(p) + words);
  }
  MappingOptions one_thread = options;
  one_thread.num_threads = 1;
  absl::StatusOr<TokenMapping> mapping = MapTokens(sample, reference, one_thread);
  return mapping.ok() ? mapping->similarity : 0.0;
}

absl::StatusOr<std::unique_ptr<ReferenceIndex>> ReferenceIndex::Create(
    const ReferenceIndexOptions& options) {
  SEMSHARE_RETURN_IF_ERROR(options.Validate());
  try {
    SingleThreadedOmp single;  // the rotation's QR is many tiny BLAS calls
    // SimHash: sign bits of a fixed random rotation of the sketch, compared by Hamming
    // distance. No training; the rotation's seed is fixed, so a rebuilt index is identical.
    auto lsh = std::make_unique<faiss::IndexLSH>(options.sketch_dim, options.lsh_bits,
                                                 /*rotate_data=*/true,
                                                 /*train_thresholds=*/false);
    auto map = std::make_unique<faiss::IndexIDMap2>(lsh.release());
    map->own_fields = true;
    return std::unique_ptr<ReferenceIndex>(new ReferenceIndex(options, std::move(map)));
  } catch (const std::exception& e) {
    return FaissError("create", e);
  }
}

ReferenceIndex::ReferenceIndex(const ReferenceIndexOptions& options,
                               std::unique_ptr<faiss::Index> sketches)
    : options_(options), sketches_(std::move(sketches)) {}

ReferenceIndex::~ReferenceIndex() = default;

int64_t ReferenceIndex::size() const {
  absl::ReaderMutexLock lock(&mu_);
  return static_cast<int64_t>(entries_.size());
}

absl::Status ReferenceIndex::Add(std::vector<IndexedReference> references) {
  std::vector<float> sketches;
  std::vector<FaissId> ids;
  sketches.reserve(references.size() * options_.sketch_dim);
  for (const IndexedReference& r : references) {
    SEMSHARE_RETURN_IF_ERROR(CheckCodes(r.codes, options_.code_bits, "reference"));
    if (static_cast<int64_t>(r.sketch.size()) != options_.sketch_dim) {
      return absl::InvalidArgumentError(absl::StrCat("reference sketch has ", r.sketch.size(),
                                                     " values, the model's ", options_.sketch_dim));
    }
    sketches.insert(sketches.end(), r.sketch.begin(), r.sketch.end());
    ids.push_back(static_cast<FaissId>(r.uid));
  }
  absl::MutexLock lock(&mu_);
  for (size_t i = 0; i < references.size(); ++i) {
    if (entries_.contains(references[i].uid) ||
        std::count(ids.begin(), ids.begin() + i, ids[i]) > 0) {
      return absl::AlreadyExistsError(absl::StrCat("uid ", references[i].uid, " already indexed"));
    }
  }
  try {
    // Even the batch rebuilt at open (one GEMM) is faster alone than with spinning helpers.
    SingleThreadedOmp single;
    sketches_->add_with_ids(static_cast<FaissId>(ids.size()), sketches.data(), ids.data());
  } catch (const std::exception& e) {
    return FaissError("add", e);
  }
  for (IndexedReference& r : references) {
    entries_.emplace(r.uid, Entry{std::move(r.reference_id), std::move(r.codes)});
  }
  return absl::OkStatus();
}

absl::Status ReferenceIndex::Remove(absl::Span<const uint64_t> uids) {
  std::vector<FaissId> ids;
  absl::MutexLock lock(&mu_);
  for (uint64_t uid : uids) {
    if (entries_.erase(uid) > 0) ids.push_back(static_cast<FaissId>(uid));
  }
  if (ids.empty()) return absl::OkStatus();
  try {
    SingleThreadedOmp single;
    sketches_->remove_ids(faiss::IDSelectorBatch(ids.size(), ids.data()));
  } catch (const std::exception& e) {
    return FaissError("remove", e);
  }
  return absl::OkStatus();
}

absl::StatusOr<IndexSearchResult> ReferenceIndex::Search(const TokenCodes& target,
                                                         absl::Span<const float> sketch,
                                                         int32_t top_k, int32_t candidates) const {
  SEMSHARE_RETURN_IF_ERROR(CheckCodes(target, options_.code_bits, "target"));
  if (static_cast<int64_t>(sketch.size()) != options_.sketch_dim) {
    return absl::InvalidArgumentError(absl::StrCat("target sketch has ", sketch.size(),
                                                   " values, the model's ", options_.sketch_dim));
  }
  if (top_k <= 0 || candidates <= 0) {
    return absl::InvalidArgumentError("top_k and candidates must be > 0");
  }
  // Evenly spread, deterministic sample positions.
  const int64_t n = target.size();
  const int64_t num_samples = std::min<int64_t>(options_.sample_tokens, n);
  std::vector<int32_t> positions(num_samples);
  for (int64_t k = 0; k < num_samples; ++k) {
    positions[k] = static_cast<int32_t>((2 * k + 1) * n / (2 * num_samples));
  }

  IndexSearchResult result;
  absl::ReaderMutexLock lock(&mu_);
  if (entries_.empty()) return result;
  const int64_t k =
      std::min<int64_t>(std::max(candidates, top_k), static_cast<int64_t>(entries_.size()));
  std::vector<float> distances(k);
  std::vector<FaissId> labels(k, -1);
  try {
    SingleThreadedOmp single;
    sketches_->search(1, sketch.data(), k, distances.data(), labels.data());
  } catch (const std::exception& e) {
    return FaissError("search", e);
  }

  struct Candidate {
    const Entry* entry;
    uint64_t uid;
    double score;
    bool exact;
  };
  std::vector<Candidate> scored;
  for (FaissId label : labels) {
    if (label < 0) continue;
    auto it = entries_.find(static_cast<uint64_t>(label));
    if (it == entries_.end()) continue;
    scored.push_back({&it->second, it->first,
                      SampledSimilarity(target, positions, it->second.codes, options_.mapping),
                      false});
  }
  if (scored.empty()) return result;
  const auto better = [](const Candidate& a, const Candidate& b) {
    return a.score != b.score ? a.score > b.score : a.uid < b.uid;
  };
  // Map the best estimate exactly; while another estimate still beats the best exact
  // similarity, map that one too (bounded).
  size_t winner = scored.size();
  for (int32_t round = 0; round < options_.max_exact_mappings; ++round) {
    size_t best = 0;
    for (size_t i = 1; i < scored.size(); ++i) {
      if (better(scored[i], scored[best])) best = i;
    }
    if (scored[best].exact) break;
    SEMSHARE_ASSIGN_OR_RETURN(TokenMapping mapping,
                              MapTokens(target, scored[best].entry->codes, options_.mapping));
    scored[best].score = mapping.similarity;
    scored[best].exact = true;
    if (winner == scored.size() || better(scored[best], scored[winner])) {
      winner = best;
      result.best_mapping = std::move(mapping);
    }
  }
  std::swap(scored[0], scored[winner]);
  std::sort(scored.begin() + 1, scored.end(), better);
  scored.resize(std::min<size_t>(scored.size(), top_k));
  for (const Candidate& c : scored) {
    result.matches.push_back(
        {c.uid, c.entry->reference_id, c.entry->codes.size(), c.score, c.exact});
  }
  return result;
}

}  // namespace semshare::cache_node
