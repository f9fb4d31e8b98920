/**
 * `inject()` alone, without HTTP: `deno bench bench/inject_bench.ts`.
 * Needs no permissions (the fixtures are built in code).
 * @module
 */
import { assertPod, decodeReview, defaultConfig, inject } from "../lib/mod.ts";
import { realisticPod, realisticReview, smallPod } from "./fixtures.ts";

const config = defaultConfig();
const realistic = realisticPod();
const small = smallPod();
assertPod(realistic);
assertPod(small);
const realisticText = JSON.stringify(realisticReview());

Deno.bench("inject realistic pod", { group: "inject", baseline: true }, () => {
  inject(realistic, config, { namespace: "shop" });
});

Deno.bench("inject small pod", { group: "inject" }, () => {
  inject(small, config, { namespace: "default" });
});

Deno.bench("decode+inject+stringify realistic", () => {
  const review = decodeReview(realisticText);
  const pod = review.request.pod;
  if (!pod) throw new Error("no pod");
  JSON.stringify(inject(pod, config, { namespace: review.request.namespace }).patch);
});
