import { inspect } from 'node:util';

/**
 * A value that must never be printed. `toString`, `toJSON` and
 * `util.inspect` all give `[redacted]`; only `reveal()` returns the value,
 * so every place that uses a secret in clear is greppable.
 */
export class Secret {
  readonly #value: string;
  constructor(value: string) {
    this.#value = value;
  }
  reveal(): string {
    return this.#value;
  }
  toString(): string {
    return '[redacted]';
  }
  toJSON(): string {
    return '[redacted]';
  }
  [inspect.custom](): string {
    return 'Secret([redacted])';
  }
}
