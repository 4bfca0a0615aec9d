/**
 * The agent's log: JSON lines on stdout in pino's shape (`level` number, `time`, `pid`, `name`, `msg`, context
 * fields), so that one log pipeline reads the server's and the agent's lines alike. The agent does not load
 * pino: on a training node every megabyte of resident memory is counted (docs/agent.md, footprint), and
 * these few lines do what the agent needs.
 */

export const LOG_LEVELS = {
  trace: 10,
  debug: 20,
  info: 30,
  warn: 40,
  error: 50,
  fatal: 60,
  silent: 100,
} as const;
export type LogLevel = keyof typeof LOG_LEVELS;

export interface AgentLogger {
  debug(fields: Record<string, unknown>, msg: string): void;
  info(fields: Record<string, unknown>, msg: string): void;
  warn(fields: Record<string, unknown>, msg: string): void;
  error(fields: Record<string, unknown>, msg: string): void;
}

export function createAgentLogger(
  level: LogLevel,
  write: (line: string) => void = (line) => process.stdout.write(line),
): AgentLogger {
  const min = LOG_LEVELS[level];
  const emit = (lvl: number, fields: Record<string, unknown>, msg: string) => {
    if (lvl < min) return;
    const record: Record<string, unknown> = {
      level: lvl,
      time: new Date().toISOString(),
      pid: process.pid,
      name: 'trainwatch-agent',
    };
    for (const [k, v] of Object.entries(fields))
      record[k] = v instanceof Error ? { type: v.name, message: v.message } : v;
    record.msg = msg;
    write(`${JSON.stringify(record)}\n`);
  };
  return {
    debug: (f, m) => emit(LOG_LEVELS.debug, f, m),
    info: (f, m) => emit(LOG_LEVELS.info, f, m),
    warn: (f, m) => emit(LOG_LEVELS.warn, f, m),
    error: (f, m) => emit(LOG_LEVELS.error, f, m),
  };
}

/** A logger that keeps nothing: for tests and library use. */
export const silentLogger: AgentLogger = createAgentLogger('silent', () => {});
