import assert from "node:assert/strict";
import { choosePort, fluentBitHttpServer, fluentdMonitorAgent } from "./http.ts";

const pipeline = {
  logDir: "/var/log/app",
  output: { type: "stdout" } as const,
  containers: ["app"],
  bufferBytes: 2 ** 20,
};

Deno.test("choosePort() keeps a free port and moves past taken ones, wrapping at 65535", () => {
  const warnings: string[] = [];
  assert.equal(choosePort(2020, new Set([80]), warnings), 2020);
  assert.deepEqual(warnings, []);
  assert.equal(choosePort(2020, new Set([2020, 2021]), warnings), 2022);
  assert.equal(choosePort(65535, new Set([65535, 1024]), warnings), 1025);
  assert.equal(warnings.length, 2);
});

Deno.test("the endpoint's config reads its port from the environment, and is absent when off", () => {
  assert.deepEqual(fluentBitHttpServer({ ...pipeline, metrics: false }), []);
  assert.deepEqual(fluentdMonitorAgent(pipeline), []);
  const bit = Object.fromEntries(fluentBitHttpServer({ ...pipeline, metrics: true }));
  assert.equal(bit.HTTP_Port, "${AGENT_METRICS_PORT}");
  const fd = fluentdMonitorAgent({ ...pipeline, metrics: true }).join("\n");
  assert.match(fd, /port "#\{ENV\['AGENT_METRICS_PORT'\]\}"/);
  assert.match(fd, /include_config false/);
});
