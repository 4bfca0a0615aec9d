/**
 * How blocks-v1/*.twb were made: raw and rollup blocks of format version 1 (chunks carrying their first
 * timestamp, uncompressed index), written by a trainwatch build from before block version 2 (commit 37d6006).
 * src/storage/blocks.test.ts reads them and checks every sample against value() below (kept in sync).
 *
 *   node src/storage/testdata/make-blocks-v1.mjs <old build root> <out dir> && cp <out dir>/blocks/*.twb \
 *     src/storage/testdata/blocks-v1/
 */
const root = process.argv[2];
const out = process.argv[3];
const { Tsdb } = await import(`${root}/dist/storage/tsdb.js`);
const { SeriesBatchBuilder, STALE_NAN } = await import(`${root}/dist/model/batch.js`);
const pino = (await import(`${root}/node_modules/pino/pino.js`)).default;
const M = 60_000;
const T0 = 1_700_000_000_000 - (1_700_000_000_000 % (10 * M));
const special = new Float64Array(6);
special[0] = STALE_NAN;
special[1] = -0;
special[2] = Infinity;
special[3] = -Infinity;
special[4] = 5e-324;
new DataView(special.buffer).setBigUint64(40, 0x7ff8000000000123n, true);
function value(s, i) {
  if (s === 'a') return i * 0.25;
  if (s === 'b') return i >= 100 && i < 106 ? special[i - 100] : 40 + Math.sin(i / 7) * 3.123456789;
  if (s === 'c') return 7;
  return i % 5 === 0 ? 2 ** 40 + i : 1000 + i * 3;
}
const db = await Tsdb.open({
  dir: out,
  blockDurationMs: M,
  outOfOrderWindowMs: 3_600_000,
  retentionMs: { raw: 0, '10s': 0, '1m': 0, '1h': 0 },
  fsync: false,
  blockCacheBytes: 1 << 20,
  logger: pino({ level: 'silent' }),
});
for (let k = 0; k < 6; k++) {
  const b = new SeriesBatchBuilder();
  for (const s of ['a', 'b', 'c', 'd']) {
    b.addSeries({ __name__: `fixture_${s}`, k: s });
    for (let i = k * 100; i < k * 100 + 100; i++) b.add(T0 + i * 1000 + (s === 'd' ? i % 3 : 0), value(s, i));
  }
  db.appender.append('fixture', b.build());
  await db.checkpoint(new Map([[0, k + 1]]));
}
const m = new SeriesBatchBuilder();
m.addSeries({ __name__: 'fixture_marker' }).add(T0 + 3_600_000, 1);
db.appender.append('fixture', m.build());
await db.checkpoint(new Map([[0, 7]]));
while (await db.compactOnce());
console.log(JSON.stringify(db.listBlocks()));
await db.close();
