/**
 * The jitgate stream record (`.jsr`) for non-pty channels (exec, SFTP);
 * documented in docs/recordings.md.
 *
 *   magic    "JGSR" (4 bytes) + u8 format version (1)
 *   header   u32 BE length + that many bytes of UTF-8 JSON
 *   frames   u8 direction, u32 BE milliseconds since start, u32 BE length, bytes
 *
 * Directions: 0 in (client → server), 1 out (stdout), 2 err (stderr),
 * 3 gap (payload: u64 BE count of bytes not recorded), 255 end (payload:
 * UTF-8 JSON `{"exitCode": number|null, "droppedBytes": number}`; the last frame).
 */
export const STREAM_MAGIC = Buffer.from('JGSR', 'latin1');
export const STREAM_VERSION = 1;
export const FRAME_HEADER_BYTES = 9;

export const DIRECTION_CODES = { in: 0, out: 1, err: 2, gap: 3, end: 255 } as const;
export type FrameDirection = keyof typeof DIRECTION_CODES;
const BY_CODE = new Map<number, FrameDirection>(Object.entries(DIRECTION_CODES).map(([k, v]) => [v, k as FrameDirection]));

export interface StreamHeader {
  version: 1;
  recordingId: string;
  sessionId: string;
  kind: 'exec' | 'sftp';
  command: string | null;
  person: string;
  computer: string;
  account: string | null;
  /** Unix time (milliseconds) of time 0. */
  startedAt: number;
}

export function encodeStreamPreamble(header: StreamHeader): Buffer {
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const b = Buffer.alloc(STREAM_MAGIC.length + 1 + 4);
  STREAM_MAGIC.copy(b, 0);
  b.writeUInt8(STREAM_VERSION, 4);
  b.writeUInt32BE(json.length, 5);
  return Buffer.concat([b, json]);
}

/**
 * The 9 header bytes of a frame carrying `length` bytes: written before the
 * payload itself, the recorder never copies relayed data into a frame.
 */
export function encodeFrameHeader(direction: FrameDirection, ms: number, length: number): Buffer {
  const b = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
  b.writeUInt8(DIRECTION_CODES[direction], 0);
  b.writeUInt32BE(Math.min(0xffffffff, Math.max(0, Math.floor(ms))), 1);
  b.writeUInt32BE(length, 5);
  return b;
}

export function encodeFrame(direction: FrameDirection, ms: number, data: Uint8Array): Buffer {
  return Buffer.concat([encodeFrameHeader(direction, ms, data.length), data]);
}

export function encodeGapFrame(ms: number, droppedBytes: number): Buffer {
  const p = Buffer.alloc(8);
  p.writeBigUInt64BE(BigInt(droppedBytes));
  return encodeFrame('gap', ms, p);
}

export function encodeEndFrame(ms: number, exitCode: number | null, droppedBytes: number): Buffer {
  return encodeFrame('end', ms, Buffer.from(JSON.stringify({ exitCode, droppedBytes }), 'utf8'));
}

export interface StreamFrame {
  direction: FrameDirection;
  ms: number;
  data: Buffer;
}

export interface ParsedStreamRecord {
  header: StreamHeader;
  frames: StreamFrame[];
  /** Present when the end frame was written (a clean close). */
  end: { exitCode: number | null; droppedBytes: number } | null;
  /** Bytes after the last complete frame (a crash mid-write). */
  trailingBytes: number;
}

/** Parse a whole `.jsr` file (replay, tests). Throws on a bad magic or header. */
export function parseStreamRecord(buf: Buffer): ParsedStreamRecord {
  if (buf.length < 9 || !buf.subarray(0, 4).equals(STREAM_MAGIC)) throw new Error('not a jitgate stream record (bad magic)');
  const version = buf.readUInt8(4);
  if (version !== STREAM_VERSION) throw new Error(`unsupported stream record version ${version}`);
  const hlen = buf.readUInt32BE(5);
  if (9 + hlen > buf.length) throw new Error('truncated stream record header');
  const header = JSON.parse(buf.subarray(9, 9 + hlen).toString('utf8')) as StreamHeader;
  const frames: StreamFrame[] = [];
  let end: ParsedStreamRecord['end'] = null;
  let off = 9 + hlen;
  while (off + FRAME_HEADER_BYTES <= buf.length) {
    const code = buf.readUInt8(off);
    const ms = buf.readUInt32BE(off + 1);
    const len = buf.readUInt32BE(off + 5);
    if (off + FRAME_HEADER_BYTES + len > buf.length) break;
    const direction = BY_CODE.get(code);
    if (!direction) throw new Error(`unknown frame direction ${code} at offset ${off}`);
    const data = buf.subarray(off + FRAME_HEADER_BYTES, off + FRAME_HEADER_BYTES + len);
    off += FRAME_HEADER_BYTES + len;
    if (direction === 'end') {
      end = JSON.parse(data.toString('utf8')) as NonNullable<ParsedStreamRecord['end']>;
      break;
    }
    frames.push({ direction, ms, data });
  }
  return { header, frames, end, trailingBytes: buf.length - off };
}
