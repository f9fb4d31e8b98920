import { defaultConfig, inject } from "/work/main/lib/mod.ts";
const r = inject(
  {
    metadata: { name: "x", namespace: "default" },
    spec: { containers: [{ name: "app", image: "nginx" }] },
  },
  defaultConfig(),
  { namespace: "default" },
);
console.log(JSON.stringify(r, null, 1));
console.log(JSON.stringify(r.patch).length);
