#include "common/tensor_blob.h"

#include <random>

#include "gtest/gtest.h"

namespace semshare {
namespace {

TensorBlob RandomBlob(DType dtype, std::vector<int64_t> shape, uint64_t seed) {
  TensorBlob blob;
  blob.dtype = dtype;
  blob.shape = std::move(shape);
  blob.data.resize(static_cast<size_t>(blob.num_elements() * DTypeSize(dtype)));
  std::mt19937_64 rng(seed);
  for (char& c : blob.data) c = static_cast<char>(rng());
  return blob;
}

TEST(Crc32cTest, KnownVectors) {
  EXPECT_EQ(Crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(Crc32cPortable("123456789"), 0xE3069283u);
  EXPECT_EQ(Crc32c(""), 0u);
  EXPECT_EQ(Crc32c(std::string(32, '\0')), 0x8A9136AAu);  // RFC 3720 B.4
}

TEST(Crc32cTest, HardwareMatchesTableAndExtends) {
  std::mt19937_64 rng(3);
  std::string data(100003, '\0');
  for (char& c : data) c = static_cast<char>(rng());
  // Past 12,288 bytes (three 4 KiB blocks) the hardware path runs three interleaved chains.
  for (size_t n : {0, 1, 7, 8, 9, 63, 64, 1000, 10007, 12287, 12288, 12289, 24583, 100003}) {
    const absl::string_view part(data.data(), n);
    EXPECT_EQ(Crc32c(part), Crc32cPortable(part)) << n;
  }
  const absl::string_view all(data);
  EXPECT_EQ(Crc32c(all.substr(333), Crc32c(all.substr(0, 333))), Crc32c(all));
  EXPECT_EQ(Crc32c(all.substr(50001), Crc32c(all.substr(0, 50001))), Crc32c(all));
}

TEST(DTypeTest, NamesAndSizes) {
  for (DType d : {DType::kFloat32, DType::kFloat16, DType::kBFloat16}) {
    absl::StatusOr<DType> parsed = ParseDType(DTypeName(d));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, d);
  }
  EXPECT_EQ(DTypeSize(DType::kFloat32), 4);
  EXPECT_EQ(DTypeSize(DType::kBFloat16), 2);
  EXPECT_EQ(*ParseDType("BF16"), DType::kBFloat16);
  EXPECT_EQ(ParseDType("int8").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(TensorBlobTest, RoundTripEveryDType) {
  for (DType d : {DType::kFloat32, DType::kFloat16, DType::kBFloat16}) {
    const TensorBlob blob = RandomBlob(d, {3, 17, 64}, 1);
    const std::string bytes = EncodeTensorBlob(blob);
    EXPECT_EQ(static_cast<int64_t>(bytes.size()), EncodedTensorBlobSize(3, blob.data.size()));
    absl::StatusOr<TensorBlob> back = DecodeTensorBlob(bytes);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(back->dtype, d);
    EXPECT_EQ(back->shape, blob.shape);
    EXPECT_EQ(back->data, blob.data);
    absl::StatusOr<TensorBlobView> view = DecodeTensorBlobView(bytes);
    ASSERT_TRUE(view.ok());
    EXPECT_EQ(view->data, blob.data);
    EXPECT_EQ(view->num_elements(), 3 * 17 * 64);
  }
}

TEST(TensorBlobTest, EmptyAndScalarShapes) {
  const TensorBlob empty = RandomBlob(DType::kFloat32, {2, 0, 8}, 2);
  absl::StatusOr<TensorBlob> back = DecodeTensorBlob(EncodeTensorBlob(empty));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->shape, empty.shape);
  EXPECT_TRUE(back->data.empty());
  const TensorBlob scalar = RandomBlob(DType::kFloat16, {}, 3);
  back = DecodeTensorBlob(EncodeTensorBlob(scalar));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->data.size(), 2u);
}

TEST(TensorBlobTest, EveryFlippedByteIsDataLossOrMalformed) {
  const std::string bytes = EncodeTensorBlob(RandomBlob(DType::kBFloat16, {2, 5, 4}, 4));
  for (size_t i = 0; i < bytes.size(); ++i) {
    std::string bad = bytes;
    bad[i] ^= 0x10;
    absl::StatusOr<TensorBlob> back = DecodeTensorBlob(bad);
    ASSERT_FALSE(back.ok()) << "byte " << i;
    // Only the magic is checked before the checksum.
    EXPECT_EQ(back.status().code(),
              i < 4 ? absl::StatusCode::kInvalidArgument : absl::StatusCode::kDataLoss)
        << "byte " << i;
  }
}

TEST(TensorBlobTest, TruncatedOrGarbageIsRejected) {
  const std::string bytes = EncodeTensorBlob(RandomBlob(DType::kFloat32, {4, 4}, 5));
  EXPECT_FALSE(DecodeTensorBlob(bytes.substr(0, bytes.size() - 1)).ok());
  EXPECT_FALSE(DecodeTensorBlob(bytes.substr(0, 10)).ok());
  EXPECT_EQ(DecodeTensorBlob("").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(DecodeTensorBlob(std::string(100, 'x')).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(TensorBlobTest, ShapeThatDisagreesWithPayloadIsInvalid) {
  TensorBlob blob = RandomBlob(DType::kFloat32, {4, 4}, 6);
  blob.shape = {4, 5};  // a correctly checksummed lie
  EXPECT_EQ(DecodeTensorBlob(EncodeTensorBlob(blob)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace semshare
