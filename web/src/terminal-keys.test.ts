import { describe, expect, it } from 'vitest';
import { screenKeyBytes, withCtrl } from './terminal-keys.js';

describe('on-screen terminal keys', () => {
  it('sends Esc, Tab and the arrows as xterm does, in both cursor modes', () => {
    expect(screenKeyBytes('esc')).toBe('\x1b');
    expect(screenKeyBytes('tab')).toBe('\t');
    expect(screenKeyBytes('up')).toBe('\x1b[A');
    expect(screenKeyBytes('left')).toBe('\x1b[D');
    expect(screenKeyBytes('down', { applicationCursor: true })).toBe('\x1bOB');
    expect(screenKeyBytes('right', { ctrl: true })).toBe('\x1b[1;5C');
  });

  it('turns the character after the sticky Ctrl into its control character', () => {
    expect(withCtrl('c')).toBe('\x03');
    expect(withCtrl('C')).toBe('\x03');
    expect(withCtrl('d')).toBe('\x04');
    expect(withCtrl('[')).toBe('\x1b');
    expect(withCtrl(' ')).toBe('\x00');
    expect(withCtrl('?')).toBe('\x7f');
    expect(withCtrl('cat')).toBe('\x03at');
    expect(withCtrl('1')).toBe('1');
    expect(withCtrl('')).toBe('');
  });
});
