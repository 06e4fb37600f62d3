"""Write the FileDescriptorSet of Flower's Fleet API, read from the installed `flwr` wheel.

Why from the wheel: the SuperLink we must speak to is the pinned `flwr` release, and
its `*_pb2.py` modules embed the exact serialized descriptors it was built from. Reading
them here (instead of `.proto` files from some git checkout) guarantees the TypeScript
types match the SuperLink byte for byte.

Usage: python extract_fleet_descriptors.py OUT.binpb
"""

import importlib
import sys

import flwr
from google.protobuf import descriptor_pb2

# `fleet.proto` and everything it imports, transitively (checked by the loop below).
ROOT_MODULE = "flwr.proto.fleet_pb2"


def _camel(name: str) -> str:
    """protoc's default JSON name: snake_case to lowerCamelCase."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _fill_json_names(messages) -> None:
    """The wheel's embedded descriptors lack `json_name`, which protoc always fills in;
    fill it the same way so the image looks like protoc's own output to generators."""
    for message in messages:
        for field in message.field:
            if not field.HasField("json_name"):
                field.json_name = _camel(field.name)
        _fill_json_names(message.nested_type)


def main() -> None:
    out_path = sys.argv[1]
    fds = descriptor_pb2.FileDescriptorSet()
    seen: set[str] = set()

    def add(file_descriptor) -> None:
        if file_descriptor.name in seen:
            return
        # Dependencies first: `buf` and protoc expect files in topological order.
        for dep in file_descriptor.dependencies:
            add(dep)
        seen.add(file_descriptor.name)
        proto = descriptor_pb2.FileDescriptorProto()
        file_descriptor.CopyToProto(proto)
        _fill_json_names(proto.message_type)
        fds.file.append(proto)

    add(importlib.import_module(ROOT_MODULE).DESCRIPTOR)
    with open(out_path, "wb") as f:
        f.write(fds.SerializeToString(deterministic=True))
    print(f"flwr {flwr.__version__}: wrote {len(fds.file)} files to {out_path}: "
          + ", ".join(p.name for p in fds.file))


if __name__ == "__main__":
    main()
