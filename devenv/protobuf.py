"""The few objects kubectl writes as protobuf, read back as the JSON the emulator stores.

kubectl sends built-in types to the API server as protobuf (`kubectl create namespace`, `kubectl create secret
tls` / `generic`: Content-Type application/vnd.kubernetes.protobuf) and does not fall back to JSON
on a 415 (kubectl 1.32). kube-apiserver takes either. The wire format is Kubernetes' "protobuf encoding"
(kubernetes.io/docs/reference/using-api/api-concepts/#protobuf-encoding): the 4 bytes `k8s\\x00`, then a
`runtime.Unknown` message whose `typeMeta` names apiVersion and kind and whose `raw` is the object's message, as
k8s.io/api/core/v1/generated.proto numbers its fields. Only those kinds, and only the fields a create carries, are
read here; anything else is refused (NotSupported), never half read.
"""
from __future__ import annotations

import base64
from typing import Any

MAGIC = b"k8s\x00"
CONTENT_TYPE = "application/vnd.kubernetes.protobuf"


class NotSupported(ValueError):
    """A protobuf body the emulator does not read (another kind, or a field it does not know)."""


def _varint(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if i >= len(data):
            raise NotSupported("a truncated protobuf message")
        byte = data[i]
        value |= (byte & 0x7F) << shift
        i += 1
        if not byte & 0x80:
            return value, i
        shift += 7


def fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) in order: an int for varints, bytes for length-delimited; fixed-width ones refused."""
    out, i = [], 0
    while i < len(data):
        key, i = _varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(data, i)
            out.append((number, value))
        elif wire == 2:
            size, i = _varint(data, i)
            if i + size > len(data):
                raise NotSupported("a truncated protobuf message")
            out.append((number, data[i:i + size]))
            i += size
        else:
            raise NotSupported(f"protobuf wire type {wire} (field {number})")
    return out


def _text(value: int | bytes) -> str:
    if not isinstance(value, bytes):
        raise NotSupported("a number where text was expected")
    return value.decode("utf-8")


def _entry(value: int | bytes) -> tuple[str, bytes]:
    """A map<string, ...> entry: key = 1, value = 2."""
    if not isinstance(value, bytes):
        raise NotSupported("a number where a map entry was expected")
    parts = dict(fields(value))
    key, item = parts.get(1, b""), parts.get(2, b"")
    if not isinstance(key, bytes) or not isinstance(item, bytes):
        raise NotSupported("a map entry that is not text")
    return key.decode("utf-8"), item


# ObjectMeta's fields a create carries (k8s.io/apimachinery/pkg/apis/meta/v1/generated.proto): the text ones, the
# maps, the finalizers; generation and the empty creationTimestamp kubectl sends are server-set and dropped.
_META_TEXT = {1: "name", 2: "generateName", 3: "namespace"}
_META_MAPS = {11: "labels", 12: "annotations"}
_META_IGNORED = {4, 5, 6, 7, 8}  # selfLink, uid, resourceVersion, generation, creationTimestamp: the server's


def _metadata(data: bytes) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    for number, value in fields(data):
        if number in _META_TEXT:
            if text := _text(value):
                meta[_META_TEXT[number]] = text
        elif number in _META_MAPS:
            key, item = _entry(value)
            meta.setdefault(_META_MAPS[number], {})[key] = item.decode("utf-8")
        elif number == 14:
            meta.setdefault("finalizers", []).append(_text(value))
        elif number not in _META_IGNORED or value:  # a server-set field with a value: not a create
            raise NotSupported(f"metadata field {number}")
    return meta


def _namespace(data: bytes) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for number, value in fields(data):
        if number == 1:
            body["metadata"] = _metadata(_bytes(value))
        elif number == 2:  # NamespaceSpec: finalizers = 1
            if finalizers := [_text(v) for n, v in fields(_bytes(value)) if n == 1]:
                body["spec"] = {"finalizers": finalizers}
        elif number == 3:  # NamespaceStatus: the server's; kubectl sends it empty
            if any(v for _, v in fields(_bytes(value))):
                raise NotSupported("Namespace status")
        else:
            raise NotSupported(f"Namespace field {number}")
    return body


def _secret(data: bytes) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for number, value in fields(data):
        if number == 1:
            body["metadata"] = _metadata(_bytes(value))
        elif number == 2:  # data: map<string, bytes>, base64 in JSON
            key, item = _entry(value)
            body.setdefault("data", {})[key] = base64.b64encode(item).decode("ascii")
        elif number == 3:
            body["type"] = _text(value)
        elif number == 4:
            key, item = _entry(value)
            body.setdefault("stringData", {})[key] = item.decode("utf-8")
        elif number == 5:
            body["immutable"] = bool(value)
        else:
            raise NotSupported(f"Secret field {number}")
    return body


def _bytes(value: int | bytes) -> bytes:
    if not isinstance(value, bytes):
        raise NotSupported("a number where a message was expected")
    return value


KINDS = {("v1", "Namespace"): _namespace, ("v1", "Secret"): _secret}


def decode(body: bytes) -> dict[str, Any]:
    """The JSON object of a protobuf-encoded Namespace or Secret; NotSupported for anything else."""
    if not body.startswith(MAGIC):
        raise NotSupported("no k8s protobuf envelope")
    envelope = dict(fields(body[len(MAGIC):]))
    type_meta = dict(fields(_bytes(envelope.get(1, b""))))
    api_version, kind = _text(type_meta.get(1, b"")), _text(type_meta.get(2, b""))
    if envelope.get(3) or envelope.get(4):
        raise NotSupported("an encoded or typed raw payload")
    read = KINDS.get((api_version, kind))
    if read is None:
        raise NotSupported(f"{api_version}/{kind} (the emulator reads protobuf for "
                           f"{', '.join(k for _, k in KINDS)} only)")
    return {"apiVersion": api_version, "kind": kind, **read(_bytes(envelope.get(2, b"")))}
