/**
 * Serves the built dashboard (dist/ui, made by `npm run build`) at `/`. Paths that are not files fall back to
 * index.html so that every dashboard URL is a shareable link. Nothing is loaded from a CDN.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { HttpServer } from './http.js';

export function defaultUiDir(): string {
  // This file runs from dist/server/; the UI is built into dist/ui/.
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'ui');
}

export async function registerUi(http: HttpServer, uiDir = defaultUiDir()): Promise<void> {
  const { app } = http;
  if (!existsSync(path.join(uiDir, 'index.html'))) {
    app.get('/', { config: { permission: 'public' } }, async (_req, reply) =>
      reply
        .code(503)
        .type('text/plain')
        .send(
          `The dashboard is not built (no ${uiDir}/index.html). Run \`npm run build\` and restart trainwatch.\n`,
        ),
    );
    return;
  }
  // The UI's files are public (the login page among them); @fastify/static takes no route options.
  await http.access.withPermission('public', async () => {
    await app.register(fastifyStatic, { root: uiDir, prefix: '/', wildcard: false, index: ['index.html'] });
  });
  // Client-side routes (/jobs/abc, /compare?...) get the app shell; a missing asset stays a 404.
  http.setPageFallback((req, reply) => {
    if (path.extname(req.url.split('?')[0]!)) return reply.code(404).type('text/plain').send('not found\n');
    return reply.sendFile('index.html');
  });
}
