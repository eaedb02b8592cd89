/**
 * MD4 (RFC 1320). Node's OpenSSL 3 build refuses MD4 (legacy provider), yet
 * NTLM's NTOWF is MD4(UTF-16LE(password)); this small implementation is used
 * only for that.
 */

function rotl(x: number, n: number): number {
  return ((x << n) | (x >>> (32 - n))) >>> 0;
}

export function md4(input: Uint8Array): Buffer {
  const len = input.length;
  // Padding: 0x80, zeros to 56 mod 64, then the bit length as 64-bit LE (RFC 1320 §3.1-3.2).
  const padded = Buffer.alloc(((len + 8) >> 6) * 64 + 64);
  padded.set(input, 0);
  padded[len] = 0x80;
  const bitLen = BigInt(len) * 8n;
  padded.writeBigUInt64LE(bitLen & 0xffffffffffffffffn, padded.length - 8);

  let a = 0x67452301;
  let b = 0xefcdab89;
  let c = 0x98badcfe;
  let d = 0x10325476;
  const x = new Array<number>(16);

  const f = (p: number, q: number, r: number): number => (p & q) | (~p & r);
  const g = (p: number, q: number, r: number): number => (p & q) | (p & r) | (q & r);
  const h = (p: number, q: number, r: number): number => p ^ q ^ r;

  for (let off = 0; off < padded.length; off += 64) {
    for (let i = 0; i < 16; i++) x[i] = padded.readUInt32LE(off + i * 4);
    const xs = (i: number): number => x[i] ?? 0;
    const aa = a;
    const bb = b;
    const cc = c;
    const dd = d;

    // Round 1
    for (const i of [0, 4, 8, 12]) {
      a = rotl((a + f(b, c, d) + xs(i)) >>> 0, 3);
      d = rotl((d + f(a, b, c) + xs(i + 1)) >>> 0, 7);
      c = rotl((c + f(d, a, b) + xs(i + 2)) >>> 0, 11);
      b = rotl((b + f(c, d, a) + xs(i + 3)) >>> 0, 19);
    }
    // Round 2
    for (const i of [0, 1, 2, 3]) {
      a = rotl((a + g(b, c, d) + xs(i) + 0x5a827999) >>> 0, 3);
      d = rotl((d + g(a, b, c) + xs(i + 4) + 0x5a827999) >>> 0, 5);
      c = rotl((c + g(d, a, b) + xs(i + 8) + 0x5a827999) >>> 0, 9);
      b = rotl((b + g(c, d, a) + xs(i + 12) + 0x5a827999) >>> 0, 13);
    }
    // Round 3
    for (const i of [0, 2, 1, 3]) {
      a = rotl((a + h(b, c, d) + xs(i) + 0x6ed9eba1) >>> 0, 3);
      d = rotl((d + h(a, b, c) + xs(i + 8) + 0x6ed9eba1) >>> 0, 9);
      c = rotl((c + h(d, a, b) + xs(i + 4) + 0x6ed9eba1) >>> 0, 11);
      b = rotl((b + h(c, d, a) + xs(i + 12) + 0x6ed9eba1) >>> 0, 15);
    }

    a = (a + aa) >>> 0;
    b = (b + bb) >>> 0;
    c = (c + cc) >>> 0;
    d = (d + dd) >>> 0;
  }

  const out = Buffer.alloc(16);
  out.writeUInt32LE(a, 0);
  out.writeUInt32LE(b, 4);
  out.writeUInt32LE(c, 8);
  out.writeUInt32LE(d, 12);
  return out;
}
