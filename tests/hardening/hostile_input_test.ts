/**
 * A generated corpus of hostile request bodies, sent through the in-process
 * handler. Every answer must be 4xx, or 200 with a valid AdmissionReview that
 * echoes the uid and whose patch applies to the request's pod; nothing may
 * pollute the built-in prototypes.
 * @module
 */
import { say } from "../../testing/process.ts";
import assert from "node:assert/strict";
import {
  assertNoPollution,
  checkAnswer,
  describe,
  jobReview,
  makeHandler,
  mutateRequest,
  nginxReview,
  prototypeSnapshot,
  richReview,
} from "./_util.ts";
import { MAX_BODY_BYTES } from "../../lib/mod.ts";

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Path = Array<string | number>;

interface Case {
  name: string;
  body: string | Uint8Array | null;
  headers?: Record<string, string>;
  query?: string;
  method?: string;
  /** An exact status the case must get. */
  expect?: number;
}

const enc = new TextEncoder();

/** Every path (to objects, arrays and leaves) below `value`, root excluded. */
function allPaths(value: Json, prefix: Path = []): Path[] {
  const out: Path[] = [];
  if (Array.isArray(value)) {
    value.forEach((v, i) => {
      out.push([...prefix, i], ...allPaths(v, [...prefix, i]));
    });
  } else if (value !== null && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) {
      out.push([...prefix, k], ...allPaths(v, [...prefix, k]));
    }
  }
  return out;
}

function setAt(root: Json, path: Path, value: Json | undefined): Json {
  const copy = structuredClone(root);
  let node = copy as Record<string | number, Json>;
  for (const k of path.slice(0, -1)) node = node[k] as Record<string | number, Json>;
  const last = path[path.length - 1]!;
  if (value === undefined) {
    if (Array.isArray(node)) node.splice(last as number, 1);
    else delete node[last];
  } else node[last] = value;
  return copy;
}

/**
 * Serialises like JSON.stringify, but `extra(path)` may add raw `"key":value`
 * entries (duplicates, `__proto__`) at the start of any object.
 */
function serialize(
  value: Json,
  extra: (path: Path) => string[],
  path: Path = [],
  after: (path: Path) => string[] = () => [],
): string {
  if (Array.isArray(value)) {
    return `[${value.map((v, i) => serialize(v, extra, [...path, i], after)).join(",")}]`;
  }
  if (value !== null && typeof value === "object") {
    const entries = [
      ...extra(path),
      ...Object.entries(value).map(([k, v]) =>
        `${JSON.stringify(k)}:${serialize(v, extra, [...path, k], after)}`
      ),
      ...after(path),
    ];
    return `{${entries.join(",")}}`;
  }
  return JSON.stringify(value);
}

function objectPaths(value: Json): Path[] {
  return [[], ...allPaths(value)].filter((p) => {
    let v: Json = value;
    for (const k of p) v = (v as Record<string | number, Json>)[k]!;
    return v !== null && typeof v === "object" && !Array.isArray(v);
  });
}

const WRONG: Json[] = [
  null,
  0,
  -1,
  1.5,
  1e308,
  true,
  false,
  "",
  "x",
  "123",
  [],
  [null],
  [1, "a"],
  {},
  { a: 1 },
  { name: 1 },
  { name: "fluentd", mountPath: 7 },
];

const nested = (depth: number, open: string, close: string, inner = "0") =>
  open.repeat(depth) + inner + close.repeat(depth);

function review(
  mutate: (r: Record<string, unknown> & { request: Record<string, unknown> }) => void,
  base: () => Record<string, unknown> = nginxReview,
): string {
  const r = base() as Record<string, unknown> & { request: Record<string, unknown> };
  mutate(r);
  return JSON.stringify(r);
}

type PodLike = {
  metadata?: Record<string, unknown>;
  spec: { containers: Array<Record<string, unknown>> } & Record<string, unknown>;
};
const podOf = (r: { request: Record<string, unknown> }) => r.request.object as PodLike;

function buildCorpus(): Case[] {
  const cases: Case[] = [];
  const add = (name: string, body: Case["body"], more: Partial<Case> = {}) =>
    cases.push({ name, body, ...more });
  const bases: Array<[string, () => Record<string, unknown>]> = [
    ["nginx", nginxReview],
    ["rich", richReview],
    ["job", jobReview],
  ];

  // 0. The valid reviews themselves.
  for (const [name, base] of bases) add(`valid ${name}`, JSON.stringify(base()), { expect: 200 });

  // 1. Truncated JSON: every prefix of the nginx review, every 3rd of the others.
  for (const [name, base] of bases) {
    const text = JSON.stringify(base());
    const step = name === "nginx" ? 1 : 3;
    for (let n = 0; n < text.length; n += step) {
      add(`${name} prefix ${n}`, text.slice(0, n), { expect: 400 });
    }
    const pretty = JSON.stringify(base(), null, 2);
    for (let n = 0; n < pretty.length; n += 17) {
      add(`${name} pretty prefix ${n}`, pretty.slice(0, n));
    }
  }

  // 2. Wrong types in every field (and every field deleted).
  for (const [name, base] of bases) {
    const doc = base() as Json;
    for (const path of allPaths(doc)) {
      add(`${name} delete ${path.join(".")}`, JSON.stringify(setAt(doc, path, undefined)));
      for (const w of WRONG) {
        add(`${name} ${path.join(".")}=${JSON.stringify(w)}`, JSON.stringify(setAt(doc, path, w)));
      }
    }
  }

  // 2b. Named wrong shapes.
  const named: Array<[string, (r: { request: Record<string, unknown> }) => void]> = [
    ["containers as object", (r) => {
      podOf(r).spec.containers = { nginx: { image: "nginx" } } as never;
    }],
    ["container name number", (r) => {
      podOf(r).spec.containers[0]!.name = 42;
    }],
    ["null annotations", (r) => {
      podOf(r).metadata!.annotations = null;
    }],
    ["annotation value number", (r) => {
      podOf(r).metadata!.annotations = { "sidecar-injector.io/inject": true, a: 1 };
    }],
    ["annotation value object", (r) => {
      podOf(r).metadata!.annotations = { "sidecar-injector.io/profile": { fluentd: 1 } };
    }],
    ["volumes as string", (r) => {
      podOf(r).spec.volumes = "app-logs";
    }],
    ["volumeMounts without mountPath", (r) => {
      podOf(r).spec.containers[0]!.volumeMounts = [{ name: "x" }];
    }],
    ["volumeMounts null entry", (r) => {
      podOf(r).spec.containers[0]!.volumeMounts = [null];
    }],
    ["volumeMounts as object", (r) => {
      podOf(r).spec.containers[0]!.volumeMounts = { name: "x", mountPath: "/x" };
    }],
    ["volumeDevices without devicePath", (r) => {
      podOf(r).spec.containers[0]!.volumeDevices = [{ name: "x" }];
    }],
    ["metadata as array", (r) => {
      podOf(r).metadata = [] as never;
    }],
    ["metadata null", (r) => {
      (podOf(r) as Record<string, unknown>).metadata = null;
    }],
    ["metadata missing", (r) => {
      delete podOf(r).metadata;
    }],
    ["spec missing", (r) => {
      delete (podOf(r) as Record<string, unknown>).spec;
    }],
    ["containers empty", (r) => {
      podOf(r).spec.containers = [];
    }],
    ["initContainers as object", (r) => {
      podOf(r).spec.initContainers = { a: 1 };
    }],
    ["initContainers entry without name", (r) => {
      podOf(r).spec.initContainers = [{ image: "x" }];
    }],
    ["ephemeralContainers name number", (r) => {
      podOf(r).spec.ephemeralContainers = [{ name: 1 }];
    }],
    ["volume without name", (r) => {
      podOf(r).spec.volumes = [{ emptyDir: {} }];
    }],
    ["ownerReferences as object", (r) => {
      podOf(r).metadata!.ownerReferences = { kind: "Job" };
    }],
    ["ownerReferences kind number", (r) => {
      podOf(r).metadata!.ownerReferences = [{ kind: 1 }];
    }],
    ["ownerReferences null entry", (r) => {
      podOf(r).metadata!.ownerReferences = [null];
    }],
    ["labels as array", (r) => {
      podOf(r).metadata!.labels = ["a"];
    }],
    ["labels value null", (r) => {
      podOf(r).metadata!.labels = { a: null };
    }],
    ["namespace number", (r) => {
      r.request.namespace = 7;
    }],
    ["object is a string", (r) => {
      r.request.object = JSON.stringify(podOf(r));
    }],
    ["object is an array", (r) => {
      r.request.object = [podOf(r)];
    }],
    ["object missing", (r) => {
      delete r.request.object;
    }],
    ["request is an array", (r) => {
      (r as Record<string, unknown>).request = [r.request];
    }],
    ["uid number", (r) => {
      r.request.uid = 12345;
    }],
    ["dryRun string", (r) => {
      r.request.dryRun = "false";
    }],
    ["kind.version number", (r) => {
      r.request.kind = { group: "", version: 1, kind: "Pod" };
    }],
    ["operation lower-case", (r) => {
      r.request.operation = "create";
    }],
    ["operation UPDATE with garbage object", (r) => {
      r.request.operation = "UPDATE";
      r.request.object = 5;
    }],
    ["kind Deployment with garbage object", (r) => {
      r.request.kind = { group: "apps", version: "v1", kind: "Deployment" };
      r.request.object = { spec: "x" };
    }],
    ["subResource binding", (r) => {
      r.request.subResource = "binding";
    }],
    ["subResource number", (r) => {
      r.request.subResource = 1;
    }],
    ["containers annotation listing nothing", (r) => {
      podOf(r).metadata!.annotations = { "sidecar-injector.io/containers": " , ,," };
    }],
    ["every annotation invalid", (r) => {
      podOf(r).metadata!.annotations = {
        "sidecar-injector.io/inject": "maybe",
        "sidecar-injector.io/profile": "nope",
        "sidecar-injector.io/image": "!!",
        "sidecar-injector.io/log-dir": "relative/../x",
        "sidecar-injector.io/cpu-request": "1e999999",
        "sidecar-injector.io/memory-limit": "-1Gi",
      };
    }],
    ["quantities at the edges", (r) => {
      podOf(r).metadata!.annotations = {
        "sidecar-injector.io/cpu-request": "1e308",
        "sidecar-injector.io/memory-limit": "0.",
      };
    }],
    ["log-dir colliding with every mount", (r) => {
      podOf(r).metadata!.annotations = { "sidecar-injector.io/log-dir": "/x" };
      podOf(r).spec.containers[0]!.volumeMounts = Array.from(
        { length: 500 },
        (_, i) => ({ name: "v", mountPath: i === 0 ? "/x" : `/x-${i}` }),
      );
    }],
    ["1000 volumes named app-logs-N", (r) => {
      podOf(r).spec.volumes = [
        { name: "app-logs" },
        ...Array.from({ length: 1000 }, (_, i) => ({ name: `app-logs-${i + 1}` })),
      ];
    }],
    ["63-char container names colliding", (r) => {
      const long = "f".repeat(63);
      podOf(r).metadata!.annotations = {};
      podOf(r).spec.containers = [{ name: "fluentd" }, { name: "fluentd-1" }, { name: long }];
    }],
  ];
  for (const [name, fn] of named) {
    add(name, review(fn));
    add(`${name} (rich)`, review(fn, richReview));
  }

  // 3. Huge values.
  const mb = "a".repeat(1024 * 1024);
  for (
    const key of [
      "example.com/huge",
      "sidecar-injector.io/containers",
      "sidecar-injector.io/image",
      "sidecar-injector.io/log-dir",
      "sidecar-injector.io/cpu-request",
      "sidecar-injector.io/memory-limit",
      "sidecar-injector.io/profile",
      "sidecar-injector.io/inject",
    ]
  ) {
    add(`1 MB annotation ${key}`, review((r) => podOf(r).metadata!.annotations = { [key]: mb }));
  }
  add(
    "1 MB of digits as cpu-request",
    review((r) =>
      podOf(r).metadata!.annotations = { "sidecar-injector.io/cpu-request": "9".repeat(1 << 20) }
    ),
  );
  add(
    "1 MB containers list of commas",
    review((r) =>
      podOf(r).metadata!.annotations = { "sidecar-injector.io/containers": ",x".repeat(1 << 19) }
    ),
  );
  add(
    "1 MB log-dir of slashes",
    review((r) =>
      podOf(r).metadata!.annotations = { "sidecar-injector.io/log-dir": "/a".repeat(1 << 19) }
    ),
  );
  add("1 MB uid", review((r) => r.request.uid = "u".repeat(1 << 20)));
  add("1 MB container name", review((r) => podOf(r).spec.containers[0]!.name = mb));
  add(
    "10,000 containers",
    review((r) =>
      podOf(r).spec.containers = Array.from({ length: 10_000 }, (_, i) => ({
        name: `c${i}`,
        image: "nginx",
      }))
    ),
    { expect: 200 },
  );
  add(
    "10,000 containers all named fluentd-N",
    review((r) =>
      podOf(r).spec.containers = Array.from({ length: 10_000 }, (_, i) => ({
        name: i === 0 ? "fluentd" : `fluentd-${i}`,
      }))
    ),
    { expect: 200 },
  );
  add(
    "10,000 annotations",
    review((r) =>
      podOf(r).metadata!.annotations = Object.fromEntries(
        Array.from({ length: 10_000 }, (_, i) => [`k${i}/~x`, `v${i}`]),
      )
    ),
    { expect: 200 },
  );

  // 4. Unicode and control characters.
  const weird = [
    "\u0000",
    "nul\u0000in",
    "\n\r\t",
    "\u202eevil",
    "ü",
    "😀",
    "\ud800",
    "\udfff\ud800",
    "\ufeff",
    "\u2028\u2029",
    "~0~1/",
    "a/b~c",
    "../..",
    "-",
    "0",
  ];
  for (const w of weird) {
    const label = JSON.stringify(w);
    add(`container name ${label}`, review((r) => podOf(r).spec.containers[0]!.name = w));
    add(`volume name ${label}`, review((r) => podOf(r).spec.volumes = [{ name: w }]));
    add(
      `mountPath ${label}`,
      review((r) => podOf(r).spec.containers[0]!.volumeMounts = [{ name: "v", mountPath: w }]),
    );
    add(`annotation key ${label}`, review((r) => podOf(r).metadata!.annotations = { [w]: w }));
    add(`uid ${label}`, review((r) => r.request.uid = w));
    add(`namespace ${label}`, review((r) => r.request.namespace = w));
    add(`name ${label}`, review((r) => r.request.name = w));
    add(
      `containers annotation ${label}`,
      review((r) => podOf(r).metadata!.annotations = { "sidecar-injector.io/containers": w }),
    );
    add(
      `log-dir annotation ${label}`,
      review((r) => podOf(r).metadata!.annotations = { "sidecar-injector.io/log-dir": `/x${w}` }),
    );
  }
  const nginxText = JSON.stringify(nginxReview());
  add("raw control character in a string", nginxText.replace('"nginx"', '"ng\u0001inx"'));
  add("raw newline in a string", nginxText.replace('"nginx"', '"ng\ninx"'));
  add("invalid UTF-8", new Uint8Array([...enc.encode(nginxText.slice(0, 50)), 0xff, 0xfe, 0x80]));
  add(
    "overlong UTF-8 in a string",
    new Uint8Array([...enc.encode(nginxText.replace('"nginx"', '"X"')).map((b) => b)].flatMap((
      b,
    ) => b === 0x58 ? [0xc0, 0xaf] : [b])),
  );
  add("UTF-8 BOM then JSON", new Uint8Array([0xef, 0xbb, 0xbf, ...enc.encode(nginxText)]));
  add("UTF-16LE body", new Uint8Array(Array.from(nginxText).flatMap((c) => [c.charCodeAt(0), 0])));
  add("NUL bytes", new Uint8Array(1000));

  // 5. Duplicate keys and prototype keys at every object.
  for (const [name, base] of bases) {
    const doc = base() as Json;
    for (const at of objectPaths(doc)) {
      const where = at.join(".") || "<root>";
      const inject = (entries: string[]) => (p: Path) =>
        p.length === at.length && p.every((k, i) => k === at[i]) ? entries : [];
      for (
        const entry of [
          '"__proto__":{"polluted":"yes","isAdmin":true}',
          '"constructor":{"prototype":{"polluted":"yes"}}',
          '"prototype":{"polluted":"yes"}',
          '"__proto__":null',
          '"__proto__":[1,2]',
        ]
      ) {
        add(`${name} ${entry.slice(0, 14)} at ${where}`, serialize(doc, inject([entry])));
      }
      // Duplicates: every key of this object repeated first with a wrong value, then the
      // real one wins (JSON.parse keeps the last); and the reverse.
      let node: Json = doc;
      for (const k of at) node = (node as Record<string | number, Json>)[k]!;
      for (const key of Object.keys(node as object)) {
        const dup = `${JSON.stringify(key)}:{"dup":true}`;
        add(`${name} duplicate ${where}.${key} (first)`, serialize(doc, inject([dup])));
        add(
          `${name} duplicate ${where}.${key} (last)`,
          serialize(doc, () => [], [], inject([dup])),
        );
      }
    }
  }
  for (
    const key of ["__proto__", "constructor", "prototype", "toString", "hasOwnProperty", "valueOf"]
  ) {
    const body = (ann: string) =>
      nginxText.replace('"metadata":{', `"metadata":{"annotations":${ann},`);
    add(`annotation key ${key}`, body(`{${JSON.stringify(key)}:"x"}`));
    add(`annotation key ${key} object`, body(`{${JSON.stringify(key)}:{"polluted":"yes"}}`));
    add(
      `profile annotation ${key}`,
      body(`{"sidecar-injector.io/profile":${JSON.stringify(key)}}`),
    );
    add(
      `containers annotation ${key}`,
      body(`{"sidecar-injector.io/containers":${JSON.stringify(key + ",nginx")}}`),
    );
    add(`container named ${key}`, review((r) => podOf(r).spec.containers[0]!.name = key));
    add(`volume named ${key}`, review((r) => podOf(r).spec.volumes = [{ name: key }]));
    add(`namespace ${key}`, review((r) => r.request.namespace = key));
    add(`uid ${key}`, review((r) => r.request.uid = key));
    add(`labels ${key}`, body(`{},"labels":{${JSON.stringify(key)}:"x"}`));
  }

  // 6. Deep nesting.
  const deep = 100_000;
  const splice = (at: string, value: string) => nginxText.replace(at, value);
  add(
    "100k nested arrays as object",
    splice(JSON.stringify(podOf(nginxReview() as never)), nested(deep, "[", "]")),
  );
  add(
    "100k nested arrays inside object.spec",
    splice('"spec":{', `"spec":{"deep":${nested(deep, "[", "]")},`),
    { expect: 200 },
  );
  add(
    "100k nested arrays inside a container",
    splice('{"name":"nginx"', `{"deep":${nested(deep, "[", "]")},"name":"nginx"`),
    { expect: 200 },
  );
  add(
    "100k nested objects inside object.metadata",
    splice('"metadata":{', `"metadata":{"deep":${nested(deep, '{"a":', "}")},`),
    { expect: 200 },
  );
  add(
    "100k nested arrays as annotations",
    splice('"metadata":{', `"metadata":{"annotations":${nested(deep, "[", "]")},`),
  );
  add(
    "100k nested objects as annotations",
    splice('"metadata":{', `"metadata":{"annotations":${nested(deep, '{"a":', "}")},`),
  );
  add(
    "100k nested arrays as uid",
    splice('"uid":"705ab4f5-6393-11e8-b7cc-42010a800002"', `"uid":${nested(deep, "[", "]")}`),
  );
  add(
    "100k nested arrays as containers[0]",
    splice('"containers":[', `"containers":[${nested(deep, "[", "]")},`),
  );
  add(
    "100k nested arrays as oldObject",
    splice('"oldObject":null', `"oldObject":${nested(deep, "[", "]")}`),
    {
      expect: 200,
    },
  );
  add("100k nested arrays as the body", nested(deep, "[", "]"));
  add("1M nested arrays as the body", nested(1_000_000, "[", "]"));
  add("100k unclosed arrays", "[".repeat(deep));
  add(
    "100k nested arrays inside object.spec (unclosed)",
    splice('"spec":{', `"spec":{"deep":${"[".repeat(deep)},`),
  );

  // 7. Numbers and literals where objects belong; bodies that are not reviews.
  for (
    const body of [
      "",
      " ",
      "\n",
      "null",
      "true",
      "0",
      "-0",
      "1e999",
      '"AdmissionReview"',
      "[]",
      "{}",
      '{"kind":"AdmissionReview"}',
      '{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1"}',
      '{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":null}',
      '{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v2","request":{}}',
      '{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{"uid":""}}',
      nginxText + nginxText,
      nginxText + "garbage",
      nginxText + "\u0000",
      " \t\n" + nginxText + " \t\n",
      nginxText.replaceAll(":", " : "),
      nginxText.replace('"CREATE"', '"\\u0043REATE"'),
    ]
  ) add(`literal ${describe(body).slice(0, 60)}`, body);
  add("no body at all", null, { expect: 400 });
  add("empty body", "", { expect: 400 });

  // 8. Size limits.
  const pad = (n: number) => {
    const base = nginxText.slice(0, -1);
    return base + " ".repeat(n - base.length - 1) + "}";
  };
  add("exactly MAX_BODY_BYTES (valid, padded)", pad(MAX_BODY_BYTES), { expect: 200 });
  add("MAX_BODY_BYTES + 1", pad(MAX_BODY_BYTES + 1), { expect: 413 });
  add("7 MiB + 1 of x", "x".repeat(7 * 1024 * 1024 + 1), { expect: 413 });
  add("7 MiB + 1 streamed", null, { expect: 413, method: "STREAM" });

  // 9. Header and query lies.
  const cl = (v: string, extra: Record<string, string> = {}) => ({
    headers: { "content-type": "application/json", "content-length": v, ...extra },
  });
  add("content-length smaller than body", nginxText, cl("10"));
  add("content-length larger than body", nginxText, cl(String(nginxText.length + 1000)));
  add("content-length 0 with body", nginxText, cl("0"));
  add("content-length over the cap", nginxText, { ...cl("7340033"), expect: 413 });
  add("content-length huge", nginxText, { ...cl("99999999999999999999999"), expect: 400 });
  for (const v of ["abc", "-1", "1e3", "0x10", "5, 5", "+5", "1.0", "", " "]) {
    add(`content-length ${JSON.stringify(v)}`, nginxText, cl(v));
  }
  add(
    "content-length 10 with transfer-encoding chunked",
    nginxText,
    cl("10", { "transfer-encoding": "chunked" }),
  );
  add("content-length small, body over the cap", "x".repeat(MAX_BODY_BYTES + 1), cl("10"));
  add("content-type text/plain", nginxText, {
    headers: { "content-type": "text/plain" },
    expect: 415,
  });
  // A Uint8Array body: a string body would get an implicit text/plain content-type.
  add("no content-type", enc.encode(nginxText), { headers: {}, expect: 200 });
  add("content-type jsonish", nginxText, { headers: { "content-type": "application/x-json-ish" } });
  add("GET /mutate", null, { method: "GET", expect: 405 });
  add("PUT /mutate", nginxText, { method: "PUT", expect: 405 });
  add("DELETE /mutate", nginxText, { method: "DELETE", expect: 405 });
  for (
    const q of [
      "?timeout=abc",
      "?timeout=0",
      "?timeout=0s",
      "?timeout=-5s",
      "?timeout=1e9",
      "?timeout=10s&timeout=1ms",
      "?timeout=" + "9".repeat(400) + "s",
      "?" + "&".repeat(100_000) + "timeout=1s",
      "?timeout=" + "1".repeat(100_000),
      "?%00=%ff",
    ]
  ) add(`query ${q.slice(0, 40)}`, nginxText, { query: q });
  return cases;
}

interface Outcome {
  c: Case;
  status: number;
  problem: string | undefined;
}

async function send(
  handler: (req: Request) => Promise<Response>,
  c: Case,
): Promise<Outcome> {
  let req: Request;
  if (c.method === "STREAM") {
    // A body without content-length, in 64 KiB chunks, longer than the cap.
    let sent = 0;
    const total = 7 * 1024 * 1024 + 1;
    const stream = new ReadableStream<Uint8Array>({
      pull(ctrl) {
        const n = Math.min(65536, total - sent);
        if (n <= 0) return ctrl.close();
        ctrl.enqueue(new Uint8Array(n).fill(0x20));
        sent += n;
      },
    });
    req = mutateRequest(stream);
  } else {
    req = mutateRequest(c.body as BodyInit | null, {
      ...(c.headers ? { headers: c.headers } : {}),
      ...(c.query ? { query: c.query } : {}),
      ...(c.method ? { method: c.method } : {}),
    });
  }
  let res: Response;
  try {
    res = await handler(req);
  } catch (err) {
    return { c, status: -1, problem: `handler threw: ${String(err)}` };
  }
  const text = typeof c.body === "string" ? c.body : c.body instanceof Uint8Array
    ? (() => {
      try {
        return new TextDecoder("utf-8", { fatal: true }).decode(c.body);
      } catch {
        return undefined;
      }
    })()
    : undefined;
  let problem = await checkAnswer(res, text);
  if (!problem && c.expect !== undefined && res.status !== c.expect) {
    problem = `expected ${c.expect}, got ${res.status}`;
  }
  return { c, status: res.status, problem };
}

let run: Promise<{ outcomes: Outcome[]; log: ReturnType<typeof makeHandler>["log"] }> | undefined;
const before = prototypeSnapshot();

function runCorpus() {
  run ??= (async () => {
    const { handler, log } = makeHandler();
    const outcomes: Outcome[] = [];
    for (const c of buildCorpus()) outcomes.push(await send(handler, c));
    const byStatus = new Map<number, number>();
    for (const o of outcomes) byStatus.set(o.status, (byStatus.get(o.status) ?? 0) + 1);
    say(
      `hostile corpus: ${outcomes.length} cases; by status ${
        JSON.stringify(Object.fromEntries([...byStatus].sort()))
      }`,
    );
    return { outcomes, log };
  })();
  return run;
}

Deno.test("hostile bodies: never 5xx, never a throw; 200s are valid answers whose patch applies", async () => {
  const { outcomes } = await runCorpus();
  const bad = outcomes.filter((o) => o.problem !== undefined);
  assert.equal(
    bad.length,
    0,
    `${bad.length} of ${outcomes.length} cases failed:\n` +
      bad.slice(0, 30).map((o) => `- ${o.c.name} [${o.status}]: ${o.problem}`).join("\n"),
  );
});

Deno.test("hostile bodies: nothing reaches the internal-error paths (no fail-open hiding a throw)", async () => {
  const { log } = await runCorpus();
  const errors = log.lines.filter((l) => l.level === "error");
  assert.equal(
    errors.length,
    0,
    errors.slice(0, 10).map((l) => JSON.stringify(l).slice(0, 500)).join("\n"),
  );
});

Deno.test("hostile bodies: no prototype pollution", async () => {
  await runCorpus();
  assertNoPollution(before);
  assert.equal(Object.keys(Object.prototype).length, 0);
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
});

Deno.test("a ?timeout= beyond 2^31 ms does not turn into an immediate 408", async () => {
  // timeoutFromQuery accepts any number of digits; setTimeout clamps delays above
  // 2^31-1 ms to 1 ms, so the body deadline fires at once.
  const { handler } = makeHandler();
  const text = JSON.stringify(nginxReview());
  for (
    const query of ["?timeout=2147484s", "?timeout=36000m", "?timeout=" + "9".repeat(400) + "s"]
  ) {
    const stream = new ReadableStream<Uint8Array>({
      async start(ctrl) {
        await new Promise((r) => setTimeout(r, 30));
        ctrl.enqueue(enc.encode(text));
        ctrl.close();
      },
    });
    const res = await handler(mutateRequest(stream, { query }));
    const body = await res.text();
    assert.equal(
      res.status,
      200,
      `POST /mutate${query.slice(0, 30)} with a body after 30 ms: ${res.status} ${body}`,
    );
  }
});

Deno.test("warnings stay bounded when an annotation is huge", async () => {
  // invalid() shortens the shown value to 64 characters, but the reason for
  // `containers` lists every unknown name, so a 1 MB annotation becomes a 1.5 MB warning.
  const { handler } = makeHandler();
  for (
    const [key, value] of [
      ["sidecar-injector.io/containers", ",x".repeat(1 << 19)],
      ["sidecar-injector.io/containers", Array.from({ length: 50_000 }, (_, i) => `c${i}`).join()],
      ["sidecar-injector.io/profile", "p".repeat(1 << 20)],
      ["sidecar-injector.io/image", "!".repeat(1 << 20)],
    ] as const
  ) {
    const text = review((r) => podOf(r).metadata!.annotations = { [key]: value });
    const res = await handler(mutateRequest(text));
    assert.equal(res.status, 200);
    const out = await res.json();
    const lengths: number[] = (out.response.warnings ?? []).map((w: string) => w.length);
    assert.ok(
      lengths.every((n) => n <= 1024),
      `${key}=<${value.length} chars>: warning lengths ${JSON.stringify(lengths)}`,
    );
  }
});
