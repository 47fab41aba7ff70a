"""Checksummed files (common/checksummed_file.h), read whole and verified
before a byte of the payload is used.

Layout (little-endian):
  header   magic 8 bytes | version u32 | reserved u32
  payload  any number of bytes
  footer   payload_size u64 | crc32 u32 (zlib crc32 of header + payload) |
           end magic u32 0x4B435350 ("PSCK")
"""

import os
import struct
import zlib

from .errors import (DATA_LOSS, FAILED_PRECONDITION, INVALID_ARGUMENT,
                     NOT_FOUND, ExportError)

HEADER_BYTES = 16
FOOTER_BYTES = 16
END_MAGIC = 0x4B435350


def _escape(raw):
    return raw.decode("latin-1").encode("unicode_escape").decode("ascii")


def _open(path):
    try:
        if not os.path.exists(path):
            raise ExportError(NOT_FOUND, "cannot open '%s': no such file" %
                              path)
        if not os.path.isfile(path):
            raise ExportError(INVALID_ARGUMENT,
                              "'%s' is not a regular file" % path)
        return open(path, "rb")
    except OSError as e:
        raise ExportError(NOT_FOUND, "cannot open '%s': %s" %
                          (path, e.strerror or e)) from None


def _check_framing(path, f, magic, max_version):
    """Checks magic, size, version and footer of the open file `f`; returns
    (payload_size, footer crc)."""
    try:
        size = os.fstat(f.fileno()).st_size
        header = f.read(HEADER_BYTES)
        f.seek(max(size - FOOTER_BYTES, 0))
        footer = f.read(FOOTER_BYTES)
        f.seek(HEADER_BYTES)
    except OSError as e:
        raise ExportError(NOT_FOUND, "cannot read '%s': %s" %
                          (path, e.strerror or e)) from None
    if len(header) >= 8 and header[:8] != magic:
        raise ExportError(INVALID_ARGUMENT,
                          "'%s' is not a '%s' file: it starts with '%s'" %
                          (path, _escape(magic), _escape(header[:8])))
    framing = HEADER_BYTES + FOOTER_BYTES
    if size < framing:
        raise ExportError(DATA_LOSS,
                          "'%s' is truncated: %d bytes, less than the %d of an "
                          "empty checksummed file" % (path, size, framing))
    version = struct.unpack_from("<I", header, 8)[0]
    if not 1 <= version <= max_version:
        raise ExportError(FAILED_PRECONDITION,
                          "'%s' has format version %d; this reader reads "
                          "versions 1 to %d" % (path, version, max_version))
    payload_size, crc, end = struct.unpack("<QII", footer)
    if end != END_MAGIC:
        raise ExportError(DATA_LOSS,
                          "'%s' is truncated or corrupt: no valid footer at its "
                          "end (%d bytes)" % (path, size))
    if payload_size != size - framing:
        raise ExportError(DATA_LOSS,
                          "'%s' is truncated or corrupt: its footer says %d "
                          "payload bytes, the file holds %d" %
                          (path, payload_size, size - framing))
    return payload_size, crc, header


def read_payload(path, magic, max_version):
    """The payload of the checksummed file `path` (magic: 8 bytes), verified.
    ExportError, naming the file, as the C++ reader: NOT_FOUND when missing,
    INVALID_ARGUMENT for another magic or not a regular file, DATA_LOSS when
    truncated or corrupt (footer, size, crc32), FAILED_PRECONDITION for a
    version outside [1, max_version]."""
    with _open(path) as f:
        payload_size, crc, header = _check_framing(path, f, magic,
                                                   max_version)
        payload = f.read(payload_size)
    if len(payload) != payload_size:
        raise ExportError(DATA_LOSS, "'%s' shrank while being read" % path)
    actual = zlib.crc32(payload, zlib.crc32(header))
    if actual != crc:
        raise ExportError(DATA_LOSS,
                          "'%s' is corrupt: checksum mismatch (crc32 %d, the "
                          "footer says %d)" % (path, actual, crc))
    return memoryview(payload)


def peek_payload(path, magic, max_version, n):
    """The first n payload bytes of `path`, its framing checked (magic,
    version, footer, size) but not its checksum: how the C++ reader tells a
    FULL export from a DELTA. Errors as read_payload."""
    with _open(path) as f:
        payload_size, _, _ = _check_framing(path, f, magic, max_version)
        head = f.read(min(n, payload_size))
    if len(head) < n:
        raise ExportError(DATA_LOSS,
                          "'%s' is too short: wanted %d payload bytes, only %d"
                          % (path, n, payload_size))
    return head


class PayloadReader:
    """Reads little-endian u64s, strings and arrays from a payload in order;
    DATA_LOSS naming the file when it runs short."""

    def __init__(self, path, payload):
        self.path = path
        self.payload = payload
        self.pos = 0

    def remaining(self):
        return len(self.payload) - self.pos

    def read(self, n):
        if n > self.remaining():
            raise ExportError(DATA_LOSS,
                              "'%s' is too short: wanted %d more bytes at "
                              "payload offset %d, only %d left" %
                              (self.path, n, self.pos, self.remaining()))
        out = self.payload[self.pos:self.pos + n]
        self.pos += n
        return out

    def u64(self):
        return struct.unpack("<Q", self.read(8))[0]

    def string(self, max_len):
        n = self.u64()
        if n > max_len or n > self.remaining():
            raise ExportError(DATA_LOSS,
                              "'%s' is corrupt: a string of %d bytes at payload "
                              "offset %d (at most %d possible)" %
                              (self.path, n, self.pos - 8,
                               min(max_len, self.remaining())))
        return bytes(self.read(n))

    def finish(self):
        if self.remaining():
            raise ExportError(DATA_LOSS,
                              "'%s' has %d unexpected trailing payload bytes" %
                              (self.path, self.remaining()))
