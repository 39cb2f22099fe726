#include "inference_worker/engine/safetensors.h"

#include <ATen/ATen.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <new>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/file_util.h"
#include "common/json.h"
#include "common/status_macros.h"

namespace semshare {
namespace {

// Safetensors is little-endian on disk and tensors are copied byte for byte.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors I/O assumes little-endian");

// The reference implementation refuses headers over 100 MB; so do we, before allocating.
constexpr uint64_t kMaxHeaderBytes = 100u << 20;
// Largest integer a JSON number (a double) holds exactly.
constexpr double kMaxExactInteger = 9007199254740992.0;

struct DtypeInfo {
  const char* name;
  at::ScalarType type;
  uint64_t size;
};

constexpr DtypeInfo kDtypes[] = {
    {"BF16", at::kBFloat16, 2}, {"F16", at::kHalf, 2}, {"F32", at::kFloat, 4},
    {"F64", at::kDouble, 8},    {"I64", at::kLong, 8}, {"I32", at::kInt, 4},
    {"I16", at::kShort, 2},     {"I8", at::kChar, 1},  {"U8", at::kByte, 1},
    {"BOOL", at::kBool, 1},
};

const DtypeInfo* FindDtype(const std::string& name) {
  for (const DtypeInfo& info : kDtypes) {
    if (name == info.name) return &info;
  }
  return nullptr;
}

const DtypeInfo* FindDtype(at::ScalarType type) {
  for (const DtypeInfo& info : kDtypes) {
    if (type == info.type) return &info;
  }
  return nullptr;
}

// Closes the descriptor on every return path.
class ScopedFd {
 public:
  explicit ScopedFd(int fd) : fd_(fd) {}
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;
  ~ScopedFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  // Closes now so that a failing close (a late write error) is reported.
  int Release() {
    const int result = fd_ >= 0 ? ::close(fd_) : 0;
    fd_ = -1;
    return result;
  }

 private:
  int fd_;
};

absl::Status ErrnoError(absl::string_view what, const std::string& path) {
  const int error = errno;
  const std::string message = absl::StrCat(what, " ", path, ": ", std::strerror(error));
  if (error == ENOENT) return absl::NotFoundError(message);
  if (error == EACCES || error == EPERM) return absl::PermissionDeniedError(message);
  if (error == ENOSPC) return absl::ResourceExhaustedError(message);
  return absl::InternalError(message);
}

// pread until `size` bytes have arrived; reads past EOF mean the file changed under us.
absl::Status ReadFully(int fd, const std::string& path, void* buffer, uint64_t size,
                       uint64_t offset) {
  char* out = static_cast<char*>(buffer);
  while (size > 0) {
    const ssize_t got = ::pread(fd, out, size, static_cast<off_t>(offset));
    if (got < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("read", path);
    }
    if (got == 0) {
      return absl::DataLossError(absl::StrCat(path, ": unexpected end of file at byte ", offset));
    }
    out += got;
    size -= static_cast<uint64_t>(got);
    offset += static_cast<uint64_t>(got);
  }
  return absl::OkStatus();
}

absl::Status WriteFully(int fd, const std::string& path, const void* buffer, uint64_t size) {
  const char* in = static_cast<const char*>(buffer);
  while (size > 0) {
    const ssize_t put = ::write(fd, in, size);
    if (put < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("write", path);
    }
    in += put;
    size -= static_cast<uint64_t>(put);
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> AsIndex(const Json& value) {
  if (!value.is_number()) return absl::InvalidArgumentError("not a number");
  const double number = value.number_value();
  if (number < 0 || number != std::floor(number) || number > kMaxExactInteger) {
    return absl::InvalidArgumentError("not a non-negative integer");
  }
  return static_cast<uint64_t>(number);
}

struct HeaderEntry {
  std::string name;
  const DtypeInfo* dtype = nullptr;
  std::vector<int64_t> shape;
  uint64_t begin = 0;
  uint64_t end = 0;
};

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

absl::StatusOr<HeaderEntry> ParseEntry(const std::string& path, const std::string& name,
                                       const Json& value, uint64_t data_size) {
  const std::string where = absl::StrCat(path, ": tensor '", name, "'");
  if (!value.is_object()) return absl::DataLossError(absl::StrCat(where, ": not an object"));
  HeaderEntry entry;
  entry.name = name;

  const Json& dtype = value["dtype"];
  if (!dtype.is_string()) return absl::DataLossError(absl::StrCat(where, ": no dtype"));
  entry.dtype = FindDtype(dtype.string_value());
  if (entry.dtype == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": dtype '", dtype.string_value(),
                     "' is not supported (BF16, F16, F32, F64, I64, I32, I16, I8, U8, BOOL)"));
  }

  const Json& shape = value["shape"];
  if (!shape.is_array()) return absl::DataLossError(absl::StrCat(where, ": no shape"));
  uint64_t bytes = entry.dtype->size;
  for (const Json& dim : shape.array_items()) {
    absl::StatusOr<uint64_t> size = AsIndex(dim);
    if (!size.ok()) {
      return absl::DataLossError(
          absl::StrCat(where, ": shape has an entry that is ", size.status().message()));
    }
    if (__builtin_mul_overflow(bytes, *size, &bytes)) {
      return absl::DataLossError(absl::StrCat(where, ": shape is impossibly large"));
    }
    entry.shape.push_back(static_cast<int64_t>(*size));
  }

  const Json& offsets = value["data_offsets"];
  if (!offsets.is_array() || offsets.array_items().size() != 2) {
    return absl::DataLossError(absl::StrCat(where, ": data_offsets must be [begin, end]"));
  }
  absl::StatusOr<uint64_t> begin = AsIndex(offsets.array_items()[0]);
  absl::StatusOr<uint64_t> end = AsIndex(offsets.array_items()[1]);
  if (!begin.ok() || !end.ok() || *begin > *end) {
    return absl::DataLossError(
        absl::StrCat(where, ": data_offsets must be two integers 0 <= begin <= end"));
  }
  entry.begin = *begin;
  entry.end = *end;
  if (entry.end > data_size) {
    return absl::DataLossError(
        absl::StrCat(where, ": data_offsets [", entry.begin, ", ", entry.end, "] extend past the ",
                     data_size, "-byte data section (file truncated or header corrupt)"));
  }
  if (entry.end - entry.begin != bytes) {
    return absl::DataLossError(absl::StrCat(
        where, ": data_offsets [", entry.begin, ", ", entry.end, "] hold ", entry.end - entry.begin,
        " bytes, but ", dtype.string_value(), " ", ShapeString(entry.shape), " needs ", bytes));
  }
  return entry;
}

absl::StatusOr<at::Tensor> ReadEntry(int fd, const std::string& path, uint64_t data_start,
                                     const HeaderEntry& entry) {
  at::Tensor tensor;
  try {
    tensor = at::empty(entry.shape, at::TensorOptions().dtype(entry.dtype->type));
  } catch (const c10::Error& e) {
    return absl::ResourceExhaustedError(absl::StrCat(
        path, ": tensor '", entry.name, "': cannot allocate: ", e.what_without_backtrace()));
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(
        absl::StrCat(path, ": tensor '", entry.name, "': out of memory"));
  }
  const uint64_t bytes = entry.end - entry.begin;
  if (bytes == 0) return tensor;
  SEMSHARE_RETURN_IF_ERROR(ReadFully(fd, path, tensor.data_ptr(), bytes, data_start + entry.begin));
  if (entry.dtype->type == at::kBool) {
    // A bool byte other than 0 or 1 is undefined behaviour once libtorch reads it.
    const unsigned char* data = static_cast<const unsigned char*>(tensor.data_ptr());
    for (uint64_t i = 0; i < bytes; ++i) {
      if (data[i] > 1) {
        return absl::DataLossError(
            absl::StrCat(path, ": tensor '", entry.name, "': BOOL byte ", i, " is ", data[i]));
      }
    }
  }
  return tensor;
}

absl::StatusOr<Json> ReadJsonFile(const std::string& path) {
  SEMSHARE_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  absl::StatusOr<Json> json = ParseJson(text);
  if (!json.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", json.status().message()));
  }
  return json;
}

}  // namespace

std::string SafetensorsDtypeName(at::ScalarType dtype) {
  const DtypeInfo* info = FindDtype(dtype);
  return info == nullptr ? "" : info->name;
}

absl::StatusOr<TensorMap> ReadSafetensorsFile(const std::string& path, const TensorFilter& wanted) {
  ScopedFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return ErrnoError("cannot open", path);
  struct stat info;
  if (::fstat(fd.get(), &info) != 0) return ErrnoError("cannot stat", path);
  if (!S_ISREG(info.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a regular file"));
  }
  const uint64_t file_size = static_cast<uint64_t>(info.st_size);
  if (file_size < 8) {
    return absl::DataLossError(
        absl::StrCat(path, ": ", file_size, " bytes is too short for a safetensors file"));
  }
  unsigned char length_bytes[8];
  SEMSHARE_RETURN_IF_ERROR(ReadFully(fd.get(), path, length_bytes, 8, 0));
  uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i) header_size = (header_size << 8) | length_bytes[i];
  if (header_size > file_size - 8) {
    return absl::DataLossError(
        absl::StrCat(path, ": header length ", header_size, " exceeds the ", file_size - 8,
                     " bytes that follow it (truncated or not safetensors)"));
  }
  if (header_size > kMaxHeaderBytes) {
    return absl::DataLossError(
        absl::StrCat(path, ": header length ", header_size, " exceeds the 100 MB limit"));
  }
  std::string header_text(header_size, '\0');
  SEMSHARE_RETURN_IF_ERROR(ReadFully(fd.get(), path, header_text.data(), header_size, 8));
  absl::StatusOr<Json> header = ParseJson(header_text);
  if (!header.ok()) {
    return absl::DataLossError(
        absl::StrCat(path, ": header is not valid JSON: ", header.status().message()));
  }
  if (!header->is_object()) {
    return absl::DataLossError(absl::StrCat(path, ": header is not a JSON object"));
  }

  const uint64_t data_start = 8 + header_size;
  const uint64_t data_size = file_size - data_start;
  std::vector<HeaderEntry> entries;
  for (const auto& [name, value] : header->object_items()) {
    if (name == "__metadata__") {
      if (!value.is_object() && !value.is_null()) {
        return absl::DataLossError(absl::StrCat(path, ": __metadata__ is not an object"));
      }
      continue;
    }
    SEMSHARE_ASSIGN_OR_RETURN(HeaderEntry entry, ParseEntry(path, name, value, data_size));
    entries.push_back(std::move(entry));
  }

  // Read in file order: sequential I/O, and overlaps show up between neighbours.
  std::sort(entries.begin(), entries.end(), [](const HeaderEntry& a, const HeaderEntry& b) {
    return std::tie(a.begin, a.end) < std::tie(b.begin, b.end);
  });
  for (size_t i = 1; i < entries.size(); ++i) {
    const HeaderEntry& previous = entries[i - 1];
    if (entries[i].begin < previous.end) {
      return absl::DataLossError(absl::StrCat(path, ": tensors '", previous.name, "' and '",
                                              entries[i].name, "' overlap in the data section"));
    }
  }

  TensorMap tensors;
  for (const HeaderEntry& entry : entries) {
    if (wanted && !wanted(entry.name)) continue;
    SEMSHARE_ASSIGN_OR_RETURN(at::Tensor tensor, ReadEntry(fd.get(), path, data_start, entry));
    tensors.emplace(entry.name, std::move(tensor));
  }
  return tensors;
}

absl::StatusOr<TensorMap> ReadCheckpointTensors(const std::string& dir,
                                                const TensorFilter& wanted) {
  const std::string single = JoinPath(dir, "model.safetensors");
  if (FileExists(single)) return ReadSafetensorsFile(single, wanted);

  const std::string index_path = JoinPath(dir, "model.safetensors.index.json");
  if (!FileExists(index_path)) {
    return absl::NotFoundError(absl::StrCat(
        "checkpoint ", dir, ": neither model.safetensors nor model.safetensors.index.json"));
  }
  SEMSHARE_ASSIGN_OR_RETURN(Json index, ReadJsonFile(index_path));
  const Json& weight_map = index["weight_map"];
  if (!weight_map.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(index_path, ": no 'weight_map' object"));
  }
  std::map<std::string, std::vector<std::string>> names_by_shard;
  for (const auto& [name, shard] : weight_map.object_items()) {
    // Shards live beside the index; a path elsewhere is a corrupt or hostile index.
    if (!shard.is_string() || shard.string_value().empty() ||
        shard.string_value().find('/') != std::string::npos || shard.string_value() == "..") {
      return absl::InvalidArgumentError(
          absl::StrCat(index_path, ": weight_map entry for '", name, "' (", shard.Dump(),
                       ") is not the name of a file beside the index"));
    }
    if (wanted && !wanted(name)) continue;
    names_by_shard[shard.string_value()].push_back(name);
  }
  for (const auto& [shard, names] : names_by_shard) {
    if (!FileExists(JoinPath(dir, shard))) {
      return absl::NotFoundError(absl::StrCat("checkpoint ", dir, ": shard '", shard,
                                              "' listed in model.safetensors.index.json (for '",
                                              names.front(), "') is missing"));
    }
  }

  TensorMap tensors;
  for (const auto& [shard, names] : names_by_shard) {
    const std::string shard_path = JoinPath(dir, shard);
    SEMSHARE_ASSIGN_OR_RETURN(TensorMap shard_tensors, ReadSafetensorsFile(shard_path, wanted));
    for (const std::string& name : names) {
      if (shard_tensors.count(name) == 0) {
        return absl::DataLossError(absl::StrCat("checkpoint ", dir, ": tensor '", name,
                                                "' is mapped to ", shard, " but is not in it"));
      }
    }
    for (auto& [name, tensor] : shard_tensors) {
      if (!tensors.emplace(name, std::move(tensor)).second) {
        return absl::DataLossError(absl::StrCat("checkpoint ", dir, ": tensor '", name,
                                                "' appears in more than one shard"));
      }
    }
  }
  return tensors;
}

absl::StatusOr<int64_t> WriteSafetensorsFileStreaming(
    const std::string& path, const std::vector<SafetensorsEntry>& entries,
    const std::function<absl::StatusOr<at::Tensor>(const SafetensorsEntry&)>& make_tensor) {
  Json header = Json::MakeObject();
  Json metadata = Json::MakeObject();
  metadata["format"] = "pt";
  header["__metadata__"] = std::move(metadata);
  std::vector<uint64_t> sizes;
  uint64_t offset = 0;
  for (const SafetensorsEntry& entry : entries) {
    const DtypeInfo* dtype = FindDtype(entry.dtype);
    if (dtype == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": tensor '", entry.name, "' has dtype ",
                                                     c10::toString(entry.dtype),
                                                     ", which safetensors cannot store"));
    }
    if (entry.name == "__metadata__" || header.contains(entry.name)) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": tensor name '", entry.name, "' is reserved or repeated"));
    }
    uint64_t bytes = dtype->size;
    Json shape = Json::MakeArray();
    for (int64_t dim : entry.shape) {
      if (dim < 0 || __builtin_mul_overflow(bytes, static_cast<uint64_t>(dim), &bytes)) {
        return absl::InvalidArgumentError(absl::StrCat(
            path, ": tensor '", entry.name, "' has invalid shape ", ShapeString(entry.shape)));
      }
      shape.push_back(dim);
    }
    Json description = Json::MakeObject();
    description["dtype"] = dtype->name;
    description["shape"] = std::move(shape);
    description["data_offsets"] = Json(Json::Array{Json(offset), Json(offset + bytes)});
    header[entry.name] = std::move(description);
    sizes.push_back(bytes);
    offset += bytes;
  }
  std::string header_text = header.Dump();
  // Pad with spaces so the data section starts 8-byte aligned, as the reference writer does;
  // readers that mmap the file can then view tensors in place.
  header_text.append((8 - header_text.size() % 8) % 8, ' ');
  unsigned char length_bytes[8];
  for (int i = 0; i < 8; ++i) {
    length_bytes[i] = static_cast<unsigned char>((header_text.size() >> (8 * i)) & 0xff);
  }

  const std::string temporary = absl::StrCat(path, ".tmp");
  ScopedFd fd(::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (fd.get() < 0) return ErrnoError("cannot create", temporary);
  auto write_all = [&]() -> absl::Status {
    SEMSHARE_RETURN_IF_ERROR(WriteFully(fd.get(), temporary, length_bytes, 8));
    SEMSHARE_RETURN_IF_ERROR(
        WriteFully(fd.get(), temporary, header_text.data(), header_text.size()));
    for (size_t i = 0; i < entries.size(); ++i) {
      const SafetensorsEntry& entry = entries[i];
      SEMSHARE_ASSIGN_OR_RETURN(at::Tensor tensor, make_tensor(entry));
      try {
        if (!tensor.defined() || tensor.scalar_type() != entry.dtype ||
            tensor.sizes() != at::IntArrayRef(entry.shape)) {
          return absl::InternalError(absl::StrCat(path, ": tensor '", entry.name,
                                                  "' was made with the wrong dtype or shape"));
        }
        tensor = tensor.cpu().contiguous();
      } catch (const c10::Error& e) {
        return absl::InternalError(
            absl::StrCat(path, ": tensor '", entry.name, "': ", e.what_without_backtrace()));
      }
      if (sizes[i] > 0) {
        SEMSHARE_RETURN_IF_ERROR(WriteFully(fd.get(), temporary, tensor.data_ptr(), sizes[i]));
      }
    }
    if (fd.Release() != 0) return ErrnoError("cannot close", temporary);
    if (std::rename(temporary.c_str(), path.c_str()) != 0) {
      return ErrnoError(absl::StrCat("cannot rename ", temporary, " to"), path);
    }
    return absl::OkStatus();
  };
  absl::Status status = write_all();
  if (!status.ok()) {
    fd.Release();
    std::remove(temporary.c_str());
    return status;
  }
  return static_cast<int64_t>(8 + header_text.size() + offset);
}

absl::Status WriteSafetensorsFile(const std::string& path, const TensorMap& tensors) {
  std::vector<SafetensorsEntry> entries;
  for (const auto& [name, tensor] : tensors) {
    if (!tensor.defined()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": tensor '", name, "' is undefined"));
    }
    entries.push_back({name, tensor.scalar_type(), tensor.sizes().vec()});
  }
  return WriteSafetensorsFileStreaming(
             path, entries,
             [&tensors](const SafetensorsEntry& entry) -> absl::StatusOr<at::Tensor> {
               return tensors.at(entry.name);
             })
      .status();
}

}  // namespace semshare
