#ifndef SEMSHARE_INFERENCE_WORKER_SERVICE_WORKER_SERVICE_H_
#define SEMSHARE_INFERENCE_WORKER_SERVICE_WORKER_SERVICE_H_

#include <grpcpp/server.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/cluster_auth.h"
#include "common/rpc/cluster_metadata.h"
#include "inference_worker/service/worker.h"
#include "semshare/v1/worker.grpc.pb.h"

namespace semshare::worker {

// semshare.v1.Worker over an InferenceWorker: translates protos, authenticates the tenant
// from cluster metadata, nothing else.
class WorkerService final : public v1::Worker::Service {
 public:
  // `worker` must outlive the service. `address` is reported in GenerateStats.worker.
  WorkerService(InferenceWorker* worker, ClusterToken token, std::string address)
      : worker_(worker), token_(std::move(token)), address_(std::move(address)) {}

  grpc::Status Generate(grpc::ServerContext* context, const v1::WorkerGenerateRequest* request,
                        grpc::ServerWriter<v1::WorkerGenerateResponse>* writer) override;
  grpc::Status GetStatus(grpc::ServerContext* context, const v1::GetWorkerStatusRequest* request,
                         v1::WorkerStatus* response) override;

  void set_address(std::string address) { address_ = std::move(address); }

 private:
  // Runs `body`, counts the call in the worker's metrics and translates its status.
  template <typename Body>
  grpc::Status Counted(absl::string_view method, Body body);

  InferenceWorker* worker_;
  const ClusterToken token_;
  std::string address_;
};

struct WorkerServerOptions {
  std::string listen_address;  // host:port; port 0 picks a free one
  int64_t max_message_bytes = kDefaultMaxMessageBytes;

  absl::Status Validate() const;
};

// A running gRPC server with the Worker service and grpc.health.v1.
class WorkerServer {
 public:
  // `worker` must outlive the server. Unavailable if the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<WorkerServer>> Start(InferenceWorker* worker,
                                                             ClusterToken token,
                                                             const WorkerServerOptions& options);
  ~WorkerServer();

  int port() const { return port_; }
  const std::string& address() const { return address_; }  // host:port actually bound

  // Stops accepting calls and waits for those in flight, cancelling them after `grace`.
  void Shutdown(absl::Duration grace = absl::Seconds(5));

 private:
  WorkerServer(std::unique_ptr<WorkerService> service, std::unique_ptr<grpc::Server> server,
               int port, std::string address)
      : service_(std::move(service)),
        server_(std::move(server)),
        port_(port),
        address_(std::move(address)) {}

  std::unique_ptr<WorkerService> service_;
  std::unique_ptr<grpc::Server> server_;
  int port_;
  std::string address_;
  bool shut_down_ = false;
};

}  // namespace semshare::worker

#endif  // SEMSHARE_INFERENCE_WORKER_SERVICE_WORKER_SERVICE_H_
