import type { Readable, Writable } from 'node:stream';

/** A side consumer of relayed bytes (a recording): returns false when it is above its high-water mark. */
export interface RelayTap {
  write(data: Buffer): boolean;
  drained(): Promise<void>;
}

/**
 * Copy `src` to `dst` without ending `dst` (like `pipe(dst, { end: false })`,
 * so the caller can still send exit-status before EOF), optionally teeing into
 * a recording. Backpressure from either side pauses `src`: memory stays
 * bounded whether the client or the recorder is the slow one. `allow`
 * (checked per chunk) drops what arrives while it says no. Resolves when
 * `src` ends or closes.
 */
export function relay(src: Readable, dst: Writable, tap?: RelayTap, allow?: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    let waiting = 0;
    const release = (): void => {
      if (--waiting === 0) src.resume();
    };
    const hold = (): void => {
      if (waiting++ === 0) src.pause();
    };
    src.on('data', (d: Buffer) => {
      // Held back (a paused four-eyes session): dropped, not queued, so nothing typed then runs later.
      if (allow && !allow()) return;
      if (dst.writable && !dst.write(d)) {
        hold();
        dst.once('drain', release);
      }
      if (tap && !tap.write(d)) {
        hold();
        void tap.drained().then(release, release);
      }
    });
    const done = (): void => resolve();
    src.once('end', done);
    src.once('close', done);
  });
}
