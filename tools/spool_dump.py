#!/usr/bin/env python3
"""Prints the records of rstatsd spool segments (src/sink/spool/FORMAT.md, version 1) as JSON
lines, checking every record's CRC32C with the `crc32c` package (pip install crc32c).

    python3 tools/spool_dump.py /var/lib/rstatsd/spool/kafka/*.seg

One line per record: {"segment", "offset", "flushed_ms", "messages": [{"topic",
"partition", "key", "payload"}]} (key and payload as UTF-8 text, or base64 under "key_b64"/"payload_b64");
a damaged record is reported as {"segment", "offset", "error"} and the scan stops there.
"""
import base64
import json
import struct
import sys

import crc32c

SEGMENT_HEADER = b"RSTSPOOL" + struct.pack("<I", 1)


def text_or_b64(name, data):
    try:
        return {name: data.decode("utf-8")}
    except UnicodeDecodeError:
        return {name + "_b64": base64.b64encode(data).decode("ascii")}


def records(path):
    data = open(path, "rb").read()
    if data[:12] != SEGMENT_HEADER:
        yield {"segment": path, "offset": 0, "error": "not a version-1 spool segment"}
        return
    at = 12
    while at < len(data):
        if data[at:at + 4] != b"RREC" or at + 13 > len(data):
            yield {"segment": path, "offset": at, "error": "no record header"}
            return
        length, crc = struct.unpack_from("<II", data, at + 4)
        version, body = data[at + 12], data[at + 13:at + 13 + length]
        if len(body) < length:
            yield {"segment": path, "offset": at, "error": "torn record"}
            return
        if crc32c.crc32c(data[at + 4:at + 8] + data[at + 12:at + 13 + length]) != crc:
            yield {"segment": path, "offset": at, "error": "checksum mismatch"}
            return
        if version != 1:
            yield {"segment": path, "offset": at, "error": "record version %d" % version}
            return
        flushed_ms, count = struct.unpack_from("<QI", body, 0)
        pos, messages = 12, []
        for _ in range(count):
            (topic_len,) = struct.unpack_from("<H", body, pos)
            pos += 2
            message = {"topic": None}
            if topic_len != 0xFFFF:
                message["topic"] = body[pos:pos + topic_len].decode("utf-8")
                pos += topic_len
            (partition,) = struct.unpack_from("<i", body, pos)
            pos += 4
            message["partition"] = None if partition == -1 else partition
            (key_len,) = struct.unpack_from("<I", body, pos)
            pos += 4
            if key_len == 0xFFFFFFFF:
                message["key"] = None
            else:
                message.update(text_or_b64("key", body[pos:pos + key_len]))
                pos += key_len
            (payload_len,) = struct.unpack_from("<I", body, pos)
            pos += 4
            message.update(text_or_b64("payload", body[pos:pos + payload_len]))
            pos += payload_len
            messages.append(message)
        yield {"segment": path, "offset": at, "flushed_ms": flushed_ms, "messages": messages}
        at += 13 + length


if __name__ == "__main__":
    for path in sys.argv[1:]:
        for record in records(path):
            print(json.dumps(record))
