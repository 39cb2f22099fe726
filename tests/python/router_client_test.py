#!/usr/bin/python3
"""The semshare.v1 proto from Python (Debian's python3-grpcio): generate stubs with protoc and
grpc_python_plugin, then call the router of a running cluster.

Usage: router_client_test.py CLUSTER_DIR STUB_DIR PROTO_DIR
CLUSTER_DIR holds cluster.env (deploy/local/cluster.sh up). Exits non-zero on any failure."""
import os
import subprocess
import sys


def main():
    cluster_dir, stub_dir, proto_dir = sys.argv[1:4]
    os.makedirs(stub_dir, exist_ok=True)
    protos = [os.path.join(proto_dir, "semshare", "v1", name)
              for name in sorted(os.listdir(os.path.join(proto_dir, "semshare", "v1")))
              if name.endswith(".proto")]
    subprocess.run(["protoc", "-I", proto_dir, "--python_out", stub_dir, "--grpc_out", stub_dir,
                    "--plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin"] + protos, check=True)
    sys.path.insert(0, stub_dir)
    import grpc
    from semshare.v1 import router_pb2, router_pb2_grpc

    env = {}
    with open(os.path.join(cluster_dir, "cluster.env")) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, value = line.split("=", 1)
                env[key.removeprefix("export ").strip()] = value.strip().strip('"').strip("'")
    channel = grpc.insecure_channel(env["SEMSHARE_ROUTER"])
    stub = router_pb2_grpc.RouterStub(channel)
    auth = [("authorization", "Bearer " + env["SEMSHARE_API_KEY"])]

    request = router_pb2.GenerateRequest(prompt="It is a truth universally acknowledged, that a single man",
                                         max_tokens=8)
    responses = list(stub.Generate(request, metadata=auth, timeout=300))
    assert responses, "no response"
    last = responses[-1]
    assert last.HasField("stats"), "the stream did not end with stats: %r" % last
    tokens = sum(len(r.tokens.token_ids) for r in responses if r.HasField("tokens"))
    assert tokens == last.stats.completion_tokens > 0, (tokens, last.stats)
    assert last.stats.prompt_tokens > 0 and last.stats.ttft_ms > 0, last.stats

    stats = stub.GetStats(router_pb2.GetRouterStatsRequest(), metadata=auth, timeout=60)
    assert stats.requests >= 1, stats

    try:
        list(stub.Generate(request, metadata=[("authorization", "Bearer wrong-key-000000000000")], timeout=60))
        raise AssertionError("a wrong key was accepted")
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED, error
    # A prompt past the model's context: INVALID_ARGUMENT, with the reason in the standard
    # grpc-status-details-bin trailer as a google.rpc.Status holding a google.rpc.ErrorInfo
    # (decoded here with status.proto's field-for-field copies; grpcio-status reads it too).
    from semshare.v1 import status_pb2
    too_long = router_pb2.GenerateRequest(prompt_token_ids=[1] + [5] * 3000, max_tokens=8)
    try:
        list(stub.Generate(too_long, metadata=auth, timeout=60))
        raise AssertionError("a prompt past the context was accepted")
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error
        trailer = dict(error.trailing_metadata() or ()).get("grpc-status-details-bin")
        assert trailer, "no status details: %r" % (error.trailing_metadata(),)
        details = status_pb2.RpcStatus.FromString(trailer)
        assert details.code == grpc.StatusCode.INVALID_ARGUMENT.value[0], details
        assert details.message.decode() == error.details(), (details.message, error.details())
        assert [d.type_url for d in details.details] == ["type.googleapis.com/google.rpc.ErrorInfo"], details
        info = status_pb2.ErrorInfo.FromString(details.details[0].value)
        assert (info.reason, info.domain) == ("CONTEXT_LENGTH_EXCEEDED", "semshare.dev"), info
    print("python client: %d tokens, ttft %.1f ms, hit=%s" % (tokens, last.stats.ttft_ms, last.stats.cache_hit))


if __name__ == "__main__":
    main()
