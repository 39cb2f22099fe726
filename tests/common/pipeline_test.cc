#include "common/pipeline.h"

#include <gtest/gtest.h>

#include <vector>

namespace semshare {
namespace {

using Push = std::function<absl::Status(int)>;

TEST(PipelineTest, ConsumesEverythingInOrder) {
  std::vector<int> consumed;
  const absl::Status status = PipelineStream<int>(
      2,
      [](const Push& push) {
        for (int i = 0; i < 100; ++i) {
          if (absl::Status s = push(i); !s.ok()) return s;
        }
        return absl::OkStatus();
      },
      [&](const int& i) {
        consumed.push_back(i);
        return absl::OkStatus();
      });
  EXPECT_TRUE(status.ok());
  ASSERT_EQ(consumed.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(consumed[i], i);
}

TEST(PipelineTest, ProducerErrorComesAfterWhatItPushed) {
  std::vector<int> consumed;
  const absl::Status status = PipelineStream<int>(
      4,
      [](const Push& push) {
        for (int i = 0; i < 3; ++i) {
          if (absl::Status s = push(i); !s.ok()) return s;
        }
        return absl::DataLossError("bad blob");
      },
      [&](const int& i) {
        consumed.push_back(i);
        return absl::OkStatus();
      });
  EXPECT_TRUE(absl::IsDataLoss(status));
  EXPECT_EQ(consumed, (std::vector<int>{0, 1, 2}));
}

TEST(PipelineTest, ConsumerErrorStopsTheProducer) {
  int pushed = 0;
  absl::Status seen_by_producer;
  const absl::Status status = PipelineStream<int>(
      1,
      [&](const Push& push) {
        for (int i = 0; i < 1000000; ++i) {
          absl::Status s = push(i);
          if (!s.ok()) {
            seen_by_producer = s;
            return s;
          }
          ++pushed;
        }
        return absl::OkStatus();
      },
      [](const int& i) {
        return i == 5 ? absl::CancelledError("client went away") : absl::OkStatus();
      });
  EXPECT_TRUE(absl::IsCancelled(status));
  EXPECT_TRUE(absl::IsCancelled(seen_by_producer));
  EXPECT_LT(pushed, 1000);
}

}  // namespace
}  // namespace semshare
