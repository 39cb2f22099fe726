#include "common/rpc/health_check.h"

#include <grpcpp/client_context.h>
#include <grpcpp/completion_queue.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/support/byte_buffer.h>

#include <vector>

#include "absl/strings/str_cat.h"
#include "common/rpc/grpc_status.h"

namespace semshare {
namespace {

// The two messages involved are one string and one enum field; they are written by hand so
// no health.proto has to be compiled (the server side is gRPC's built-in service).
std::string EncodeRequest(const std::string& service) {
  std::string bytes;
  if (service.empty()) return bytes;
  bytes.push_back(0x0a);  // field 1, length-delimited
  size_t length = service.size();
  while (length >= 0x80) {
    bytes.push_back(static_cast<char>((length & 0x7f) | 0x80));
    length >>= 7;
  }
  bytes.push_back(static_cast<char>(length));
  return bytes + service;
}

// ServingStatus of a HealthCheckResponse; 0 (UNKNOWN) when absent or unreadable.
int DecodeServingStatus(const std::string& bytes) {
  if (bytes.size() >= 2 && bytes[0] == 0x08) return static_cast<unsigned char>(bytes[1]) & 0x7f;
  return 0;
}

}  // namespace

absl::Status CheckHealth(const std::shared_ptr<grpc::Channel>& channel, absl::Duration timeout,
                         const std::string& service, bool wait_for_ready) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  context.set_wait_for_ready(wait_for_ready);
  const std::string request_bytes = EncodeRequest(service);
  grpc::Slice slice(request_bytes);
  grpc::ByteBuffer request(&slice, 1);
  grpc::CompletionQueue queue;
  std::unique_ptr<grpc::GenericClientAsyncResponseReader> call =
      stub.PrepareUnaryCall(&context, "/grpc.health.v1.Health/Check", request, &queue);
  call->StartCall();
  grpc::ByteBuffer response;
  grpc::Status status;
  call->Finish(&response, &status, reinterpret_cast<void*>(1));
  void* tag = nullptr;
  bool ok = false;
  queue.Next(&tag, &ok);
  queue.Shutdown();
  while (queue.Next(&tag, &ok)) {
  }
  if (!status.ok()) return FromGrpcStatus(status);
  std::vector<grpc::Slice> slices;
  if (!response.Dump(&slices).ok()) return absl::InternalError("health check: unreadable response");
  std::string bytes;
  for (const grpc::Slice& s : slices)
    bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  const int serving = DecodeServingStatus(bytes);
  if (serving != 1) return absl::UnavailableError(absl::StrCat("health check: status ", serving));
  return absl::OkStatus();
}

}  // namespace semshare
