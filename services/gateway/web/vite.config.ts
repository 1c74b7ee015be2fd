import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

// The dashboard's build: Preact through Vite's own JSX transform (oxc, the automatic runtime
// imported from preact), into the gateway's dist/web, which the gateway serves at `/`.
const root = fileURLToPath(new URL('.', import.meta.url));

export default defineConfig({
  root,
  base: '/',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: fileURLToPath(new URL('../dist/web', import.meta.url)),
    emptyOutDir: true,
    assetsDir: 'assets',
    target: 'es2022',
    sourcemap: true,
  },
  // Nothing is fetched from elsewhere at run time; the dev server is not used by the gateway.
  server: { host: '127.0.0.1' },
});
