import { createHash } from 'node:crypto';
import { close as closeCb, createReadStream, createWriteStream, fstat as fstatCb, fsync as fsyncCb, open as openCb } from 'node:fs';
import { chmod, mkdir, open as openFile, stat, truncate as truncateFile, unlink } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import type { Writable } from 'node:stream';
import { promisify } from 'node:util';
import { parseRelPath, recordingRelPath, type RecordingExt, type RecordingStore, type RecordingWriteHandle } from './recording.store.js';

const openFd = promisify(openCb);
const fsyncFd = promisify(fsyncCb);
const closeFd = promisify(closeCb);
const fstatFd = promisify(fstatCb);

/**
 * Recordings as files under one directory (`recordings.dir`, default
 * `<dataDir>/recordings`): files 0600, directories 0700.
 */
export class FsRecordingStore implements RecordingStore {
  readonly root: string;

  constructor(root: string) {
    this.root = resolve(root);
  }

  pathFor(sessionId: string, recordingId: string, ext: RecordingExt, at: Date): string {
    return recordingRelPath(sessionId, recordingId, ext, at);
  }

  absolute(relPath: string): string {
    parseRelPath(relPath);
    return join(this.root, relPath);
  }

  async ensureDir(relPath: string): Promise<void> {
    const abs = this.absolute(relPath);
    await mkdir(dirname(abs), { recursive: true, mode: 0o700 });
  }

  async create(relPath: string, opts: { highWaterMark: number }): Promise<RecordingWriteHandle> {
    await this.ensureDir(relPath);
    // 'wx': never overwrite (ids are fresh UUIDs; an existing file is a bug or an attack).
    // A plain fd, not a FileHandle: a FileHandle's close() waits for its write stream to close,
    // which with autoClose off never happens; we need the fd open after 'finish' to fsync.
    const fd = await openFd(this.absolute(relPath), 'wx', 0o600);
    const stream = createWriteStream('', { fd, highWaterMark: opts.highWaterMark, autoClose: false });
    let done: Promise<void> | undefined;
    return {
      stream,
      finish: () =>
        (done ??= (async () => {
          try {
            await endAndFlush(stream);
            await fsyncFd(fd);
          } finally {
            await closeFd(fd);
          }
        })()),
    };
  }

  async stat(relPath: string): Promise<{ size: number; fingerprint: string } | null> {
    try {
      const s = await stat(this.absolute(relPath), { bigint: true });
      return s.isFile() ? { size: Number(s.size), fingerprint: `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}` } : null;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  }

  async hash(relPath: string): Promise<{ sha256: string; size: number } | null> {
    const abs = this.absolute(relPath);
    const h = createHash('sha256');
    let size = 0;
    try {
      const rs = createReadStream(abs, { highWaterMark: 1 << 20 });
      for await (const chunk of rs) {
        h.update(chunk as Buffer);
        size += (chunk as Buffer).length;
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    return { sha256: h.digest('hex'), size };
  }

  async openRead(relPath: string): Promise<{ stream: NodeJS.ReadableStream; size: number } | null> {
    const abs = this.absolute(relPath);
    let fd: number;
    try {
      fd = await openFd(abs, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    // size of the file we opened (not of whatever is at the path later); the stream closes the fd when done or destroyed
    const { size } = await fstatFd(fd);
    return { stream: createReadStream('', { fd, autoClose: true }), size };
  }

  async protect(relPath: string): Promise<void> {
    await chmod(this.absolute(relPath), 0o600);
  }

  async readTail(relPath: string, maxBytes: number): Promise<Buffer | null> {
    let fh;
    try {
      fh = await openFile(this.absolute(relPath), 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    try {
      const { size } = await fh.stat();
      const n = Math.min(size, Math.max(0, Math.floor(maxBytes)));
      const buf = Buffer.alloc(n);
      const { bytesRead } = await fh.read(buf, 0, n, size - n);
      return buf.subarray(0, bytesRead);
    } finally {
      await fh.close();
    }
  }

  async truncate(relPath: string, size: number): Promise<void> {
    await truncateFile(this.absolute(relPath), size);
  }

  async remove(relPath: string): Promise<boolean> {
    try {
      await unlink(this.absolute(relPath));
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
  }
}

/** End `stream` and wait until everything queued reached the file descriptor ('finish'; no 'close' with autoClose off). */
function endAndFlush(stream: Writable): Promise<void> {
  return new Promise((resolve, reject) => {
    if (stream.writableFinished) return resolve();
    if (stream.errored) return reject(stream.errored);
    const onFinish = () => {
      stream.off('error', onError);
      resolve();
    };
    const onError = (err: Error) => {
      stream.off('finish', onFinish);
      reject(err);
    };
    stream.once('finish', onFinish);
    stream.once('error', onError);
    if (!stream.writableEnded) stream.end();
  });
}
