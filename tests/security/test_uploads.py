"""Hostile uploads: decompression bombs, lying archives, non-.npy members, pickles,
oversized CSV/JSON, integers beyond int64.

Bombs are built here without materialising them (a deflate stream of zeros is one
compressed 1 MiB block repeated: after a full flush deflate has no history). The
server-based tests run a real uvicorn in a subprocess with the default quotas
(``max_dataset_bytes`` 50 MiB, ``max_upload_bytes`` 64 MiB) and read its peak RSS
(``VmHWM``, reset through ``/proc/<pid>/clear_refs``) around each request.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

import httpx
import numpy as np
import pytest


MiB = 1 << 20
GiB = 1 << 30
DEFAULT_DATASET_LIMIT = 50 * MiB
# What a refused upload may cost the API process at most (the request body and its
# multipart copy are a few MiB; the bombs decode to 1 GiB or more).
RSS_BUDGET = 96 * MiB


def npy_header(shape: tuple[int, ...], descr: str = "<f8") -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, {"descr": descr, "fortran_order": False, "shape": shape})
    return out.getvalue()


def deflated_zeros(prefix: bytes, zero_bytes: int) -> bytes:
    """A raw deflate stream of ``prefix`` + ``zero_bytes`` zeros, built in O(1 MiB) memory."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    parts = [compressor.compress(prefix) + compressor.flush(zlib.Z_FULL_FLUSH)]
    block = compressor.compress(bytes(MiB)) + compressor.flush(zlib.Z_FULL_FLUSH)
    whole, rest = divmod(zero_bytes, MiB)
    parts.append(block * whole)
    parts.append(compressor.compress(bytes(rest)) + compressor.flush(zlib.Z_FINISH))
    return b"".join(parts)


def handmade_zip(members: list[tuple[str, bytes, int, int]]) -> bytes:
    """A zip of (name, deflated data, declared uncompressed size, method); CRC left 0."""
    out = io.BytesIO()
    central = []
    for name, data, size, method in members:
        offset = out.tell()
        encoded = name.encode()
        out.write(struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, method, 0, 0x21, 0, len(data), size,
                              len(encoded), 0) + encoded + data)
        central.append(struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, method, 0, 0x21, 0, len(data),
                                   size, len(encoded), 0, 0, 0, 0, 0, offset) + encoded)
    start = out.tell()
    directory = b"".join(central)
    out.write(directory)
    out.write(struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(members), len(members), len(directory), start, 0))
    return out.getvalue()


def npz_bomb(decoded: int = GiB, name: str = "x.npy", declared: int | None = None) -> bytes:
    header = npy_header((decoded // 8,))
    data = deflated_zeros(header, decoded)
    size = len(header) + decoded if declared is None else declared
    return handmade_zip([(name, data, size, zipfile.ZIP_DEFLATED)])


def upload(server, content: bytes, filename: str, content_type: str = "application/octet-stream"):
    """POST the file and return (response, peak RSS growth of the API process in bytes)."""
    before = server.reset_peak()
    with httpx.Client(base_url=server.base_url, timeout=60) as client:
        response = client.post("/v1/datasets", files={"file": (filename, content, content_type)})
    return response, server.peak_rss() - before


def test_npz_deflate_bomb_is_413_before_decompressing(server, capsys, problem):
    content = npz_bomb(GiB)
    assert len(content) < 2 * MiB
    response, grew = upload(server, content, "bomb.npz")
    body = problem(response, 413, "payload-too-large")
    assert body["limit"] == DEFAULT_DATASET_LIMIT
    assert body["decoded_bytes"] >= GiB
    assert str(body["decoded_bytes"]) in body["detail"] and str(DEFAULT_DATASET_LIMIT) in body["detail"]
    assert grew < RSS_BUDGET, grew
    with capsys.disabled():
        print(f"\n[rss] npz 1 GiB bomb ({len(content)} bytes): API peak RSS +{grew / MiB:.1f} MiB")


def test_npz_whose_central_directory_understates_is_refused_without_inflating(server, capsys, problem):
    # The directory says 8 KB, the .npy header says 1 GiB, the stream holds 1 GiB.
    content = npz_bomb(GiB, declared=8_000)
    response, grew = upload(server, content, "liar.npz")
    body = problem(response, 422, "invalid-data")
    assert body["pointer"] == "/file/x"
    assert grew < RSS_BUDGET, grew
    # Header and directory agree on 8 KB, the stream holds 1 GiB: zipfile stops at the
    # declared size and the CRC does not match.
    header = npy_header((1000,))
    liar = handmade_zip([("x.npy", deflated_zeros(header, GiB), len(header) + 8000, zipfile.ZIP_DEFLATED)])
    response, grew2 = upload(server, liar, "liar2.npz")
    problem(response, 422, "invalid-data")
    assert grew2 < RSS_BUDGET, grew2
    with capsys.disabled():
        print(f"\n[rss] npz lying directory: +{grew / MiB:.1f} MiB, lying stream: +{grew2 / MiB:.1f} MiB")


def test_npz_member_not_npy_is_refused_by_name_before_reading(server, capsys, problem):
    data = deflated_zeros(b"", GiB)
    content = handmade_zip([("payload.bin", data, GiB, zipfile.ZIP_DEFLATED)])
    response, grew = upload(server, content, "odd.npz")
    body = problem(response, 422, "invalid-data")
    assert "payload.bin" in body["detail"] and ".npy" in body["detail"]
    assert grew < RSS_BUDGET, grew
    with capsys.disabled():
        print(f"\n[rss] npz non-.npy 1 GiB member: +{grew / MiB:.1f} MiB")


def test_parquet_bomb_is_413_from_its_metadata(server, capsys, problem):
    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    chunk = pa.table({"x": pa.array(np.zeros(4 * MiB))})
    with pq.ParquetWriter(buffer, chunk.schema, compression="zstd") as writer:
        for _ in range(10):  # 40 Mi rows of zeros: 320 MiB as float64, ~200 KB on disk
            writer.write_table(chunk)
    content = buffer.getvalue()
    assert len(content) < MiB
    small = io.BytesIO()
    pq.write_table(pa.table({"x": [1.0]}), small)
    assert upload(server, small.getvalue(), "warm.parquet")[0].status_code == 201  # imports pyarrow.parquet
    response, grew = upload(server, content, "bomb.parquet")
    body = problem(response, 413, "payload-too-large")
    assert body["decoded_bytes"] >= 40 * MiB * 8 and body["limit"] == DEFAULT_DATASET_LIMIT
    assert grew < RSS_BUDGET, grew
    with capsys.disabled():
        print(f"\n[rss] parquet 320 MiB-decoded bomb ({len(content)} bytes): +{grew / MiB:.1f} MiB")


def test_csv_and_json_files_are_capped_on_their_decoded_size(server, capsys, problem):
    csv = b"x\n" + b"0\n" * (7 * MiB)  # 14 MiB of text, 56 MiB as int64
    response, grew_csv = upload(server, csv, "big.csv", "text/csv")
    body = problem(response, 413, "payload-too-large")
    assert body["limit"] == DEFAULT_DATASET_LIMIT and body["decoded_bytes"] > DEFAULT_DATASET_LIMIT
    values = b"0," * (7 * MiB)
    json_file = b'{"x": [' + values + b"0]}"
    response, grew_json = upload(server, json_file, "big.json", "application/json")
    body = problem(response, 413, "payload-too-large")
    assert body["decoded_bytes"] > DEFAULT_DATASET_LIMIT
    # The same as a JSON request body (no multipart).
    before = server.reset_peak()
    response = httpx.post(f"{server.base_url}/v1/datasets", content=b'{"data": {"x": [' + values + b"0]}}",
                          headers={"Content-Type": "application/json"}, timeout=60)
    grew_body = server.peak_rss() - before
    problem(response, 413, "payload-too-large")
    with capsys.disabled():
        print(f"\n[rss] csv 14 MiB (56 MiB decoded): +{grew_csv / MiB:.1f} MiB; json file 14 MiB: "
              f"+{grew_json / MiB:.1f} MiB; json body 14 MiB: +{grew_body / MiB:.1f} MiB")
    assert max(grew_csv, grew_json, grew_body) < 3 * RSS_BUDGET


def test_an_upload_within_the_quota_still_works(server):
    buffer = io.BytesIO()
    np.savez_compressed(buffer, x=np.arange(1000, dtype=np.float32), k=np.arange(6).reshape(2, 3),
                        f=np.asfortranarray(np.arange(6.0).reshape(2, 3)))
    response, _ = upload(server, buffer.getvalue(), "ok.npz")
    assert response.status_code == 201, (response.text, server.log())
    fields = {f["name"]: (f["dtype"], f["shape"]) for f in response.json()["fields"]}
    assert fields == {"x": ("float64", [1000]), "k": ("int64", [2, 3]), "f": ("float64", [2, 3])}


def test_a_dataset_near_the_quota_costs_a_bounded_multiple_of_its_size(server, capsys):
    buffer = io.BytesIO()
    np.savez_compressed(buffer, x=np.zeros(40 * MiB // 8))  # 40 MiB decoded, ~40 KB sent
    response, grew = upload(server, buffer.getvalue(), "near.npz")
    assert response.status_code == 201, response.text
    assert response.json()["size_bytes"] > 40 * MiB
    with capsys.disabled():
        print(f"\n[rss] accepted 40 MiB NPZ dataset: +{grew / MiB:.1f} MiB")
    # The array, the canonical NPZ and the database driver's copy of the blob.
    assert grew < 5 * 40 * MiB, grew


# ---------------------------------------------------------------------------------------
# In-process (small quotas: max_dataset_bytes 200 kB)


def post_file(client, headers, content: bytes, filename: str, content_type: str = "application/octet-stream"):
    return client.post("/v1/datasets", headers=headers, files={"file": (filename, content, content_type)})


def test_object_dtype_is_refused_from_the_header(client, headers, problem):
    buffer = io.BytesIO()
    np.savez(buffer, x=np.array([{"a": 1}], dtype=object))
    body = problem(post_file(client, headers, buffer.getvalue(), "evil.npz"), 422, "invalid-data")
    assert "pickle" in body["detail"] and body["pointer"] == "/file/x"


def test_npz_other_compression_and_odd_dtypes_are_refused(client, headers, problem):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_BZIP2) as zf:
        member = io.BytesIO()
        np.save(member, np.zeros(10))
        zf.writestr("x.npy", member.getvalue())
    body = problem(post_file(client, headers, buffer.getvalue(), "bz.npz"), 422, "invalid-data")
    assert "compression" in body["detail"]
    for array in (np.zeros(3, dtype=np.complex128), np.array(["a"]), np.zeros(2, dtype="datetime64[s]")):
        buffer = io.BytesIO()
        np.savez(buffer, x=array)
        problem(post_file(client, headers, buffer.getvalue(), "odd.npz"), 422, "invalid-data")


def test_small_npz_bomb_against_the_small_quota_names_sizes(client, headers, problem):
    content = npz_bomb(8 * MiB)
    body = problem(post_file(client, headers, content, "b.npz"), 413, "payload-too-large")
    assert body["limit"] == 200_000 and body["decoded_bytes"] >= 8 * MiB


@pytest.mark.parametrize("fmt", ["csv", "json", "npz", "parquet"])
def test_integers_beyond_int64_in_uploads_are_422_naming_the_field(client, headers, fmt, problem):
    import pyarrow as pa
    import pyarrow.parquet as pq

    big = 2**63
    if fmt == "csv":
        content, name = f"ok,big\n1,2\n3,{big}\n".encode(), "d.csv"
    elif fmt == "json":
        content, name = f'{{"ok": [1, 2], "big": [1, {big}]}}'.encode(), "d.json"
    elif fmt == "npz":
        buffer = io.BytesIO()
        np.savez(buffer, ok=np.arange(2), big=np.array([1, big], dtype=np.uint64))
        content, name = buffer.getvalue(), "d.npz"
    else:
        buffer = io.BytesIO()
        pq.write_table(pa.table({"ok": [1, 2], "big": pa.array([1, big], type=pa.uint64())}), buffer)
        content, name = buffer.getvalue(), "d.parquet"
    body = problem(post_file(client, headers, content, name), 422, "invalid-data")
    assert body["pointer"] == "/file/big", body
    assert "64-bit" in body["detail"]


def test_integers_beyond_int64_in_inline_data_are_422(client, headers, problem):
    for value, pointer in ((2**63, "/data/y"), (-(2**63) - 1, "/data/y"), ([1, 2**64], "/data/y"),
                           ([-1, 2**63], "/data/y"), ([[1.5, 2**70]], "/data/y")):
        response = client.post("/v1/datasets", headers=headers, json={"data": {"x": [1, 2], "y": value}})
        body = problem(response, 422, "invalid-data")
        assert body["pointer"] == pointer and "64-bit" in body["detail"], body
    # The int64 bounds themselves are fine.
    ok = client.post("/v1/datasets", headers=headers, json={"data": {"y": [-(2**63), 2**63 - 1]}})
    assert ok.status_code == 201, ok.text


def test_parquet_list_column_bomb_and_text_columns_are_refused_from_the_footer(client, headers, problem):
    import pyarrow as pa
    import pyarrow.parquet as pq

    # 4 rows of 64 Ki zeros each: 2 MiB decoded against the 200 kB quota, tiny on disk.
    values = pa.array(np.zeros(4 * 65_536))
    column = pa.ListArray.from_arrays(pa.array([0, 65_536, 131_072, 196_608, 262_144], type=pa.int32()), values)
    buffer = io.BytesIO()
    pq.write_table(pa.table({"x": column}), buffer, compression="zstd")
    body = problem(post_file(client, headers, buffer.getvalue(), "lists.parquet"), 413, "payload-too-large")
    assert body["decoded_bytes"] >= 4 * 65_536 * 8 and body["limit"] == 200_000
    buffer = io.BytesIO()
    pq.write_table(pa.table({"ok": [1.0], "name": ["ann"]}), buffer)
    body = problem(post_file(client, headers, buffer.getvalue(), "text.parquet"), 422, "invalid-data")
    assert body["pointer"] == "/file/name" and "text" in body["detail"]
    # Equal-length lists still become a 2-D field.
    buffer = io.BytesIO()
    pq.write_table(pa.table({"m": [[1.0, 2.0], [3.0, 4.0]]}), buffer)
    response = post_file(client, headers, buffer.getvalue(), "m.parquet")
    assert response.status_code == 201, response.text
    assert response.json()["fields"][0]["shape"] == [2, 2]


def test_npz_with_too_many_members_is_refused_from_the_directory(client, headers, problem):
    empty = deflated_zeros(npy_header((0,)), 0)
    members = [(f"f{i}.npy", empty, len(npy_header((0,))), zipfile.ZIP_DEFLATED) for i in range(1001)]
    body = problem(post_file(client, headers, handmade_zip(members), "many.npz"), 422, "invalid-data")
    assert "1000" in body["detail"]
