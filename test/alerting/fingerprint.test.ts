/**
 * The alert fingerprint is persisted (alert history, notification log, detector state) and sent to
 * Alertmanager, so its value must never change: the 32-bit-halves implementation is checked against a
 * straightforward BigInt FNV-1a 64 over the UTF-8 bytes (the implementation it replaced) on random label sets,
 * including non-ASCII text and lone surrogates.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fingerprint } from '../../src/alerting/alert.js';

function referenceFingerprint(labels: Record<string, string>): string {
  let h = 0xcbf29ce484222325n;
  const add = (s: string) => {
    for (const byte of Buffer.from(s, 'utf8')) {
      h ^= BigInt(byte);
      h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
    }
    h ^= 0xffn;
    h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
  };
  for (const name of Object.keys(labels).sort()) {
    add(name);
    add(labels[name]!);
  }
  return h.toString(16).padStart(16, '0');
}

describe('alert fingerprint', () => {
  it('is FNV-1a 64 of the sorted labels (empty set: the FNV offset basis)', () => {
    expect(fingerprint({})).toBe('cbf29ce484222325');
    const labels = { alertname: 'TrainingNaN', job_id: 'llama-7b', severity: 'critical', tenant: 'default' };
    expect(fingerprint(labels)).toBe(referenceFingerprint(labels));
    const odd: Record<string, string>[] = [
      { a: '\ud800' },
      { a: 'x\udc00y' },
      { a: '\ud83d\ude00 ünïcødé' },
      { ℕ: '\ud83d' },
    ];
    for (const l of odd) expect(fingerprint(l)).toBe(referenceFingerprint(l));
    // Order of insertion does not matter.
    expect(
      fingerprint({ tenant: 'default', severity: 'critical', job_id: 'llama-7b', alertname: 'TrainingNaN' }),
    ).toBe(fingerprint(labels));
  });

  it('matches the BigInt reference on random label sets, any Unicode text included', () => {
    const codeUnit = fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c));
    const text = fc.oneof(fc.string(), fc.string({ unit: 'grapheme' }), fc.string({ unit: codeUnit }));
    fc.assert(
      fc.property(
        fc.dictionary(fc.string({ minLength: 1, maxLength: 12 }), text, { maxKeys: 12 }),
        (labels) => {
          expect(fingerprint(labels)).toBe(referenceFingerprint(labels));
        },
      ),
      { numRuns: 500 },
    );
  });
});
