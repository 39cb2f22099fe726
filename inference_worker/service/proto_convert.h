#ifndef SEMSHARE_INFERENCE_WORKER_SERVICE_PROTO_CONVERT_H_
#define SEMSHARE_INFERENCE_WORKER_SERVICE_PROTO_CONVERT_H_

#include <string>

#include "inference_worker/service/worker.h"
#include "semshare/v1/worker.pb.h"

// The worker's domain structs to and from semshare.v1 messages.
namespace semshare::worker {

WorkerRequest FromProto(const v1::WorkerGenerateRequest& request, std::string tenant);
// The final stats message of a Generate stream.
v1::GenerateStats StatsToProto(const WorkerReply& reply, const std::string& worker_address);
v1::WorkerStatus StatusToProto(const WorkerLoad& load);

}  // namespace semshare::worker

#endif  // SEMSHARE_INFERENCE_WORKER_SERVICE_PROTO_CONVERT_H_
