/**
 * `trainwatch user create|list|passwd|disable|enable`, run in-process against a data directory's store.
 */
import { Command } from 'commander';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { registerUser } from '../../src/cli/commands/user.js';
import { loadConfig } from '../../src/config/index.js';
import { openAccessAdmin } from '../../src/meta/index.js';
import { tempDir } from '../support/helpers.js';

async function run(dataDir: string, ...args: string[]): Promise<string> {
  const program = new Command().exitOverride();
  registerUser(program);
  let out = '';
  const write = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
    out += String(chunk);
    return true;
  });
  try {
    await program.parseAsync(['node', 'trainwatch', 'user', ...args, '--data-dir', dataDir]);
  } finally {
    write.mockRestore();
  }
  return out;
}

afterEach(() => vi.restoreAllMocks());

describe('trainwatch user', () => {
  it('creates a user with a printed password, lists, changes the password, disables and enables it', async () => {
    const dir = tempDir('tw-user-cli-');
    const created = await run(dir, 'create', 'ann', '--tenant', 'team-a', '--role', 'editor');
    expect(created).toMatch(/^created user ann \(team-a: editor\)\npassword: (\S{24})\n/);
    const password = /password: (\S+)/.exec(created)![1]!;
    const listed = JSON.parse(await run(dir, 'list', '--json'));
    expect(listed).toMatchObject([
      { name: 'ann', roles: [{ tenant: 'team-a', role: 'editor' }], disabled: false },
    ]);
    expect(JSON.stringify(listed)).not.toContain(password);

    const store = await openAccessAdmin(loadConfig({ flags: { data_dir: dir } }));
    try {
      expect((await store.access.checkPassword('ann', password))?.name).toBe('ann');
      const changed = await run(dir, 'passwd', 'ann');
      const next = /password: (\S+)/.exec(changed)![1]!;
      expect(await store.access.checkPassword('ann', password)).toBeUndefined();
      expect((await store.access.checkPassword('ann', next))?.name).toBe('ann');
      await run(dir, 'disable', 'ann');
      expect((await store.access.userByName('ann'))!.disabled).toBe(true);
      await run(dir, 'enable', 'ann');
      expect((await store.access.userByName('ann'))!.disabled).toBe(false);
      const actions = (await store.access.audit({ limit: 10 })).map(
        (e) => `${e.actor} ${e.action} ${e.target}`,
      );
      expect(actions).toEqual([
        'cli user.enable ann',
        'cli user.disable ann',
        'cli user.passwd ann',
        'cli user.create ann',
      ]);
    } finally {
      await store.close();
    }
    expect(await run(dir, 'list')).toMatch(
      /^NAME +ROLES +OPERATOR +DISABLED +CREATED +LAST LOGIN\nann +team-a:editor +no +no /,
    );
  });
});
