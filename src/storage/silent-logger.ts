import type { Logger } from 'pino';

const noop = () => {};

/** A logger that drops everything: the default where a caller gives none (tests, tools). */
export const silentLogger = {
  info: noop,
  warn: noop,
  error: noop,
  debug: noop,
  child: () => silentLogger,
} as unknown as Logger;
