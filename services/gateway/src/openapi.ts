// The OpenAPI 3.1 document of the API, generated from the route table's zod schemas (zod 4's
// JSON Schema output is the 2020-12 dialect OpenAPI 3.1 uses), never written by hand.
import { z } from 'zod';
import { ErrorSchema, type RouteSpec } from './route.js';

type Json = Record<string, unknown>;

/**
 * JSON Schema of `schema` for the document: named schemas (`.meta({ id })`) go to
 * `components.schemas` and are referenced there (zod puts them in a local `$defs`, which an
 * OpenAPI document would resolve against its root).
 */
function schemaIn(components: Record<string, Json>, schema: z.ZodType, io: 'input' | 'output'): Json {
  const out = z.toJSONSchema(schema, { io, unrepresentable: 'any', target: 'draft-2020-12' }) as Json;
  delete out.$schema;
  const defs = (out.$defs ?? {}) as Record<string, Json>;
  delete out.$defs;
  const renamed = new Map<string, string>();
  for (const [id, def] of Object.entries(defs)) {
    const existing = components[id];
    const name = existing && JSON.stringify(existing) !== JSON.stringify(def) ? `${id}${io === 'input' ? 'Input' : 'Output'}` : id;
    renamed.set(id, name);
  }
  const rewrite = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(rewrite);
    if (v === null || typeof v !== 'object') return v;
    const o: Json = {};
    for (const [k, x] of Object.entries(v)) o[k] = k === '$ref' && typeof x === 'string' && x.startsWith('#/$defs/') ? `#/components/schemas/${renamed.get(x.slice(8)) ?? x.slice(8)}` : rewrite(x);
    return o;
  };
  for (const [id, def] of Object.entries(defs)) components[renamed.get(id)!] = rewrite(def) as Json;
  return rewrite(out) as Json;
}

/** `/api/agents/:id` → `/api/agents/{id}`. */
export const openApiPath = (path: string): string => path.replace(/:([A-Za-z0-9_]+)/g, '{$1}');

function parametersOf(r: RouteSpec, components: Record<string, Json>): Json[] {
  const out: Json[] = [];
  const add = (schema: z.ZodObject | undefined, where: 'path' | 'query') => {
    if (!schema) return;
    const json = schemaIn(components, schema, 'input') as { properties?: Record<string, Json>; required?: string[] };
    for (const [name, s] of Object.entries(json.properties ?? {})) {
      const { description, ...rest } = s as Json & { description?: string };
      out.push({ name, in: where, required: where === 'path' || (json.required ?? []).includes(name), schema: rest, ...(description ? { description } : {}) });
    }
  };
  add(r.params, 'path');
  add(r.query, 'query');
  return out;
}

export function openApiDocument(routes: readonly RouteSpec[], info: { version: string }): Json {
  const paths: Record<string, Record<string, Json>> = {};
  const components: Record<string, Json> = {};
  const jsonSchema = (schema: z.ZodType, io: 'input' | 'output') => schemaIn(components, schema, io);
  for (const r of routes) {
    const responses: Record<string, Json> = {};
    for (const [status, doc] of Object.entries(r.responses)) {
      const content = doc.sse
        ? { 'text/event-stream': { schema: { type: 'string', description: 'server-sent events: `id:` the stream sequence, `event:` the kind, `data:` JSON' } } }
        : doc.schema
          ? { 'application/json': { schema: jsonSchema(doc.schema, 'output') } }
          : undefined;
      responses[status] = { description: doc.description, ...(content ? { content } : {}) };
    }
    const error = { description: 'a refusal', content: { 'application/json': { schema: jsonSchema(ErrorSchema, 'output') } } };
    if (r.auth !== 'none') responses['401'] ??= { ...error, description: 'missing or unknown credentials (ERR_UNAUTHENTICATED)' };
    if (r.method === 'post' && r.auth !== 'none') {
      responses['403'] ??= { ...error, description: 'signed in by cookie without the X-Errand-CSRF header (ERR_CSRF)' };
      responses['413'] ??= { ...error, description: 'the body is over 256 KiB (ERR_TOO_LARGE)' };
    }
    if (r.body || r.query || r.params) responses['400'] ??= { ...error, description: 'the request is not valid (ERR_INVALID, with issues)' };
    const operation: Json = {
      operationId: `${r.method}${openApiPath(r.path).replace(/[{}]/g, '').split(/[/-]/).filter(Boolean).map((p) => p[0]!.toUpperCase() + p.slice(1)).join('')}`,
      summary: r.summary,
      ...(r.description ? { description: r.description } : {}),
      tags: [r.tag],
      parameters: parametersOf(r, components),
      ...(r.body ? { requestBody: { required: true, content: { 'application/json': { schema: jsonSchema(r.body, 'input') } } } } : {}),
      responses,
      security: r.auth === 'none' ? [] : [{ bearer: [] }, { session: [] }],
    };
    (paths[openApiPath(r.path)] ??= {})[r.method] = operation;
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Errand gateway',
      version: info.version,
      description: 'The HTTP API over Errand\'s client SDK: agents, their decisions, their events and logs. See docs/gateway.md.',
    },
    paths,
    components: {
      schemas: components,
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: 'a token of ERRAND_GATEWAY_TOKENS' },
        session: { type: 'apiKey', in: 'cookie', name: 'errand_session', description: 'set by GET /login?token=…; requests that change something also need X-Errand-CSRF' },
      },
    },
  };
}
