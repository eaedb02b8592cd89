import { describe, expect, it } from 'vitest';
import { PeerParser } from '../../test/harness/guacd-peer.js';
import { BLOB_MAX_BYTES, DesktopStream, NOP, officeDesktop, wireBytesPerSecond } from './rdp-stream.js';

describe('the synthetic office-desktop stream', () => {
  it('is made of valid Guacamole instructions: image streams in blobs of at most 6048 bytes, each frame closed by sync', () => {
    const p = officeDesktop(200 * 1024);
    const s = new DesktopStream(p);
    const parser = new PeerParser();
    for (let f = 0; f < p.largeEvery * 2; f++) {
      const frame = parser.push(Buffer.from(s.next(1_733_390_000_000 + f)));
      expect(frame.at(-1)).toEqual(['sync', String(1_733_390_000_000 + f)]);
      const open = new Map<string, number>();
      for (const ins of frame.slice(0, -1)) {
        const [op, id = ''] = ins;
        if (op === 'img') {
          expect(ins).toHaveLength(7);
          open.set(id, 0);
        } else if (op === 'blob') {
          const bytes = Buffer.from(ins[2]!, 'base64');
          expect(Buffer.from(bytes).toString('base64')).toBe(ins[2]);
          expect(bytes.length).toBeLessThanOrEqual(BLOB_MAX_BYTES);
          open.set(id, open.get(id)! + bytes.length);
        } else {
          expect(op).toBe('end');
          expect(open.get(id)).toBeGreaterThanOrEqual(p.smallBytes);
          open.delete(id);
        }
      }
      expect(open.size).toBe(0);
    }
    expect(parser.push(Buffer.from(NOP))).toEqual([['nop']]);
  });

  it('sizes the large region so the wire rate is the one asked for (within 2 %)', () => {
    for (const kib of [100, 200, 300]) {
      const p = officeDesktop(kib * 1024);
      expect(p.largeBytes).toBeGreaterThan(0);
      expect(Math.abs(wireBytesPerSecond(p) / (kib * 1024) - 1)).toBeLessThan(0.02);
    }
  });
});
