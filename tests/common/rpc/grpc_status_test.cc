// absl::Status <-> grpc::Status: code and message, and the error code as a google.rpc.ErrorInfo
// that a client with googleapis' protos reads too.
#include "common/rpc/grpc_status.h"

#include <gtest/gtest.h>

#include "common/error_code.h"
#include "semshare/v1/status.pb.h"

namespace semshare {
namespace {

TEST(GrpcStatusTest, CodeAndMessageRoundTrip) {
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
  EXPECT_TRUE(FromGrpcStatus(grpc::Status::OK).ok());
  const grpc::Status status = ToGrpcStatus(absl::ResourceExhaustedError("queue full"));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(status.error_message(), "queue full");
  EXPECT_TRUE(status.error_details().empty());  // no error code, no details
  const absl::Status back = FromGrpcStatus(status);
  EXPECT_EQ(back, absl::ResourceExhaustedError("queue full"));
  EXPECT_EQ(ErrorCode(back), std::nullopt);
}

TEST(GrpcStatusTest, TheErrorCodeTravelsAsAGoogleRpcErrorInfo) {
  const absl::Status refused = WithErrorCode(
      absl::InvalidArgumentError("the prompt has 9000 tokens"), kContextLengthExceeded);
  const grpc::Status status = ToGrpcStatus(refused);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(), "the prompt has 9000 tokens");

  // What grpcio-status's rpc_status.from_call checks and unpacks: a google.rpc.Status whose
  // code and message equal the call's, holding a google.rpc.ErrorInfo.
  v1::RpcStatus details;
  ASSERT_TRUE(details.ParseFromString(status.error_details()));
  EXPECT_EQ(details.code(), 3);
  EXPECT_EQ(details.message(), status.error_message());
  ASSERT_EQ(details.details_size(), 1);
  EXPECT_EQ(details.details(0).type_url(), "type.googleapis.com/google.rpc.ErrorInfo");
  v1::ErrorInfo info;
  ASSERT_TRUE(info.ParseFromString(details.details(0).value()));
  EXPECT_EQ(info.reason(), "CONTEXT_LENGTH_EXCEEDED");
  EXPECT_EQ(info.domain(), "semshare.dev");

  const absl::Status back = FromGrpcStatus(status);
  EXPECT_TRUE(absl::IsInvalidArgument(back));
  EXPECT_EQ(back.message(), "the prompt has 9000 tokens");
  EXPECT_EQ(ErrorCode(back), "context_length_exceeded");
}

TEST(GrpcStatusTest, DetailsItDoesNotRecogniseAreIgnored) {
  auto from_details = [](const std::string& bytes) {
    return FromGrpcStatus(grpc::Status(grpc::StatusCode::INTERNAL, "boom", bytes));
  };
  // Not a google.rpc.Status at all.
  absl::Status garbage = from_details("\xff\xff\xff\xff not a proto");
  EXPECT_EQ(garbage, absl::InternalError("boom"));
  EXPECT_EQ(ErrorCode(garbage), std::nullopt);

  // Another type of detail, another domain's ErrorInfo, and an ErrorInfo that does not parse.
  v1::RpcStatus details;
  details.set_code(13);
  v1::StatusDetail* retry = details.add_details();
  retry->set_type_url("type.googleapis.com/google.rpc.RetryInfo");
  retry->set_value("\x0a\x02\x08\x01");
  v1::ErrorInfo foreign;
  foreign.set_reason("QUOTA");
  foreign.set_domain("example.com");
  v1::StatusDetail* other = details.add_details();
  other->set_type_url(std::string(kErrorInfoTypeUrl));
  other->set_value(foreign.SerializeAsString());
  v1::StatusDetail* broken = details.add_details();
  broken->set_type_url(std::string(kErrorInfoTypeUrl));
  broken->set_value("\xff\xff");
  const absl::Status ignored = from_details(details.SerializeAsString());
  EXPECT_EQ(ignored, absl::InternalError("boom"));
  EXPECT_EQ(ErrorCode(ignored), std::nullopt);

  // Ours after all that is still found.
  v1::ErrorInfo ours;
  ours.set_reason("CONTEXT_LENGTH_EXCEEDED");
  ours.set_domain("semshare.dev");
  v1::StatusDetail* found = details.add_details();
  found->set_type_url(std::string(kErrorInfoTypeUrl));
  found->set_value(ours.SerializeAsString());
  EXPECT_EQ(ErrorCode(from_details(details.SerializeAsString())), "context_length_exceeded");
}

}  // namespace
}  // namespace semshare
