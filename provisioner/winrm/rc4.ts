/**
 * RC4 stream cipher (the keystream NTLM sealing uses, MS-NLMP §3.4.3).
 * Stateful: NTLM keeps one RC4 handle per direction for the whole
 * connection, so successive `update` calls continue the keystream.
 * Node's OpenSSL 3 refuses rc4 without the legacy provider.
 */
export class Rc4 {
  private readonly s = new Uint8Array(256);
  private i = 0;
  private j = 0;

  constructor(key: Uint8Array) {
    if (key.length === 0 || key.length > 256) throw new RangeError('RC4 key must be 1..256 bytes');
    const s = this.s;
    for (let k = 0; k < 256; k++) s[k] = k;
    let j = 0;
    for (let k = 0; k < 256; k++) {
      j = (j + (s[k] as number) + (key[k % key.length] as number)) & 0xff;
      const t = s[k] as number;
      s[k] = s[j] as number;
      s[j] = t;
    }
  }

  /** XOR `data` with the next `data.length` keystream bytes (returns a new buffer). */
  update(data: Uint8Array): Buffer {
    const s = this.s;
    const out = Buffer.alloc(data.length);
    let i = this.i;
    let j = this.j;
    for (let n = 0; n < data.length; n++) {
      i = (i + 1) & 0xff;
      const si = s[i] as number;
      j = (j + si) & 0xff;
      const sj = s[j] as number;
      s[i] = sj;
      s[j] = si;
      out[n] = (data[n] as number) ^ (s[(si + sj) & 0xff] as number);
    }
    this.i = i;
    this.j = j;
    return out;
  }
}

/** One-shot RC4 (a fresh key schedule), as in RC4K(key, data) of MS-NLMP. */
export function rc4(key: Uint8Array, data: Uint8Array): Buffer {
  return new Rc4(key).update(data);
}
