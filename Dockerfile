# syntax=docker/dockerfile:1
#
# Multi-stage build: compile the webhook into a single self-contained binary with
# `deno compile`, then ship it on a distroless (no shell, no package manager) base.
#
# Permissions are NOT listed here: `deno task compile` runs
#   deno compile --frozen -P=serve --include=deno.json -o dist/sidecar-injector main.ts
# which bakes exactly the "serve" permission set from deno.json into the binary.

FROM denoland/deno:2.9.6 AS build
WORKDIR /src

# Dependency layer: only invalidated when deno.json / deno.lock change.
COPY deno.json deno.lock ./
RUN deno install --frozen

COPY main.ts ./
COPY cli/ ./cli/
COPY lib/ ./lib/
RUN deno task compile

# cc variant: the deno-compiled binary links against glibc/libgcc.
FROM gcr.io/distroless/cc-debian12:nonroot

LABEL org.opencontainers.image.title="sidecar-injector" \
      org.opencontainers.image.description="Kubernetes mutating admission webhook that injects a Fluentd log-shipping sidecar into Pods" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.source="https://github.com/example/sidecar-injector" \
      org.opencontainers.image.base.name="gcr.io/distroless/cc-debian12:nonroot"

COPY --from=build /src/dist/sidecar-injector /usr/local/bin/sidecar-injector

# nonroot = uid/gid 65532, matching runAsUser/runAsGroup in k8s/deployment.yaml.
USER nonroot
EXPOSE 8443

# Exec form only: there is no shell in the runtime image. SIGTERM goes straight to
# the server, which drains in-flight requests before exiting.
ENTRYPOINT ["/usr/local/bin/sidecar-injector"]
# Keep in sync with the container args in k8s/deployment.yaml (checked by
# tests/unit/deploy_files_test.ts).
CMD ["serve", "--port", "8443", "--host", "0.0.0.0", "--cert", "/tls/tls.crt", "--key", "/tls/tls.key", "--config", "/etc/sidecar-injector/config.yaml"]
