"""What a file's own bytes say before anything is decoded: its duration (MP4/MOV, Matroska/WebM) and whether it is
a still image.

OpenCV gives no container duration, only a frame count that is wrong or garbage for some files (a Matroska file
written live has no duration, a live AVI reports 2^30 frames), so the duration limit is checked here from the
header, in milliseconds, before any frame is decoded:

- MP4/MOV (ISO BMFF, ISO/IEC 14496-12): the video track's presentation length: its edit list (`elst`) when it has
  one, else its media duration (`mdhd`); failing a video track the movie's (`mvhd`, or `mehd` for a fragmented
  file).
- Matroska/WebM (RFC 9559): `Segment/Info/Duration` scaled by `TimestampScale`; a file written live (a browser's
  MediaRecorder) has none, and then the timecode of the last cluster near the end of the file is a lower bound
  (clusters last a few seconds at most).

Every parser reads a few boxes or elements and gives up (None) on anything it does not understand: the caller
then falls back to the frame count, and the decoder's timestamps enforce the limit in any case.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

# File names that are videos, by extension (case-insensitive): what `microx predict FOLDER` picks up and what the
# Space accepts. Content decides what a file is (`still_image_format`); a name only filters a listing.
VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp", ".ts", ".mts", ".ogv"}
)

_MAX_BOXES = 4096  # a pathological file cannot make the walk long
_TAIL_BYTES = 4 * 2**20  # where the last Matroska cluster is searched for

# Matroska element ids (with their length marker bits, as they appear in the file).
_EBML = 0x1A45DFA3
_SEGMENT = 0x18538067
_INFO = 0x1549A966
_TIMESTAMP_SCALE = 0x2AD7B1
_DURATION = 0x4489
_CLUSTER = 0x1F43B675
_CLUSTER_TIMESTAMP = 0xE7
_CRC32 = 0xBF
_VOID = 0xEC
# What may follow a cluster's timestamp: SimpleBlock, BlockGroup, Position, PrevSize.
_CLUSTER_CHILDREN = (0xA3, 0xA0, 0xA7, 0xAB)


def container_duration(path: str | Path) -> float | None:
    """The duration in seconds the container declares, or None when it declares none this module can read."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(12)
            if len(head) < 8:
                return None
            if head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip"):
                return _mp4_duration(f, size)
            if int.from_bytes(head[:4], "big") == _EBML:
                return _matroska_duration(f, size)
    except (OSError, ValueError, struct.error):
        return None
    return None


def still_image_format(path: str | Path) -> str | None:
    """The image format ("PNG", "JPEG", ...) when the file's content is a still image whatever its name, else None.

    Animated formats (APNG, animated WebP) and image sequences (HEIF sequences) count as videos, and so does GIF
    (usually animated), which the decoder reads frame by frame.
    """
    try:
        with Path(path).open("rb") as f:
            head = f.read(64)
            if head.startswith(b"\x89PNG\r\n\x1a\n"):
                f.seek(0)
                before_data = f.read(1 << 16).split(b"IDAT", 1)[0]
                return None if b"acTL" in before_data else "PNG"  # acTL: an animated PNG
            size = Path(path).stat().st_size
    except OSError:
        return None
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        animated = head[12:16] == b"VP8X" and bool(head[20] & 0x02)
        return None if animated else "WebP"
    if head[:2] == b"BM" and len(head) >= 18:
        declared = int.from_bytes(head[2:6], "little")
        dib = int.from_bytes(head[14:18], "little")
        if declared == size or dib in (12, 40, 52, 56, 64, 108, 124):
            return "BMP"
    if head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"mif1", b"avif"):
        return "HEIF" if head[8:12] != b"avif" else "AVIF"
    return None


# MP4 / MOV ----------------------------------------------------------------------------------------------------------


def _boxes(f: BinaryIO, start: int, end: int):
    """(type, payload start, box end) of the boxes between `start` and `end`."""
    pos = start
    for _ in range(_MAX_BOXES):
        if pos + 8 > end:
            return
        f.seek(pos)
        size, kind = struct.unpack(">I4s", f.read(8))
        header = 8
        if size == 1:
            size = struct.unpack(">Q", f.read(8))[0]
            header = 16
        elif size == 0:  # to the end of the enclosing box
            size = end - pos
        if size < header or pos + size > end + 8:  # a little slack: some writers round the last box
            return
        yield kind, pos + header, min(pos + size, end)
        pos += size


def _read_payload(f: BinaryIO, start: int, end: int, limit: int = 4096) -> bytes:
    f.seek(start)
    return f.read(min(end - start, limit))


def _mp4_duration(f: BinaryIO, size: int) -> float | None:
    for kind, start, end in _boxes(f, 0, size):
        if kind == b"moov":
            return _moov_duration(f, start, end, size)
    return None


def _moov_duration(f: BinaryIO, start: int, end: int, size: int) -> float | None:
    movie_scale, movie_duration, fragment_duration = None, None, None
    tracks = []
    for kind, s, e in _boxes(f, start, end):
        if kind == b"mvhd":
            data = _read_payload(f, s, e)
            if data[0] == 1:
                movie_scale, movie_duration = struct.unpack(">IQ", data[20:32])
            else:
                movie_scale, movie_duration = struct.unpack(">II", data[12:20])
        elif kind == b"trak":
            tracks.append((s, e))
        elif kind == b"mvex":
            for k, s2, e2 in _boxes(f, s, e):
                if k == b"mehd":
                    data = _read_payload(f, s2, e2)
                    fragment_duration = struct.unpack(">Q" if data[0] == 1 else ">I", data[4 : 12 if data[0] else 8])[0]
    if not movie_scale:
        return None
    video = None
    for s, e in tracks:
        video = _video_track(f, s, e, movie_scale)
        if video is not None:
            break
    if video is not None and video[0] is not None:
        return video[0]
    for value in (movie_duration, fragment_duration):
        if value and value not in (0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF):
            return value / movie_scale
    if video is not None and video[2]:  # fragmented, written live: the last fragment's start time
        return _last_fragment_time(f, size, video[1], video[2])
    return None


def _video_track(f: BinaryIO, start: int, end: int, movie_scale: int) -> tuple[float | None, int, int] | None:
    """(presentation length in seconds or None, track id, media timescale) of a video track; None for another kind
    of track."""
    is_video, media_duration, edit_duration, track_id, media_scale = False, None, None, 0, 0
    for kind, s, e in _boxes(f, start, end):
        if kind == b"tkhd":
            data = _read_payload(f, s, e)
            track_id = struct.unpack(">I", data[20:24] if data[0] == 1 else data[12:16])[0]
        elif kind == b"mdia":
            for k, s2, e2 in _boxes(f, s, e):
                data = _read_payload(f, s2, e2)
                if k == b"hdlr":
                    is_video = data[8:12] == b"vide"
                elif k == b"mdhd":
                    if data[0] == 1:
                        media_scale, duration = struct.unpack(">IQ", data[20:32])
                    else:
                        media_scale, duration = struct.unpack(">II", data[12:20])
                    if media_scale and duration not in (0, 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF):
                        media_duration = duration / media_scale
        elif kind == b"edts":
            for k, s2, e2 in _boxes(f, s, e):
                if k == b"elst":
                    edit_duration = _edit_list_duration(_read_payload(f, s2, e2, 1 << 16), movie_scale)
    if not is_video:
        return None
    return edit_duration or media_duration, track_id, media_scale


def _last_fragment_time(f: BinaryIO, size: int, track_id: int, media_scale: int) -> float | None:
    """Decode time of the video track's last fragment (`moof/traf/tfdt` after its `tfhd`), from the file's tail."""
    start = max(0, size - _TAIL_BYTES)
    f.seek(start)
    tail = f.read()
    pos = tail.rfind(b"tfdt")
    while pos >= 4:
        box = int.from_bytes(tail[pos - 4 : pos], "big")
        version = tail[pos + 4] if pos + 4 < len(tail) else -1
        if (version, box) in ((0, 16), (1, 20)) and pos + box - 4 <= len(tail):
            header = tail.rfind(b"tfhd", max(0, pos - 64), pos)
            if header >= 0 and int.from_bytes(tail[header + 8 : header + 12], "big") == track_id:
                time = int.from_bytes(tail[pos + 8 : pos + 8 + box - 12], "big")  # 4 or 8 bytes
                return time / media_scale
        pos = tail.rfind(b"tfdt", 0, pos)
    return None


def _edit_list_duration(data: bytes, movie_scale: int) -> float | None:
    """Sum of the edits that show media (an edit with media time -1 is an empty edit: a delay)."""
    version, count = data[0], struct.unpack(">I", data[4:8])[0]
    entry, fmt = (20, ">Qq") if version == 1 else (12, ">Ii")
    total = 0
    for i in range(min(count, (len(data) - 8) // entry)):
        segment, media_time = struct.unpack(fmt, data[8 + i * entry : 8 + i * entry + entry - 4])
        if media_time != -1:
            total += segment
    return total / movie_scale if total else None


# Matroska / WebM ----------------------------------------------------------------------------------------------------


def _vint(data: bytes, pos: int, keep_marker: bool) -> tuple[int, int]:
    """An EBML variable-length integer at `pos`: (value, length); value -1 for "unknown size"."""
    first = data[pos]
    length = 8 - first.bit_length() + 1 if first else 9
    if length > 8 or pos + length > len(data):
        raise ValueError("bad EBML integer")
    value = int.from_bytes(data[pos : pos + length], "big")
    if keep_marker:
        return value, length
    value &= (1 << (7 * length)) - 1
    return (-1 if value == (1 << (7 * length)) - 1 else value), length


def _matroska_duration(f: BinaryIO, size: int) -> float | None:
    f.seek(0)
    data = f.read(1 << 16)
    pos = 0
    scale = 1_000_000  # TimestampScale's default: timestamps in milliseconds
    for _ in range(_MAX_BOXES):
        if pos >= len(data):
            return None
        element, n = _vint(data, pos, keep_marker=True)
        length, m = _vint(data, pos + n, keep_marker=False)
        body = pos + n + m
        if element == _SEGMENT:
            pos = body  # descend
            continue
        if element == _CLUSTER:  # past the header without a duration: a file written live
            break
        if element == _INFO:
            duration = None
            end = min(body + length, len(data)) if length >= 0 else len(data)
            p = body
            while p < end:
                child, n2 = _vint(data, p, keep_marker=True)
                child_len, m2 = _vint(data, p + n2, keep_marker=False)
                value = data[p + n2 + m2 : p + n2 + m2 + child_len]
                if child == _TIMESTAMP_SCALE:
                    scale = int.from_bytes(value, "big") or scale
                elif child == _DURATION and child_len in (4, 8):
                    duration = struct.unpack(">f" if child_len == 4 else ">d", value)[0]
                p += n2 + m2 + max(child_len, 0)
            if duration is not None and duration > 0:
                return duration * scale / 1e9
            break
        if length < 0:
            return None
        pos = body + length
    return _last_cluster_time(f, size, scale)


def _last_cluster_time(f: BinaryIO, size: int, scale: int) -> float | None:
    """Timestamp of the last cluster in the file's tail (a lower bound of the duration), or None."""
    start = max(0, size - _TAIL_BYTES)
    f.seek(start)
    tail = f.read()
    marker = _CLUSTER.to_bytes(4, "big")
    pos = tail.rfind(marker)
    while pos >= 0:
        try:
            _, m = _vint(tail, pos + 4, keep_marker=False)
            p = pos + 4 + m
            while tail[p] in (_CRC32, _VOID):  # ffmpeg starts each Matroska cluster with a CRC-32
                length, n = _vint(tail, p + 1, keep_marker=False)
                p += 1 + n + length
            if tail[p] == _CLUSTER_TIMESTAMP:
                length, n = _vint(tail, p + 1, keep_marker=False)
                if 1 <= length <= 8:
                    after = p + 1 + n + length
                    if after < len(tail) and tail[after] in _CLUSTER_CHILDREN:
                        return int.from_bytes(tail[p + 1 + n : after], "big") * scale / 1e9
        except (ValueError, IndexError):
            pass
        pos = tail.rfind(marker, 0, pos)
    return None
