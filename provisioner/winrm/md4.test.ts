import { describe, expect, it } from 'vitest';
import { md4 } from './md4.js';

// RFC 1320 §A.5 test suite.
const vectors: [string, string][] = [
  ['', '31d6cfe0d16ae931b73c59d7e0c089c0'],
  // RFC 1320 prints this one as 31 digits; the erratum (and every implementation) gives:
  ['a', 'bde52cb31de33e46245e05fbdbd6fb24'],
  ['abc', 'a448017aaf21d8525fc10ae87aa6729d'],
  ['message digest', 'd9130a8164549fe818874806e1c7014b'],
  ['abcdefghijklmnopqrstuvwxyz', 'd79e1c308aa5bbcdeea8ed63df412da9'],
  ['ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789', '043f8582f241db351ce627e153e7f0e4'],
  ['12345678901234567890123456789012345678901234567890123456789012345678901234567890', 'e33b4ddc9c38f2199c3e7b164fcc0536'],
];

describe('md4 (RFC 1320)', () => {
  for (const [input, hex] of vectors) {
    it(`MD4("${input.slice(0, 20)}")`, () => {
      expect(md4(Buffer.from(input, 'latin1')).toString('hex')).toBe(hex);
    });
  }

  it('handles lengths around the 56-byte padding boundary', () => {
    // NT hash of "Password" (MS-NLMP §4.2.2.1.2) exercises the UTF-16 path.
    expect(md4(Buffer.from('Password', 'utf16le')).toString('hex')).toBe('a4f49c406510bdcab6824ee7c30fd852');
    for (const n of [55, 56, 57, 63, 64, 65]) expect(md4(Buffer.alloc(n, 0x61))).toHaveLength(16);
  });
});
