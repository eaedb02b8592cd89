import type { Writable } from 'node:stream';
import { CoreErrors, JitgateError } from '../core/errors.js';
import { RecorderErrors } from './errors.js';

/** File extensions by recording format: asciicast v2, jitgate stream record, guacd session recording. */
export type RecordingExt = 'cast' | 'jsr' | 'guac';

/** An open file being written: the stream, and how to finish it durably. */
export interface RecordingWriteHandle {
  readonly stream: Writable;
  /** End the stream, wait until every queued byte is written, fsync and close. */
  finish(): Promise<void>;
}

/**
 * Where recordings live. Paths are relative to the store's root and only
 * ever built from UUIDs jitgate generated (`<yyyy>/<mm>/<dd>/<sessionId>-<recordingId>.<ext>`);
 * every method re-validates the relative path, so a tampered database row
 * cannot point the store at another file.
 */
export interface RecordingStore {
  /** Relative path for a new recording. Throws on a non-UUID id. */
  pathFor(sessionId: string, recordingId: string, ext: RecordingExt, at: Date): string;
  /** Create (exclusively) a new file, mode 0600, directories 0700. */
  create(relPath: string, opts: { highWaterMark: number }): Promise<RecordingWriteHandle>;
  /** Make sure the directory of `relPath` exists (for files another process writes: guacd). */
  ensureDir(relPath: string): Promise<void>;
  /** Absolute path on this host. */
  absolute(relPath: string): string;
  /**
   * Size, or null when the file does not exist. `fingerprint` (when the store
   * has one) changes whenever the content may have changed — for files: device,
   * inode, size, mtime and ctime (ctime cannot be set back by a user).
   */
  stat(relPath: string): Promise<{ size: number; fingerprint?: string } | null>;
  /** SHA-256 (hex) and size of the file as it is now, or null when it does not exist. */
  hash(relPath: string): Promise<{ sha256: string; size: number } | null>;
  /** Open for reading with its size, or null when it does not exist. */
  openRead(relPath: string): Promise<{ stream: NodeJS.ReadableStream; size: number } | null>;
  /** Restrict a file another process wrote to 0600. */
  protect(relPath: string): Promise<void>;
  /** The last `maxBytes` bytes (fewer when the file is shorter), or null when it does not exist. */
  readTail(relPath: string, maxBytes: number): Promise<Buffer | null>;
  /** Cut the file to `size` bytes (only ever to drop an incomplete last record of an interrupted recording). */
  truncate(relPath: string, size: number): Promise<void>;
  /** Delete the file (retention, recorder/retention.ts); false when it did not exist. */
  remove(relPath: string): Promise<boolean>;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const REL_PATH = /^(\d{4})\/(\d{2})\/(\d{2})\/([0-9a-f-]{36})-([0-9a-f-]{36})\.(cast|jsr|guac)$/;

export function isUuid(s: string): boolean {
  return UUID.test(s);
}

export function assertUuid(s: string, what: string): void {
  if (!isUuid(s)) throw new JitgateError(CoreErrors.JIT_ERR_VALIDATION, { reason: `${what} must be a lower-case UUID` });
}

/** Build `<yyyy>/<mm>/<dd>/<sessionId>-<recordingId>.<ext>` (UTC date). */
export function recordingRelPath(sessionId: string, recordingId: string, ext: RecordingExt, at: Date): string {
  assertUuid(sessionId, 'session id');
  assertUuid(recordingId, 'recording id');
  const y = String(at.getUTCFullYear()).padStart(4, '0');
  const m = String(at.getUTCMonth() + 1).padStart(2, '0');
  const d = String(at.getUTCDate()).padStart(2, '0');
  return `${y}/${m}/${d}/${sessionId}-${recordingId}.${ext}`;
}

/** Parse and validate a relative recording path (from our own database, but checked anyway). */
export function parseRelPath(relPath: string): { sessionId: string; recordingId: string; ext: RecordingExt } {
  const m = REL_PATH.exec(relPath);
  if (!m || !isUuid(m[4]!) || !isUuid(m[5]!)) {
    throw new JitgateError(RecorderErrors.JIT_ERR_RECORDING_BAD_PATH, { reason: 'not <yyyy>/<mm>/<dd>/<uuid>-<uuid>.<cast|jsr|guac>' });
  }
  return { sessionId: m[4]!, recordingId: m[5]!, ext: m[6] as RecordingExt };
}

/** Content type for replay, by extension. */
export function contentTypeFor(ext: RecordingExt): string {
  switch (ext) {
    case 'cast':
      return 'application/x-asciicast';
    case 'jsr':
      return 'application/vnd.jitgate.stream-record';
    case 'guac':
      return 'application/octet-stream';
  }
}
