import { describe, expect, it } from 'vitest';
import { splitRunFilter } from './runs-api.js';

describe('splitRunFilter', () => {
  it('ends the column at the first operator character and takes the longest operator', () => {
    expect(splitRunFilter('loss<2.5')).toEqual({ column: 'loss', op: '<', value: '2.5' });
    expect(splitRunFilter('loss <= 2.5')).toEqual({ column: 'loss', op: '<=', value: '2.5' });
    expect(splitRunFilter('config.optimizer!=adam')).toEqual({
      column: 'config.optimizer',
      op: '!=',
      value: 'adam',
    });
    expect(splitRunFilter('name~llama')).toEqual({ column: 'name', op: '~', value: 'llama' });
    // The value may hold operator characters: only the first one ends the column.
    expect(splitRunFilter('tag=a=b')).toEqual({ column: 'tag', op: '=', value: 'a=b' });
    expect(splitRunFilter('owner=')).toEqual({ column: 'owner', op: '=', value: '' });
  });

  it('says why a text is not a filter', () => {
    expect(splitRunFilter('loss')).toBe('no-operator');
    expect(splitRunFilter('<2')).toBe('no-operator');
    expect(splitRunFilter('loss!2')).toBe('unknown-operator');
  });
});
