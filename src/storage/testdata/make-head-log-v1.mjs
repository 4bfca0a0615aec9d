/**
 * How head-log-v1-<commit>.twhl were made: head logs written by trainwatch builds from before the head-log
 * format gained its version 2 (commits 2c48b73 and 1719640: sealed chunks without the "from byte" field;
 * 2c48b73 also wrote 0 for "never cut"). Both files say version 1 in their header, as files written by later
 * version-1 builds do in the other layout. src/storage/head-log.test.ts recovers them and checks every
 * sample against value() below (kept in sync with the test). head-log-v1-37d6006.twhl is the other layout
 * (version 1 with "from byte", as written from b3129c7 until version 2), made with `crash` as a third
 * argument so that sealed chunks continue bytes logged while they were open.
 *
 *   git clone <repo> old && cd old && git checkout 2c48b73 && npm install && npx tsc -p tsconfig.json
 *   node src/storage/testdata/make-head-log-v1.mjs <old build root> <out dir>
 *   cp <out dir>/head/0000000001.log src/storage/testdata/head-log-v1-2c48b73.twhl
 */
const root = process.argv[2];
const out = process.argv[3];
const { Tsdb } = await import(`${root}/dist/storage/tsdb.js`);
const { SeriesBatchBuilder, STALE_NAN } = await import(`${root}/dist/model/batch.js`);
const pino = (await import(`${root}/node_modules/pino/pino.js`)).default;
const H = 3_600_000;
const T0 = Math.floor(1_700_000_000_000 / H) * H + 50 * 60_000;
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
  return 1000 + i;
}
const db = await Tsdb.open({
  dir: out,
  blockDurationMs: H,
  outOfOrderWindowMs: H,
  retentionMs: { raw: 0, '10s': 0, '1m': 0, '1h': 0 },
  fsync: false,
  blockCacheBytes: 1 << 20,
  logger: pino({ level: 'silent' }),
});
for (let k = 0; k < 9; k++) {
  const b = new SeriesBatchBuilder();
  b.addSeries({ __name__: 'fixture_a', k: '1' });
  for (let i = k * 100; i < k * 100 + 100; i++) b.add(T0 + i * 1000, value('a', i));
  b.addSeries({ __name__: 'fixture_b' });
  for (let i = k * 100; i < k * 100 + 100; i++) b.add(T0 + i * 1000, value('b', i));
  // fixture_c: even seconds of this batch, then the odd seconds of the previous batch (out of order).
  b.addSeries({ __name__: 'fixture_c' });
  for (let i = k * 100; i < k * 100 + 100; i += 2) b.add(T0 + i * 1000, value('c', i));
  if (k > 0) for (let i = k * 100 - 99; i < k * 100; i += 2) b.add(T0 + i * 1000, value('c', i));
  db.appender.append('fixture', b.build());
  await db.checkpoint(new Map([[0, k + 1]]));
}
// 'crash': stop without the closing snapshot of later builds, leaving the checkpoint records as they are.
if (process.argv[4] !== 'crash') await db.close();
console.log('T0', T0);
process.exit(0);
