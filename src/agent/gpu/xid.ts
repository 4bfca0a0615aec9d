/**
 * XID errors from the kernel log. The NVIDIA driver reports each GPU error as a kernel message (NVIDIA's
 * "Xid Errors" guide: grep the kernel log for `NVRM: Xid`):
 *
 *   NVRM: Xid (PCI:0000:0f:00): 79, pid=40102, name=python, GPU has fallen off the bus.
 *   NVRM: Xid (0000:07:00): 94, Contained ECC error.            (older drivers: no `PCI:`)
 *
 * The address is the GPU's PCI domain:bus:device, which nvidia-smi's `pci.bus_id` also names
 * (`00000000:0F:00.0`: an 8-digit domain, upper case, with the function): both are reduced to one key.
 * NVSwitch errors (`SXid`) are not GPU XIDs and do not match.
 */

export interface XidEvent {
  /** The GPU's PCI address as {@link pciKey} gives it. */
  readonly pci: string;
  readonly xid: number;
}

const XID_LINE =
  /NVRM: Xid \((?:PCI:)?([0-9a-fA-F]{1,8}):([0-9a-fA-F]{1,2}):([0-9a-fA-F]{1,2})(?:\.[0-7])?\): (\d{1,5})\b/;

/** `domain:bus:device` in lower-case hex without leading zeros, e.g. `0:f:0`, from any of the spellings. */
function key(domain: string, bus: string, device: string): string {
  return `${Number.parseInt(domain, 16).toString(16)}:${Number.parseInt(bus, 16).toString(16)}:${Number.parseInt(device, 16).toString(16)}`;
}

/** The key of an nvidia-smi `pci.bus_id` (`00000000:0F:00.0`); undefined for anything else. */
export function pciKey(busId: string): string | undefined {
  const m = /^([0-9a-fA-F]{1,8}):([0-9a-fA-F]{1,2}):([0-9a-fA-F]{1,2})(?:\.[0-7])?$/.exec(busId.trim());
  return m ? key(m[1]!, m[2]!, m[3]!) : undefined;
}

/** The XID a kernel log line reports (with `dmesg`'s time stamp or not); undefined for any other line. */
export function parseXidLine(line: string): XidEvent | undefined {
  const m = XID_LINE.exec(line);
  if (!m) return undefined;
  return { pci: key(m[1]!, m[2]!, m[3]!), xid: Number(m[4]) };
}

/** Per GPU (by PCI key): how many XIDs the kernel log holds since boot, and the newest one's code. */
export class XidCounts {
  private readonly byPci = new Map<string, { count: number; last: number }>();

  add(e: XidEvent): void {
    const c = this.byPci.get(e.pci);
    if (c) {
      c.count++;
      c.last = e.xid;
    } else this.byPci.set(e.pci, { count: 1, last: e.xid });
  }

  /** Each GPU's count becomes the larger of this table's and `other`'s (with that one's newest code). */
  raiseTo(other: XidCounts): void {
    for (const [pci, c] of other.byPci) {
      const mine = this.byPci.get(pci);
      if (!mine) this.byPci.set(pci, { ...c });
      else if (c.count > mine.count) {
        mine.count = c.count;
        mine.last = c.last;
      }
    }
  }

  /** Zero counts for a GPU with no XID: the log was read and holds none for it. */
  of(pci: string | undefined): { readonly count: number; readonly last: number } {
    return (pci !== undefined ? this.byPci.get(pci) : undefined) ?? { count: 0, last: 0 };
  }
}
