import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

// The dashboard is built into dist/ui and served by trainwatch itself: no CDN, no separate web server.
export default defineConfig({
  root: 'src/ui',
  base: '/',
  plugins: [react()],
  build: {
    outDir: '../../dist/ui',
    emptyOutDir: true,
    chunkSizeWarningLimit: 1024,
  },
  server: {
    // `npx vite` for UI development, against a trainwatch on the default port.
    proxy: { '/api': 'http://127.0.0.1:9470' },
  },
});
