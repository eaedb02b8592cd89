/**
 * A synthetic guacd output stream for an office desktop in use, with stated
 * sizes (bench/rdp-sizing.bench.ts): no recorded session of a real desktop
 * exists in the tree, and guacd cannot run here.
 *
 * What guacd sends for a desktop, per frame (libguac, Guacamole protocol
 * reference "Drawing instructions" and "Streams"): every dirty rectangle as an
 * image stream `img,<stream>,<mask>,<layer>,<mimetype>,<x>,<y>`, its data in
 * `blob,<stream>,<base64>` instructions of at most 6048 bytes each
 * (GUAC_PROTOCOL_BLOB_MAX_LENGTH, libguac/guacamole/protocol-constants.h) and
 * `end,<stream>`, then `sync,<timestamp>` closing the frame. When nothing
 * changes, only libguac's keep-alive `nop` every 5 s
 * (GUAC_SOCKET_KEEP_ALIVE_INTERVAL).
 *
 * The active model: `fps` frames a second, each with `smallRects` small PNG
 * updates of `smallBytes` (typed glyphs, the caret, a menu highlight), and
 * every `largeEvery`-th frame one large JPEG region of `largeBytes` (a scroll
 * or a window repaint), sized so that the wire rate is the stated target.
 */

/** guacd's largest blob payload (bytes before base64). */
export const BLOB_MAX_BYTES = 6048;
/** libguac's keep-alive interval when nothing else is sent (ms). */
export const KEEP_ALIVE_MS = 5000;

export interface DesktopProfile {
  /** Frames per second while active. */
  fps: number;
  /** Small PNG updates per frame. */
  smallRects: number;
  /** Bytes of each small image (before base64). */
  smallBytes: number;
  /** One large region every this many frames. */
  largeEvery: number;
  /** Bytes of the large image (before base64). */
  largeBytes: number;
}

/** Guacamole element encoding for ASCII text (every element here is ASCII: length in characters = bytes). */
function ins(...elements: string[]): string {
  return elements.map((e) => `${e.length}.${e}`).join(',') + ';';
}

/** Base64 of `n` bytes as guacd would send it (n a multiple of 3 keeps slices valid base64). */
const POOL_BYTES = 3 * 65536;
let pool: string | null = null;
function base64Of(n: number, offset: number): string {
  if (!pool) {
    // Incompressible, like image data; deterministic so runs compare.
    const b = Buffer.alloc(POOL_BYTES);
    let x = 0x2545f491;
    for (let i = 0; i < b.length; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      b[i] = x & 0xff;
    }
    pool = b.toString('base64');
  }
  const chars = Math.ceil(n / 3) * 4;
  const start = (((offset * 4) % pool.length) + pool.length) % pool.length;
  if (start + chars <= pool.length) return pool.slice(start, start + chars);
  let s = pool.slice(start);
  while (s.length < chars) s += pool.slice(0, chars - s.length);
  return s;
}

/** The frames of one active session, one call per frame. */
export class DesktopStream {
  #frame = 0;
  #stream = 0;
  constructor(readonly profile: DesktopProfile) {}

  #image(mimetype: string, bytes: number, x: number, y: number): string {
    const id = String((this.#stream = (this.#stream + 1) % 64) + 1);
    let out = ins('img', id, '14', '0', mimetype, String(x), String(y));
    for (let sent = 0; sent < bytes; sent += BLOB_MAX_BYTES) out += ins('blob', id, base64Of(Math.min(BLOB_MAX_BYTES, bytes - sent), this.#frame * 997 + sent));
    return out + ins('end', id);
  }

  /** The next frame (instructions ending with `sync,<timestampMs>`). */
  next(timestampMs: number): string {
    const p = this.profile;
    const f = this.#frame++;
    let out = '';
    for (let r = 0; r < p.smallRects; r++) out += this.#image('image/png', p.smallBytes, (f * 37 + r * 211) % 1200, (f * 13 + r * 97) % 700);
    if (p.largeBytes > 0 && f % p.largeEvery === 0) out += this.#image('image/jpeg', p.largeBytes, 0, (f * 41) % 400);
    return out + ins('sync', String(timestampMs));
  }
}

/** Wire bytes per second of a profile, measured on the frames it produces (one full cycle of large updates). */
export function wireBytesPerSecond(profile: DesktopProfile): number {
  const s = new DesktopStream(profile);
  const frames = Math.max(profile.largeEvery, 1) * 10;
  let bytes = 0;
  for (let i = 0; i < frames; i++) bytes += Buffer.byteLength(s.next(1_733_390_000_000 + i * 100));
  return (bytes / frames) * profile.fps;
}

/**
 * The office-desktop profile at `targetBytesPerSecond` on the wire: 10 frames
 * a second, two 700-byte PNG updates each, a large JPEG region every fifth
 * frame (twice a second) sized to make up the rest.
 */
export function officeDesktop(targetBytesPerSecond: number, fps = 10): DesktopProfile {
  const base: DesktopProfile = { fps, smallRects: 2, smallBytes: 700, largeEvery: 5, largeBytes: 0 };
  const smallRate = wireBytesPerSecond(base);
  const largePerSecond = fps / base.largeEvery;
  // base64 is 4/3 of the bytes; blob framing adds ~20 bytes per 6048-byte blob (under 0.5 %).
  const largeBytes = Math.max(0, Math.round(((targetBytesPerSecond - smallRate) / largePerSecond) * 0.75 * (1 - 0.004)));
  return { ...base, largeBytes };
}

/** The keep-alive guacd sends when the screen does not change. */
export const NOP = ins('nop');
