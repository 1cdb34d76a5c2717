import { z } from 'zod';
import { apiSchemas } from './schemas.js';

/** What `/openapi.json` says about one route; declared beside the route's handler. */
export interface RouteDoc {
  method: 'get' | 'post' | 'patch' | 'delete';
  /** OpenAPI form: `/trackers/{id}`. */
  path: string;
  summary: string;
  /** Id of a schema in `apiSchemas`. */
  body?: string;
  /** Query parameters, from the same zod object that validates them. */
  query?: z.ZodObject;
  pathParams?: string[];
  responses: Record<number, { description: string; schema?: string; contentType?: string }>;
}

const ref = (id: string) => ({ $ref: `#/components/schemas/${id}` });

/**
 * The OpenAPI 3.1 document, generated from the zod schemas that validate requests (`apiSchemas`)
 * and the routes' `RouteDoc`s.
 *
 * @example
 * app.get('/openapi.json', (_req, res) => res.json(buildOpenApi(routeDocs)));
 */
export function buildOpenApi(docs: readonly RouteDoc[], options: { auth: boolean }): Record<string, unknown> {
  const generated = z.toJSONSchema(apiSchemas, {
    target: 'draft-2020-12',
    uri: (id) => `#/components/schemas/${id}`,
    unrepresentable: 'any',
  }) as { schemas: Record<string, Record<string, unknown>> };
  const schemas: Record<string, unknown> = {};
  for (const [id, schema] of Object.entries(generated.schemas)) {
    const { $schema: _s, $id: _i, ...rest } = schema;
    schemas[id] = rest;
  }

  const paths: Record<string, Record<string, unknown>> = {};
  for (const doc of docs) {
    const parameters: unknown[] = (doc.pathParams ?? []).map((name) => ({
      name,
      in: 'path',
      required: true,
      schema: { type: 'string' },
    }));
    if (doc.query) {
      const query = z.toJSONSchema(doc.query, { target: 'draft-2020-12', io: 'input', unrepresentable: 'any' }) as {
        properties?: Record<string, unknown>;
        required?: string[];
      };
      for (const [name, schema] of Object.entries(query.properties ?? {})) {
        parameters.push({ name, in: 'query', required: query.required?.includes(name) ?? false, schema });
      }
    }
    const responses: Record<string, unknown> = {};
    for (const [status, response] of Object.entries(doc.responses)) {
      const content = response.schema
        ? { [response.contentType ?? 'application/json']: { schema: ref(response.schema) } }
        : response.contentType
          ? { [response.contentType]: { schema: { type: 'string' } } }
          : undefined;
      responses[status] = { description: response.description, ...(content ? { content } : {}) };
    }
    paths[doc.path] ??= {};
    paths[doc.path]![doc.method] = {
      summary: doc.summary,
      ...(parameters.length ? { parameters } : {}),
      ...(doc.body
        ? { requestBody: { required: true, content: { 'application/json': { schema: ref(doc.body) } } } }
        : {}),
      responses,
      ...(options.auth && !['/healthz', '/readyz'].includes(doc.path) ? { security: [{ bearer: [] }] } : {}),
    };
  }

  return {
    openapi: '3.1.0',
    info: {
      title: 'tx-tracker',
      version: '0.1.0',
      description: 'One supervised, persistent XState actor per Ethereum transaction.',
    },
    paths,
    components: { schemas, securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
  };
}
