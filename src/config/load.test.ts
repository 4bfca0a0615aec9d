import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from './index.js';

function tempFile(text: string): string {
  const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'tw-config-')), 'trainwatch.yaml');
  writeFileSync(file, text);
  return file;
}

describe('configuration', () => {
  it('has defaults for everything', () => {
    const c = loadConfig();
    expect(c.listen).toBe('127.0.0.1:9470');
    expect(c.data_dir).toBe('./data');
    expect(c.roles).toEqual(['all']);
    expect(c.bus.fsync).toBe('always');
    expect(c.bus.partitions).toBe(8);
  });

  it('layers file < environment < flags', () => {
    const file = tempFile('listen: 0.0.0.0:1000\nbus:\n  partitions: 4\n  fsync: never\n');
    const c = loadConfig({
      file,
      env: { TRAINWATCH_BUS__PARTITIONS: '16', TRAINWATCH_JOB_ID: 'ignored: SDK variable', PATH: '/bin' },
      flags: { listen: '127.0.0.1:2000' },
    });
    expect(c.listen).toBe('127.0.0.1:2000');
    expect(c.bus.partitions).toBe(16);
    expect(c.bus.fsync).toBe('never');
  });

  it('names the key, the source and the problem', () => {
    const file = tempFile('bus:\n  partitions: 0\n');
    expect(() => loadConfig({ file })).toThrow(ConfigError);
    expect(() => loadConfig({ file })).toThrow(
      /bus\.partitions: .*>=1.*\(got 0\) \[from config file .*trainwatch\.yaml\]/,
    );
    expect(() => loadConfig({ env: { TRAINWATCH_BUS__FSYNC: 'sometimes' } })).toThrow(
      /bus\.fsync: .*"always".*\(got "sometimes"\) \[from environment variable TRAINWATCH_BUS__FSYNC\]/,
    );
    expect(() => loadConfig({ flags: { listen: 'localhost' } })).toThrow(/listen: must be host:port/);
    expect(() => loadConfig({ flags: { ingest: { workers: -1 } } })).toThrow(
      /ingest\.workers: .*>=0.*\(got -1\)/,
    );
    expect(() => loadConfig({ flags: { ingest: { workers: 1.5 } } })).toThrow(/ingest\.workers: .*int/);
  });

  it('refuses unknown keys, naming them', () => {
    expect(() => loadConfig({ file: tempFile('bus:\n  partitons: 3\n') })).toThrow(
      /bus\.partitons: unknown key/,
    );
    expect(() => loadConfig({ file: tempFile('lisen: x\n') })).toThrow(/lisen: unknown key/);
  });

  it('says when the file is not YAML or not a mapping', () => {
    expect(() => loadConfig({ file: tempFile('bus: [\n') })).toThrow(/is not valid YAML/);
    expect(() => loadConfig({ file: tempFile('- a\n- b\n') })).toThrow(/must contain a mapping/);
    expect(() => loadConfig({ file: '/nonexistent/trainwatch.yaml' })).toThrow(/cannot read config file/);
  });
});
