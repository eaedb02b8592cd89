import { describe, expect, it } from 'vitest';
import { isJitgateError } from '../../core/errors.js';
import { StoreErrors } from '../errors.js';
import { assertValidSamAccountName, escapeDnValue, escapeFilterValue } from './ldap-escape.js';

describe('escapeDnValue (RFC 4514)', () => {
  it('leaves plain values alone', () => {
    expect(escapeDnValue('alice_k3x9q2')).toBe('alice_k3x9q2');
    expect(escapeDnValue('JIT Admins')).toBe('JIT Admins');
  });

  it('escapes every special character', () => {
    expect(escapeDnValue('a,b+c"d\\e<f>g;h=i')).toBe('a\\,b\\+c\\"d\\\\e\\<f\\>g\\;h\\=i');
  });

  it('escapes a leading # or space and a trailing space only', () => {
    expect(escapeDnValue('#x#')).toBe('\\#x#');
    expect(escapeDnValue(' x y ')).toBe('\\ x y\\ ');
    expect(escapeDnValue(' ')).toBe('\\ ');
  });

  it('escapes NUL as \\00', () => {
    expect(escapeDnValue('a\0b')).toBe('a\\00b');
  });

  it('handles the hostile mix and unicode', () => {
    expect(escapeDnValue('*()\\,=+<>#;"')).toBe('*()\\\\\\,\\=\\+\\<\\>#\\;\\"');
    expect(escapeDnValue('Zoë 🦊,Ä')).toBe('Zoë 🦊\\,Ä');
  });
});

describe('escapeFilterValue (RFC 4515)', () => {
  it('leaves plain values alone', () => {
    expect(escapeFilterValue('alice_k3x9q2')).toBe('alice_k3x9q2');
  });

  it('escapes * ( ) \\ and NUL as hex pairs', () => {
    expect(escapeFilterValue('*')).toBe('\\2a');
    expect(escapeFilterValue('(a)')).toBe('\\28a\\29');
    expect(escapeFilterValue('a\\b')).toBe('a\\5cb');
    expect(escapeFilterValue('\0')).toBe('\\00');
  });

  it('neutralises filter injection', () => {
    const hostile = '*)(|(description=*';
    const escaped = escapeFilterValue(hostile);
    expect(escaped).toBe('\\2a\\29\\28|\\28description=\\2a');
    expect(escaped).not.toMatch(/[*()]/);
  });

  it('handles the hostile mix and unicode', () => {
    expect(escapeFilterValue('*()\\,=+<>#;"')).toBe('\\2a\\28\\29\\5c,=+<>#;"');
    expect(escapeFilterValue('Zoë 🦊')).toBe('Zoë 🦊');
  });
});

describe('assertValidSamAccountName', () => {
  const rejected = (name: string): boolean => {
    try {
      assertValidSamAccountName(name);
      return false;
    } catch (err) {
      return isJitgateError(err, StoreErrors.JIT_ERR_STORE_INVALID_NAME);
    }
  };

  it('accepts ordinary JIT names', () => {
    expect(rejected('alice_k3x9q2')).toBe(false);
    expect(rejected('bob.smith-x1')).toBe(false);
    expect(rejected('a'.repeat(20))).toBe(false);
  });

  it.each([...'"/\\[]:;|=,+*?<>@'])('rejects %s', (ch) => {
    expect(rejected(`al${ch}ice`)).toBe(true);
  });

  it('rejects control characters, NUL and DEL', () => {
    expect(rejected('a\0b')).toBe(true);
    expect(rejected('a\nb')).toBe(true);
    expect(rejected('a\tb')).toBe(true);
    expect(rejected('a\u007fb')).toBe(true);
  });

  it('rejects empty, too long, dots-only, padded and dot-terminated names', () => {
    expect(rejected('')).toBe(true);
    expect(rejected('a'.repeat(21))).toBe(true);
    expect(rejected('...')).toBe(true);
    expect(rejected(' alice')).toBe(true);
    expect(rejected('alice ')).toBe(true);
    expect(rejected('alice.')).toBe(true);
  });

  it('rejects what AD would allow but jitgate never generates', () => {
    for (const name of ['#abc', 'ünïcode', 'zoë_1', 'a b', "a'b", '$(id)', '`id`', '-abc', '_abc', 'a\u00a0b']) {
      expect(rejected(name)).toBe(true);
    }
    expect(rejected('msp-1234')).toBe(false);
  });

  it('rejects the hostile mix', () => {
    expect(rejected('*()\\,=+<>#;"')).toBe(true);
    expect(rejected('x*)(cn=*')).toBe(true);
  });
});
