/**
 * Damage in the embedded bus found at start (issue 16, item 5) is not silent: the process starts and serves,
 * `/readyz` lists the loss under `warnings.bus`, and `trainwatch_bus_corrupt_records_total` counts it.
 */
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config/index.js';
import { SeriesBatchBuilder } from '../src/model/batch.js';
import { NATIVE_CONTENT_TYPE, NativeEncoder } from '../src/protocol/native.js';
import { startTrainwatch } from '../src/server/index.js';
import { tempDir } from './support/helpers.js';

describe('bus damage found at start', () => {
  it('is shown in /readyz warnings and counted, and the server stays ready', async () => {
    const dir = tempDir('tw-buscorrupt-');
    const config = loadConfig({
      flags: { listen: '127.0.0.1:0', data_dir: dir, auth: { anonymous_scopes: ['ingest', 'read'] } },
    });
    const tw = await startTrainwatch(config, pino({ level: 'silent' }));
    const encoder = new NativeEncoder();
    for (let i = 0; i < 5; i++) {
      const b = new SeriesBatchBuilder();
      b.addSeries({ __name__: 'm', job_id: 'one-job' }).add(Date.now() - 1000 + i, i);
      const res = await tw.app.inject({
        method: 'POST',
        url: '/api/v1/ingest',
        headers: { 'content-type': NATIVE_CONTENT_TYPE },
        payload: Buffer.from(
          encoder.encodeFrame({ sourceId: 's', sequence: i, batch: b.build(), events: [] }),
        ),
      });
      expect(res.statusCode, res.body).toBe(200);
    }
    await tw.stop();
    // The one segment holding the records: flip a byte in the middle of its second record's payload.
    const busDir = path.join(dir, 'bus');
    const segment = readdirSync(busDir)
      .filter((p) => p.startsWith('p-'))
      .flatMap((p) => readdirSync(path.join(busDir, p)).map((f) => path.join(busDir, p, f)))
      .filter((f) => f.endsWith('.seg'))
      .find((f) => statSync(f).size > 8)!;
    const bytes = readFileSync(segment);
    const first = bytes.readUInt32LE(8);
    const second = 8 + 8 + first;
    bytes[second + 8 + 10]! ^= 0xff;
    writeFileSync(segment, bytes);

    const again = await startTrainwatch(config, pino({ level: 'silent' }));
    try {
      const readyz = await again.app.inject({ method: 'GET', url: '/readyz' });
      expect(readyz.json().warnings?.bus).toMatch(/1 record\(s\) lost .* a damaged record at offset 1/);
      const metrics = (await again.app.inject({ method: 'GET', url: '/metrics' })).body;
      expect(metrics).toMatch(/^trainwatch_bus_corrupt_records_total 1$/m);
    } finally {
      await again.stop();
    }
  });
});
