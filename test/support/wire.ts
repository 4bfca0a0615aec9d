/**
 * Test-side encoders for the ingest protocols, written independently of the collector's decoders: a small
 * protobuf writer, Prometheus remote-write 1.0 and 2.0 requests, and snappy from the `snappyjs` package
 * (an implementation other than trainwatch's own).
 */
// @ts-expect-error snappyjs ships no type declarations
import SnappyJS from 'snappyjs';

export function snappyCompress(data: Uint8Array): Uint8Array {
  return new Uint8Array(SnappyJS.compress(data) as Uint8Array);
}

export function snappyUncompress(data: Uint8Array): Uint8Array {
  return new Uint8Array(SnappyJS.uncompress(data) as Uint8Array);
}

export class PbWriter {
  private bytes: number[] = [];

  varint(v: number | bigint): this {
    let x = BigInt.asUintN(64, BigInt(v));
    while (x >= 0x80n) {
      this.bytes.push(Number(x & 0x7fn) | 0x80);
      x >>= 7n;
    }
    this.bytes.push(Number(x));
    return this;
  }

  tag(field: number, wire: number): this {
    return this.varint((field << 3) | wire);
  }

  double(field: number, v: number): this {
    const b = Buffer.alloc(8);
    b.writeDoubleLE(v);
    this.tag(field, 1);
    this.bytes.push(...b);
    return this;
  }

  /** Writes the 8 given bytes as a fixed64 field (to send exact NaN payloads). */
  rawFixed64(field: number, b: Uint8Array): this {
    this.tag(field, 1);
    this.bytes.push(...b);
    return this;
  }

  int64(field: number, v: number | bigint): this {
    return this.tag(field, 0).varint(v);
  }

  bytesField(field: number, b: Uint8Array): this {
    this.tag(field, 2).varint(b.length);
    // A loop, not push(...b): spreading a message of a few MB overflows the stack.
    for (let i = 0; i < b.length; i++) this.bytes.push(b[i]!);
    return this;
  }

  string(field: number, s: string): this {
    return this.bytesField(field, Buffer.from(s));
  }

  message(field: number, build: (w: PbWriter) => void): this {
    const w = new PbWriter();
    build(w);
    return this.bytesField(field, w.finish());
  }

  finish(): Uint8Array {
    return Uint8Array.from(this.bytes);
  }
}

export interface RwSeries {
  readonly labels: Record<string, string>;
  readonly samples: readonly (readonly [number, number | Uint8Array])[];
  /** Remote-write 2.0 only: the series' `Metadata` (type: the MetricType enum number). */
  readonly metadata?: { readonly type: number; readonly help: string; readonly unit: string };
}

/** A remote-write 1.0 `MetricMetadata` (type: the MetricType enum number). */
export interface RwMetadataV1 {
  readonly type: number;
  readonly family: string;
  readonly help: string;
  readonly unit: string;
}

/** prometheus.WriteRequest; labels are written in the order given (Prometheus sorts them). */
export function writeRequestV1(
  series: readonly RwSeries[],
  metadata: readonly RwMetadataV1[] = [],
): Uint8Array {
  const w = new PbWriter();
  for (const m of metadata)
    w.message(3, (md) => md.int64(1, m.type).string(2, m.family).string(4, m.help).string(5, m.unit));
  for (const s of series) {
    w.message(1, (ts) => {
      for (const [name, value] of Object.entries(s.labels))
        ts.message(1, (l) => l.string(1, name).string(2, value));
      for (const [t, v] of s.samples)
        ts.message(2, (smp) => {
          if (v instanceof Uint8Array) smp.rawFixed64(1, v);
          else smp.double(1, v);
          smp.int64(2, t);
        });
    });
  }
  return w.finish();
}

/** io.prometheus.write.v2.Request with a symbol table. */
export function writeRequestV2(series: readonly RwSeries[]): Uint8Array {
  const symbols = [''];
  const index = new Map<string, number>([['', 0]]);
  const ref = (s: string) => {
    let i = index.get(s);
    if (i === undefined) {
      i = symbols.length;
      symbols.push(s);
      index.set(s, i);
    }
    return i;
  };
  const w = new PbWriter();
  const encoded = series.map((s) => {
    const refs = Object.entries(s.labels).flatMap(([n, v]) => [ref(n), ref(v)]);
    const md = s.metadata && {
      type: s.metadata.type,
      help: ref(s.metadata.help),
      unit: ref(s.metadata.unit),
    };
    return { refs, samples: s.samples, md };
  });
  for (const sym of symbols) w.string(4, sym);
  for (const s of encoded) {
    w.message(5, (ts) => {
      ts.message(1, (packed) => {
        for (const r of s.refs) packed.varint(r);
      });
      for (const [t, v] of s.samples)
        ts.message(2, (smp) => {
          if (v instanceof Uint8Array) smp.rawFixed64(1, v);
          else smp.double(1, v);
          smp.int64(2, t);
        });
      const md = s.md;
      if (md) ts.message(5, (m) => m.int64(1, md.type).int64(3, md.help).int64(4, md.unit));
    });
  }
  return w.finish();
}

export const RW1_HEADERS = {
  'content-type': 'application/x-protobuf',
  'content-encoding': 'snappy',
  'x-prometheus-remote-write-version': '0.1.0',
};

export const RW2_HEADERS = {
  'content-type': 'application/x-protobuf;proto=io.prometheus.write.v2.Request',
  'content-encoding': 'snappy',
  'x-prometheus-remote-write-version': '2.0.0',
};
