// The OpenAPI document is generated from the route table: it is valid OpenAPI 3.1 (checked against
// the specification's JSON schema), every route the app serves is in it, and every route in it is served.
import { Validator } from '@seriousme/openapi-schema-validator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient } from '@errand/client';
import { silentLogger, patternRedactor } from '@errand/protocols';
import { createDeployment, startTestServer, type Deployment, type TestServer } from '@errand/testing';
import { createGatewayApp, type GatewayApp } from '../src/app.js';
import { callbackRoutes } from '../src/callbacks.js';
import { openApiPath } from '../src/openapi.js';
import { systemRoutes } from '../src/system.js';
import { ALICE } from './helpers.js';

let srv: TestServer;
let d: Deployment;
let gw: GatewayApp;
type Json = Record<string, any>;
let doc: Json;

beforeAll(async () => {
  srv = await startTestServer();
  d = await createDeployment(srv);
  gw = createGatewayApp({
    conn: d.conn,
    client: await createClient(d.conn, d.prefix),
    prefix: d.prefix,
    logger: silentLogger,
    redactor: patternRedactor,
    users: [ALICE],
    webDir: '/nonexistent',
    registry: () => Promise.reject(new Error('not used')),
    system: systemRoutes({ conn: d.conn, prefix: d.prefix, logger: silentLogger }),
    callbacks: callbackRoutes({ conn: d.conn, prefix: d.prefix, logger: silentLogger, channels: {} }),
  });
  const res = await gw.app.request('/api/openapi.json', { headers: { Authorization: `Bearer ${ALICE.token}` } });
  expect(res.status).toBe(200);
  doc = (await res.json()) as Json;
});
afterAll(async () => {
  await d?.stopAll();
  await srv?.stop();
});

const METHODS = ['get', 'post', 'put', 'patch', 'delete'];

/** The routes the Hono app serves: method and OpenAPI path, middleware and catch-alls left out. */
function served(app: GatewayApp['app']): Set<string> {
  const out = new Set<string>();
  for (const r of app.routes) {
    const method = r.method.toLowerCase();
    if (!METHODS.includes(method) || r.path.includes('*') || r.path === '/login') continue;
    out.add(`${method} ${openApiPath(r.path)}`);
  }
  return out;
}

describe('GET /api/openapi.json', () => {
  it('has the structure of an OpenAPI 3.1 document', () => {
    expect(doc.openapi).toBe('3.1.0');
    expect(doc.info).toMatchObject({ title: expect.any(String), version: expect.any(String) });
    expect(Object.keys(doc.paths).length).toBeGreaterThan(10);
    const operationIds = new Set<string>();
    for (const [path, item] of Object.entries(doc.paths as Record<string, Json>)) {
      expect(path.startsWith('/')).toBe(true);
      const templated = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]);
      for (const [method, op] of Object.entries(item)) {
        expect(METHODS).toContain(method);
        expect(typeof op.summary).toBe('string');
        expect(operationIds.has(op.operationId), op.operationId).toBe(false);
        operationIds.add(op.operationId);
        expect(Object.keys(op.responses).length).toBeGreaterThan(0);
        for (const [status, response] of Object.entries(op.responses as Record<string, Json>)) {
          expect(status).toMatch(/^[1-5]\d\d$/);
          expect(typeof response.description).toBe('string');
          for (const media of Object.values((response.content ?? {}) as Record<string, Json>)) expect(typeof media.schema).toBe('object');
        }
        // Path parameters: exactly the template's, each required.
        const inPath = (op.parameters as Json[]).filter((p) => p.in === 'path');
        expect(inPath.map((p) => p.name).sort()).toEqual([...templated].sort());
        for (const p of op.parameters as Json[]) {
          expect(['path', 'query', 'header', 'cookie']).toContain(p.in);
          expect(typeof p.schema).toBe('object');
          if (p.in === 'path') expect(p.required).toBe(true);
        }
        if (op.requestBody) expect(typeof op.requestBody.content['application/json'].schema).toBe('object');
        for (const s of op.security) for (const name of Object.keys(s)) expect(doc.components.securitySchemes[name]).toBeDefined();
      }
    }
    // Every reference resolves inside the document.
    const refs: string[] = [];
    const walk = (v: unknown) => {
      if (Array.isArray(v)) v.forEach(walk);
      else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) k === '$ref' ? refs.push(x as string) : walk(x);
    };
    walk(doc);
    expect(refs.length).toBeGreaterThan(0);
    for (const ref of refs) {
      expect(ref.startsWith('#/components/schemas/'), ref).toBe(true);
      expect(doc.components.schemas[ref.slice('#/components/schemas/'.length)], ref).toBeDefined();
    }
  });

  it('validates against the official OpenAPI 3.1 JSON schema', async () => {
    const validator = new Validator();
    const res = await validator.validate(structuredClone(doc));
    expect(res.errors ?? [], JSON.stringify(res.errors, null, 2)).toEqual([]);
    expect(res.valid).toBe(true);
    expect(validator.version).toBe('3.1');
    // The validator refuses what is not OpenAPI (so the check above can fail): a path without its slash.
    const broken = structuredClone(doc);
    broken.paths['api/agents'] = broken.paths['/api/agents'];
    expect((await new Validator().validate(broken)).valid).toBe(false);
  });

  it('documents every route the app serves, and serves every route it documents', () => {
    const documented = new Set(Object.entries(doc.paths as Record<string, Json>).flatMap(([path, item]) => Object.keys(item).map((m) => `${m} ${path}`)));
    expect([...served(gw.app)].sort()).toEqual([...documented].sort());
    expect(documented).toContain('get /api/system');
    expect(documented).toContain('post /slack/{channel}/actions');
    expect(documented).toContain('post /telegram/{channel}/webhook');
  });

  it("is generated from the schemas the routes validate with", async () => {
    const submit = doc.paths['/api/agents'].post.requestBody.content['application/json'].schema;
    expect(submit.$ref ?? '').toBe('#/components/schemas/SubmitRequest');
    const schema = doc.components.schemas.SubmitRequest;
    expect(schema.required).toEqual(['goal']);
    expect(Object.keys(schema.properties)).toEqual(expect.arrayContaining(['goal', 'agent', 'agentId', 'labels', 'budget', 'input', 'notify']));
    expect(schema.properties).not.toHaveProperty('submittedBy');
    // What the schema says is what the route enforces.
    const res = await gw.app.request('/api/agents', { method: 'POST', headers: { Authorization: `Bearer ${ALICE.token}` }, body: JSON.stringify({ goal: '' }) });
    expect(res.status).toBe(400);
    const approve = doc.paths['/api/agents/{id}/approve'].post;
    expect(approve.requestBody.content['application/json'].schema.required).toEqual(['requestId', 'argsHash']);
    expect(Object.keys(approve.responses)).toEqual(expect.arrayContaining(['202', '401', '403', '404', '409', '413']));
    const list = doc.paths['/api/agents'].get.parameters.map((p: Json) => p.name);
    expect(list).toEqual(expect.arrayContaining(['status', 'label', 'agent', 'q', 'limit', 'cursor']));
    expect(doc.paths['/api/agents/{id}/events'].get.responses['200'].content).toHaveProperty('text/event-stream');
  });

  it('needs auth like the rest of /api', async () => {
    expect((await gw.app.request('/api/openapi.json')).status).toBe(401);
  });
});
