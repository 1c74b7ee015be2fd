// Builds the dashboard: type-checks web/ (tsc, noEmit) and bundles it with Vite into dist/web.
// Skipped when nothing it is built from changed since the last build (a hash of those files is
// kept beside the output), so `pnpm build` / `pnpm errand` stay quick; `--force` builds anyway.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const web = dirname(fileURLToPath(import.meta.url));
const pkg = join(web, '..');
const out = join(pkg, 'dist', 'web');
const stampFile = join(pkg, 'dist', '.web-build-hash');

function files(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) => (d.isDirectory() ? files(join(dir, d.name)) : [join(dir, d.name)]));
}

const inputs = [...files(join(web, 'src')), join(web, 'index.html'), join(web, 'vite.config.ts'), join(web, 'tsconfig.json'), fileURLToPath(import.meta.url), join(pkg, 'package.json')].sort();
const hash = createHash('sha256');
for (const f of inputs) hash.update(relative(web, f)).update('\0').update(readFileSync(f)).update('\0');
const digest = hash.digest('hex');

if (!process.argv.includes('--force') && existsSync(join(out, 'index.html')) && existsSync(stampFile) && readFileSync(stampFile, 'utf8') === digest) process.exit(0);

const require = createRequire(join(pkg, 'package.json'));
const run = (bin, args) => execFileSync(process.execPath, [bin, ...args], { cwd: pkg, stdio: 'inherit' });
try {
  run(require.resolve('typescript/bin/tsc'), ['-p', join(web, 'tsconfig.json')]);
  run(join(dirname(require.resolve('vite/package.json')), 'bin', 'vite.js'), ['build', '--config', join(web, 'vite.config.ts'), '--logLevel', 'warn']);
} catch {
  process.stderr.write('the dashboard (services/gateway/web) did not build: see the errors above\n');
  process.exit(1);
}
writeFileSync(stampFile, digest);
