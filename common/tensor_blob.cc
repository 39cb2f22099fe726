#include "common/tensor_blob.h"

#include <array>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace semshare {
namespace {

constexpr char kMagic[4] = {'S', 'S', 'T', 'B'};
constexpr uint8_t kVersion = 1;
constexpr int64_t kMaxRank = 8;
// magic(4) version(1) dtype(1) rank(1) reserved(1); dims 8 bytes each; payload length(8).
constexpr int64_t kFixedHeader = 8;
constexpr int64_t kCrcBytes = 4;

// The header is written little-endian byte by byte so the format does not depend on the
// host; the payload stays in host order (the engine and cache node share one architecture).
void PutU64(std::string* out, uint64_t v) {
  char buf[8];
  for (int i = 0; i < 8; ++i) buf[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  out->append(buf, 8);
}
void PutU32(std::string* out, uint32_t v) {
  char buf[4];
  for (int i = 0; i < 4; ++i) buf[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  out->append(buf, 4);
}
uint64_t GetU64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}
uint32_t GetU32(const char* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

bool ValidDType(uint8_t value) { return value >= 1 && value <= 3; }

// Multiplies non-negative dims; false on a negative dim or overflow past 2^62.
bool ElementCount(const std::vector<int64_t>& shape, int64_t* count) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) return false;
    if (d != 0 && n > (int64_t{1} << 62) / d) return false;
    n *= d;
  }
  *count = n;
  return true;
}

// --- CRC32C ---------------------------------------------------------------------------------

constexpr uint32_t kPoly = 0x82f63b78u;  // reflected Castagnoli polynomial

std::array<std::array<uint32_t, 256>, 8> MakeTables() {
  std::array<std::array<uint32_t, 256>, 8> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ kPoly : c >> 1;
    t[0][i] = c;
  }
  for (uint32_t i = 0; i < 256; ++i) {
    for (int s = 1; s < 8; ++s) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xff];
  }
  return t;
}

const std::array<std::array<uint32_t, 256>, 8>& Tables() {
  static const auto* tables = new std::array<std::array<uint32_t, 256>, 8>(MakeTables());
  return *tables;
}

// Slicing-by-8 on the inverted state.
uint32_t Crc32cTable(const char* p, size_t n, uint32_t state) {
  const auto& t = Tables();
  const auto* b = reinterpret_cast<const uint8_t*>(p);
  while (n >= 8) {
    uint64_t v;
    std::memcpy(&v, b, 8);  // little-endian host
    v ^= state;
    state = t[7][v & 0xff] ^ t[6][(v >> 8) & 0xff] ^ t[5][(v >> 16) & 0xff] ^
            t[4][(v >> 24) & 0xff] ^ t[3][(v >> 32) & 0xff] ^ t[2][(v >> 40) & 0xff] ^
            t[1][(v >> 48) & 0xff] ^ t[0][v >> 56];
    b += 8;
    n -= 8;
  }
  while (n-- > 0) state = (state >> 8) ^ t[0][(state ^ *b++) & 0xff];
  return state;
}

#if defined(__x86_64__)
// One crc32q chain: 8 bytes per ~3 cycles, several GB/s, well above what a KV fetch needs.
__attribute__((target("sse4.2"))) uint32_t Crc32cHwChain(const char* p, size_t n, uint32_t state) {
  uint64_t s = state;
  while (n >= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    s = __builtin_ia32_crc32di(s, v);
    p += 8;
    n -= 8;
  }
  uint32_t s32 = static_cast<uint32_t>(s);
  while (n-- > 0) s32 = __builtin_ia32_crc32qi(s32, static_cast<uint8_t>(*p++));
  return s32;
}

// crc32q has a latency of three cycles but a throughput of one: three independent chains over
// three consecutive blocks run about three times faster than one, then combine. Combining
// needs "the raw CRC state advanced over kBlock zero bytes", a linear map of the 32-bit state,
// tabulated once per byte of the state.
constexpr size_t kBlock = 4096;

struct ZeroShiftTable {
  uint32_t t[4][256];
};

__attribute__((target("sse4.2"))) const ZeroShiftTable& ShiftTable() {
  static const ZeroShiftTable table = [] {
    ZeroShiftTable z;
    const std::string zeros(kBlock, '\0');
    for (int byte = 0; byte < 4; ++byte) {
      for (uint32_t v = 0; v < 256; ++v) {
        z.t[byte][v] = Crc32cHwChain(zeros.data(), kBlock, v << (8 * byte));
      }
    }
    return z;
  }();
  return table;
}

inline uint32_t ShiftOverBlock(const ZeroShiftTable& z, uint32_t s) {
  return z.t[0][s & 0xff] ^ z.t[1][(s >> 8) & 0xff] ^ z.t[2][(s >> 16) & 0xff] ^ z.t[3][s >> 24];
}

__attribute__((target("sse4.2"))) uint32_t Crc32cHw(const char* p, size_t n, uint32_t state) {
  if (n >= 3 * kBlock) {
    const ZeroShiftTable& z = ShiftTable();
    while (n >= 3 * kBlock) {
      uint64_t a = state, b = 0, c = 0;
      for (size_t i = 0; i < kBlock; i += 8) {
        uint64_t va, vb, vc;
        std::memcpy(&va, p + i, 8);
        std::memcpy(&vb, p + kBlock + i, 8);
        std::memcpy(&vc, p + 2 * kBlock + i, 8);
        a = __builtin_ia32_crc32di(a, va);
        b = __builtin_ia32_crc32di(b, vb);
        c = __builtin_ia32_crc32di(c, vc);
      }
      state = ShiftOverBlock(
                  z, ShiftOverBlock(z, static_cast<uint32_t>(a)) ^ static_cast<uint32_t>(b)) ^
              static_cast<uint32_t>(c);
      p += 3 * kBlock;
      n -= 3 * kBlock;
    }
  }
  return Crc32cHwChain(p, n, state);
}

bool HasSse42() {
  static const bool has = __builtin_cpu_supports("sse4.2");
  return has;
}
#endif

}  // namespace

int64_t DTypeSize(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
      return 4;
    case DType::kFloat16:
    case DType::kBFloat16:
      return 2;
  }
  return 0;
}

absl::StatusOr<DType> ParseDType(absl::string_view name) {
  const std::string lower = absl::AsciiStrToLower(name);
  if (lower == "float32" || lower == "fp32") return DType::kFloat32;
  if (lower == "float16" || lower == "fp16" || lower == "half") return DType::kFloat16;
  if (lower == "bfloat16" || lower == "bf16") return DType::kBFloat16;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown dtype '", name, "' (expected float32, float16 or bfloat16)"));
}

std::string DTypeName(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
      return "float32";
    case DType::kFloat16:
      return "float16";
    case DType::kBFloat16:
      return "bfloat16";
  }
  return absl::StrCat("dtype(", static_cast<int>(dtype), ")");
}

int64_t TensorBlob::num_elements() const {
  int64_t n = 0;
  return ElementCount(shape, &n) ? n : -1;
}

int64_t TensorBlobView::num_elements() const {
  int64_t n = 0;
  return ElementCount(shape, &n) ? n : -1;
}

int64_t EncodedTensorBlobSize(int64_t rank, int64_t payload_bytes) {
  return kFixedHeader + 8 * rank + 8 + payload_bytes + kCrcBytes;
}

TensorBlobFraming FrameTensorBlob(const TensorBlob& blob) {
  TensorBlobFraming framing;
  std::string& h = framing.header;
  h.append(kMagic, 4);
  h.push_back(static_cast<char>(kVersion));
  h.push_back(static_cast<char>(blob.dtype));
  h.push_back(static_cast<char>(blob.shape.size()));
  h.push_back(0);
  for (int64_t d : blob.shape) PutU64(&h, static_cast<uint64_t>(d));
  PutU64(&h, blob.data.size());
  PutU32(&framing.trailer, Crc32c(blob.data, Crc32c(h)));
  return framing;
}

std::string EncodeTensorBlob(const TensorBlob& blob) {
  const TensorBlobFraming framing = FrameTensorBlob(blob);
  std::string out;
  out.reserve(framing.header.size() + blob.data.size() + framing.trailer.size());
  out.append(framing.header);
  out.append(blob.data);
  out.append(framing.trailer);
  return out;
}

absl::StatusOr<TensorBlobView> DecodeTensorBlobView(absl::string_view bytes) {
  if (bytes.size() < static_cast<size_t>(kFixedHeader + 8 + kCrcBytes)) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor blob of ", bytes.size(), " bytes is shorter than its header"));
  }
  if (std::memcmp(bytes.data(), kMagic, 4) != 0) {
    return absl::InvalidArgumentError("not a tensor blob (bad magic)");
  }
  // The checksum covers the header too, so check it before trusting any field: a flipped
  // bit anywhere is DataLoss, not a misleading parse error.
  const size_t body = bytes.size() - kCrcBytes;
  const uint32_t stored = GetU32(bytes.data() + body);
  if (Crc32c(bytes.substr(0, body)) != stored) {
    return absl::DataLossError("tensor blob checksum mismatch");
  }
  const auto version = static_cast<uint8_t>(bytes[4]);
  if (version != kVersion) {
    return absl::InvalidArgumentError(absl::StrCat("unsupported tensor blob version ", version));
  }
  const auto dtype = static_cast<uint8_t>(bytes[5]);
  if (!ValidDType(dtype)) {
    return absl::InvalidArgumentError(absl::StrCat("unknown tensor blob dtype ", dtype));
  }
  const int64_t rank = static_cast<uint8_t>(bytes[6]);
  if (rank > kMaxRank) {
    return absl::InvalidArgumentError(absl::StrCat("tensor blob rank ", rank, " > ", kMaxRank));
  }
  const int64_t header = kFixedHeader + 8 * rank + 8;
  if (static_cast<int64_t>(body) < header) {
    return absl::InvalidArgumentError("tensor blob truncated inside its header");
  }
  TensorBlobView view;
  view.dtype = static_cast<DType>(dtype);
  view.shape.resize(rank);
  for (int64_t i = 0; i < rank; ++i) {
    view.shape[i] = static_cast<int64_t>(GetU64(bytes.data() + kFixedHeader + 8 * i));
  }
  const uint64_t payload = GetU64(bytes.data() + kFixedHeader + 8 * rank);
  if (payload != body - header) {
    return absl::InvalidArgumentError(absl::StrCat("tensor blob payload length ", payload,
                                                   " disagrees with its size ", body - header));
  }
  int64_t count = 0;
  if (!ElementCount(view.shape, &count) ||
      static_cast<uint64_t>(count) * DTypeSize(view.dtype) != payload) {
    return absl::InvalidArgumentError(
        absl::StrCat("tensor blob payload of ", payload, " bytes does not match its shape"));
  }
  view.data = bytes.substr(header, payload);
  return view;
}

absl::StatusOr<TensorBlob> DecodeTensorBlob(absl::string_view bytes) {
  absl::StatusOr<TensorBlobView> view = DecodeTensorBlobView(bytes);
  if (!view.ok()) return view.status();
  TensorBlob blob;
  blob.dtype = view->dtype;
  blob.shape = std::move(view->shape);
  blob.data.assign(view->data.data(), view->data.size());
  return blob;
}

uint32_t Crc32c(absl::string_view data, uint32_t crc) {
#if defined(__x86_64__)
  if (HasSse42()) return ~Crc32cHw(data.data(), data.size(), ~crc);
#endif
  return Crc32cPortable(data, crc);
}

uint32_t Crc32cPortable(absl::string_view data, uint32_t crc) {
  return ~Crc32cTable(data.data(), data.size(), ~crc);
}

}  // namespace semshare
