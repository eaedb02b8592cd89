import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import type { z } from 'zod';
import { JitgateError } from '../core/errors.js';
import { ConfigErrors } from './errors.js';
import { buildConfigSchema, type Config } from './schema.js';

export type { Config } from './schema.js';

export interface ConfigProblem {
  /** Dotted path with indexes, e.g. `accountStores[0].bindPassword`. */
  path: string;
  message: string;
}

export class ConfigError extends JitgateError {
  constructor(readonly problems: ConfigProblem[]) {
    super(ConfigErrors.JIT_ERR_CONFIG_INVALID, {
      problems: problems.map((p) => `  - ${p.path || '(root)'}: ${p.message}`).join('\n'),
    });
  }
}

export interface LoadConfigOptions {
  /** Path of the YAML file. When absent, `./jitgate.yaml` is read if it exists. */
  file?: string;
  /** Environment (defaults to process.env). The only reader of process.env in jitgate. */
  env?: Record<string, string | undefined>;
  /** Values that win over file and environment (CLI flags). */
  overrides?: Record<string, unknown>;
}

/** Environment variables of ours that are not config overrides. */
const NOT_CONFIG = /^JITGATE_(CONFIG|TEST_.*|BOOTSTRAP_.*)$/;

function camel(segment: string): string {
  return segment.toLowerCase().replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
}

function setPath(target: Record<string, unknown>, path: string[], value: unknown): void {
  let cur = target;
  for (const [i, key] of path.entries()) {
    if (i === path.length - 1) {
      cur[key] = value;
      return;
    }
    const next = cur[key];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) cur[key] = {};
    cur = cur[key] as Record<string, unknown>;
  }
}

/**
 * `JITGATE_SERVER__PORT=9000` → `server.port = 9000`; `__` separates levels,
 * single `_` is a word break (`JITGATE_DATA_DIR` → `dataDir`). Values are
 * read as YAML scalars, so numbers and booleans keep their type.
 */
export function envOverrides(env: Record<string, string | undefined>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, raw] of Object.entries(env)) {
    if (!name.startsWith('JITGATE_') || raw === undefined || NOT_CONFIG.test(name)) continue;
    const path = name.slice('JITGATE_'.length).split('__').map(camel);
    let value: unknown = raw;
    try {
      value = parseYaml(raw);
    } catch {
      value = raw;
    }
    if (value === null) value = raw;
    setPath(out, path, value);
  }
  return out;
}

function merge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    if (v && typeof v === 'object' && !Array.isArray(v) && b && typeof b === 'object' && !Array.isArray(b)) {
      out[k] = merge(b as Record<string, unknown>, v as Record<string, unknown>);
    } else {
      out[k] = v;
    }
  }
  return out;
}

function formatPath(path: readonly PropertyKey[]): string {
  let s = '';
  for (const seg of path) {
    if (typeof seg === 'number') s += `[${seg}]`;
    else s += s ? `.${String(seg)}` : String(seg);
  }
  return s;
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
  return o;
}

function issuesToProblems(issues: z.core.$ZodIssue[]): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  for (const issue of issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) {
        out.push({ path: formatPath([...issue.path, key]), message: 'unknown key' });
      }
    } else if (issue.code === 'invalid_union' && 'errors' in issue && issue.errors.length > 0) {
      // discriminated union: report the branch that matched the discriminator
      const branch = issue.errors.find((e) => e.length > 0) ?? [];
      out.push(...issuesToProblems(branch.map((e) => ({ ...e, path: [...issue.path, ...e.path] }))));
    } else {
      out.push({ path: formatPath(issue.path), message: issue.message });
    }
  }
  return out;
}

/**
 * Read, validate and freeze the configuration. Every problem is reported at
 * once, each with its path; nothing starts on a bad config.
 */
export function loadConfig(opts: LoadConfigOptions = {}): Config {
  const env = opts.env ?? process.env;
  const explicit = opts.file ?? env.JITGATE_CONFIG;
  const file = explicit ?? './jitgate.yaml';
  let fromFile: Record<string, unknown> = {};
  if (explicit !== undefined || existsSync(file)) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new JitgateError(ConfigErrors.JIT_ERR_CONFIG_UNREADABLE, {
        file,
        reason: (err as NodeJS.ErrnoException).code ?? String(err),
      });
    }
    try {
      const parsed: unknown = parseYaml(text) ?? {};
      if (typeof parsed !== 'object' || Array.isArray(parsed)) {
        throw new ConfigError([{ path: '', message: 'the file must hold a YAML mapping' }]);
      }
      fromFile = parsed as Record<string, unknown>;
    } catch (err) {
      if (err instanceof YAMLParseError) {
        throw new ConfigError([{ path: '', message: `YAML syntax error in ${file}: ${err.message}` }]);
      }
      throw err;
    }
  }
  const input = merge(merge(fromFile, envOverrides(env)), opts.overrides ?? {});
  const { configSchema } = buildConfigSchema(env);
  // Parsed once per process: zod's JIT (a `new Function` per object schema, compiled on first
  // parse) would cost a one-shot command more than it saves (issue 12, CLI start-up).
  const result = configSchema.safeParse(input, { jitless: true });
  if (!result.success) throw new ConfigError(issuesToProblems(result.error.issues));
  const cfg = result.data;
  const names = new Set<string>();
  const problems: ConfigProblem[] = [];
  cfg.accountStores.forEach((s, i) => {
    if (names.has(s.name)) problems.push({ path: `accountStores[${i}].name`, message: `duplicate store name ${s.name}` });
    names.add(s.name);
  });
  if (cfg.role !== 'all' && cfg.database.url === undefined) {
    problems.push({ path: 'database.url', message: `role ${cfg.role} runs beside other processes and needs a shared PostgreSQL (embedded PGlite is single-process)` });
  }
  if (cfg.role !== 'all' && cfg.redis.url === undefined) {
    problems.push({ path: 'redis.url', message: `role ${cfg.role} needs a shared Redis (the embedded one is private to one process)` });
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return deepFreeze({ ...cfg, dataDir: resolve(cfg.dataDir) });
}
