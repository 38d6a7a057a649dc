"""Talking to Podium from Python with grpcio and the client code generated from Podium's protos
(docs/clients.md): create an instance, stream its updates, send a message, stop it.

    .venv/bin/python python_client.py 127.0.0.1:7070 "hello podium"

The generated `podium/v1/*_pb2*.py` must be importable (generate them next to this file).
PODIUM_API_KEY: the key, when the server wants one. PODIUM_DEPLOYMENT: what to run (echo-py).
"""

from __future__ import annotations

import json
import os
import sys

import grpc
from google.protobuf import json_format, struct_pb2

from podium.v1 import instance_service_pb2 as pb
from podium.v1 import instance_service_pb2_grpc as rpc


def main(argv: list[str]) -> int:
    target = argv[1] if len(argv) > 1 else "127.0.0.1:7070"
    text = argv[2] if len(argv) > 2 else "hello podium"
    deployment = os.environ.get("PODIUM_DEPLOYMENT", "echo-py:1.0.0@local")
    api_key = os.environ.get("PODIUM_API_KEY")
    metadata = [("authorization", f"Bearer {api_key}")] if api_key else []

    with grpc.insecure_channel(target) as channel:  # h2c; grpc.secure_channel behind TLS
        instances = rpc.InstanceServiceStub(channel)
        created = instances.CreateInstance(pb.CreateInstanceRequest(deployment_id=deployment), metadata=metadata, timeout=60)
        instance = created.instance
        print(f"created {instance.instance_id} (agent {instance.agent_id})", flush=True)

        # replay_all: the stream starts at the agent's first update, so nothing sent after the
        # create can be missed, however late the stream opens.
        updates = instances.StreamUpdates(pb.StreamUpdatesRequest(instance_id=instance.instance_id, replay_all=True), metadata=metadata, timeout=120)
        content = struct_pb2.Struct()
        content.update({"text": text})
        instances.SendMessage(pb.SendMessageRequest(instance_id=instance.instance_id, content=content), metadata=metadata, timeout=60)

        reply = ""
        done = False
        for batch in updates:
            for update in batch.updates:
                body = json_format.MessageToDict(update.content) if update.HasField("content") else {}
                print(f"#{update.seq} {update.message_type} {json.dumps(body)}", flush=True)
                if update.message_type == "stream_update":
                    reply += str(body.get("text", ""))
                if update.message_type == "turn.done":
                    done = True
            if done:
                break
        updates.cancel()
        print(f"reply: {reply}", flush=True)

        instances.StopInstance(pb.StopInstanceRequest(instance_id=instance.instance_id), metadata=metadata, timeout=60)
    return 0 if done else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
