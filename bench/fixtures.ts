/**
 * The AdmissionReview bodies the benchmark sends. Built in code (not read from
 * files) so `deno bench bench/inject_bench.ts` needs no permissions; `run.ts`
 * also writes them to `bench/fixtures/*.json` for wrk.
 * @module
 */

import { podCreateReview } from "../testing/reviews.ts";

type Json = Record<string, unknown>;

/** The ReplicaSet controller creates the pods of a Deployment. */
const RS_CONTROLLER = {
  username: "system:serviceaccount:kube-system:replicaset-controller",
  uid: "0b0e8a3c-6f7d-4a52-9d1e-3c8f0b1a2d4e",
  groups: ["system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"],
};

function review(uid: string, namespace: string, name: string, object: Json): Json {
  return podCreateReview(object, { uid, namespace, name, userInfo: RS_CONTROLLER });
}

/** A pod as the ReplicaSet controller of a Deployment creates it (~2 KB of pod, ~3 KB of review). */
export function realisticPod(): Json {
  return {
    kind: "Pod",
    apiVersion: "v1",
    metadata: {
      generateName: "checkout-7d9f8b6c5d-",
      namespace: "shop",
      uid: "5f2c1a7e-91b3-4c0d-8e6a-2b7d4f9c0e13",
      creationTimestamp: null,
      labels: {
        "app.kubernetes.io/name": "checkout",
        "app.kubernetes.io/part-of": "shop",
        "app.kubernetes.io/version": "2.14.1",
        "pod-template-hash": "7d9f8b6c5d",
      },
      annotations: {
        "kubectl.kubernetes.io/restartedAt": "2025-05-12T09:41:07Z",
        "prometheus.io/scrape": "true",
        "prometheus.io/port": "9090",
      },
      ownerReferences: [{
        apiVersion: "apps/v1",
        kind: "ReplicaSet",
        name: "checkout-7d9f8b6c5d",
        uid: "c3a9e2d1-7b4f-4e8a-9c6d-1f0b3e5a7d92",
        controller: true,
        blockOwnerDeletion: true,
      }],
    },
    spec: {
      volumes: [
        { name: "config", configMap: { name: "checkout-config", defaultMode: 420 } },
      ],
      containers: [
        {
          name: "checkout",
          image: "registry.example.com/shop/checkout:2.14.1",
          ports: [
            { name: "http", containerPort: 8080, protocol: "TCP" },
            { name: "metrics", containerPort: 9090, protocol: "TCP" },
          ],
          env: [
            { name: "LOG_LEVEL", value: "info" },
            { name: "DB_HOST", value: "postgres.shop.svc.cluster.local" },
            {
              name: "DB_PASSWORD",
              valueFrom: { secretKeyRef: { name: "checkout-db", key: "password" } },
            },
          ],
          resources: {
            limits: { cpu: "1", memory: "512Mi" },
            requests: { cpu: "250m", memory: "256Mi" },
          },
          volumeMounts: [
            { name: "config", readOnly: true, mountPath: "/etc/checkout" },
          ],
          livenessProbe: {
            httpGet: { path: "/healthz", port: "http", scheme: "HTTP" },
            initialDelaySeconds: 10,
            periodSeconds: 10,
            timeoutSeconds: 1,
            successThreshold: 1,
            failureThreshold: 3,
          },
          readinessProbe: {
            httpGet: { path: "/ready", port: "http", scheme: "HTTP" },
            periodSeconds: 5,
            timeoutSeconds: 1,
            successThreshold: 1,
            failureThreshold: 3,
          },
          terminationMessagePath: "/dev/termination-log",
          terminationMessagePolicy: "File",
          imagePullPolicy: "IfNotPresent",
        },
        {
          name: "envoy",
          image: "envoyproxy/envoy:v1.31.2",
          args: ["-c", "/etc/envoy/envoy.yaml", "--log-level", "warn"],
          ports: [{ name: "proxy", containerPort: 15001, protocol: "TCP" }],
          resources: {
            limits: { cpu: "500m", memory: "128Mi" },
            requests: { cpu: "50m", memory: "64Mi" },
          },
          volumeMounts: [{ name: "config", readOnly: true, mountPath: "/etc/envoy" }],
          readinessProbe: {
            tcpSocket: { port: 15001 },
            periodSeconds: 5,
            timeoutSeconds: 1,
            successThreshold: 1,
            failureThreshold: 3,
          },
          terminationMessagePath: "/dev/termination-log",
          terminationMessagePolicy: "File",
          imagePullPolicy: "IfNotPresent",
        },
      ],
      restartPolicy: "Always",
      terminationGracePeriodSeconds: 30,
      dnsPolicy: "ClusterFirst",
      serviceAccountName: "checkout",
      serviceAccount: "checkout",
      securityContext: { runAsNonRoot: true, fsGroup: 2000 },
      schedulerName: "default-scheduler",
      priority: 0,
      enableServiceLinks: true,
      preemptionPolicy: "PreemptLowerPriority",
    },
    status: {},
  };
}

/** The smallest useful pod: one `nginx` container. */
export function smallPod(): Json {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: "nginx", namespace: "default" },
    spec: { containers: [{ name: "nginx", image: "nginx" }] },
  };
}

/**
 * A large but legal pod: a 250 KB annotation (an Argo workflow template or a
 * big `last-applied-configuration`; the apiserver allows 256 KiB of
 * annotations) and 10 containers with 60 env vars each: a ~390 KB review.
 */
export function largePod(): Json {
  const pod = realisticPod();
  const meta = pod.metadata as Json;
  meta.annotations = {
    ...(meta.annotations as Json),
    "workflows.argoproj.io/template": JSON.stringify({ steps: "x".repeat(250_000) }),
  };
  const spec = pod.spec as { containers: Json[] };
  const template = spec.containers[0]!;
  spec.containers = Array.from({ length: 10 }, (_, i) => ({
    ...template,
    name: `worker-${i}`,
    env: Array.from({ length: 60 }, (_, j) => ({
      name: `WORKER_${i}_SETTING_${j}`,
      value: `value-${i}-${j}-${"v".repeat(180)}`,
    })),
  }));
  return pod;
}

/** The realistic review (a Deployment-made pod, ~3 KB). */
export function realisticReview(): Json {
  return review("705ab4f5-6393-11e8-b7cc-42010a800002", "shop", "", realisticPod());
}

/** The large review (~390 KB, see {@link largePod}). */
export function largeReview(): Json {
  return review("3d1f0c2a-5b7e-4a9c-8d6f-0e2b4c6a8f10", "shop", "", largePod());
}

/** The small review (one nginx container). */
export function smallReview(): Json {
  return review("1f3c5e7a-9b2d-4f6e-8a0c-2e4d6f8a0b1c", "default", "nginx", smallPod());
}

/**
 * Writes the reviews for wrk: the realistic and small ones to bench/fixtures/
 * (committed, to show what is sent), the large one to .tmp/ (400 KB of filler).
 * Returns each body's bytes and file.
 */
export async function writeFixtures(): Promise<{
  bodies: Record<"realistic" | "small" | "large", Uint8Array>;
  files: Record<"realistic" | "small" | "large", string>;
}> {
  const root = new URL("..", import.meta.url).pathname;
  const files = {
    realistic: `${root}bench/fixtures/realistic.json`,
    small: `${root}bench/fixtures/small.json`,
    large: `${root}.tmp/bench-large.json`,
  };
  const reviews = { realistic: realisticReview(), small: smallReview(), large: largeReview() };
  const encoder = new TextEncoder();
  const bodies = {
    realistic: encoder.encode(JSON.stringify(reviews.realistic)),
    small: encoder.encode(JSON.stringify(reviews.small)),
    large: encoder.encode(JSON.stringify(reviews.large)),
  };
  await Deno.writeTextFile(files.realistic, JSON.stringify(reviews.realistic, null, 2) + "\n");
  await Deno.writeTextFile(files.small, JSON.stringify(reviews.small, null, 2) + "\n");
  await Deno.writeFile(files.large, bodies.large);
  return { bodies, files };
}
