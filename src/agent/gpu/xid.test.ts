/**
 * XID lines of the kernel log (testdata/kernel-log: lines in the formats of NVIDIA's "Xid Errors" guide, with
 * dmesg time stamps; not a real capture) and the PCI addresses nvidia-smi gives the same GPUs.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseXidLine, pciKey, XidCounts } from './xid.js';

const LOG = readFileSync(
  path.resolve(import.meta.dirname, '../../../testdata/kernel-log/a100-xid.txt'),
  'utf8',
);

describe('XID lines', () => {
  it('finds every GPU XID of the log, in both address spellings, and nothing else', () => {
    const events = LOG.split('\n').flatMap((l) => parseXidLine(l) ?? []);
    expect(events).toEqual([
      { pci: '0:47:0', xid: 13 },
      { pci: '0:47:0', xid: 13 },
      { pci: '0:7:0', xid: 94 },
      { pci: '0:f:0', xid: 79 },
    ]);
  });

  it("ignores NVSwitch SXids, the driver's other NVRM lines and a line without a code", () => {
    expect(
      parseXidLine('nvidia-nvswitch0: SXid (PCI:0000:05:00.0): 12028, Non-fatal, Link 32'),
    ).toBeUndefined();
    expect(
      parseXidLine('NVRM: GPU at PCI:0000:0f:00: GPU-8a6d4c2e-5f3b-4a1c-9e7d-0b8a6c4e2f19'),
    ).toBeUndefined();
    expect(parseXidLine('NVRM: Xid (PCI:0000:0f:00): garbled line without a code')).toBeUndefined();
  });

  it("gives nvidia-smi's pci.bus_id and the kernel's address of one GPU the same key", () => {
    expect(pciKey('00000000:0F:00.0')).toBe(parseXidLine('NVRM: Xid (PCI:0000:0f:00): 79, pid=1')!.pci);
    expect(pciKey('00000001:B3:1F.0')).toBe(parseXidLine('NVRM: Xid (0001:b3:1f): 48, DBE')!.pci);
    expect(pciKey('not a bus id')).toBeUndefined();
  });

  it('counts per GPU with the newest code, and a second reading of the log raises counts without doubling them', () => {
    const a = new XidCounts();
    a.add({ pci: '0:f:0', xid: 13 });
    a.add({ pci: '0:f:0', xid: 79 });
    expect(a.of('0:f:0')).toEqual({ count: 2, last: 79 });
    expect(a.of('0:7:0')).toEqual({ count: 0, last: 0 });
    expect(a.of(undefined)).toEqual({ count: 0, last: 0 });
    const again = new XidCounts();
    again.add({ pci: '0:f:0', xid: 13 });
    a.raiseTo(again);
    expect(a.of('0:f:0')).toEqual({ count: 2, last: 79 });
    again.add({ pci: '0:f:0', xid: 79 });
    again.add({ pci: '0:f:0', xid: 48 });
    a.raiseTo(again);
    expect(a.of('0:f:0')).toEqual({ count: 3, last: 48 });
  });
});
