"""BinaryService through a running control API (pyvoy, TLS): grpcio stubs, the Connect
client, and the seed's Python examples as written."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import os
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest
from connectrpc.code import Code
from connectrpc.errors import ConnectError
from pyqwest import Client, HTTPTransport

from fleetd.storage.bearer_tokens import create_api_key
from fleetd.storage.blobs import FilesystemBlobStore
from fleetd.v1 import binary_pb2, binary_pb2_grpc
from fleetd.v1.binary_connect import BinaryServiceClient
from tests.support.deployment import Deployment, running_deployment

MiB = 1 << 20
LIMIT = 6 * MiB + 5
"""The deployment's FLEETD_MAX_BINARY_BYTES in these tests."""

Message = binary_pb2.UploadBinaryRequest


@pytest.fixture
async def deployment(database_url: str, redis_url: str) -> AsyncIterator[Deployment]:
    async with running_deployment(database_url, redis_url, max_binary_bytes=LIMIT) as dep:
        yield dep


def _metadata(**fields: Any) -> Message:
    fields.setdefault("name", "firmware.bin")
    return Message(metadata=binary_pb2.BinaryMetadata(**fields))


def _chunks(data: bytes, size: int = MiB) -> list[Message]:
    return [Message(chunk=data[i : i + size]) for i in range(0, len(data), size)]


async def _stream(messages: Sequence[Message]) -> AsyncIterator[Message]:
    for message in messages:
        yield message


@dataclass
class Grpc:
    """grpcio (asyncio) stub against the deployment, with an API key."""

    stub: binary_pb2_grpc.BinaryServiceStub
    key: str

    async def upload(self, messages: Sequence[Message]) -> binary_pb2.UploadBinaryResponse:
        response: binary_pb2.UploadBinaryResponse = await self.stub.UploadBinary(
            _stream(messages), metadata=(("x-api-key", self.key),), timeout=60
        )
        return response

    async def download(self, **fields: Any) -> list[binary_pb2.DownloadBinaryResponse]:
        call = self.stub.DownloadBinary(
            binary_pb2.DownloadBinaryRequest(**fields),
            metadata=(("x-api-key", self.key),),
            timeout=60,
        )
        return [message async for message in call]


async def _grpc(dep: Deployment, key: str | None = None) -> tuple[grpc.aio.Channel, Grpc]:
    creds = grpc.ssl_channel_credentials(root_certificates=dep.ca_pem)
    channel = grpc.aio.secure_channel(
        f"127.0.0.1:{dep.api_port}",
        creds,
        options=[("grpc.max_receive_message_length", 8 * MiB)],
    )
    return channel, Grpc(binary_pb2_grpc.BinaryServiceStub(channel), key or dep.admin_api_key)


def _connect(dep: Deployment) -> BinaryServiceClient:
    http = Client(HTTPTransport(tls_ca_cert=dep.ca_pem, tls_include_system_certs=False))
    return BinaryServiceClient(dep.api_endpoint, http_client=http, read_max_bytes=8 * MiB)


async def _grpc_code(call: Callable[[], Any]) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call()
    code: grpc.StatusCode = err.value.code()
    return code


@dataclass
class Stored:
    binaries: int
    blob_rows: int
    blob_files: list[str]
    temporaries: list[str]


async def _stored(dep: Deployment, pool: asyncpg.Pool) -> Stored:
    store = FilesystemBlobStore(dep.settings.paths.blobs)
    tmp = dep.settings.paths.blobs / "tmp"
    return Stored(
        binaries=await pool.fetchval("SELECT count(*) FROM binaries"),
        blob_rows=await pool.fetchval("SELECT count(*) FROM blobs"),
        blob_files=sorted(f.sha256 for f in store.stored_files()),
        temporaries=sorted(os.listdir(tmp)) if tmp.exists() else [],
    )


NOTHING = Stored(0, 0, [], [])


async def test_multi_chunk_upload_round_trips_with_matching_hash_over_grpc(
    deployment: Deployment, pool: asyncpg.Pool
) -> None:
    data = os.urandom(5 * MiB + 123)
    digest = hashlib.sha256(data).hexdigest()
    channel, client = await _grpc(deployment)
    async with channel:
        before = dt.datetime.now(dt.UTC)
        uploaded = await client.upload(
            [
                _metadata(
                    version="2.0.0",
                    platform="raspberry-pi",
                    arch="arm64",
                    size_bytes=len(data),
                    checksum=f"sha256:{digest.upper()}",
                    description="test firmware",
                    metadata={"build": "42"},
                ),
                *_chunks(data[:1000]),
                *_chunks(data[1000:], MiB),
            ]
        )
        assert uploaded.binary_id.startswith("bin_")
        assert uploaded.checksum == f"sha256:{digest}"
        assert uploaded.size_bytes == len(data)
        assert before - dt.timedelta(seconds=1) <= uploaded.uploaded_at.ToDatetime(dt.UTC)
        messages = await client.download(binary_id=uploaded.binary_id)
    first, rest = messages[0], messages[1:]
    assert first.WhichOneof("data") == "metadata"
    assert first.metadata == binary_pb2.BinaryMetadata(
        name="firmware.bin",
        version="2.0.0",
        platform="raspberry-pi",
        size_bytes=len(data),
        checksum=f"sha256:{digest}",
        content_type="application/octet-stream",
        arch="arm64",
        description="test firmware",
        metadata={"build": "42"},
        binary_id=uploaded.binary_id,
        uploaded_at=uploaded.uploaded_at,
    )
    assert all(m.WhichOneof("data") == "chunk" for m in rest)
    assert [len(m.chunk) for m in rest] == [MiB] * 5 + [123]  # chunk_size 0 = 1 MiB
    assert hashlib.sha256(b"".join(m.chunk for m in rest)).hexdigest() == digest
    # The row keeps the chunk manifest (1 MiB chunks), and the blob is indexed.
    row = await pool.fetchrow(
        "SELECT sha256, chunk_size, chunk_digests, uploaded_by FROM binaries WHERE binary_id = $1",
        uploaded.binary_id,
    )
    assert row is not None
    assert row["sha256"] == digest and row["chunk_size"] == MiB
    assert row["chunk_digests"] == b"".join(
        hashlib.sha256(data[i : i + MiB]).digest() for i in range(0, len(data), MiB)
    )
    assert row["uploaded_by"]  # the admin key's id
    assert await _stored(deployment, pool) == Stored(1, 1, [digest], [])


async def test_download_resumes_from_an_offset_over_connect(deployment: Deployment) -> None:
    data = os.urandom(9 * MiB // 2)
    headers = {"x-api-key": deployment.admin_api_key}
    client = _connect(deployment)
    uploaded = await client.upload_binary(
        _stream([_metadata(), *_chunks(data, 4 * MiB)]), headers=headers
    )
    offset = 3 * MiB + 7
    messages = [
        m
        async for m in client.download_binary(
            binary_pb2.DownloadBinaryRequest(
                binary_id=uploaded.binary_id, offset=offset, chunk_size=64 * MiB
            ),
            headers=headers,
        )
    ]
    assert messages[0].metadata.size_bytes == len(data)
    assert messages[0].metadata.binary_id == uploaded.binary_id
    assert [len(m.chunk) for m in messages[1:]] == [len(data) - offset]  # < 4 MiB left
    assert b"".join(m.chunk for m in messages[1:]) == data[offset:]
    # chunk_size above 4 MiB is clamped to 4 MiB; an explicit small size is honoured.
    whole = [
        m
        async for m in client.download_binary(
            binary_pb2.DownloadBinaryRequest(binary_id=uploaded.binary_id, chunk_size=64 * MiB),
            headers=headers,
        )
    ]
    assert [len(m.chunk) for m in whole[1:]] == [4 * MiB, len(data) - 4 * MiB]
    small = [
        m
        async for m in client.download_binary(
            binary_pb2.DownloadBinaryRequest(
                binary_id=uploaded.binary_id, offset=len(data) - 10, chunk_size=4
            ),
            headers=headers,
        )
    ]
    assert [m.chunk for m in small[1:]] == [data[-10:-6], data[-6:-2], data[-2:]]
    # Resuming a finished download: the metadata, then nothing.
    done = [
        m
        async for m in client.download_binary(
            binary_pb2.DownloadBinaryRequest(binary_id=uploaded.binary_id, offset=len(data)),
            headers=headers,
        )
    ]
    assert [m.WhichOneof("data") for m in done] == ["metadata"]


async def test_bad_downloads_are_refused(deployment: Deployment) -> None:
    channel, client = await _grpc(deployment)
    async with channel:
        uploaded = await client.upload([_metadata(), Message(chunk=b"0123456789")])
        bid = uploaded.binary_id
        cases: list[tuple[dict[str, Any], grpc.StatusCode]] = [
            ({"binary_id": "bin_0000000000000000"}, grpc.StatusCode.NOT_FOUND),
            ({"binary_id": "x" * 1000}, grpc.StatusCode.NOT_FOUND),
            ({"binary_id": ""}, grpc.StatusCode.INVALID_ARGUMENT),
            ({"binary_id": bid, "offset": -1}, grpc.StatusCode.INVALID_ARGUMENT),
            ({"binary_id": bid, "chunk_size": -1}, grpc.StatusCode.INVALID_ARGUMENT),
            ({"binary_id": bid, "offset": 11}, grpc.StatusCode.INVALID_ARGUMENT),
        ]
        for fields, expected in cases:
            code = await _grpc_code(partial(client.download, **fields))
            assert code == expected, fields
        assert len(await client.download(binary_id=bid, offset=10)) == 1  # metadata only


def _refusals() -> list[tuple[str, list[Message], grpc.StatusCode]]:
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    data = b"firmware bytes " * 100
    digest = hashlib.sha256(data).hexdigest()
    other = hashlib.sha256(b"other").hexdigest()
    return [
        ("empty stream", [], invalid),
        ("chunk before metadata", [Message(chunk=data), _metadata()], invalid),
        ("second metadata", [_metadata(), Message(chunk=data), _metadata()], invalid),
        ("neither metadata nor chunk", [_metadata(), Message()], invalid),
        ("missing name", [_metadata(name=""), Message(chunk=data)], invalid),
        ("name with a slash", [_metadata(name="a/b.bin"), Message(chunk=data)], invalid),
        ("oversize name", [_metadata(name="n" * 256), Message(chunk=data)], invalid),
        ("oversize version", [_metadata(version="v" * 65), Message(chunk=data)], invalid),
        ("oversize description", [_metadata(description="d" * 4097), *_chunks(data)], invalid),
        (
            "too many metadata entries",
            [_metadata(metadata={f"k{i}": "v" for i in range(65)}), Message(chunk=data)],
            invalid,
        ),
        ("client-chosen binary_id", [_metadata(binary_id="bin_mine"), *_chunks(data)], invalid),
        ("no content", [_metadata()], invalid),
        ("negative size", [_metadata(size_bytes=-1), *_chunks(data)], invalid),
        ("shorter than declared", [_metadata(size_bytes=len(data) + 1), *_chunks(data)], invalid),
        ("longer than declared", [_metadata(size_bytes=len(data) - 1), *_chunks(data)], invalid),
        ("malformed checksum", [_metadata(checksum=f"md5:{digest}"), *_chunks(data)], invalid),
        ("checksum mismatch", [_metadata(checksum=f"sha256:{other}"), *_chunks(data)], invalid),
        ("chunk over 4 MiB", [_metadata(), Message(chunk=bytes(4 * MiB + 1))], invalid),
        (
            "declared size over the limit",
            [_metadata(size_bytes=LIMIT + 1), Message(chunk=data)],
            grpc.StatusCode.RESOURCE_EXHAUSTED,
        ),
        (
            "stream over the limit",
            [_metadata(), *_chunks(os.urandom(LIMIT + 1))],
            grpc.StatusCode.RESOURCE_EXHAUSTED,
        ),
    ]


async def test_every_refused_upload_leaves_nothing_stored(
    deployment: Deployment, pool: asyncpg.Pool
) -> None:
    channel, client = await _grpc(deployment)
    async with channel:
        for name, messages, expected in _refusals():
            code = await _grpc_code(partial(client.upload, messages))
            assert code == expected, name
            assert await _stored(deployment, pool) == NOTHING, name


async def test_connect_clients_get_the_same_refusals(
    deployment: Deployment, pool: asyncpg.Pool
) -> None:
    client = _connect(deployment)
    headers = {"x-api-key": deployment.admin_api_key}
    mismatch = [_metadata(checksum="sha256:" + "0" * 64), Message(chunk=b"abc")]
    with pytest.raises(ConnectError) as err:
        await client.upload_binary(_stream(mismatch), headers=headers)
    assert err.value.code == Code.INVALID_ARGUMENT
    assert "nothing was stored" in err.value.message
    with pytest.raises(ConnectError) as err:
        await client.upload_binary(_stream([]), headers=headers)
    assert err.value.code == Code.INVALID_ARGUMENT
    unknown = binary_pb2.DownloadBinaryRequest(binary_id="bin_nope")
    with pytest.raises(ConnectError) as err:
        await anext(aiter(client.download_binary(unknown, headers=headers)))
    assert err.value.code == Code.NOT_FOUND
    assert await _stored(deployment, pool) == NOTHING


async def test_same_bytes_uploaded_twice_are_stored_once(
    deployment: Deployment, pool: asyncpg.Pool
) -> None:
    data = os.urandom(2 * MiB + 1)
    channel, client = await _grpc(deployment)
    async with channel:
        first = await client.upload([_metadata(version="1"), *_chunks(data)])
        second = await client.upload([_metadata(version="2"), *_chunks(data, 3 * MiB)])
        assert first.binary_id != second.binary_id
        assert first.checksum == second.checksum
        for uploaded, version in ((first, "1"), (second, "2")):
            messages = await client.download(binary_id=uploaded.binary_id)
            assert messages[0].metadata.version == version
            assert b"".join(m.chunk for m in messages[1:]) == data
    digest = hashlib.sha256(data).hexdigest()
    assert await _stored(deployment, pool) == Stored(2, 1, [digest], [])


async def test_a_viewer_can_download_but_not_upload(
    deployment: Deployment, pool: asyncpg.Pool
) -> None:
    viewer = (await create_api_key(pool, "viewer", "viewer")).token
    channel, admin = await _grpc(deployment)
    async with channel:
        uploaded = await admin.upload([_metadata(), Message(chunk=b"payload")])
        before = await _stored(deployment, pool)
        as_viewer = Grpc(admin.stub, viewer)
        code = await _grpc_code(
            lambda: as_viewer.upload([_metadata(name="other.bin"), Message(chunk=b"more")])
        )
        assert code == grpc.StatusCode.PERMISSION_DENIED
        assert await _stored(deployment, pool) == before
        messages = await as_viewer.download(binary_id=uploaded.binary_id)
        assert b"".join(m.chunk for m in messages[1:]) == b"payload"
        anonymous = Grpc(admin.stub, "not-a-key")
        code = await _grpc_code(lambda: anonymous.download(binary_id=uploaded.binary_id))
        assert code == grpc.StatusCode.UNAUTHENTICATED


# The seed's Python examples (000_1738d61bce90bb0e.txt, BinaryService), verbatim.
SEED_UPLOAD_EXAMPLE = """\
import grpc
from fleetd.v1 import binary_pb2, binary_pb2_grpc

def upload_binary(stub, file_path):
    def generate_chunks():
        # Send metadata first
        yield binary_pb2.UploadBinaryRequest(
            metadata=binary_pb2.BinaryMetadata(
                name="firmware.bin",
                version="2.0.0",
                platform="raspberry-pi"
            )
        )

        # Send file chunks
        with open(file_path, 'rb') as f:
            while True:
                chunk = f.read(1024 * 1024)  # 1MB chunks
                if not chunk:
                    break
                yield binary_pb2.UploadBinaryRequest(chunk=chunk)

    response = stub.UploadBinary(generate_chunks())
    return response
"""

SEED_DOWNLOAD_EXAMPLE = """\
def download_binary(stub, binary_id, output_path):
    request = binary_pb2.DownloadBinaryRequest(
        binary_id=binary_id,
        chunk_size=1024 * 1024  # 1MB chunks
    )

    with open(output_path, 'wb') as f:
        for response in stub.DownloadBinary(request):
            if response.HasField('chunk'):
                f.write(response.chunk)
"""

SEED_DOCUMENT = (
    Path(__file__).resolve().parents[2].parent / "shared" / "seeds" / "000_1738d61bce90bb0e.txt"
)


@pytest.mark.skipif(not SEED_DOCUMENT.is_file(), reason="seed document not alongside the repo")
def test_seed_examples_are_transcribed_verbatim() -> None:
    text = SEED_DOCUMENT.read_text(encoding="utf-8")
    assert SEED_UPLOAD_EXAMPLE in text
    assert SEED_DOWNLOAD_EXAMPLE in text


class _ApiKey(grpc.AuthMetadataPlugin):
    """Sends X-API-Key on every call of the channel (the seed's Authentication section)."""

    def __init__(self, key: str) -> None:
        self._key = key

    def __call__(
        self, context: grpc.AuthMetadataContext, callback: grpc.AuthMetadataPluginCallback
    ) -> None:
        callback((("x-api-key", self._key),), None)


def _seed_round_trip(dep: Deployment, source: Path, target: Path) -> str:
    """Run the seed's two functions as written; only the channel (host, TLS, API key)
    is ours, as the seed's Authentication section asks."""
    namespace: dict[str, Any] = {}
    exec(SEED_UPLOAD_EXAMPLE + "\n" + SEED_DOWNLOAD_EXAMPLE, namespace)
    call_credentials = grpc.metadata_call_credentials(_ApiKey(dep.admin_api_key))
    credentials = grpc.composite_channel_credentials(
        grpc.ssl_channel_credentials(root_certificates=dep.ca_pem), call_credentials
    )
    with grpc.secure_channel(f"127.0.0.1:{dep.api_port}", credentials) as channel:
        stub = binary_pb2_grpc.BinaryServiceStub(channel)
        response = namespace["upload_binary"](stub, str(source))
        namespace["download_binary"](stub, response.binary_id, str(target))
    checksum: str = response.checksum
    return checksum


async def test_seed_python_examples_upload_and_download(
    deployment: Deployment, tmp_path: Path
) -> None:
    source, target = tmp_path / "firmware.bin", tmp_path / "downloaded.bin"
    data = os.urandom(3 * MiB + 99)
    source.write_bytes(data)
    checksum = await asyncio.to_thread(_seed_round_trip, deployment, source, target)
    assert checksum == f"sha256:{hashlib.sha256(data).hexdigest()}"
    assert hashlib.sha256(target.read_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()
