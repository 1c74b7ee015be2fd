#!/usr/bin/env node
// Builds and packs every package a user installs into one folder of tarballs, for
// `npm i -g ./dist/packages/*.tgz` (or `npm install` of them into a project), as `pnpm publish`
// would publish them: `workspace:*` becomes the version, only `files` ship.
//
// Which packages: found in the workspace, not listed here — the CLI (the package with the `errand`
// bin), every package that is not private, and every workspace package those depend on
// (dependencies, optional and peer). A package someone adds tomorrow is packed as soon as it is
// public or the CLI (or one of its dependencies) depends on it.
//
//   node scripts/pack.mjs [--out DIR] [--no-build] [--json]
//
// --out DIR   where the tarballs go (default dist/packages); its old errand-*.tgz are removed first
// --no-build  pack what is built (`pnpm build` already ran); a missing entry point is an error
// --json      print the manifest (what was packed) as JSON on stdout
//
// Before packing it checks what would break an install and works in the workspace: an exports/bin
// target or the dashboard's dist/web missing, a compiled module importing a package its manifest
// does not declare (a devDependency, a hoisted one); it warns of compiled files whose source is gone.
//
// Exit 0 with the tarballs and DIR/manifest.json; 1 when the build, a check or a pack failed.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const flag = (name) => args.includes(name);
const option = (name) => {
  const i = args.indexOf(name);
  if (i < 0) return undefined;
  const value = args[i + 1];
  if (!value || value.startsWith('--')) fail(`${name} needs a value`);
  return value;
};
if (flag('--help') || flag('-h')) {
  process.stdout.write(`Usage: pnpm pack:all [--out DIR] [--no-build] [--json]

Builds (pnpm build) and packs the errand CLI and every package it needs, plus every public
workspace package, into DIR (default dist/packages) with a manifest.json. Install them all at once:
  npm i -g DIR/*.tgz                        # errand on PATH
  npm install DIR/*.tgz && npx errand demo  # into a project

--out DIR   where the tarballs go; its old errand-*.tgz are removed first
--no-build  pack what is built; a missing entry point is an error
--json      print the manifest on stdout
`);
  process.exit(0);
}
for (const a of args) {
  if (a.startsWith('--') && !['--out', '--no-build', '--json'].includes(a)) fail(`unknown option ${a} (use --out DIR, --no-build, --json)`);
}
const out = resolve(option('--out') ?? join(root, 'dist', 'packages'));
const json = flag('--json');
const say = (line) => process.stderr.write(`${line}\n`);

function fail(message) {
  process.stderr.write(`pack: ${message}\n`);
  process.exit(1);
}

function run(command, argv, options = {}) {
  return execFileSync(command, argv, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 64 * 1024 * 1024, ...options });
}

/** Every workspace package, as pnpm sees the workspace (pnpm-workspace.yaml). */
function workspacePackages() {
  const listed = JSON.parse(run('pnpm', ['ls', '-r', '--json', '--depth', '-1']));
  const byName = new Map();
  for (const { path } of listed) {
    if (resolve(path) === root) continue;
    const manifest = JSON.parse(readFileSync(join(path, 'package.json'), 'utf8'));
    if (manifest.name) byName.set(manifest.name, { dir: path, manifest });
  }
  return byName;
}

/** The CLI, the public packages, and the workspace packages they depend on. */
export function selectPackages(byName) {
  const cli = [...byName.values()].find((p) => p.manifest.bin && typeof p.manifest.bin === 'object' && 'errand' in p.manifest.bin);
  if (!cli) throw new Error('no workspace package has an `errand` bin (cli/package.json)');
  const chosen = new Map();
  const queue = [cli, ...[...byName.values()].filter((p) => p.manifest.private !== true)];
  while (queue.length) {
    const p = queue.shift();
    if (chosen.has(p.manifest.name)) continue;
    chosen.set(p.manifest.name, p);
    const { dependencies = {}, optionalDependencies = {}, peerDependencies = {} } = p.manifest;
    for (const dep of Object.keys({ ...dependencies, ...optionalDependencies, ...peerDependencies })) {
      const found = byName.get(dep);
      if (found) queue.push(found);
    }
  }
  return [...chosen.values()].sort((a, b) => a.manifest.name.localeCompare(b.manifest.name));
}

/** The files a package's `exports` and `bin` name (what an install needs to find). */
function entryPoints(manifest) {
  const files = new Set();
  const walk = (target) => {
    if (typeof target === 'string') {
      if (!target.includes('*')) files.add(target.replace(/^\.\//, ''));
    } else if (Array.isArray(target)) target.forEach(walk);
    else if (target && typeof target === 'object') {
      // The workspace-only source condition points at src, which ships too, but is not what an install runs.
      for (const [condition, t] of Object.entries(target)) if (condition !== '@errand/source') walk(t);
    }
  };
  walk(manifest.exports);
  if (typeof manifest.bin === 'string') files.add(manifest.bin.replace(/^\.\//, ''));
  else for (const b of Object.values(manifest.bin ?? {})) files.add(b.replace(/^\.\//, ''));
  if (manifest.main) files.add(manifest.main.replace(/^\.\//, ''));
  return [...files];
}

/** The compiled modules under `dir` (not the dashboard's bundle), relative to it. */
function builtFiles(dir, prefix = '') {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) => {
    if (d.isDirectory()) return prefix === '' && d.name === 'web' ? [] : builtFiles(join(dir, d.name), `${prefix}${d.name}/`);
    return /\.(d\.)?m?js$/.test(d.name) ? [`${prefix}${d.name}`] : [];
  });
}

/** Packages the compiled modules of `p` import (statically or with a literal `import()`) that its manifest does not declare. */
function undeclaredImports(p) {
  const { name, dependencies = {}, optionalDependencies = {}, peerDependencies = {} } = p.manifest;
  const declared = new Set([name, ...Object.keys({ ...dependencies, ...optionalDependencies, ...peerDependencies })]);
  const found = new Set();
  for (const f of builtFiles(join(p.dir, 'dist')).filter((f) => !f.endsWith('.d.ts'))) {
    const code = readFileSync(join(p.dir, 'dist', f), 'utf8');
    for (const m of code.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)['"]([^'"./][^'"]*)['"]/g)) {
      const spec = m[1];
      if (spec.startsWith('node:') || isBuiltin(spec)) continue;
      const pkg = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0];
      if (!declared.has(pkg)) found.add(`${pkg} (dist/${f})`);
    }
  }
  return [...found];
}

function main() {
  const byName = workspacePackages();
  const packages = selectPackages(byName);
  for (const p of packages) {
    if (p.manifest.private === true) say(`pack: warning: ${p.manifest.name} is private but the CLI needs it: packed, but \`pnpm publish\` would refuse it`);
  }

  if (!flag('--no-build')) {
    say('pack: building (pnpm build)…');
    try {
      run('pnpm', ['build'], { stdio: ['ignore', 'inherit', 'inherit'] });
    } catch {
      fail('the build failed: see above');
    }
  }
  // The dashboard is served from the gateway's dist/web: an install without it has no dashboard.
  const gateway = byName.get('@errand/gateway');
  if (gateway && packages.includes(gateway) && !existsSync(join(gateway.dir, 'dist', 'web', 'index.html'))) {
    fail('services/gateway/dist/web/index.html is missing: build the dashboard (pnpm build) first');
  }
  for (const p of packages) {
    const missing = entryPoints(p.manifest).filter((f) => !existsSync(join(p.dir, f)));
    if (missing.length) fail(`${p.manifest.name}: ${missing.join(', ')} missing in ${relative(root, p.dir)}: run pnpm build first (or leave out --no-build)`);
  }

  // An import of a package the manifest does not declare works in the workspace (a devDependency,
  // a hoisted one) and fails in an install: refused here.
  for (const p of packages) {
    const undeclared = undeclaredImports(p);
    if (undeclared.length) fail(`${p.manifest.name} imports ${undeclared.join(', ')} without declaring it in "dependencies" of ${relative(root, join(p.dir, 'package.json'))}: an npm install would not have it`);
  }

  // tsc -b never removes the output of a deleted source: such a file would ship and could be imported.
  for (const p of packages) {
    const stale = builtFiles(join(p.dir, 'dist')).filter((f) => !['.ts', '.tsx', '.mts'].some((ext) => existsSync(join(p.dir, 'src', f.replace(/(\.d)?\.m?js$/, ext)))));
    if (stale.length) say(`pack: warning: ${p.manifest.name}: no source in src/ for dist/${stale.slice(0, 3).join(', dist/')}${stale.length > 3 ? ` and ${stale.length - 3} more` : ''} (left by an old build?): they ship too; \`pnpm clean && pnpm build\` removes them`);
  }

  mkdirSync(out, { recursive: true });
  for (const f of readdirSync(out)) if (/^errand-.*\.tgz$/.test(f) || f === 'manifest.json') rmSync(join(out, f));

  const packed = [];
  for (const p of packages) {
    let result;
    // Every tarball carries the license its manifest names: the repository's LICENSE, copied in
    // for the pack (npm ships a package folder's LICENSE whatever its "files" say) and removed after.
    const license = join(p.dir, 'LICENSE');
    const ownLicense = existsSync(license);
    const dropLicense = () => ownLicense || rmSync(license, { force: true });
    try {
      if (!ownLicense) copyFileSync(join(root, 'LICENSE'), license);
      result = JSON.parse(run('pnpm', ['pack', '--json', '--pack-destination', out], { cwd: p.dir }));
    } catch (err) {
      let reason = err.message;
      try {
        reason = JSON.parse(err.stdout).error.message;
      } catch {
        // not pnpm's JSON error: the command's message
      }
      dropLicense(); // fail() exits: no finally runs after it
      fail(`${p.manifest.name}: pnpm pack failed in ${relative(root, p.dir)}: ${reason}`);
    } finally {
      dropLicense();
    }
    const tarball = resolve(out, result.filename);
    const shipped = new Set(result.files.map((f) => f.path));
    const missing = [...entryPoints(p.manifest), 'LICENSE'].filter((f) => !shipped.has(f));
    if (missing.length) fail(`${p.manifest.name}: the tarball lacks ${missing.join(', ')}: check "files" in ${relative(root, join(p.dir, 'package.json'))}`);
    packed.push({ name: p.manifest.name, version: p.manifest.version, tarball: relative(out, tarball), bin: Object.keys(typeof p.manifest.bin === 'object' ? p.manifest.bin : {}), private: p.manifest.private === true });
    say(`pack: ${p.manifest.name}@${p.manifest.version} → ${relative(process.cwd(), tarball)}`);
  }
  const manifest = { packages: packed };
  writeFileSync(join(out, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  if (json) process.stdout.write(`${JSON.stringify(manifest, null, 2)}\n`);
  // `./` so npm takes it for a file, whatever the folder is called.
  const shown = relative(process.cwd(), out) || '.';
  const glob = join(shown, '*.tgz');
  say(`pack: ${packed.length} tarballs in ${shown}; install them all at once: npm i -g ${glob.startsWith('.') || glob.startsWith('/') ? glob : `./${glob}`}`);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
