import { describe, expect, it } from 'vitest';
import { watchersWords } from './watch-words.js';

describe('watchersWords', () => {
  it.each<[string, Parameters<typeof watchersWords>[0], string]>([
    ['the first watcher', { watchers: 1, event: 'joined', by: 'ada' }, 'ada started watching this session live (read-only).'],
    ['a second watcher', { watchers: 2, event: 'joined', by: 'bob' }, 'bob started watching this session live (read-only); 2 people are watching.'],
    ['one of two leaves', { watchers: 1, event: 'left', by: 'bob' }, 'bob stopped watching; 1 person is still watching this session live (read-only).'],
    ['the last leaves', { watchers: 0, event: 'left', by: 'ada' }, 'ada stopped watching. Nobody is watching this session now.'],
    ['nobody named', { watchers: 1, event: 'joined', by: undefined }, 'someone started watching this session live (read-only).'],
  ])('%s', (_what, change, words) => {
    expect(watchersWords(change)).toBe(words);
  });
});
