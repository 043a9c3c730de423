"""CRIU image files, read independently of the tool, to inspect or damage them.

Framing (spec/criu-images.md 1.1-1.2): inventory.img starts with one magic
word, other protobuf images with IMG_COMMON_MAGIC and a type word, raw
images (pages-N.img) with nothing; then records, each a u32 length and that
many bytes of protobuf.  The codec below handles the wire format only
(field number, wire type, value) -- enough to change one field and write
the record back.
"""
import struct
from dataclasses import dataclass
from pathlib import Path

IMG_COMMON_MAGIC = 0x54564319
INVENTORY_MAGIC = 0x58313116

VARINT, I64, LEN, I32 = 0, 1, 2, 5


@dataclass
class Record:
    offset: int		# of the u32 length prefix
    length: int		# of the payload

    @property
    def payload_offset(self):
        return self.offset + 4

    @property
    def end(self):
        return self.offset + 4 + self.length


@dataclass
class Image:
    path: Path
    data: bytes
    header: int		# bytes of magic words
    records: list

    def payload(self, i):
        r = self.records[i]
        return self.data[r.payload_offset:r.end]


def header_size(data):
    if len(data) >= 4 and struct.unpack_from("<I", data)[0] == INVENTORY_MAGIC:
        return 4
    if len(data) >= 8 and struct.unpack_from("<I", data)[0] == IMG_COMMON_MAGIC:
        return 8
    raise ValueError("not a protobuf image (no known magic)")


def load(path):
    path = Path(path)
    data = path.read_bytes()
    off = header_size(data)
    hdr = off
    records = []
    while off < len(data):
        if off + 4 > len(data):
            raise ValueError(f"{path.name}: cut length prefix at {off}")
        (n,) = struct.unpack_from("<I", data, off)
        if off + 4 + n > len(data):
            raise ValueError(f"{path.name}: record at {off} runs past the end")
        records.append(Record(off, n))
        off += 4 + n
    return Image(path, data, hdr, records)


def load_raw_following(path, length_field=2):
    """An image whose records are each followed by raw bytes, as many as
    the record's field `length_field` says (pipes-data.img: bytes)."""
    path = Path(path)
    data = path.read_bytes()
    off = header_size(data)
    hdr = off
    records = []
    while off < len(data):
        (n,) = struct.unpack_from("<I", data, off)
        records.append(Record(off, n))
        raw = get(decode(data[off + 4:off + 4 + n]), length_field)
        off += 4 + n + (raw[0] if raw else 0)
    return Image(path, data, hdr, records)


def replace_record(img, i, payload):
    """The image bytes with record i's payload replaced (length fixed up)."""
    r = img.records[i]
    return (img.data[:r.offset] + struct.pack("<I", len(payload)) + payload +
            img.data[r.end:])


# -------------------------------------------------------------- protobuf

def _varint(buf, i):
    shift = result = 0
    while True:
        if i >= len(buf):
            raise ValueError("truncated varint")
        b = buf[i]
        i += 1
        result |= (b & 0x7f) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def _put_varint(v):
    out = bytearray()
    while True:
        b = v & 0x7f
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def decode(buf):
    """[(field, wire_type, value)]: int for VARINT/I32/I64, bytes for LEN."""
    fields, i = [], 0
    while i < len(buf):
        key, i = _varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == VARINT:
            v, i = _varint(buf, i)
        elif wt == I64:
            (v,) = struct.unpack_from("<Q", buf, i)
            i += 8
        elif wt == I32:
            (v,) = struct.unpack_from("<I", buf, i)
            i += 4
        elif wt == LEN:
            n, i = _varint(buf, i)
            v = bytes(buf[i:i + n])
            i += n
        else:
            raise ValueError(f"wire type {wt}")
        fields.append((num, wt, v))
    return fields


def encode(fields):
    out = bytearray()
    for num, wt, v in fields:
        out += _put_varint(num << 3 | wt)
        if wt == VARINT:
            out += _put_varint(v)
        elif wt == I64:
            out += struct.pack("<Q", v)
        elif wt == I32:
            out += struct.pack("<I", v)
        else:
            out += _put_varint(len(v)) + v
    return bytes(out)


def get(fields, num):
    """All values of field num, in order."""
    return [v for n, _, v in fields if n == num]


def set_field(fields, num, value, nth=0):
    """fields with the nth occurrence of field num set to value."""
    out, seen = [], 0
    for n, wt, v in fields:
        if n == num:
            if seen == nth:
                v = value
            seen += 1
        out.append((n, wt, v))
    if seen <= nth:
        raise KeyError(f"field {num} #{nth} not present")
    return out


def set_nested(fields, path, change):
    """fields with the message at path (field numbers, one a level) replaced
    by change(it)."""
    if not path:
        return change(fields)
    num = path[0]
    inner = get(fields, num)
    assert inner, f"field {num} is missing"
    return set_field(fields, num, encode(set_nested(decode(inner[0]), path[1:], change)))


def edit_record(path, change, i=0):
    """The image at path with record i decoded, given to change (fields ->
    fields) and written back, its length fixed up."""
    path = Path(path)
    img = load(path)
    path.write_bytes(replace_record(img, i, encode(change(decode(img.payload(i))))))


# -------------------------------------------------------------- pagemaps

PE_PARENT, PE_LAZY, PE_PRESENT = 0x1, 0x2, 0x4


def pagemap_entries(path):
    """(pages_id, [(vaddr, nr_pages, flags)]) with the spec's read rules."""
    img = load(path)
    head = decode(img.payload(0))
    pages_id = get(head, 1)[0]
    entries = []
    for i in range(1, len(img.records)):
        f = decode(img.payload(i))
        vaddr = get(f, 1)[0]
        nr = (get(f, 5) or get(f, 2))[0]
        in_parent = bool(get(f, 3) and get(f, 3)[0])
        flags = get(f, 4)
        flags = flags[0] if flags else (PE_PARENT if in_parent else PE_PRESENT)
        entries.append((vaddr, nr, flags))
    return pages_id, entries
