import { describe, expect, it } from 'vitest';
import { parseAgentArgs } from './cli.js';

describe("trainwatch agent's own argument parser", () => {
  it('takes the flags in the forms commander takes them', () => {
    expect(
      parseAgentArgs([
        '--server=http://c:9470',
        '--token',
        't0k',
        '-c',
        'agent.yaml',
        '--data-dir',
        '/var/lib/a',
        '--log-level=warn',
      ]),
    ).toEqual({
      server: 'http://c:9470',
      token: 't0k',
      config: 'agent.yaml',
      dataDir: '/var/lib/a',
      logLevel: 'warn',
    });
    expect(parseAgentArgs([])).toEqual({});
    // A repeated flag keeps its last value, as with commander.
    expect(parseAgentArgs(['--config', 'a.yaml', '--config', 'b.yaml'])?.config).toBe('b.yaml');
  });

  it('leaves everything else to the full CLI', () => {
    for (const args of [
      ['--help'],
      ['-h'],
      ['--server', 'http://c:9470', '--bogus'],
      ['--server'],
      ['extra-argument'],
      ['--config', '-x'],
    ])
      expect(parseAgentArgs(args), args.join(' ')).toBeUndefined();
  });
});
