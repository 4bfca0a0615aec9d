/**
 * A long-running child process read line by line (nvidia-smi in loop mode): restarted with backoff when it
 * exits, stopped by its PID. Reports "not installed" (ENOENT) once, separately from other failures.
 */
import { type ChildProcess, spawn } from 'node:child_process';

export interface LineProcessEvents {
  readonly onLine: (line: string, receivedMs: number) => void;
  /** The process ended; `output` is the tail of what it printed (stdout and stderr) for error messages. */
  readonly onExit: (code: number | null, signal: string | null, output: string) => void;
  /** The program does not exist. */
  readonly onMissing: (err: Error) => void;
}

export class LineProcess {
  private child: ChildProcess | undefined;
  private partial = '';
  private tail = '';

  constructor(
    private readonly command: string,
    private readonly args: readonly string[],
    private readonly events: LineProcessEvents,
  ) {}

  get running(): boolean {
    return this.child !== undefined;
  }

  start(): void {
    if (this.child) return;
    this.partial = '';
    this.tail = '';
    const child = spawn(this.command, this.args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    child.stdout!.setEncoding('utf8');
    child.stderr!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => this.onData(chunk));
    child.stderr!.on('data', (chunk: string) => {
      this.tail = (this.tail + chunk).slice(-2048);
    });
    child.on('error', (err: NodeJS.ErrnoException) => {
      if (this.child !== child) return;
      this.child = undefined;
      if (err.code === 'ENOENT' || err.code === 'EACCES') this.events.onMissing(err);
      else this.events.onExit(null, null, err.message);
    });
    child.on('close', (code, signal) => {
      if (this.child !== child) return;
      this.child = undefined;
      if (this.partial !== '') this.emit(this.partial);
      this.partial = '';
      this.events.onExit(code, signal, this.tail);
    });
  }

  /** Stops the process we started, by its PID, and forgets it: no exit event follows. */
  stop(): void {
    const child = this.child;
    this.child = undefined;
    if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  }

  private onData(chunk: string): void {
    let text = this.partial + chunk;
    let nl = text.indexOf('\n');
    while (nl >= 0) {
      this.emit(text.slice(0, nl));
      text = text.slice(nl + 1);
      nl = text.indexOf('\n');
    }
    this.partial = text;
  }

  private emit(raw: string): void {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line.trim() === '') return;
    this.tail = (this.tail + line + '\n').slice(-2048);
    this.events.onLine(line, Date.now());
  }
}
