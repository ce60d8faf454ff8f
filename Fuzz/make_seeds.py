#!/usr/bin/env python3
"""Writes the seed corpora: valid records, a segment with a torn tail, zeros, and garbage.
Run from the repository root: python3 Fuzz/make_seeds.py"""
import os, struct

def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF

def mask(crc):
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF

def record(index, payload, term=0):
    size = (24 + len(payload) + 1 + 7) & ~7
    body = struct.pack('<IQQ', len(payload), index, term) + payload
    body += b'\xa5' * (size - 24 - len(payload))
    return struct.pack('<I', mask(crc32c(body))) + body

here = os.path.dirname(os.path.abspath(__file__))
seeds = {
    'record/one': record(1, b'hello'),
    'record/empty-payload': record(7, b''),
    'record/two': record(1, b'a' * 20) + record(2, b'b' * 3, term=4),
    'record/flipped': bytes([record(1, b'xyz')[0] ^ 1]) + record(1, b'xyz')[1:],
    'record/zeros': bytes(64),
}
segment = b''.join(record(i, bytes([i % 251]) * (i * 5 % 90)) for i in range(1, 12))
seeds['segment/clean'] = struct.pack('<Q', 1) + segment + bytes(256)
seeds['segment/torn'] = struct.pack('<Q', 1) + segment[:-13]
seeds['segment/hole'] = struct.pack('<Q', 1) + segment[:200] + bytes(64) + segment[264:]
for name, data in seeds.items():
    with open(os.path.join(here, 'Corpus', name), 'wb') as f:
        f.write(data)
print('wrote', len(seeds), 'seeds')
