"""A stock grpcio client of the sidecar, as a Python test harness writes one:
stubs generated from proto/cclaunch/v1/launcher.proto with grpcio-tools, a
channel to `unix:<socket>` with no options. It drives one chaincode through
Health, Build (chunks), Start, Logs, Wait, List and Stop on one channel, and
prints what it saw as one JSON object on stdout.

usage: grpcio_client.py PROTO_DIR STUB_DIR SOCKET PACKAGE
"""
import json
import sys

from grpc_tools import protoc

proto_dir, stub_dir, socket, package = sys.argv[1:5]
if protoc.main(["protoc", f"-I{proto_dir}", f"--python_out={stub_dir}",
                f"--grpc_python_out={stub_dir}", "cclaunch/v1/launcher.proto"]) != 0:
    sys.exit("protoc failed")
sys.path.insert(0, stub_dir)

import grpc  # noqa: E402
from cclaunch.v1 import launcher_pb2 as pb  # noqa: E402
from cclaunch.v1 import launcher_pb2_grpc as rpc  # noqa: E402

TIMEOUT = 120
seen = {"grpcio": grpc.__version__}
with grpc.insecure_channel(f"unix:{socket}") as channel:
    launcher = rpc.LauncherStub(channel)
    seen["api_version"] = launcher.Health(pb.HealthRequest(), timeout=TIMEOUT).api_version

    data = open(package, "rb").read()
    chunks = (pb.BuildRequest(chunk=data[i:i + 1024]) for i in range(0, len(data), 1024))
    for event in launcher.Build(chunks, timeout=TIMEOUT):
        if event.WhichOneof("event") == "done":
            seen["built"] = event.done.package_id
    package_id = seen["built"]

    started = launcher.Start(pb.StartRequest(package_id=package_id,
                                             peer_address="127.0.0.1:7052"), timeout=TIMEOUT)
    seen["container"] = started.container
    seen["exit_code"] = launcher.Wait(pb.ChaincodeRef(package_id=package_id),
                                      timeout=TIMEOUT).exit_code
    seen["logs"] = [[line.stream, line.line] for line in
                    launcher.Logs(pb.LogsRequest(package_id=package_id), timeout=TIMEOUT)]
    listed = launcher.List(pb.ListRequest(), timeout=TIMEOUT).chaincodes
    seen["listed"] = [c.package_id for c in listed]
    seen["stopped"] = launcher.Stop(pb.ChaincodeRef(package_id=package_id),
                                    timeout=TIMEOUT).container

    # A refused call still comes back as gRPC status, not a reset stream.
    try:
        launcher.Stop(pb.ChaincodeRef(package_id=package_id), timeout=TIMEOUT)
    except grpc.RpcError as e:
        seen["stop_again"] = e.code().name

print(json.dumps(seen))
