/**
 * Small builders of hand-written JSON schemas for the OpenAPI descriptions of routes that have no
 * zod schema (capability modules' `openapi.ts`): the shapes their handlers answer.
 */
import type { JsonSchema } from './management-api.ts';

export const str: JsonSchema = { type: 'string' };
export const int: JsonSchema = { type: 'integer' };
export const num: JsonSchema = { type: 'number' };
export const bool: JsonSchema = { type: 'boolean' };
export const time: JsonSchema = { type: 'string', format: 'date-time' };
export const digest: JsonSchema = { type: 'string', pattern: '^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$' };
/** Any JSON object (shapes owned by other formats: SARIF runs, policy rules...). */
export const anyObject: JsonSchema = { type: 'object' };

export const array = (items: JsonSchema): JsonSchema => ({ type: 'array', items });
export const nullable = (schema: JsonSchema): JsonSchema => ({ anyOf: [schema, { type: 'null' }] });
export const oneOf = (...values: string[]): JsonSchema => ({ type: 'string', enum: values });

/** An object: `required` fields are always present, `optional` ones only sometimes; others may be added later. */
export function object(required: Record<string, JsonSchema>, optional: Record<string, JsonSchema> = {}): JsonSchema {
  return { type: 'object', properties: { ...required, ...optional }, required: Object.keys(required) };
}

/** A query parameter. */
export const q = (schema: JsonSchema, description?: string, required = false) => ({ schema, required, ...(description ? { description } : {}) });
