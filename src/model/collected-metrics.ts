/**
 * Self-metrics read at scrape time: a gauge or counter whose value is read from the component it describes
 * whenever `/metrics` is collected, so that nothing has to update it as things happen. One helper for every
 * stage that registers such numbers (query pool, bus, storage), instead of a `collect()` literal at each.
 */
import { Counter, Gauge, type Registry } from 'prom-client';

/** Registers a gauge whose value is `read()` at each scrape. */
export function collectedGauge(registry: Registry, name: string, help: string, read: () => number): Gauge {
  return new Gauge({
    name,
    help,
    registers: [registry],
    collect() {
      this.set(read());
    },
  });
}

/** Registers a counter whose total is `read()` at each scrape (a count the component keeps itself). */
export function collectedCounter(
  registry: Registry,
  name: string,
  help: string,
  read: () => number,
): Counter {
  return new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      this.reset();
      this.inc(read());
    },
  });
}
