import { createRequire } from 'node:module';
import type { default as Pino, Logger, LoggerOptions, DestinationStream } from 'pino';

export type { Logger } from 'pino';

/**
 * Paths redacted from every log line, whatever the component. Secrets are
 * also kept in `Secret` objects (which serialize as `[redacted]`), so this
 * list is the second line of defence, not the first.
 */
export const REDACT_PATHS = [
  'password',
  '*.password',
  '*.*.password',
  'bindPassword',
  '*.bindPassword',
  'newPassword',
  '*.newPassword',
  'secret',
  '*.secret',
  'token',
  '*.token',
  'privateKey',
  '*.privateKey',
  'key',
  '*.key',
  'authorization',
  '*.authorization',
  'req.headers.authorization',
  'req.headers.cookie',
  'res.headers["set-cookie"]',
  'totpSecret',
  '*.totpSecret',
  'passwordEnc',
  '*.passwordEnc',
];

let loaded: typeof Pino | undefined;

/**
 * pino, required on the first logger made rather than imported: its ~20 module files cost a
 * one-shot command that logs nothing (`jitgate accounts list`) about a sixth of its start-up
 * (issue 12). pino is CommonJS, so the synchronous require keeps createLogger synchronous.
 */
function pinoLib(): typeof Pino {
  loaded ??= createRequire(import.meta.url)('pino') as typeof Pino;
  return loaded;
}

export interface LogOptions {
  level?: string;
  pretty?: boolean;
  destination?: DestinationStream;
}

export function createLogger(opts: LogOptions = {}): Logger {
  const pino = pinoLib();
  const options: LoggerOptions = {
    level: opts.level ?? 'info',
    base: { app: 'jitgate' },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    serializers: { err: pino.stdSerializers.err },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  if (opts.destination) return pino(options, opts.destination);
  if (opts.pretty) {
    return pino({ ...options, transport: { target: 'pino-pretty', options: { destination: 2 } } });
  }
  return pino(options, pino.destination({ fd: 2, sync: false }));
}

/** A logger that discards everything (for tests that do not look at logs). */
export function silentLogger(): Logger {
  return pinoLib()({ level: 'silent' });
}
