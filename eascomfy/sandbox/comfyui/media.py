"""Tiny but well-formed media files for the ComfyUI emulator's output nodes, written with the
standard library only (no PIL, no ffmpeg).

* ``png``: an RGB PNG (signature, IHDR, optional tEXt, one zlib IDAT, IEND; every chunk CRC'd), as
  SaveImage writes it, with the workflow in tEXt chunks like ComfyUI's ``PngInfo``.
* ``animated_webp``: RIFF/WEBP with VP8X (animation flag), ANIM and one ANMF per frame; each frame
  is a lossless VP8L bitstream of one colour (five single-symbol prefix codes, so the pixels take
  no bits at all), which libwebp decodes.
* ``gif``: a GIF89a of one colour (LZW with a clear code before every pixel, so codes stay 3 bits).
* ``mp4``: an ISO BMFF file (ftyp isom, mdat, moov with one avc1 track whose sample tables point
  into mdat) holding real H.264: a baseline SPS/PPS in avcC and one IDR frame per colour made of
  I_PCM macroblocks (raw samples, no transform), which ffmpeg decodes.
"""

from __future__ import annotations

import struct
import zlib

Rgb = tuple[int, int, int]


class BitWriter:
    """Least-significant-bit-first bit packing (the order of VP8L and GIF's LZW)."""

    def __init__(self) -> None:
        self._value = 0
        self._bits = 0

    def write(self, value: int, width: int) -> None:
        self._value |= (value & ((1 << width) - 1)) << self._bits
        self._bits += width

    def to_bytes(self) -> bytes:
        return self._value.to_bytes((self._bits + 7) // 8, "little")


# -- PNG ------------------------------------------------------------------------------------------
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(width: int, height: int, rgb: Rgb, text: dict[str, str] | None = None) -> bytes:
    """A ``width`` x ``height`` PNG of one colour; ``text`` becomes tEXt chunks (Latin-1 keys)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    rows = (b"\x00" + bytes(rgb) * width) * height  # filter type 0 before each row
    texts = [_png_chunk(b"tEXt", k.encode("latin-1") + b"\x00" + v.encode("latin-1", "replace"))
             for k, v in (text or {}).items()]
    return PNG_SIGNATURE + _png_chunk(b"IHDR", header) + b"".join(texts) + \
        _png_chunk(b"IDAT", zlib.compress(rows)) + _png_chunk(b"IEND", b"")


# -- WEBP -----------------------------------------------------------------------------------------
def _riff_chunk(fourcc: bytes, payload: bytes) -> bytes:
    pad = b"\x00" if len(payload) % 2 else b""
    return fourcc + struct.pack("<I", len(payload)) + payload + pad


def _u24(value: int) -> bytes:
    return value.to_bytes(3, "little")


def vp8l_solid(width: int, height: int, rgb: Rgb) -> bytes:
    """A lossless VP8L bitstream (without its chunk header) of one opaque colour."""
    bits = BitWriter()
    bits.write(0x2F, 8)  # signature
    bits.write(width - 1, 14)
    bits.write(height - 1, 14)
    bits.write(0, 1)  # alpha_is_used
    bits.write(0, 3)  # version
    bits.write(0, 1)  # no transform
    bits.write(0, 1)  # no colour cache
    bits.write(0, 1)  # no meta prefix codes
    red, green, blue = rgb
    for symbol in (green, red, blue, 255):  # green, red, blue, alpha: one 8-bit symbol each
        bits.write(1, 1)  # simple code
        bits.write(0, 1)  # one symbol
        bits.write(1, 1)  # the symbol takes 8 bits
        bits.write(symbol, 8)
    bits.write(0b0001, 4)  # distance code: simple, one symbol, 1-bit symbol 0
    return bits.to_bytes()


def animated_webp(width: int, height: int, frames: list[Rgb], duration_ms: int = 100, loops: int = 0) -> bytes:
    """An animated WEBP of ``frames`` (one colour each), every frame ``duration_ms`` long."""
    vp8x = bytes([0x02, 0, 0, 0]) + _u24(width - 1) + _u24(height - 1)  # flags: animation
    anim = struct.pack("<IH", 0xFFFFFFFF, loops)  # background colour (BGRA), loop count
    chunks = [_riff_chunk(b"VP8X", vp8x), _riff_chunk(b"ANIM", anim)]
    for rgb in frames:
        header = _u24(0) + _u24(0) + _u24(width - 1) + _u24(height - 1) + _u24(duration_ms) + b"\x02"  # no blend
        chunks.append(_riff_chunk(b"ANMF", header + _riff_chunk(b"VP8L", vp8l_solid(width, height, rgb))))
    body = b"WEBP" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


# -- GIF ------------------------------------------------------------------------------------------
def gif(width: int, height: int, rgb: Rgb) -> bytes:
    """A GIF89a of one colour: a 2-entry palette and an LZW stream that never grows its table."""
    screen = struct.pack("<HHBBB", width, height, 0x80, 0, 0)  # global table of 2 entries
    palette = bytes(rgb) + b"\x00\x00\x00"
    image = b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0)
    clear, end = 4, 5  # minimum code size 2
    bits = BitWriter()
    for _ in range(width * height):
        bits.write(clear, 3)
        bits.write(0, 3)
    bits.write(end, 3)
    data = bits.to_bytes()
    blocks = b"".join(bytes([len(part)]) + part for part in (data[i:i + 255] for i in range(0, len(data), 255)))
    return b"GIF89a" + screen + palette + image + b"\x02" + blocks + b"\x00" + b"\x3b"


# -- MP4 ------------------------------------------------------------------------------------------
def _box(kind: bytes, *payload: bytes) -> bytes:
    data = b"".join(payload)
    return struct.pack(">I", 8 + len(data)) + kind + data


def _full_box(kind: bytes, version: int, flags: int, *payload: bytes) -> bytes:
    return _box(kind, bytes([version]) + flags.to_bytes(3, "big"), *payload)


_MATRIX = struct.pack(">9I", 0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000)


class _RbspWriter:
    """Most-significant-bit-first packing with H.264's Exp-Golomb codes."""

    def __init__(self) -> None:
        self._value = 0
        self._bits = 0

    def u(self, width: int, value: int) -> "_RbspWriter":
        self._value = (self._value << width) | (value & ((1 << width) - 1))
        self._bits += width
        return self

    def ue(self, value: int) -> "_RbspWriter":
        code = value + 1
        return self.u(code.bit_length() - 1, 0).u(code.bit_length(), code)

    def align(self) -> "_RbspWriter":
        return self.u(-self._bits % 8, 0)

    def nal(self, header: int) -> bytes:
        """Close with rbsp_trailing_bits; the NAL unit with emulation prevention bytes inserted."""
        self.u(1, 1).align()
        out, zeros = bytearray([header]), 0
        for byte in self._value.to_bytes(self._bits // 8, "big"):
            if zeros >= 2 and byte <= 3:
                out.append(3)
                zeros = 0
            out.append(byte)
            zeros = zeros + 1 if byte == 0 else 0
        return bytes(out)


def _h264_parameter_sets(width: int, height: int) -> tuple[bytes, bytes]:
    """Baseline SPS (level 1.0, POC type 2, no reference frames) and PPS (CAVLC)."""
    sps = (_RbspWriter().u(8, 66).u(8, 0xC0).u(8, 10).ue(0)  # profile, constraints 0+1, level, sps id
           .ue(0).ue(2).ue(0).u(1, 0)  # log2_max_frame_num-4, poc type 2, no refs, no gaps
           .ue(width // 16 - 1).ue(height // 16 - 1).u(1, 1).u(1, 1).u(1, 0).u(1, 0)).nal(0x67)
    pps = (_RbspWriter().ue(0).ue(0).u(1, 0).u(1, 0).ue(0).ue(0).ue(0).u(1, 0).u(2, 0)
           .ue(0).ue(0).ue(0).u(1, 1).u(1, 0).u(1, 0)).nal(0x68)  # qp deltas 0 (se(0) == ue(0))
    return sps, pps


def _h264_idr_pcm(width: int, height: int, rgb: Rgb, idr_id: int) -> bytes:
    """An IDR slice whose macroblocks are all I_PCM (raw samples): decodes without any transform."""
    red, green, blue = rgb
    luma = min(max(round(16 + (65.7 * red + 129.1 * green + 25.1 * blue) / 256), 1), 254)
    cb = min(max(round(128 + (-37.9 * red - 74.5 * green + 112.4 * blue) / 256), 1), 254)
    cr = min(max(round(128 + (112.4 * red - 94.2 * green - 18.3 * blue) / 256), 1), 254)
    bits = _RbspWriter().ue(0).ue(7).ue(0).u(4, 0).ue(idr_id)  # first mb, I slice, pps, frame_num, idr id
    bits.u(1, 0).u(1, 0).ue(0).ue(1)  # no_output_of_prior_pics, long_term_ref, qp delta, no deblocking
    for _ in range((width // 16) * (height // 16)):
        bits.ue(25).align()  # mb_type I_PCM, pcm_alignment_zero_bits
        for sample in [luma] * 256 + [cb] * 64 + [cr] * 64:
            bits.u(8, sample)
    return bits.nal(0x65)


def _nal(unit: bytes) -> bytes:
    """A NAL unit with the 4-byte length prefix of avcC samples."""
    return struct.pack(">I", len(unit)) + unit


def mp4(width: int, height: int, colours: list[Rgb], fps: int = 10) -> bytes:
    """An MP4 (ISO BMFF, brand isom) with one H.264 track, a frame of one colour per ``colours``
    entry (dimensions in whole 16-pixel macroblocks)."""
    frames = len(colours)
    timescale = fps * 100
    duration = frames * 100  # in the track's timescale: 100 ticks per frame
    movie_duration = frames * 1000 // fps  # in the movie's timescale (1000)
    sps, pps = _h264_parameter_sets(width, height)
    samples = [_nal(_h264_idr_pcm(width, height, rgb, i)) for i, rgb in enumerate(colours)]
    ftyp = _box(b"ftyp", b"isom", struct.pack(">I", 512), b"isom", b"iso2", b"avc1", b"mp41")
    mdat = _box(b"mdat", *samples)
    first_sample_offset = len(ftyp) + 8

    avcc = _box(b"avcC", bytes([1, sps[1], sps[2], sps[3], 0xFF, 0xE1]), struct.pack(">H", len(sps)), sps,
                b"\x01", struct.pack(">H", len(pps)), pps)
    avc1 = _box(b"avc1", b"\x00" * 6, struct.pack(">H", 1), b"\x00" * 16, struct.pack(">HH", width, height),
                struct.pack(">III", 0x00480000, 0x00480000, 0), struct.pack(">H", 1), b"\x00" * 32,
                struct.pack(">Hh", 0x0018, -1), avcc)
    stbl = _box(
        b"stbl",
        _full_box(b"stsd", 0, 0, struct.pack(">I", 1), avc1),
        _full_box(b"stts", 0, 0, struct.pack(">III", 1, frames, 100)),
        _full_box(b"stsc", 0, 0, struct.pack(">IIII", 1, 1, frames, 1)),
        _full_box(b"stsz", 0, 0, struct.pack(">II", 0, frames), *(struct.pack(">I", len(s)) for s in samples)),
        _full_box(b"stco", 0, 0, struct.pack(">II", 1, first_sample_offset)),
    )
    dinf = _box(b"dinf", _full_box(b"dref", 0, 0, struct.pack(">I", 1), _full_box(b"url ", 0, 1)))
    minf = _box(b"minf", _full_box(b"vmhd", 0, 1, b"\x00" * 8), dinf, stbl)
    hdlr = _full_box(b"hdlr", 0, 0, b"\x00" * 4, b"vide", b"\x00" * 12, b"VideoHandler\x00")
    mdhd = _full_box(b"mdhd", 0, 0, struct.pack(">IIII", 0, 0, timescale, duration), struct.pack(">HH", 0x55C4, 0))
    tkhd = _full_box(b"tkhd", 0, 3, struct.pack(">IIIII", 0, 0, 1, 0, movie_duration), b"\x00" * 8,
                     struct.pack(">hhhH", 0, 0, 0, 0), _MATRIX, struct.pack(">II", width << 16, height << 16))
    mvhd = _full_box(b"mvhd", 0, 0, struct.pack(">IIII", 0, 0, 1000, movie_duration),
                     struct.pack(">IH", 0x00010000, 0x0100), b"\x00" * 10, _MATRIX, b"\x00" * 24, struct.pack(">I", 2))
    moov = _box(b"moov", mvhd, _box(b"trak", tkhd, _box(b"mdia", mdhd, hdlr, minf)))
    return ftyp + mdat + moov
