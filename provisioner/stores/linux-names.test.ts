import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { isJitgateError } from '../../core/errors.js';
import { StoreErrors } from '../errors.js';
import {
  assertValidLinuxName,
  assertValidMarker,
  gecosToMarker,
  isValidLinuxName,
  isValidMarker,
  markerToGecos,
  shadowExpiryDate,
  shellQuote,
} from './linux-names.js';

const HOSTILE = [
  '',
  'a*',
  'a(b)',
  'a\\b',
  'a,b',
  'a=b',
  'a+b',
  'a<b',
  'a>b',
  'a#b',
  'a;b',
  'a"b',
  "a'b",
  '$(id)',
  'a$(id)',
  '`id`',
  'a`id`',
  'a\0b',
  'a\nb',
  'a\n',
  'a\r',
  'a b',
  'a\tb',
  'a:b',
  'a/b',
  'a.b',
  'a@b',
  '-rf',
  '-',
  '1abc',
  'Alice',
  'ålice',
  'alice\u200b',
  'аlice', // Cyrillic а
  'a'.repeat(33),
  'a'.repeat(300),
  '*()\\,=+<>#;"',
];

describe('linux names', () => {
  it.each(['a', '_', 'alice', 'alice_k3x9q2', 'jitgate-managed', '_svc', 'a-b_c9', 'a'.repeat(32)])('accepts %j', (name) => {
    expect(isValidLinuxName(name)).toBe(true);
    expect(() => assertValidLinuxName(name, 'user')).not.toThrow();
  });

  it.each(HOSTILE)('rejects %j with a typed error that does not echo the value', (name) => {
    expect(isValidLinuxName(name)).toBe(false);
    let caught: unknown;
    try {
      assertValidLinuxName(name, 'user');
    } catch (err) {
      caught = err;
    }
    expect(isJitgateError(caught, StoreErrors.JIT_ERR_STORE_INVALID_NAME)).toBe(true);
    if (name.length > 2 && isJitgateError(caught)) expect(caught.message).not.toContain(name);
  });

  it('rejects non-strings', () => {
    for (const v of [undefined, null, 1, {}, ['a']]) expect(isValidLinuxName(v)).toBe(false);
    expect(() => assertValidLinuxName(undefined, 'group')).toThrow(/invalid group name/);
  });
});

describe('markers', () => {
  it('accepts jitgate markers and round-trips them through GECOS', () => {
    for (const m of ['jitgate:prod:0b6f2c1e-77aa-4e0b-9c1e-3f1d0c9a1b2c', 'jitgate:x', 'jitgate:a.b_c-d:1']) {
      expect(isValidMarker(m)).toBe(true);
      const gecos = markerToGecos(m);
      expect(gecos).not.toContain(':');
      expect(gecosToMarker(gecos)).toBe(m);
      expect(gecosToMarker(`${gecos},room,phone`)).toBe(m);
    }
  });

  it.each(['', 'jitgate:', 'jitgate', 'other:x', 'jitgate:a b', 'jitgate:a,b', "jitgate:a'b", 'jitgate:$(id)', 'jitgate:a\nb', 'jitgate:ä', `jitgate:${'a'.repeat(300)}`])(
    'rejects marker %j',
    (m) => {
      expect(isValidMarker(m)).toBe(false);
      expect(() => assertValidMarker(m)).toThrow();
    },
  );

  it('does not turn a foreign GECOS into a jitgate marker', () => {
    expect(gecosToMarker('Alice Admin,,,')).toBe('Alice Admin,,,');
    expect(gecosToMarker('')).toBe('');
    expect(gecosToMarker('jitgate;bad value')).toBe('jitgate;bad value');
    expect(gecosToMarker('jitgate;bad value').startsWith('jitgate:')).toBe(false);
  });
});

describe('shellQuote', () => {
  it.each(["plain", "it's", "'", "''", '$(id)', '`id`', '"; rm -rf / #', 'a\nb', '\\', '*', ' lead', 'ünï'])(
    'round-trips %j through /bin/sh unchanged',
    (value) => {
      const out = execFileSync('/bin/sh', ['-c', `printf '%s' ${shellQuote(value)}`], { encoding: 'utf8' });
      expect(out).toBe(value);
    },
  );

  it('refuses NUL', () => {
    expect(() => shellQuote('a\0b')).toThrow();
  });
});

describe('shadowExpiryDate', () => {
  it('is the UTC day after the lease end', () => {
    expect(shadowExpiryDate(new Date('2030-01-01T15:00:00Z'))).toBe('2030-01-02');
    expect(shadowExpiryDate(new Date('2030-12-31T23:59:59Z'))).toBe('2031-01-01');
  });

  it('rejects invalid dates', () => {
    expect(() => shadowExpiryDate(new Date('nope'))).toThrow();
    expect(() => shadowExpiryDate(new Date(8.64e15))).toThrow();
  });
});
