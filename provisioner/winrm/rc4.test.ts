import { describe, expect, it } from 'vitest';
import { Rc4, rc4 } from './rc4.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

// RFC 6229 §2: keystream bytes at the given offsets (encrypting zeros yields the keystream).
const vectors: { key: string; at: Record<number, string> }[] = [
  {
    key: '0102030405',
    at: {
      0: 'b2 39 63 05 f0 3d c0 27 cc c3 52 4a 0a 11 18 a8',
      16: '69 82 94 4f 18 fc 82 d5 89 c4 03 a4 7a 0d 09 19',
      240: '28 cb 11 32 c9 6c e2 86 42 1d ca ad b8 b6 9e ae',
      256: '1c fc f6 2b 03 ed db 64 1d 77 df cf 7f 8d 8c 93',
    },
  },
  {
    key: '0102030405060708090a0b0c0d0e0f10',
    at: {
      0: '9a c7 cc 9a 60 9d 1e f7 b2 93 28 99 cd e4 1b 97',
      16: '52 48 c4 95 90 14 12 6a 6e 8a 84 f1 1d 1a 9e 1c',
    },
  },
];

describe('rc4 (RFC 6229)', () => {
  for (const v of vectors) {
    it(`key ${v.key}`, () => {
      const stream = rc4(hex(v.key), Buffer.alloc(272));
      for (const [off, want] of Object.entries(v.at)) {
        expect(stream.subarray(Number(off), Number(off) + 16).toString('hex')).toBe(hex(want).toString('hex'));
      }
    });
  }

  it('keeps its state across update calls', () => {
    const key = hex('0102030405');
    const whole = rc4(key, Buffer.alloc(40));
    const c = new Rc4(key);
    const parts = Buffer.concat([c.update(Buffer.alloc(7)), c.update(Buffer.alloc(0)), c.update(Buffer.alloc(33))]);
    expect(parts.equals(whole)).toBe(true);
  });

  it('classic vector Key/Plaintext', () => {
    expect(rc4(Buffer.from('Key'), Buffer.from('Plaintext')).toString('hex')).toBe('bbf316e8d940af0ad3');
  });
});
