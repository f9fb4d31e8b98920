import assert from "node:assert/strict";
import { ConfigSource } from "./source.ts";

Deno.test("ConfigSource reloads good -> bad -> good, serving the last good config meanwhile", async () => {
  let text = "defaultProfile: fluentd\n";
  const events: string[] = [];
  const source = await ConfigSource.open("/cfg.yaml", {
    read: () => Promise.resolve(text),
    ownNamespace: "sidecar-injector",
    onReload: (result, error) => events.push(error ? `${result}: ${error}` : result),
  });
  assert.equal(source.current.defaultProfile, "fluentd");
  assert.ok(
    source.current.excludeNamespaces.includes("sidecar-injector"),
    "own namespace excluded",
  );

  text = "defaultProfile: fluent-bit\n";
  assert.equal(await source.reload(), "ok");
  assert.equal(source.current.defaultProfile, "fluent-bit");

  text = "defaultProfile: [broken\n";
  assert.equal(await source.reload(), "rejected");
  assert.equal(source.current.defaultProfile, "fluent-bit", "last good config keeps serving");

  text = "defaultProfile: fluentd\n";
  assert.equal(await source.reload(), "ok");
  assert.equal(source.current.defaultProfile, "fluentd");
  assert.equal(await source.reload(), "unchanged");
  assert.ok(
    source.current.excludeNamespaces.includes("sidecar-injector"),
    "still excluded after reloads",
  );

  assert.equal(events.length, 4);
  assert.equal(events[0], "ok");
  assert.match(events[1] ?? "", /^rejected: \/cfg\.yaml: not valid YAML/);
  assert.deepEqual(events.slice(2), ["ok", "unchanged"]);
});

Deno.test("ConfigSource.open() throws on an invalid file so startup fails", async () => {
  await assert.rejects(
    ConfigSource.open("/cfg.yaml", { read: () => Promise.resolve("mode: 3\n") }),
    /\/cfg\.yaml: mode: must be one of native, classic, auto, got number 3/,
  );
});
