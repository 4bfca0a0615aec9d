import { type Logger, pino } from 'pino';

/** JSON lines on stdout (DESIGN.md): one object per event, `msg` in plain words, context as fields. */
export function createLogger(level: string, name = 'trainwatch'): Logger {
  return pino({ name, level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime });
}
