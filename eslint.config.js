// The house rules, checked: the layering of docs/architecture.md (packages never import services,
// services never import each other), each vendor SDK in its one home package, no import cycles,
// and libraries that neither print nor read the environment (the process edge does both).
import importX, { createNodeResolver } from 'eslint-plugin-import-x';
import tseslint from 'typescript-eslint';

const SERVICES = ['@errand/host', '@errand/planner', '@errand/tool-runner-service', '@errand/notifier', '@errand/gateway'];
/** Each vendor SDK and the one package that may import it. */
const VENDORS = [
  { pattern: '@nats-io/*', home: 'packages/nats' },
  { pattern: 'openai', home: 'packages/llm' },
  { pattern: '@modelcontextprotocol/*', home: 'packages/mcp' },
  { pattern: 'pino', home: 'packages/service' },
  { pattern: 'pino-pretty', home: 'packages/service' },
  { pattern: '@opentelemetry/*', home: 'packages/telemetry' },
  { pattern: 'prom-client', home: 'packages/telemetry' },
];

const vendorRules = (except) =>
  VENDORS.filter((v) => v.home !== except).map((v) => ({ group: [v.pattern, `${v.pattern}/**`], message: `${v.pattern} has one home: ${v.home}. Use what that package exports.` }));

export default tseslint.config(
  { ignores: ['**/dist/**', '**/node_modules/**', 'test-results/**', '**/*.mjs', '**/*.cjs'] },
  {
    files: ['**/*.ts', 'eslint.config.js'],
    languageOptions: { parser: tseslint.parser, ecmaVersion: 2023, sourceType: 'module' },
    plugins: { 'import-x': importX },
    settings: {
      'import-x/parsers': { '@typescript-eslint/parser': ['.ts'] },
      'import-x/extensions': ['.ts', '.js'],
      'import-x/resolver-next': [createNodeResolver({ extensionAlias: { '.js': ['.ts', '.js'] }, conditionNames: ['@errand/source', 'types', 'import', 'node', 'default'] })],
    },
    rules: {
      'import-x/no-cycle': ['error', { ignoreExternal: true }],
      'import-x/no-self-import': 'error',
    },
  },
  // A control character in a pattern is a bug unless it says so (tests match them on purpose).
  { files: ['**/src/**/*.ts'], rules: { 'no-control-regex': 'error' } },
  // Libraries: the layering, vendor homes, and no printing or environment.
  ...['protocols', ...['nats', 'llm', 'mcp', 'service', 'telemetry', 'core', 'runtime', 'agent', 'worker', 'tools', 'tool-runner', 'notify', 'client', 'replay', 'example-agents', 'http-body', 'testing'].map((p) => `packages/${p}`)].map(
    (dir) => ({
      files: [`${dir}/src/**/*.ts`],
      rules: {
        'no-restricted-imports': [
          'error',
          {
            paths: SERVICES.map((name) => ({ name, message: 'packages never import services: a service wires packages together, not the other way round.' })),
            patterns: [...vendorRules(dir), { group: ['../../*/src/**', '../../../*/src/**'], message: "no deep imports into another package's src: import its package name." }],
          },
        ],
        ...(dir === 'packages/testing' || dir === 'packages/service'
          ? {}
          : {
              'no-console': 'error',
              'no-restricted-syntax': [
                'error',
                { selector: "MemberExpression[object.name='process'][property.name='env']", message: 'libraries never read process.env: the service edge parses the environment once and passes settings in.' },
              ],
            }),
      },
    }),
  ),
  // Services: wiring only; never each other.
  {
    files: ['services/*/src/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: SERVICES.map((name) => ({ name, message: 'services never import each other: share a package instead.' })),
          patterns: vendorRules(''),
        },
      ],
    },
  },
  // The dashboard (services/gateway/web): browser code in TSX. What the API returns (goals, tool
  // arguments) is attacker-controlled, so it is only ever rendered as text: no HTML sinks.
  {
    files: ['services/gateway/web/**/*.ts', 'services/gateway/web/**/*.tsx'],
    languageOptions: { parser: tseslint.parser, parserOptions: { ecmaFeatures: { jsx: true } }, ecmaVersion: 2023, sourceType: 'module' },
    plugins: { 'import-x': importX },
    settings: {
      'import-x/parsers': { '@typescript-eslint/parser': ['.ts', '.tsx'] },
      'import-x/extensions': ['.ts', '.tsx', '.js'],
      'import-x/resolver-next': [createNodeResolver({ extensionAlias: { '.js': ['.ts', '.tsx', '.js'] } })],
    },
    rules: {
      'import-x/no-cycle': ['error', { ignoreExternal: true }],
      'no-restricted-syntax': [
        'error',
        { selector: "JSXAttribute[name.name='dangerouslySetInnerHTML']", message: 'text from the API is rendered as text, never as HTML.' },
        { selector: 'MemberExpression[property.name=/^(innerHTML|outerHTML)$/]', message: 'text from the API is rendered as text, never as HTML.' },
        { selector: "CallExpression[callee.property.name=/^(insertAdjacentHTML|write|writeln)$/]", message: 'text from the API is rendered as text, never as HTML.' },
      ],
    },
  },
  {
    files: ['services/gateway/web/src/**/*.ts', 'services/gateway/web/src/**/*.tsx'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['node:*'], message: 'the dashboard runs in a browser.' },
            { group: ['@errand/*', '../../src/**', '../../../src/**'], message: 'the dashboard talks to the gateway over HTTP only (web/src/types.ts holds the shapes); server code stays out of the bundle.' },
          ],
        },
      ],
    },
  },
  // The launcher (cli/): the one place that may import services, since it runs them; vendor SDKs
  // still only through their home packages (`errand mcp` serves through @errand/mcp).
  {
    files: ['cli/src/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            ...vendorRules(''),
            { group: ['packages', 'services', 'protocols'].flatMap((dir) => [`../../${dir}/**`, `../../../${dir}/**`]), message: "no deep imports into a package's or service's files: import its package name." },
          ],
        },
      ],
    },
  },
);
