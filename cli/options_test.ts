import assert from "node:assert/strict";
import { DEFAULT_MEMORY_BUDGET_BYTES } from "../lib/mod.ts";
import { parseCommand, UsageError } from "./options.ts";

const SERVE = ["serve", "--cert", "c.pem", "--key", "k.pem"];

Deno.test("parseCommand() fills serve defaults and reads every serve flag", () => {
  assert.deepEqual(parseCommand(SERVE), {
    name: "serve",
    options: {
      certFile: "c.pem",
      keyFile: "k.pem",
      configFile: undefined,
      hostname: "0.0.0.0",
      port: 8443,
      drainDelayMs: 5000,
      maxInFlight: 512,
      memoryBudgetBytes: DEFAULT_MEMORY_BUDGET_BYTES,
      maxConnections: 1024,
      metricsPort: undefined,
      logLevel: "info",
      auditIntervalMs: undefined,
      kubeconfig: undefined,
    },
  });
  const cmd = parseCommand([
    ...SERVE,
    "--port=0",
    "--host",
    "127.0.0.1",
    "--config",
    "/etc/x.yaml",
    "--drain-delay-ms",
    "0",
    "--max-in-flight",
    "8",
    "--memory-budget-mib",
    "10",
    "--max-connections",
    "9",
    "--metrics-port",
    "9090",
    "--log-level",
    "debug",
  ]);
  assert.equal(cmd.name, "serve");
  if (cmd.name !== "serve") return;
  assert.equal(cmd.options.port, 0);
  assert.equal(cmd.options.hostname, "127.0.0.1");
  assert.equal(cmd.options.configFile, "/etc/x.yaml");
  assert.equal(cmd.options.drainDelayMs, 0);
  assert.equal(cmd.options.maxInFlight, 8);
  assert.equal(cmd.options.memoryBudgetBytes, 10 * 1024 * 1024);
  assert.equal(cmd.options.maxConnections, 9);
  assert.equal(cmd.options.metricsPort, 9090);
  assert.equal(cmd.options.logLevel, "debug");
});

Deno.test("parseCommand() reads serve's --audit-interval (Go-style durations) and --kubeconfig", () => {
  const cases: Array<[string, number]> = [["5m", 300_000], ["90s", 90_000], ["1h30m", 5_400_000], [
    "1s",
    1000,
  ], ["24h", 86_400_000]];
  for (const [text, ms] of cases) {
    const cmd = parseCommand([...SERVE, "--audit-interval", text]);
    assert.ok(cmd.name === "serve");
    assert.equal(cmd.options.auditIntervalMs, ms, text);
    assert.equal(cmd.options.kubeconfig, undefined);
  }
  const cmd = parseCommand([...SERVE, "--audit-interval=5m", "--kubeconfig", "/k"]);
  assert.ok(cmd.name === "serve");
  assert.equal(cmd.options.kubeconfig, "/k");
});

Deno.test("parseCommand() reads audit's flags; defaults to the context namespace and a table", () => {
  assert.deepEqual(parseCommand(["audit"]), {
    name: "audit",
    options: {
      kubeconfig: undefined,
      context: undefined,
      namespace: undefined,
      allNamespaces: false,
      output: "table",
      configFile: undefined,
      webhook: "sidecar-injector",
      injectorNamespace: undefined,
    },
  });
  assert.deepEqual(
    parseCommand([
      "audit",
      "--kubeconfig=/k",
      "--context",
      "prod",
      "-A",
      "-o",
      "json",
      "--config",
      "c.yaml",
      "--webhook",
      "w",
      "--injector-namespace",
      "inj",
    ]),
    {
      name: "audit",
      options: {
        kubeconfig: "/k",
        context: "prod",
        namespace: undefined,
        allNamespaces: true,
        output: "json",
        configFile: "c.yaml",
        webhook: "w",
        injectorNamespace: "inj",
      },
    },
  );
  const cmd = parseCommand(["audit", "-n", "shop"]);
  assert.ok(cmd.name === "audit");
  assert.equal(cmd.options.namespace, "shop");
});

Deno.test("parseCommand() runs serve when the first argument is a flag", () => {
  assert.equal(parseCommand(SERVE.slice(1)).name, "serve");
});

Deno.test("parseCommand() reads inject's -f -, -o and --output=json", () => {
  assert.deepEqual(parseCommand(["inject", "-f", "-"]), {
    name: "inject",
    options: { file: "-", output: "yaml", configFile: undefined },
  });
  assert.deepEqual(
    parseCommand(["inject", "--filename=x.yaml", "--output=json", "--config", "c"]),
    {
      name: "inject",
      options: { file: "x.yaml", output: "json", configFile: "c" },
    },
  );
  assert.deepEqual(parseCommand(["inject", "-f", "a", "-o", "json"]), {
    name: "inject",
    options: { file: "a", output: "json", configFile: undefined },
  });
});

Deno.test("parseCommand() gives help for help, -h and --help of any command", () => {
  for (const args of [["help"], ["-h"], ["serve", "--help"], ["inject", "-h"]]) {
    assert.deepEqual(parseCommand(args), { name: "help" }, args.join(" "));
  }
});

const usageErrors: Array<[string[], RegExp]> = [
  [["inject", "-f", "x", "--port", "9"], /^unknown flag --port$/],
  [["inject", "-f", "x", "--drain-delay-ms", "5"], /^unknown flag --drain-delay-ms$/],
  [["serve", "-f", "x"], /^unknown flag -f$/],
  [["inject", "--bogus"], /^unknown flag --bogus$/],
  [["deploy"], /^unknown command deploy$/],
  [["inject", "-f", "a", "b"], /^unexpected argument b$/],
  [["inject"], /^--filename is required$/],
  [["inject", "-f", "a", "-o", "xml"], /^-o must be yaml or json$/],
  [["inject", "-f"], /^-f, --filename needs a value$/],
  [["serve", "--key", "k"], /^--cert is required$/],
  [[...SERVE, "--port", "70000"], /^--port must be an integer 0-65535$/],
  [[...SERVE, "--port", "-1"], /^--port needs a value \(write --port=VALUE if it starts with -\)$/],
  [[...SERVE, "--port=-1"], /^--port must be an integer 0-65535$/],
  [[...SERVE, "--max-in-flight", "0"], /^--max-in-flight must be an integer 1-1000000$/],
  [[...SERVE, "--memory-budget-mib", "0"], /^--memory-budget-mib must be an integer 1-65536$/],
  [[...SERVE, "--metrics-port", "x"], /^--metrics-port must be an integer 0-65535$/],
  [[...SERVE, "--log-level", "loud"], /^--log-level must be debug\|info\|warn\|error$/],
  [[...SERVE, "--audit-interval", "5"], /^--audit-interval must be a duration such as 30s/],
  [[...SERVE, "--audit-interval", "500ms"], /^--audit-interval must be a duration/],
  [[...SERVE, "--audit-interval", "0s"], /^--audit-interval must be a duration .* from 1s to 24h$/],
  [[...SERVE, "--audit-interval", "25h"], /^--audit-interval must be a duration/],
  [[...SERVE, "--audit-interval="], /^--audit-interval must be a duration/],
  [[...SERVE, "--kubeconfig", "/k"], /^--kubeconfig is used only with --audit-interval$/],
  [["audit", "-n", "a", "-A"], /^--namespace and --all-namespaces exclude each other$/],
  [["audit", "-o", "yaml"], /^-o must be table or json$/],
  [["audit", "--cert", "c"], /^unknown flag --cert$/],
];

for (const [args, message] of usageErrors) {
  Deno.test(`parseCommand(${JSON.stringify(args)}) is a usage error`, () => {
    assert.throws(() => parseCommand(args), (err: unknown) => {
      assert.ok(err instanceof UsageError, `UsageError, got ${err}`);
      assert.match(err.message, message);
      return true;
    });
  });
}
