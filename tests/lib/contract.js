// Contract checks against /openapi.yaml, shared by the contract and
// integration tests.
//
//   loadSpec()          the parsed OpenAPI document (cached)
//   validateResponse()  throws if a real HTTP response breaks the contract
//   requestExamples()   the request-body examples, ready to send
//   schemaValidator()   ajv validator for any schema in the spec
//   matchPath()         the path-template matcher (exported for its own tests)

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import Ajv2020Module from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';

// Both packages are CommonJS; depending on how Node's ESM interop sees them
// the class/function is the default export or its `.default` property.
const Ajv2020 = Ajv2020Module.default ?? Ajv2020Module;
const addFormats = addFormatsModule.default ?? addFormatsModule;

export const SPEC_PATH = fileURLToPath(new URL('../../openapi.yaml', import.meta.url));

const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

// The spec is registered in ajv under this id, so every schema is compiled
// as `{ $ref: 'openapi#<pointer>' }` and its own `#/components/...` refs
// resolve inside the document they were written in.
const SPEC_ID = 'openapi';

let cachedSpec;
let cachedAjv;
const validatorCache = new Map();

/** The parsed OpenAPI document (parsed once per process). */
export function loadSpec() {
  if (!cachedSpec) {
    cachedSpec = YAML.parse(readFileSync(SPEC_PATH, 'utf8'));
  }
  return cachedSpec;
}

/** A fresh ajv instance for OpenAPI 3.1 schemas (JSON Schema 2020-12). */
function createAjv() {
  // strict: false because OpenAPI documents carry keywords ajv does not know
  // (example, description on $ref siblings, the non-schema parts of the
  // document itself once it is registered as a whole).
  const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: true });
  addFormats(ajv);
  return ajv;
}

function getAjv() {
  if (!cachedAjv) {
    cachedAjv = createAjv();
    cachedAjv.addSchema(loadSpec(), SPEC_ID);
  }
  return cachedAjv;
}

/** JSON pointer -> URI fragment that ajv understands ("{" must be %-encoded). */
function pointerToFragment(segments) {
  return segments
    .map((s) => '/' + encodeURIComponent(String(s).replace(/~/g, '~0').replace(/\//g, '~1')))
    .join('');
}

/**
 * Compiled ajv validator for the schema at a location in the spec, given as
 * path segments, e.g. schemaValidator(['components', 'schemas', 'Problem']).
 * Useful for bodies validateResponse cannot place (unknown-path 404s).
 */
export function schemaValidator(segments) {
  const fragment = pointerToFragment(segments);
  let validate = validatorCache.get(fragment);
  if (!validate) {
    validate = getAjv().compile({ $ref: `${SPEC_ID}#${fragment}` });
    validatorCache.set(fragment, validate);
  }
  return validate;
}

/** Location of an object inside the spec, plus the object itself. */
function at(segments) {
  let node = loadSpec();
  for (const s of segments) {
    node = node?.[s];
  }
  return node;
}

/**
 * Follows OpenAPI (non-schema) `$ref`s such as '#/components/responses/X'.
 * Returns { node, segments } so schemas below it can still be addressed by
 * their location in the document.
 */
function deref(segments) {
  let node = at(segments);
  for (let hops = 0; node && typeof node.$ref === 'string'; hops++) {
    if (hops > 20 || !node.$ref.startsWith('#/')) {
      throw new Error(`cannot follow $ref ${node.$ref} at /${segments.join('/')}`);
    }
    segments = node.$ref
      .slice(2)
      .split('/')
      .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
    node = at(segments);
  }
  if (node === undefined) {
    throw new Error(`nothing at /${segments.join('/')} in ${SPEC_PATH}`);
  }
  return { node, segments };
}

/**
 * Finds the path template matching a concrete path (no query string).
 * Templated segments match one non-empty segment. When several templates
 * match, the one with literal segments furthest to the left wins (OpenAPI:
 * concrete paths take precedence over templated ones), so `/a/b` beats
 * `/a/{x}` and `/a/{x}/c` beats `/a/{x}/{y}`.
 * Returns the template, or undefined.
 */
export function matchPath(templates, path) {
  const actual = path.split('/');
  let best;
  let bestRank;
  for (const template of templates) {
    const parts = template.split('/');
    if (parts.length !== actual.length) continue;
    const rank = [];
    let ok = true;
    for (let i = 0; ok && i < parts.length; i++) {
      if (!parts[i].includes('{')) {
        ok = parts[i] === actual[i];
        rank.push(1);
      } else {
        // Also handles partial templates such as "{name}.json".
        const re = new RegExp(
          '^' +
            parts[i]
              .split(/\{[^}]+\}/)
              .map((lit) => lit.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
              .join('[^/]+') +
            '$',
        );
        ok = re.test(actual[i]);
        rank.push(0);
      }
    }
    if (ok && (!best || compareRank(rank, bestRank) > 0)) {
      best = template;
      bestRank = rank;
    }
  }
  return best;
}

function compareRank(a, b) {
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) return a[i] - b[i];
  }
  return 0;
}

/** Lower-cased header map from a fetch Headers, a Map or a plain object. */
function normalizeHeaders(headers) {
  const out = {};
  if (!headers) return out;
  const entries =
    typeof headers.entries === 'function' && typeof headers.get === 'function'
      ? headers.entries()
      : Object.entries(headers);
  for (const [name, value] of entries) {
    if (value === undefined || value === null) continue;
    out[name.toLowerCase()] = Array.isArray(value) ? value.join(', ') : String(value);
  }
  return out;
}

/** "application/problem+json; charset=utf-8" -> "application/problem+json" */
function mediaType(contentType) {
  return contentType.split(';')[0].trim().toLowerCase();
}

function isJsonMediaType(mt) {
  return mt === 'application/json' || mt.endsWith('+json');
}

function formatAjvErrors(errors) {
  return errors
    .map((e) => {
      const extra =
        e.keyword === 'additionalProperties'
          ? ` (${e.params.additionalProperty})`
          : e.keyword === 'enum' || e.keyword === 'const'
            ? ` (${JSON.stringify(e.params.allowedValues ?? e.params.allowedValue)})`
            : '';
      return `  ${e.instancePath || '(root)'} ${e.message}${extra}`;
    })
    .join('\n');
}

function snippet(text) {
  const s = typeof text === 'string' ? text : JSON.stringify(text);
  return s === undefined ? '(none)' : s.length > 600 ? s.slice(0, 600) + '…' : s;
}

/** Header values travel as text; integers are checked as numbers. */
function headerValue(raw, schema) {
  if (schema && (schema.type === 'integer' || schema.type === 'number') && /^-?\d+(\.\d+)?$/.test(raw)) {
    return Number(raw);
  }
  return raw;
}

/**
 * Throws an Error describing the first way this response breaks the contract;
 * returns undefined when it conforms.
 *
 * @param {object} r
 * @param {string} r.method   request method, any case
 * @param {string} r.path     request path, may include a query string
 * @param {number} r.status   response status
 * @param {Headers|object} r.headers  response headers
 * @param {string} r.body     raw response text ('' for none); an already
 *                            parsed value is accepted for JSON responses
 *
 * A 405 for a method the path does not document is checked against the
 * path's documented 405 response, and its Allow header must list exactly the
 * documented methods.
 */
export function validateResponse({ method, path, status: rawStatus, headers, body }) {
  const spec = loadSpec();
  const status = Number(rawStatus);
  const m = String(method).toLowerCase();
  const ctx = `${String(method).toUpperCase()} ${path} -> ${status}`;
  const fail = (msg) => {
    throw new Error(`contract violation: ${ctx}: ${msg}\n  body: ${snippet(body)}`);
  };

  const rawPath = String(path).split(/[?#]/)[0];
  const template = matchPath(Object.keys(spec.paths ?? {}), rawPath);
  if (!template) fail(`path is not documented in openapi.yaml`);

  const pathItem = deref(['paths', template]);
  const documented = HTTP_METHODS.filter((x) => pathItem.node[x]);
  const h = normalizeHeaders(headers);

  // Which operation's responses apply.
  let opSegments;
  if (documented.includes(m)) {
    opSegments = [...pathItem.segments, m];
    if (status === 405) fail(`405 for a method the path documents (${documented.join(', ').toUpperCase()})`);
  } else if (status === 405) {
    // The method is not part of the API; the path's 405 answer is documented
    // on each of its operations (they all reference the same response).
    const withAllow = documented.find((x) => pathItem.node[x].responses?.['405']);
    if (!withAllow) fail(`path ${template} documents no 405 response`);
    opSegments = [...pathItem.segments, withAllow];
    const allow = (h['allow'] ?? '').split(',').map((s) => s.trim()).filter(Boolean).sort();
    const expected = documented.map((x) => x.toUpperCase()).sort();
    if (allow.join(',') !== expected.join(',')) {
      fail(`Allow header "${h['allow'] ?? ''}" should list exactly ${expected.join(', ')}`);
    }
  } else {
    fail(`method is not documented for ${template} (documented: ${documented.join(', ').toUpperCase()})`);
  }

  const responses = at([...opSegments, 'responses']) ?? {};
  const code = String(status);
  const range = `${code[0]}XX`;
  const key = [code, range, range.toLowerCase(), 'default'].find((k) => k in responses);
  if (!key) fail(`status is not documented for ${String(method).toUpperCase()} ${template} (documented: ${Object.keys(responses).join(', ')})`);
  const response = deref([...opSegments, 'responses', key]);

  // Headers: required ones must be present; present documented ones must
  // match their schema.
  for (const name of Object.keys(response.node.headers ?? {})) {
    if (name.toLowerCase() === 'content-type') continue; // ignored by OpenAPI
    const hdr = deref([...response.segments, 'headers', name]);
    const value = h[name.toLowerCase()];
    if (value === undefined) {
      if (hdr.node.required) fail(`required header ${name} is missing`);
      continue;
    }
    if (hdr.node.schema) {
      const validate = schemaValidator([...hdr.segments, 'schema']);
      if (!validate(headerValue(value, hdr.node.schema))) {
        fail(`header ${name}: "${value}" does not match its schema:\n${formatAjvErrors(validate.errors)}`);
      }
    }
  }

  // Body.
  const content = response.node.content;
  const hasBody = body !== undefined && body !== null && body !== '';
  if (!content || Object.keys(content).length === 0) {
    if (hasBody) fail(`response ${key} documents no body, but one was sent`);
    return undefined;
  }
  const contentType = h['content-type'];
  if (!contentType) fail(`Content-Type header is missing (documented: ${Object.keys(content).join(', ')})`);
  const actualMt = mediaType(contentType);
  const mtKey = Object.keys(content).find((k) => mediaType(k) === actualMt);
  if (!mtKey) fail(`Content-Type "${contentType}" is not documented (documented: ${Object.keys(content).join(', ')})`);

  if (!isJsonMediaType(actualMt)) return undefined; // e.g. text/plain metrics: type check only

  let value = body;
  if (typeof body === 'string') {
    try {
      value = JSON.parse(body);
    } catch (err) {
      fail(`body is not valid JSON (${err.message})`);
    }
  } else if (!hasBody) {
    fail('body is empty');
  }

  if (content[mtKey].schema) {
    const validate = schemaValidator([...response.segments, 'content', mtKey, 'schema']);
    if (!validate(value)) fail(`body does not match the schema:\n${formatAjvErrors(validate.errors)}`);
  }

  // Problem invariants the schema cannot express.
  if (actualMt === 'application/problem+json') {
    if (value.status !== status) fail(`problem status ${value.status} differs from HTTP status`);
    if (value.type !== `https://rebuy.dev/problems/${value.code}`) {
      fail(`problem type "${value.type}" should be https://rebuy.dev/problems/${value.code}`);
    }
    // A replayed response carries the original body but a new request id.
    if (h['idempotent-replayed'] !== 'true' && h['x-request-id'] !== undefined && value.request_id !== h['x-request-id']) {
      fail(`problem request_id "${value.request_id}" differs from X-Request-Id "${h['x-request-id']}"`);
    }
  }
  return undefined;
}

/**
 * Every operation with a request-body example:
 * [{ operationId, method, pathTemplate, pathExample, body }]
 * pathExample has each path parameter replaced by its (URI-encoded) example;
 * body is the example value (not serialized).
 */
export function requestExamples() {
  const spec = loadSpec();
  const out = [];
  for (const pathTemplate of Object.keys(spec.paths ?? {})) {
    const pathItem = deref(['paths', pathTemplate]);
    for (const method of HTTP_METHODS) {
      const op = pathItem.node[method];
      if (!op?.requestBody) continue;
      const rb = deref([...pathItem.segments, method, 'requestBody']).node;
      const media = rb.content?.['application/json'] ?? Object.values(rb.content ?? {})[0];
      if (!media || !('example' in media)) continue;

      // Operation-level parameters override path-level ones (same name+in).
      const params = new Map();
      for (const [i] of (pathItem.node.parameters ?? []).entries()) {
        const p = deref([...pathItem.segments, 'parameters', i]).node;
        params.set(`${p.in}:${p.name}`, p);
      }
      for (const [i] of (op.parameters ?? []).entries()) {
        const p = deref([...pathItem.segments, method, 'parameters', i]).node;
        params.set(`${p.in}:${p.name}`, p);
      }
      const pathExample = pathTemplate.replace(/\{([^}]+)\}/g, (_, name) => {
        const p = params.get(`path:${name}`);
        const example = p?.example ?? p?.schema?.example ?? p?.schema?.examples?.[0];
        if (example === undefined) {
          throw new Error(`${op.operationId ?? method + ' ' + pathTemplate}: path parameter {${name}} has no example`);
        }
        return encodeURIComponent(String(example));
      });

      out.push({
        operationId: op.operationId,
        method: method.toUpperCase(),
        pathTemplate,
        pathExample,
        body: structuredClone(media.example),
      });
    }
  }
  return out;
}
