#!/usr/bin/env python3
"""Writes masks for 32x32 images (white observed, black hidden): out of the inpainting
family (boxes, strokes, random pixels, half images), the word "APS" in a 5x7 pixel font at
twice its size and a ring; and the one 12x12 box in the centre that the published method's
setting (a flow distilled on recorded measurements of one mask) uses.
Usage: make_shape_masks.py DIR"""
import os
import struct
import sys
import zlib

FONT = {  # 5x7, '#' = ink
    "A": [".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"],
    "P": ["####.", "#...#", "#...#", "####.", "#....", "#....", "#...."],
    "S": [".####", "#....", "#....", ".###.", "....#", "....#", "####."],
}


def png(path, rows):
    raw = b"".join(b"\0" + bytes(r) for r in rows)
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 32, 32, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def text_mask():
    m = [[255] * 32 for _ in range(32)]
    x0, y0 = 0, 9  # three letters 10 px wide with 1 px gaps, centred vertically
    for i, ch in enumerate("APS"):
        for r, line in enumerate(FONT[ch]):
            for c, v in enumerate(line):
                if v == "#":
                    for dy in range(2):
                        for dx in range(2):
                            m[y0 + 2 * r + dy][x0 + i * 11 + 2 * c + dx] = 0
    return m


def ring_mask():
    return [[0 if 6.0 <= ((x - 15.5) ** 2 + (y - 15.5) ** 2) ** 0.5 <= 10.0 else 255 for x in range(32)]
            for y in range(32)]


def centre_box_mask():
    return [[0 if 10 <= y < 22 and 10 <= x < 22 else 255 for x in range(32)] for y in range(32)]


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else "."
    os.makedirs(out, exist_ok=True)
    png(os.path.join(out, "text-aps.png"), text_mask())
    png(os.path.join(out, "ring.png"), ring_mask())
    png(os.path.join(out, "box12-centre.png"), centre_box_mask())
    print(os.path.join(out, "text-aps.png"))
    print(os.path.join(out, "ring.png"))
    print(os.path.join(out, "box12-centre.png"))
